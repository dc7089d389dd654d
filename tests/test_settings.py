from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from server.settings import Settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_every_setting_is_documented_and_nothing_else() -> None:
    documented = set(re.findall(r"^\| `ASSIST_([A-Z0-9_]+)`", DOC.read_text(), re.MULTILINE))
    fields = {name.upper() for name in Settings.model_fields}
    assert documented == fields


def test_environment_is_read_when_built_not_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSIST_GENERATOR", "openai")
    monkeypatch.setenv("ASSIST_GENESYS_REGIONS", "prod, prod-euw1")
    monkeypatch.setenv("ASSIST_OPENAI_API_KEY", "sk-secret")
    settings = Settings()
    assert settings.generator == "openai"
    assert settings.genesys_regions == ("prod", "prod-euw1")
    assert "sk-secret" not in repr(settings)
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]  # frozen


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSIST_STALL_TIMEOUT_S", "-1")
    with pytest.raises(ValidationError, match="stall_timeout_s"):
        Settings()


@pytest.mark.parametrize("name", ["API_KEYS", "ALLOWED_ORGS", "GENESYS_REGIONS",
                                  "EXTRA_FRAME_ANCESTORS"])
def test_a_list_setting_takes_a_json_list_as_documented(
        monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Documented as working, a JSON list failed validation (NoDecode hands the list
    settings the raw string)."""
    monkeypatch.setenv(f"ASSIST_{name}", ' ["prod", " prod-euw1 ", ""] ')
    value = getattr(Settings(), name.lower())
    shown = [v.get_secret_value() if isinstance(v, SecretStr) else v for v in value]
    assert shown == ["prod", "prod-euw1"]
    monkeypatch.setenv(f"ASSIST_{name}", "prod, prod-euw1,")
    assert len(getattr(Settings(), name.lower())) == 2


@pytest.mark.parametrize("value", ['["a", 1]', '["a"', '["a", ["b"]]', "[]]"])
def test_a_list_setting_that_is_not_a_json_list_of_strings_is_refused(
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ASSIST_ALLOWED_ORGS", value)
    with pytest.raises(ValidationError, match="JSON list of strings"):
        Settings()
