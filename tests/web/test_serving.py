"""SIGTERM to a real ``assist-panel serve``: every open stream gets its final event within the
grace period, new streams are refused, then the process exits."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from server.devmode.mocks.llm import MockLLMConfig, create_mock_llm_app
from tests.factories import CLIENT_ID, ORG, SECRET, bearer
from tests.servers import serve

CONVERSATIONS = ["5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b", "6b2f3c4d-5e6f-4a71-8b8c-0d1e2f3a4b5c",
                 "7c3a4d5e-6f7a-4b82-9c9d-1e2f3a4b5c6d"]
GRACE_S = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def serve_process(sample_kb_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Any]]:
    """``serve`` with the openai generator against a mock model that never finishes
    (``endless``), with limits a minute away: only the shutdown can end its streams."""
    llm_app = create_mock_llm_app(MockLLMConfig(fault="endless", tokens_per_second=20))
    with serve(llm_app) as llm:
        port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "ASSIST_PORT": str(port),
               "ASSIST_KB_PATH": str(sample_kb_path), "ASSIST_SESSION_SECRET": SECRET,
               "ASSIST_ALLOWED_ORGS": ORG, "ASSIST_OAUTH_CLIENT_ID": CLIENT_ID,
               "ASSIST_GENERATOR": "openai", "ASSIST_OPENAI_BASE_URL": f"{llm}/v1",
               "ASSIST_STREAM_LIMIT_S": "60", "ASSIST_STALL_TIMEOUT_S": "60",
               "ASSIST_SHUTDOWN_GRACE_S": str(GRACE_S), "ASSIST_AUDIT_LOG": "-"}
        process = subprocess.Popen([sys.executable, "-m", "server", "serve"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        for line in process.stderr:  # uvicorn's own "running" line: an event, not a sleep
            if "Uvicorn running on" in line:
                break
        else:
            pytest.fail(f"serve did not start: {process.stdout.read() if process.stdout else ''}")
        try:
            yield process, f"http://127.0.0.1:{port}", llm_app
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=20)


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
