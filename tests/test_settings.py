from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

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
