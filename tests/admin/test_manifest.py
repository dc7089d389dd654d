"""The integration manifest: the shipped one is valid, bad ones are refused naming the field,
it renders into the Platform API's bodies, and every field is documented."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from server.admin.manifest import (
    INSTALL_MARKER,
    Manifest,
    load,
    load_schema,
    normalise_base_url,
    render,
    validate,
)
from server.errors import ManifestError

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "manifest.md"


def shipped() -> dict[str, Any]:
    return copy.deepcopy(load().data)


def schema_paths(schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Every property path the schema defines, e.g. ``widget.lifecycle.hooks``."""
    paths = []
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        paths.append(path)
        paths += schema_paths(sub, path + ".")
    return paths


def test_the_shipped_manifest_is_valid() -> None:
    manifest = load()
    assert manifest.name_prefix == "Assist Panel"
    assert manifest.grant == "pkce"


def test_every_schema_field_is_documented() -> None:
    documented = set(re.findall(r"^\| `([^`]+)` \|", DOC.read_text("utf-8"), re.MULTILINE))
    missing = [p for p in schema_paths(load_schema()) if p not in documented]
    assert not missing, f"fields missing from docs/manifest.md: {missing}"
    unknown = documented - set(schema_paths(load_schema()))
    assert not unknown, f"docs/manifest.md documents fields the schema lacks: {unknown}"


def test_renders_the_oauth_client_for_the_base_url() -> None:
    desired = render(load(), "https://assist.example.com/")
    assert desired.base_url == "https://assist.example.com"
    assert desired.oauth_client == {
        "name": "Assist Panel sign-in",
        "description": shipped()["oauthClient"]["description"],
        "authorizedGrantType": "CODE",
        "registeredRedirectUri": ["https://assist.example.com/panel"],
        "scope": ["user-basic-info", "conversations:readonly", "notifications"],
        "accessTokenValiditySeconds": 86400,
    }
    assert desired.redirect_uri == "https://assist.example.com/panel"


def test_renders_the_widget_config_with_genesys_variables_left_for_genesys() -> None:
    desired = render(load(), "https://assist.example.com")
    properties = desired.config["properties"]
    assert properties["url"] == (
        "https://assist.example.com/panel?conversationId={{gcConversationId}}"
        "&gcHostOrigin={{gcHostOrigin}}&gcTargetEnv={{gcTargetEnv}}&langTag={{gcLangTag}}"
        "&gcUsePopupAuth={{gcUsePopupAuth}}"
    )
    assert "allow-scripts" in properties["sandbox"].split(",")
    assert properties["permissions"] == "clipboard-write"
    assert properties["communicationTypeFilter"] == "call,webmessaging"
    advanced = desired.config["advanced"]
    assert advanced["lifecycle"]["hooks"] == {"bootstrap": True, "focus": True, "blur": True,
                                              "stop": True}
    assert advanced["icon"] == {
        "vector": "https://assist.example.com/static/icons/assist-panel.svg"}
    assert advanced["i10n"]["ja"] == {"name": "アシストパネル"}
    assert desired.integration_type == "embedded-client-app-interaction-widget"


def test_the_implicit_grant_renders_as_token() -> None:
    data = shipped()
    data["oauthClient"]["grant"] = "implicit"
    data["oauthClient"]["tokenLifetimeSeconds"] = 3600
    desired = render(Manifest(Path("edited.json"), data), "http://localhost:8000")
    assert desired.oauth_client["authorizedGrantType"] == "TOKEN"
    assert desired.oauth_client["accessTokenValiditySeconds"] == 3600


def test_the_shipped_icon_is_served_by_the_panel() -> None:
    assert (ROOT / "frontend" / "static" / "icons" / "assist-panel.svg").is_file()


def _broken(change: str) -> dict[str, Any]:
    data = shipped()
    if change == "missing oauthClient":
        del data["oauthClient"]
    elif change == "url without the conversation":
        data["widget"]["urlTemplate"] = "{baseUrl}/panel?gcHostOrigin={{gcHostOrigin}}"
    elif change == "sandbox without scripts":
        data["widget"]["sandbox"].remove("allow-scripts")
    elif change == "no clipboard":
        data["widget"]["permissions"] = []
    elif change == "token life too long":
        data["oauthClient"]["tokenLifetimeSeconds"] = 172801
    elif change == "unknown field":
        data["widget"]["colour"] = "blue"
    elif change == "bad queue id":
        data["widget"]["queues"] = ["not-a-uuid"]
    elif change == "grant":
        data["oauthClient"]["grant"] = "password"
    elif change == "missing scope":
        data["oauthClient"]["scopes"] = ["user-basic-info"]
    return data


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ("missing oauthClient", "$: 'oauthClient' is a required property"),
        ("url without the conversation", "$.widget.urlTemplate"),
        ("sandbox without scripts", "$.widget.sandbox"),
        ("no clipboard", "$.widget.permissions"),
        ("token life too long", "$.oauthClient.tokenLifetimeSeconds"),
        ("unknown field", "'colour' was unexpected"),
        ("bad queue id", "$.widget.queues[0]"),
        ("grant", "$.oauthClient.grant"),
        ("missing scope", "$.oauthClient.scopes"),
    ],
)
def test_a_bad_manifest_is_refused_naming_the_field(change: str, where: str) -> None:
    with pytest.raises(ManifestError) as caught:
        validate(_broken(change))
    assert where in str(caught.value)


def test_names_must_carry_the_prefix_uninstall_finds_them_by() -> None:
    data = shipped()
    data["oauthClient"]["name"] = "Sign-in for agents"
    with pytest.raises(ManifestError, match=r"\$\.oauthClient\.name.*namePrefix"):
        validate(data)


def test_a_file_that_is_not_json_says_where(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text('{"manifestVersion": 1,', encoding="utf-8")
    with pytest.raises(ManifestError, match=r"manifest\.json: invalid JSON"):
        load(path)
    with pytest.raises(ManifestError, match="cannot read"):
        load(tmp_path / "missing.json")


def test_a_file_that_is_not_utf8_is_a_manifest_error(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes('{"namePrefix": "Panel d\'assistance"}'.encode("latin-1") + b"\xff")
    with pytest.raises(ManifestError, match=r"manifest\.json: not UTF-8 text"):
        load(path)


def test_json_nested_too_deeply_is_a_manifest_error(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(ManifestError, match="nested too deeply"):
        load(path)


def test_a_problem_quoting_a_huge_value_is_shortened() -> None:
    data = shipped()
    data["widget"]["groups"] = [[[["x" * 10_000]]]]
    with pytest.raises(ManifestError) as caught:
        validate(data)
    assert "$.widget.groups[0]" in str(caught.value)
    assert len(str(caught.value)) < 500


def test_the_install_marker_goes_with_any_description() -> None:
    assert INSTALL_MARKER in shipped()["oauthClient"]["description"]
    data = shipped()
    data["oauthClient"]["description"] = "Agents sign in here."
    rendered = render(Manifest(Path("edited.json"), data), "https://assist.example.com")
    assert rendered.oauth_client["description"] == f"Agents sign in here. {INSTALL_MARKER}"
    del data["oauthClient"]["description"]
    rendered = render(Manifest(Path("edited.json"), data), "https://assist.example.com")
    assert rendered.oauth_client["description"] == INSTALL_MARKER


def test_an_edited_manifest_file_is_read(tmp_path: Path) -> None:
    data = shipped()
    data["widget"]["communicationTypes"] = ["call"]
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    desired = render(load(path), "https://assist.example.com")
    assert desired.config["properties"]["communicationTypeFilter"] == "call"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://assist.example.com/", "https://assist.example.com"),
        ("https://example.com/assist/", "https://example.com/assist"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
    ],
)
def test_base_urls_are_normalised(url: str, expected: str) -> None:
    assert normalise_base_url(url) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://assist.example.com", "https"),
        ("assist.example.com", "absolute"),
        ("https://assist.example.com/?x=1", "query"),
        ("https://user@assist.example.com", "user"),
        ("https://[bad", "not a valid URL"),
        ("https://[::1/panel", "not a valid URL"),
    ],
)
def test_bad_base_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(ManifestError, match=reason):
        normalise_base_url(url)
