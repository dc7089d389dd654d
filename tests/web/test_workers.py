"""``assist-panel serve --workers N``: several processes on one port, each ending its own
streams on SIGTERM; a worker that dies is started again; one that cannot start stops
them all with a clear exit."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

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


def established(pid: int, port: int) -> int:
    """Connections to ``port`` that process ``pid`` holds, by the kernel's tables."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed meanwhile
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == "01" and fields[9] in inodes:
            count += 1
    return count


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
        while not all(established(pid, port) for pid in pids):
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
