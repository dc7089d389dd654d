"""The one error tree: every error the panel raises on purpose is a PanelError defined in
server/errors.py; the HTTP branch maps to JSON, the command branch to exit codes."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

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


# The bases that hold what their branch shares (a status, a header): never raised.
BASES = {errors.AssistError, errors.Unauthorized, errors.Forbidden, errors.RequestTimeout,
         errors.Unavailable}
README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_code_a_client_can_get_is_in_the_readme_and_no_other() -> None:
    """The README left out http_error, and /v1/stream-assist's row listed only its 401."""
    def tree(cls: type[errors.AssistError]) -> list[type[errors.AssistError]]:
        return [cls, *(c for sub in cls.__subclasses__() for c in tree(sub))]

    answered = {cls.code for cls in tree(errors.AssistError) if cls not in BASES}
    answered |= {"not_found", "method_not_allowed", "http_error"}  # Starlette's own
    text = README.read_text()
    section = text[text.index("## HTTP"):text.index("## Layout")]
    named = set(re.findall(r"`([a-z_]+)`", section))
    assert answered <= named, answered - named
    # And what is named as an error (after a status, or after another one and a slash)
    # is one.
    as_errors = (set(re.findall(r"\b[1-5]\d\d `([a-z_]+)`", section))
                 | set(re.findall(r"(?<=` / `)([a-z_]+)(?=`)", section)))
    assert as_errors <= answered, as_errors - answered


def test_the_bases_are_never_raised() -> None:
    """Their codes are no client's: each is raised as one of its subclasses."""
    for name in _product_modules():
        source = inspect.getsource(importlib.import_module(name))
        for base in BASES - {errors.AssistError}:
            assert not re.search(rf"raise {base.__name__}\(", source), (name, base)
