"""The one error tree: every error the panel raises on purpose is a PanelError defined in
server/errors.py; the HTTP branch maps to JSON, the command branch to exit codes."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from click.testing import CliRunner

import server
from server import errors
from server.cli import main


def _product_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(server.__path__, "server.")]
    # server.__main__ runs the CLI when imported.
    return [n for n in names if not n.startswith("server.devmode.mocks") and n != "server.__main__"]


def test_every_error_class_of_the_product_is_in_the_one_tree_in_one_module() -> None:
    for name in _product_modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if not (inspect.isclass(value) and issubclass(value, BaseException)):
                continue
            if value.__module__ != name or attr.startswith("_"):
                continue  # imported, or a private control-flow signal
            assert name == "server.errors", f"{name}.{attr} is an error outside server/errors.py"
    for value in vars(errors).values():
        ours = inspect.isclass(value) and value.__module__ == "server.errors"
        if ours and issubclass(value, Exception):
            assert issubclass(value, errors.PanelError), value


def test_the_http_branch_has_a_status_and_a_code_and_the_command_branch_an_exit_code() -> None:
    assert issubclass(errors.AssistError, errors.PanelError)
    assert issubclass(errors.CommandError, errors.PanelError)
    for cls in (errors.AdminError, errors.SyncBusy, errors.ManifestError, errors.DevSessionError):
        assert issubclass(cls, errors.CommandError) and cls.exit_code >= 1
    assert not issubclass(errors.AssistError, errors.CommandError)
    # The two rate limits are told apart: the client's 429, the platform's answer to us.
    assert errors.RateLimited.status_code == 429
    assert issubclass(errors.PlatformBusy, errors.AdminError)


def test_a_command_error_ends_the_command_with_its_message_and_exit_code(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(errors.DevSessionError, "exit_code", 3)
    result = CliRunner().invoke(main, ["dev-session", "--panel", "http://127.0.0.1:9",
                                         "--conversation", "not-a-uuid"])
    assert result.exit_code == 3
    assert "Error: 'not-a-uuid' is not a conversation id" in result.output
    assert "Traceback" not in result.output
