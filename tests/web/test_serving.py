"""SIGTERM to a real ``assist-panel serve``: every open stream gets its final event within the
grace period, new streams are refused, then the process exits."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from server.devmode.mocks.llm import MockLLMConfig, create_mock_llm_app
from tests.factories import bearer
from tests.serve_process import free_port, running_serve, serve_env
from tests.servers import serve

CONVERSATIONS = ["5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b", "6b2f3c4d-5e6f-4a71-8b8c-0d1e2f3a4b5c",
                 "7c3a4d5e-6f7a-4b82-9c9d-1e2f3a4b5c6d"]
GRACE_S = 5


@pytest.fixture
def serve_process(sample_kb_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Any]]:
    """``serve`` with the openai generator against a mock model that never finishes
    (``endless``), with limits a minute away: only the shutdown can end its streams."""
    llm_app = create_mock_llm_app(MockLLMConfig(fault="endless", tokens_per_second=20))
    with serve(llm_app) as llm, running_serve(
            [], serve_env(free_port(), sample_kb_path, llm, GRACE_S)) as running:
        running.wait_for("Uvicorn running on")  # uvicorn's own line: an event, not a sleep
        yield running.process, running.url, llm_app


def test_sigterm_ends_every_open_stream_with_a_final_event_then_exits(
        serve_process: tuple[subprocess.Popen[str], str, Any]) -> None:
    process, base, llm_app = serve_process
    streaming = threading.Barrier(len(CONVERSATIONS) + 1)
    results: dict[str, list[tuple[str, dict[str, Any]]]] = {}

    def read(conversation: str) -> None:
        events: list[tuple[str, dict[str, Any]]] = []
        with httpx.Client(timeout=30) as client, connect_sse(
                client, "POST", f"{base}/api/assist/stream", headers=bearer(conversation),
                json={"conversationId": conversation, "trigger": "manual",
                      "query": "how long does a refund take"}) as source:
            for event in source.iter_sse():
                events.append((event.event, json.loads(event.data)))
                if event.event == "delta" and [n for n, _ in events].count("delta") == 1:
                    streaming.wait()  # this stream is live, text flowing
        results[conversation] = events

    readers = [threading.Thread(target=read, args=(c,)) for c in CONVERSATIONS]
    for reader in readers:
        reader.start()
    streaming.wait(timeout=30)
    process.send_signal(signal.SIGTERM)
    for reader in readers:
        reader.join(timeout=GRACE_S + 10)
    code = process.wait(timeout=GRACE_S + 10)

    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    for conversation in CONVERSATIONS:
        names = [name for name, _ in results[conversation]]
        assert names.count("done") == 1 and names[-1] == "done"
        done = results[conversation][-1][1]
        assert (done["outcome"], done["stop_reason"]) == ("cancelled", "shutdown")
    assert llm_app.state.streams.wait_idle(timeout=10)  # no model request left behind
    assert process.stdout is not None
    audit = [json.loads(line) for line in process.stdout.read().splitlines()
             if line.startswith("{")]
    assert sorted(r["conversationId"] for r in audit) == sorted(CONVERSATIONS)
    assert {(r["outcome"], r["stopReason"]) for r in audit} == {("cancelled", "shutdown")}


def test_serve_answers_an_upgrade_and_oversized_headers_in_json(sample_kb_path: Path) -> None:
    """Regression: ``serve``'s uvicorn had a WebSocket layer that refused an upgrade with an
    empty 403 text, and took headers of any size (connections.py has the cases)."""
    with serve(create_mock_llm_app(MockLLMConfig())) as llm, running_serve(
            [], serve_env(free_port(), sample_kb_path, llm, GRACE_S)) as running:
        running.wait_for("Uvicorn running on")
        upgrade = httpx.get(f"{running.url}/api/assist/stream", headers={
            "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert (upgrade.status_code, upgrade.json()["error"]) == (405, "method_not_allowed")
        large = httpx.get(f"{running.url}/healthz", headers={"X-Big": "a" * 70_000})
        assert (large.status_code, large.json()["error"]) == (431, "headers_too_large")
