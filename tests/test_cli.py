from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
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
                   "--llm-port", "--llm-fault", "--token-lifetime", "--playback-speed"):
        assert option in result.output


@pytest.mark.parametrize("speed", ["0", "-1", "21", "fast"])
def test_dev_refuses_a_playback_speed_out_of_range(speed: str) -> None:
    result = CliRunner().invoke(main, ["dev", "--playback-speed", speed])
    assert result.exit_code == 2 and "--playback-speed" in result.output


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


def test_serve_runs_the_production_server_from_environment(sample_kb_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "ASSIST_PORT": str(port), "ASSIST_KB_PATH": str(sample_kb_path),
           "PYTHONUNBUFFERED": "1", "ASSIST_SESSION_SECRET": "a-long-enough-test-secret",
           "ASSIST_ALLOWED_ORGS": "org-1", "ASSIST_OAUTH_CLIENT_ID": "client-1"}
    process = subprocess.Popen([sys.executable, "-m", "server", "serve"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        output = []
        for line in process.stdout:  # wait for uvicorn's own "running" line
            output.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            pytest.fail("serve did not start:\n" + "".join(output))
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 200 and ready.json()["articles"] >= 40
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_serve_refuses_to_start_without_a_session_secret(sample_kb_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSIST_")}
    env["ASSIST_KB_PATH"] = str(sample_kb_path)
    result = subprocess.run([sys.executable, "-m", "server", "serve"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "ASSIST_SESSION_SECRET, ASSIST_ALLOWED_ORGS, ASSIST_OAUTH_CLIENT_ID must be set" in (
        result.stderr)


def _not_a_store(tmp_path: Path) -> Path:
    path = tmp_path / "kb.db"
    path.write_bytes(b"this file was overwritten by something that is not SQLite " * 20)
    return path


@pytest.mark.parametrize("kind", ["damaged file", "snapshot directory with nothing published"])
def test_serve_with_an_unreadable_knowledge_base_ends_with_one_line_not_a_traceback(
        tmp_path: Path, kind: str) -> None:
    # Regression: a damaged store failed inside uvicorn's start-up, as a traceback.
    kb_path = _not_a_store(tmp_path) if kind == "damaged file" else tmp_path
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSIST_")}
    env.update({"ASSIST_KB_PATH": str(kb_path), "ASSIST_PORT": "0",
                "ASSIST_SESSION_SECRET": "a-long-enough-test-secret",
                "ASSIST_ALLOWED_ORGS": "org-1", "ASSIST_OAUTH_CLIENT_ID": "client-1"})
    result = subprocess.run([sys.executable, "-m", "server", "serve"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    expected = ("is not a knowledge base SQLite can read" if kind == "damaged file"
                else "no knowledge-base snapshot published yet")
    assert expected in result.stderr


@pytest.mark.parametrize("command", [["kb", "import", "."], ["kb", "search", "late fee"]])
def test_kb_commands_on_a_damaged_store_say_so(tmp_path: Path, command: list[str]) -> None:
    db = _not_a_store(tmp_path)
    result = CliRunner().invoke(main, [*command, "--db", str(db)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"Error: {db} is not a knowledge base SQLite can read" in result.output
    # Nothing was written over it.
    assert db.read_bytes().startswith(b"this file was overwritten")


def test_kb_import_then_search_explains_passage_and_both_scores(tmp_path: Path) -> None:
    from server.paths import sample_kb_dir

    db = tmp_path / "kb.db"
    runner = CliRunner()
    imported = runner.invoke(main, ["kb", "import", str(sample_kb_dir()), "--db", str(db)])
    assert imported.exit_code == 0, imported.output
    assert "48 added" in imported.output
    found = runner.invoke(main, ["kb", "search", "restocking", "fee", "phone", "--explain",
                                 "--db", str(db)])
    assert found.exit_code == 0, found.output
    first = found.output.splitlines()[0]
    assert first.startswith("1. ") and "[refunds-returns-restocking-fee]" in first
    assert "bm25 " in found.output and "cosine " in found.output
    assert "| " in found.output  # the best passage, quoted
    silent = runner.invoke(main, ["kb", "search", "teacher", "discount", "garden", "gnome",
                                  "--db", str(db)])
    assert silent.exit_code == 0
    assert "no confident answer" in silent.output or "no matching articles" in silent.output


def test_reimporting_into_a_store_made_by_another_embedder_reembeds_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from server.kb.store import KnowledgeBase
    from server.paths import sample_kb_dir

    db = tmp_path / "kb.db"
    monkeypatch.setenv("ASSIST_EMBEDDER", "none")
    assert CliRunner().invoke(main, ["kb", "import", str(sample_kb_dir()),
                                     "--db", str(db)]).exit_code == 0
    assert KnowledgeBase(db).index_state()["embedder"] == ""
    monkeypatch.setenv("ASSIST_EMBEDDER", "wordllama")
    result = CliRunner().invoke(main, ["kb", "import", str(sample_kb_dir()), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "48 unchanged" in result.output
    assert KnowledgeBase(db).index_state()["embedder"].startswith("wordllama/")


@pytest.mark.parametrize(("name", "value"), [
    ("ASSIST_API_KEYS", '["sk-live-4f3e2d1c", 7]'),  # a JSON list that is not of strings
    ("ASSIST_API_KEYS", '["sk-live-4f3e2d1c"'),  # not JSON
    ("ASSIST_PORT", "sk-live-4f3e2d1c"),  # a key pasted into the wrong variable
])
def test_a_bad_setting_is_named_and_its_value_never_echoed(
        monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """pydantic's message quoted the input (input_value='["sk-...","sk-..."]'): API keys
    went to standard error."""
    monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["kb", "search", "x"])
    assert result.exit_code == 1
    assert "invalid ASSIST_* setting" in result.output and name in result.output
    assert "sk-live" not in result.output and "4f3e2d1c" not in result.output
