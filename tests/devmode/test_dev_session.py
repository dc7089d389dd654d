"""``assist-panel dev-session`` against a real ``assist-panel dev``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.app import create_app
from tests.dev_process import DevMode, run_dev_mode
from tests.factories import ask, make_settings
from tests.servers import serve


@pytest.fixture(scope="module")
def dev() -> Iterator[DevMode]:
    with run_dev_mode() as running:
        yield running


def dev_session(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", "dev-session", *args],
                          capture_output=True, text=True, timeout=60)


def test_dev_session_prints_a_session_that_streams(dev: DevMode) -> None:
    result = dev_session("--panel", dev.panel)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert set(printed) == {"session", "conversationId"}
    response = ask(dev.panel, printed["conversationId"], printed["session"])
    assert response.status_code == 200
    assert "event: done" in response.text


def test_dev_session_for_a_given_conversation(dev: DevMode) -> None:
    created = httpx.post(f"{dev.genesys}/mock/conversations", json={}).json()
    result = dev_session("--panel", dev.panel + "/panel",
                         "--conversation", created["conversationId"])
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["conversationId"] == created["conversationId"]
    # Bound to that conversation: another one is refused.
    other = httpx.post(f"{dev.genesys}/mock/conversations", json={}).json()["conversationId"]
    assert ask(dev.panel, other, printed["session"]).status_code == 403


def test_dev_session_refuses_a_conversation_the_agent_is_not_on(dev: DevMode) -> None:
    result = dev_session("--panel", dev.panel,
                         "--conversation", "0b7c2d1e-3f4a-4b5c-8d6e-7f8091a2b3c4")
    assert result.returncode == 1
    assert "not_a_participant" in result.stderr or "not an agent" in result.stderr


def test_dev_session_refuses_bad_input_and_unreachable_panels() -> None:
    bad = dev_session("--panel", "http://127.0.0.1:9", "--conversation", "nope")
    assert bad.returncode == 1 and "not a conversation id" in bad.stderr
    closed = dev_session("--panel", "http://127.0.0.1:9")
    assert closed.returncode == 1 and "Could not reach" in closed.stderr


def test_dev_session_refuses_a_production_panel(sample_kb_path: Path) -> None:
    with serve(create_app(make_settings(kb_path=sample_kb_path))) as panel:
        result = dev_session("--panel", panel)
    assert result.returncode == 1
    assert "works only against 'assist-panel dev'" in result.stderr
    assert "https://login.mypurecloud.com" in result.stderr


def test_dev_mode_serves_the_mock_model_over_http2_when_the_panel_speaks_it() -> None:
    # ASSIST_MODEL_HTTP2 in dev mode: the mock model is served by hypercorn, which speaks
    # HTTP/2 (uvicorn would refuse the panel's connection preface).
    with run_dev_mode("--llm", "mock", "--llm-port", "0",
                      env={"ASSIST_MODEL_HTTP2": "true"}) as running:
        assert any("(the model over HTTP/2)" in line for line in running.output)
        result = dev_session("--panel", running.panel)
        assert result.returncode == 0, result.stderr
        printed = json.loads(result.stdout)
        response = ask(running.panel, printed["conversationId"], printed["session"])
    assert response.status_code == 200
    assert "event: delta" in response.text
    assert '"outcome":"completed"' in response.text.replace(" ", "")
