"""Install, uninstall and status touch only the OAuth clients install made.

An admin's own client named with the prefix (a Client Credentials "Assist Panel
admin", say) is not install's: install must not adopt and rewrite it, uninstall
must not delete it, status must not count it against the installation. Run
against the mock Genesys Cloud over real HTTP, as ``test_installer`` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.admin.installer import install, status, uninstall
from server.admin.manifest import INSTALL_MARKER, Manifest
from tests.admin.test_installer import BASE_URL, Org, cli, desired, edited, run, verbs
from tests.devmode.test_mock_genesys import MockServer, run_mock

pytestmark = pytest.mark.anyio
#: Fields an adopted client would have had rewritten.
WATCHED = ("name", "description", "authorizedGrantType", "registeredRedirectUri", "scope",
           "dateModified")


@pytest.fixture
def mock() -> Iterator[MockServer]:
    with run_mock() as running:
        yield running


def admins_client(org: Org, **fields: Any) -> dict[str, Any]:
    """The org admin's own automation client, named with the prefix by bad luck."""
    body = {"name": "Assist Panel admin", "authorizedGrantType": "CLIENT-CREDENTIALS",
            "description": "Our deployment scripts", **fields}
    created: dict[str, Any] = org.send("POST", "/api/v2/oauth/clients", body)
    return created


def client_by_id(org: Org, client_id: str) -> dict[str, Any]:
    found: dict[str, Any] = org.get(f"/api/v2/oauth/clients/{client_id}")
    return {key: found.get(key) for key in WATCHED}


async def test_install_does_not_take_over_an_admins_client_named_with_the_prefix(
        mock: MockServer) -> None:
    org = Org(mock)
    theirs = admins_client(org)
    before = client_by_id(org, theirs["id"])

    changes, session = await run(mock, lambda s: install(s, desired()))
    assert verbs(changes)[0] == ("created", "OAuth client")
    assert changes[0].id != theirs["id"]
    assert client_by_id(org, theirs["id"]) == before
    [warning] = session.warnings
    assert "'Assist Panel admin'" in warning and theirs["id"] in warning
    assert "left alone" in warning

    again, _ = await run(mock, lambda s: install(s, desired()))
    assert verbs(again) == [("unchanged", "OAuth client"), ("unchanged", "integration")]
    report, _ = await run(mock, lambda s: status(s, desired()))
    assert report.in_step, report.lines
    assert any("'Assist Panel admin'" in line and "not made by install" in line
               for line in report.lines)


async def test_a_sign_in_client_without_installs_marker_is_not_adopted(
        mock: MockServer) -> None:
    org = Org(mock)
    theirs = admins_client(org, name="Assist Panel sign-in", authorizedGrantType="CODE",
                           registeredRedirectUri=["https://other.example.com/cb"],
                           scope=["user-basic-info"])
    before = client_by_id(org, theirs["id"])
    changes, _ = await run(mock, lambda s: install(s, desired()))
    assert verbs(changes)[0] == ("created", "OAuth client")
    assert client_by_id(org, theirs["id"]) == before


async def test_uninstall_never_deletes_an_admins_client_named_with_the_prefix(
        mock: MockServer) -> None:
    org = Org(mock)
    theirs = admins_client(org)
    changes, session = await run(
        mock, lambda s: uninstall(s, "Assist Panel", "Assist Panel sign-in"))
    assert changes == []
    assert session.warnings and theirs["id"] in session.warnings[0]
    await run(mock, lambda s: install(s, desired()))
    removed, _ = await run(mock, lambda s: uninstall(s, "Assist Panel", "Assist Panel sign-in"))
    assert theirs["id"] not in {c.id for c in removed}
    assert [c["id"] for c in org.oauth_clients()] == [theirs["id"]]


async def test_install_still_updates_its_own_client_after_a_rename_or_grant_change(
        mock: MockServer) -> None:
    first, _ = await run(mock, lambda s: install(s, desired()))

    def edit(data: dict[str, Any]) -> None:
        data["oauthClient"]["name"] = "Assist Panel agents"
        data["oauthClient"]["grant"] = "implicit"
        data["oauthClient"]["description"] = "Agents sign in here."

    changes, _ = await run(mock, lambda s: install(s, desired(edited(edit))))
    assert verbs(changes)[0] == ("updated", "OAuth client")
    assert changes[0].id == first[0].id
    [client] = Org(mock).oauth_clients()
    assert client["name"] == "Assist Panel agents"
    assert client["authorizedGrantType"] == "TOKEN"
    # The marker goes with any description, so the next run still knows the client.
    assert client["description"] == f"Agents sign in here. {INSTALL_MARKER}"


def test_cli_warns_about_an_admins_client_and_status_is_in_step_beside_it(
        mock: MockServer) -> None:
    theirs = admins_client(Org(mock))
    installed = cli(mock, "install", "--base-url", BASE_URL)
    assert installed.exit_code == 0, installed.output
    assert (f"Warning: OAuth client 'Assist Panel admin' ({theirs['id']}) is named with "
            "'Assist Panel' but was not made by install") in installed.stderr
    shown = cli(mock, "status")
    assert shown.exit_code == 0, shown.output
    removed = cli(mock, "uninstall")
    assert removed.exit_code == 0, removed.output
    assert theirs["id"] not in removed.stdout
    assert "Warning: OAuth client 'Assist Panel admin'" in removed.stderr
    assert [c["id"] for c in Org(mock).oauth_clients()] == [theirs["id"]]


# Upgrading: clients made by an install from before the marker ---------------------------


def own_description(data: dict[str, Any]) -> None:
    """A custom manifest: a description of its own, without install's marker (the
    shipped manifest's carries it, so its installs were always recognised)."""
    data["oauthClient"]["description"] = "Agents of Brightwave sign in here."


def without_description(data: dict[str, Any]) -> None:
    del data["oauthClient"]["description"]


CUSTOM = edited(own_description)


def earlier_install_client(org: Org, manifest: Manifest = CUSTOM) -> dict[str, Any]:
    """The OAuth client an install from before the marker made: the body it sent had
    the manifest's own description ('' when the manifest had none), with no marker."""
    body = {**desired(manifest).oauth_client,
            "description": manifest.data["oauthClient"].get("description", "")}
    assert INSTALL_MARKER not in body["description"]
    created: dict[str, Any] = org.send("POST", "/api/v2/oauth/clients", body)
    return created


@pytest.mark.parametrize("manifest", [CUSTOM, edited(without_description)],
                         ids=["own-description", "no-description"])
async def test_an_earlier_installs_client_is_updated_in_place_then_uninstalled(
        mock: MockServer, manifest: Manifest) -> None:
    org = Org(mock)
    old = earlier_install_client(org, manifest)

    changes, session = await run(mock, lambda s: install(s, desired(manifest)))
    assert verbs(changes)[0] == ("updated", "OAuth client")
    assert changes[0].id == old["id"]
    assert changes[0].detail.startswith("changed description")
    assert "earlier version of install" in changes[0].detail
    assert session.warnings == []
    [client] = org.oauth_clients()
    assert client["id"] == old["id"]
    assert INSTALL_MARKER in client["description"]

    # Marked now: recognised by the marker from here on.
    again, _ = await run(mock, lambda s: install(s, desired(manifest)))
    assert verbs(again) == [("unchanged", "OAuth client"), ("unchanged", "integration")]
    removed, session = await run(
        mock, lambda s: uninstall(s, "Assist Panel", "Assist Panel sign-in"))
    assert ("deleted", "OAuth client") in verbs(removed)
    assert session.warnings == []
    assert org.oauth_clients() == []


async def test_uninstall_deletes_an_earlier_installs_client_never_updated(
        mock: MockServer) -> None:
    org = Org(mock)
    old = earlier_install_client(org)
    removed, session = await run(
        mock, lambda s: uninstall(s, "Assist Panel", "Assist Panel sign-in"))
    assert [(c.verb, c.id) for c in removed] == [("deleted", old["id"])]
    assert session.warnings == []
    assert org.oauth_clients() == []


@pytest.mark.parametrize(
    "fields",
    [{"authorizedGrantType": "CLIENT-CREDENTIALS"},  # an admin's client, whatever its URIs
     {"name": "Assist Panel sign-in (old)"},  # not the manifest's client name exactly
     {"registeredRedirectUri": [f"{BASE_URL}/panel/callback"]}],  # not the panel page
    ids=["client-credentials", "other-name", "other-redirect"],
)
async def test_only_the_exact_shape_of_an_earlier_install_is_adopted(
        mock: MockServer, fields: dict[str, Any]) -> None:
    org = Org(mock)
    body = {**desired().oauth_client, "description": "", **fields}
    theirs: dict[str, Any] = org.send("POST", "/api/v2/oauth/clients", body)
    before = client_by_id(org, theirs["id"])
    changes, session = await run(mock, lambda s: install(s, desired()))
    assert verbs(changes)[0] == ("created", "OAuth client")
    assert [theirs["id"] in w for w in session.warnings] == [True]
    await run(mock, lambda s: uninstall(s, "Assist Panel", "Assist Panel sign-in"))
    assert client_by_id(org, theirs["id"]) == before
    assert [c["id"] for c in org.oauth_clients()] == [theirs["id"]]


async def test_beside_a_marked_client_the_earlier_one_is_an_extra_uninstall_removes(
        mock: MockServer) -> None:
    """The org an upgrade with the duplicate bug left: the earlier client and install's
    marked one, both named as the manifest's client."""
    org = Org(mock)
    old = earlier_install_client(org)
    marked: dict[str, Any] = org.send("POST", "/api/v2/oauth/clients",
                                      desired(CUSTOM).oauth_client)

    changes, session = await run(mock, lambda s: install(s, desired(CUSTOM)))
    assert (verbs(changes)[0], changes[0].id) == (("unchanged", "OAuth client"), marked["id"])
    assert session.warnings == []
    report, _ = await run(mock, lambda s: status(s, desired(CUSTOM)))
    assert not report.in_step
    assert (f"OAuth client 'Assist Panel sign-in' ({old['id']}): not in the manifest "
            "(uninstall removes it)") in report.lines
    removed, _ = await run(mock, lambda s: uninstall(s, "Assist Panel", "Assist Panel sign-in"))
    assert {c.id for c in removed if c.kind == "OAuth client"} == {old["id"], marked["id"]}
    assert org.oauth_clients() == []


def test_cli_status_and_uninstall_recognise_an_earlier_installs_client(
        mock: MockServer, tmp_path: Path) -> None:
    old = earlier_install_client(Org(mock))
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(CUSTOM.data), "utf-8")
    # The base URL comes from the earlier client's redirect URI.
    shown = cli(mock, "status", "--manifest", str(path))
    assert shown.exit_code == 1, shown.output
    assert "not made by install" not in shown.output
    assert (f"  OAuth client 'Assist Panel sign-in' ({old['id']}): installed, differs from "
            "the manifest in description") in shown.stdout.splitlines()
    removed = cli(mock, "uninstall", "--manifest", str(path))
    assert removed.exit_code == 0, removed.output
    assert f"deleted OAuth client 'Assist Panel sign-in' ({old['id']})" in removed.stdout
    assert "Warning" not in removed.stderr
    assert Org(mock).oauth_clients() == []
