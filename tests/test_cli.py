from __future__ import annotations

import pytest
from click.testing import CliRunner

from server.cli import main


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("dev", "serve", "kb"):
        assert f"  {command}" in result.output


def test_dev_help_documents_its_options() -> None:
    result = CliRunner().invoke(main, ["dev", "--help"])
    for option in ("--host", "--port", "--genesys-port", "--llm [extractive|mock]",
                   "--llm-port", "--llm-fault"):
        assert option in result.output


def test_dev_refuses_a_fault_without_the_mock_model_and_unknown_faults() -> None:
    result = CliRunner().invoke(main, ["dev", "--llm-fault", "stall_mid"])
    assert result.exit_code != 0 and "--llm-fault needs --llm mock" in result.output
    result = CliRunner().invoke(main, ["dev", "--llm", "mock", "--llm-fault", "nope"])
    assert result.exit_code != 0 and "unknown --llm-fault 'nope'" in result.output


def test_bad_settings_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSIST_GENERATOR", "telepathy")
    result = CliRunner().invoke(main, ["kb", "search", "x"])
    assert result.exit_code != 0
    assert "invalid ASSIST_* setting" in result.output
