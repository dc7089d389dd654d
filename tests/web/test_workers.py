"""``assist-panel serve --workers N``: several processes on one port, each ending its own
streams on SIGTERM; a worker that dies is started again; one that cannot start stops
them all with a clear exit."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from bench.procs import established
from server.devmode.mocks.llm import MockLLMConfig, create_mock_llm_app
from tests.factories import bearer
from tests.serve_process import Serve, free_port, running_serve, serve_env
from tests.servers import serve

GRACE_S = 5
READY = "accepting connections (pid "
#: Streams opened at most while waiting for both workers to hold one (a bound, not a wait).
MAX_STREAMS = 24


@pytest.fixture
def mock_llm() -> Iterator[tuple[str, Any]]:
    """A mock model that never finishes a completion: only a shutdown ends its streams."""
    app = create_mock_llm_app(MockLLMConfig(fault="endless", tokens_per_second=20))
    with serve(app) as url:
        yield url, app


def worker_pids(running: Serve, count: int) -> list[int]:
    lines = running.wait_for(READY, count)
    return [int(m.group(1)) for line in lines if (m := re.search(r"pid (\d+)", line))]


class Reader(threading.Thread):
    """One suggestion stream, read to its end; ``live`` is set at its first ``delta``."""

    def __init__(self, base: str, conversation: str) -> None:
        super().__init__(daemon=True)
        self.base, self.conversation = base, conversation
        self.live = threading.Event()
        self.events: list[tuple[str, dict[str, Any]]] = []

    def run(self) -> None:
        with httpx.Client(timeout=30) as client, connect_sse(
                client, "POST", f"{self.base}/api/assist/stream",
                headers=bearer(self.conversation),
                json={"conversationId": self.conversation, "trigger": "manual",
                      "query": "how long does a refund take"}) as source:
            for event in source.iter_sse():
                self.events.append((event.event, json.loads(event.data)))
                if event.event == "delta":
                    self.live.set()


def conversation_id(n: int) -> str:
    return f"5a1e2b3c-4d5e-4f60-8a7b-{n:012x}"


def test_two_workers_share_the_port_and_sigterm_ends_every_stream_in_each(
        sample_kb_path: Path, mock_llm: tuple[str, Any]) -> None:
    llm_url, llm_app = mock_llm
    port = free_port()
    env = serve_env(port, sample_kb_path, llm_url, GRACE_S)
    with running_serve(["--workers", "2"], env) as running:
        pids = worker_pids(running, 2)
        readers: list[Reader] = []
        # The kernel hands each new connection to one of the workers: open streams until
        # both hold one.
        while not all(established(pid, local_port=port) for pid in pids):
            assert len(readers) < MAX_STREAMS, "one worker got every connection"
            reader = Reader(running.url, conversation_id(len(readers)))
            reader.start()
            assert reader.live.wait(timeout=30)
            readers.append(reader)

        running.process.send_signal(signal.SIGTERM)
        for reader in readers:
            reader.join(timeout=GRACE_S + 10)
        code = running.process.wait(timeout=GRACE_S + 15)

    assert code == 0
    for reader in readers:
        names = [name for name, _ in reader.events]
        assert names.count("done") == 1 and names[-1] == "done"
        done = reader.events[-1][1]
        assert (done["outcome"], done["stop_reason"]) == ("cancelled", "shutdown")
    assert llm_app.state.streams.wait_idle(timeout=10)  # no model request left behind
    assert any("all workers stopped" in line for line in running.stderr)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}")


def test_on_sigterm_the_port_refuses_connections_while_the_workers_drain(
        sample_kb_path: Path, mock_llm: tuple[str, Any]) -> None:
    """Regression: the supervisor held its copy of the listening socket until every
    worker had exited, so while a worker drained, the kernel still accepted connections
    into a queue nobody read (a proxy's POST sent there hung, then failed)."""
    port = free_port()
    with running_serve(["--workers", "2"],
                       serve_env(port, sample_kb_path, mock_llm[0], GRACE_S)) as running:
        pids = worker_pids(running, 2)
        # A request whose body has not all come: its worker waits for it while it
        # drains (the body's own deadline, 10 s, or the grace period).
        busy = socket.create_connection(("127.0.0.1", port), timeout=30)
        head = "".join(f"{k}: {v}\r\n" for k, v in bearer(conversation_id(0)).items())
        busy.sendall(f"POST /api/assist/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
                     "Content-Type: application/json\r\nContent-Length: 100\r\n"
                     "Expect: 100-continue\r\n\r\n{".encode())
        assert busy.recv(4096).startswith(b"HTTP/1.1 100 Continue")  # the app reads it
        idle = next(pid for pid in pids if not established(pid, local_port=port))

        running.process.send_signal(signal.SIGTERM)
        running.wait_for("stopped listening")
        running.wait_for("Waiting for connections to close")  # the busy one, listener closed
        running.wait_for(f"Finished server process [{idle}]")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=10)
        assert running.process.poll() is None  # still draining the busy worker
        # The request still sending its body was answered at once, not held to the
        # grace period's end and then cancelled (a 500 and a traceback, before).
        answer = b""
        while chunk := busy.recv(4096):
            answer += chunk
        busy.close()
        assert running.process.wait(timeout=GRACE_S + 15) == 0
    reply, _, body = answer.partition(b"\r\n\r\n")
    assert reply.split(b"\r\n")[0] == b"HTTP/1.1 503 Service Unavailable"
    assert b"retry-after: " in reply and json.loads(body)["error"] == "shutting_down"
    assert not [line for line in running.stderr if "Traceback" in line or "ERROR" in line]


def test_a_worker_that_dies_is_started_again(sample_kb_path: Path,
                                             mock_llm: tuple[str, Any]) -> None:
    port = free_port()
    env = serve_env(port, sample_kb_path, mock_llm[0], GRACE_S)
    with running_serve(["--workers", "2"], env) as running:
        first, _ = worker_pids(running, 2)
        os.kill(first, signal.SIGKILL)
        restarted = worker_pids(running, 3)[2]
        assert restarted not in (first,)
        assert any("starting it again" in line for line in running.stderr)
        for _ in range(4):  # the port still answers, whichever worker takes the call
            assert httpx.get(f"{running.url}/healthz", timeout=10).status_code == 200
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=GRACE_S + 15) == 0


def test_a_worker_that_cannot_start_stops_the_supervisor(
        tmp_path: Path, sample_kb_path: Path, mock_llm: tuple[str, Any]) -> None:
    # The settings and the store pass the supervisor's checks; each worker opens its own
    # audit log at start-up, and this one's folder does not exist. (A damaged store is
    # caught before any worker starts: tests/test_cli.py.)
    env = serve_env(free_port(), sample_kb_path, mock_llm[0], GRACE_S,
                    ASSIST_AUDIT_LOG=str(tmp_path / "missing" / "audit.jsonl"))
    with running_serve(["--workers", "2"], env) as running:
        code = running.process.wait(timeout=60)
        running.wait_for("exited before it could serve")
    assert code == 1
    assert not any(READY in line for line in running.stderr)


def test_workers_refuse_settings_the_server_cannot_run_with(
        sample_kb_path: Path, mock_llm: tuple[str, Any]) -> None:
    env = serve_env(free_port(), sample_kb_path, mock_llm[0], GRACE_S)
    del env["ASSIST_SESSION_SECRET"]
    with running_serve(["--workers", "3"], env) as running:
        assert running.process.wait(timeout=60) == 1
        running.wait_for("ASSIST_SESSION_SECRET must be set")
    assert not any("workers" in line and "serving" in line for line in running.stderr)
