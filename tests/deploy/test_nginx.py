"""Debian's nginx with ``deploy/nginx/assist-panel.conf`` (the configuration docs/deploy.md
gives), terminating TLS in front of two real ``serve`` replicas that share a real Redis:
streams are not buffered, a session made on one replica works on the other, the rate
limit holds across them, and SIGTERM to one replica ends its streams with ``done``
while the other keeps serving."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from httpx_sse import connect_sse

from bench.nginx import CONF, certificate, running_nginx, site_config
from server.app import create_app
from server.devmode.mocks.genesys import MockGenesysConfig, create_mock_genesys_app
from server.devmode.mocks.llm import MockLLMConfig, create_mock_llm_app
from server.settings import Settings
from tests.auth.test_signin import PANEL_PUBLIC, authorize
from tests.factories import CLIENT_ID, bearer, make_settings
from tests.serve_process import Serve, free_port, running_serve, serve_env
from tests.servers import listening_socket, serve

ROOT = Path(__file__).resolve().parents[2]
GRACE_S = 5
PER_MINUTE = 4
QUERY = "how long does a refund take"


@dataclass
class Site:
    url: str  # https://127.0.0.1:PORT, through nginx
    cert: ssl.SSLContext  # trusts nginx's self-signed certificate
    replicas: list[Serve]
    genesys: str


@pytest.fixture
def site(tmp_path: Path, redis_url: str, sample_kb_path: Path) -> Iterator[Site]:
    """Mock model, mock Genesys, two replicas on one Redis, nginx with TLS in front."""
    import redis
    redis.Redis.from_url(redis_url).flushdb()
    llm_app = create_mock_llm_app(MockLLMConfig(fault="endless", tokens_per_second=20))
    sock = listening_socket()
    origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
    genesys_app = create_mock_genesys_app(MockGenesysConfig(
        public_origin=origin, panel_url=f"{PANEL_PUBLIC}/panel", client_id=CLIENT_ID))
    cert, key = certificate(tmp_path)
    ports, listen = [free_port(), free_port()], free_port()
    with contextlib.ExitStack() as stack:
        llm = stack.enter_context(serve(llm_app))
        genesys = stack.enter_context(serve(genesys_app, sock=sock))
        replicas = []
        for port in ports:
            env = serve_env(port, sample_kb_path, llm, GRACE_S,
                            ASSIST_REDIS_URL=redis_url,
                            ASSIST_RATE_LIMIT_PER_MINUTE=str(PER_MINUTE),
                            ASSIST_PUBLIC_URL=PANEL_PUBLIC, ASSIST_GENESYS_API_BASE=genesys,
                            ASSIST_GENESYS_LOGIN_BASE=genesys, ASSIST_OAUTH_GRANT="implicit",
                            ASSIST_EXTRA_FRAME_ANCESTORS=genesys,
                            FORWARDED_ALLOW_IPS="127.0.0.1")
            replica = stack.enter_context(running_serve([], env))
            replicas.append(replica)
        for replica in replicas:
            replica.wait_for("Uvicorn running on")
        stack.enter_context(running_nginx(tmp_path, site_config(ports, listen, cert, key),
                                          listen))
        yield Site(f"https://127.0.0.1:{listen}", ssl.create_default_context(cafile=str(cert)),
                   replicas, genesys)


class Reader(threading.Thread):
    """One stream, read until it ends; ``live`` is set at its first ``delta``, ``fresh``
    at every later one."""

    def __init__(self, url: str, cert: ssl.SSLContext, headers: dict[str, str],
                 conversation: str) -> None:
        super().__init__(daemon=True)
        self.url, self.cert, self.headers, self.conversation = url, cert, headers, conversation
        self.live, self.fresh, self.ended = threading.Event(), threading.Event(), threading.Event()
        self.events: list[tuple[str, dict[str, Any]]] = []

    def run(self) -> None:
        try:
            with httpx.Client(verify=self.cert, timeout=30) as client, connect_sse(
                    client, "POST", f"{self.url}/api/assist/stream", headers=self.headers,
                    json={"conversationId": self.conversation, "trigger": "manual",
                          "query": QUERY}) as source:
                for event in source.iter_sse():
                    self.events.append((event.event, json.loads(event.data)))
                    if event.event == "delta":
                        self.live.set()
                        self.fresh.set()
        except httpx.HTTPError:
            pass  # the test's end kills what is still streaming
        finally:
            self.ended.set()

    def outcome(self) -> tuple[str, str] | None:
        last = self.events[-1] if self.events else None
        if last is None or last[0] != "done":
            return None
        return last[1]["outcome"], last[1]["stop_reason"]


def conversation_id(n: int) -> str:
    return f"5a1e2b3c-4d5e-4f60-8a7b-{n:012x}"


def agent(n: int) -> dict[str, str]:
    """A session of agent ``n`` on conversation ``n``: each stream its own user, so the
    per-user limit (PER_MINUTE) never refuses one."""
    return bearer(conversation_id(n), user_id=f"3f6c2a1e-8b4d-4f7a-9c2e-{n:012x}")


def feedback(site: Site) -> int:
    response = httpx.post(f"{site.url}/api/feedback", verify=site.cert, headers=bearer(
        conversation_id(0)), json={"suggestionId": "sg_AbCdEfGh-_12345x", "rating": "up"})
    return response.status_code


def test_the_shipped_configuration_is_the_one_the_docs_give() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    assert "deploy/nginx/assist-panel.conf" in docs
    for directive in ("proxy_buffering off;", "proxy_read_timeout 120s;",
                      "X-Forwarded-For", "ssl_certificate"):
        assert directive in CONF.read_text()


def test_nginx_lets_an_idle_connection_go_before_a_replica_closes_it() -> None:
    # Broke: nginx kept idle upstream connections 60 s, uvicorn 5 s; a POST written onto
    # a connection the replica was closing was a 502, never retried.
    found = re.search(r"keepalive_timeout (\d+)s;", CONF.read_text().split("server {")[0])
    assert found is not None
    assert int(found.group(1)) < uvicorn.Config(app="server.app:create_app").timeout_keep_alive


def test_a_sign_in_has_time_for_its_genesys_calls_behind_nginx() -> None:
    # Broke: location / cut every request at 30 s, and a sign-in makes up to three
    # Genesys calls one after the other, each allowed ASSIST_GENESYS_TIMEOUT_S (10 s).
    found = re.search(r"location ~ \^/api/session\(/renew\)\?\$ \{(.*?)\}", CONF.read_text(),
                      re.S)
    assert found is not None, "no location of its own for the sign-in handoff"
    read = re.search(r"proxy_read_timeout (\d+)s;", found.group(1))
    assert read is not None
    genesys_timeout_s = Settings.model_fields["genesys_timeout_s"].default
    assert int(read.group(1)) >= 3 * genesys_timeout_s + 5


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A loopback port no connect ever reaches, as a replica whose host is gone: a
    listening socket whose accept queue is full, so the kernel drops each new SYN."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    port = hole.getsockname()[1]
    queued: list[socket.socket] = []
    try:
        for _ in range(16):  # the queue holds one or two: a bound, never reached
            probe = socket.socket()
            probe.settimeout(0.5)
            try:
                probe.connect(("127.0.0.1", port))
            except TimeoutError:  # not answered: the queue is full
                probe.close()
                break
            queued.append(probe)
        else:
            raise RuntimeError("the accept queue never filled")
        yield port
    finally:
        for sock in queued:
            sock.close()
        hole.close()


def test_a_replica_whose_host_is_gone_costs_a_request_seconds_not_a_minute(
        tmp_path: Path, sample_kb_path: Path) -> None:
    # Broke: no proxy_connect_timeout, so nginx waited its default 60 s for a connect to
    # a replica whose host was gone (no refusal comes back) before trying the next one.
    cert, key = certificate(tmp_path)
    listen = free_port()
    with contextlib.ExitStack() as stack:
        gone = stack.enter_context(unanswered_port())
        live = stack.enter_context(serve(create_app(make_settings(kb_path=sample_kb_path))))
        stack.enter_context(running_nginx(tmp_path, site_config(
            [gone, int(live.rsplit(":", 1)[1])], listen, cert, key), listen))
        context = ssl.create_default_context(cafile=str(cert))
        for _ in range(3):  # round robin: the gone replica gets one of the first two
            started = time.monotonic()
            response = httpx.get(f"https://127.0.0.1:{listen}/readyz", verify=context,
                                 timeout=30)
            assert response.status_code == 200
            assert time.monotonic() - started < 10


def test_through_nginx_two_replicas_serve_as_one(site: Site) -> None:
    # 1. Not buffered: the first delta of a stream that never ends reaches the client.
    first = Reader(site.url, site.cert, agent(1), conversation_id(1))
    first.start()
    assert first.live.wait(timeout=30), "a delta did not come through nginx"
    assert not first.ended.is_set()

    # 2. A session made on one replica streams on the other (its own port, no nginx).
    a, b = site.replicas
    conversation = httpx.post(f"{site.genesys}/mock/conversations", json={}).json()
    started = httpx.post(f"{a.url}/auth/state",
                         json={"conversationId": conversation["conversationId"]}).json()
    answer = authorize(started["authorizeUrl"])
    session = httpx.post(f"{a.url}/api/session", json={
        "state": answer["state"], "accessToken": answer["access_token"],
        "expiresIn": int(answer["expires_in"])}).json()["session"]
    on_b = Reader(b.url, site.cert, {"Authorization": f"Bearer {session}"},
                  conversation["conversationId"])
    on_b.start()
    assert on_b.live.wait(timeout=30)

    # 3. One rate limit for both: nginx alternates, yet the fifth feedback is refused.
    assert [feedback(site) for _ in range(PER_MINUTE + 1)] == [204] * PER_MINUTE + [429]

    # 4. SIGTERM to one replica: its streams end with their done, the other's go on.
    readers = [first, on_b]
    for n in range(2, 6):
        reader = Reader(site.url, site.cert, agent(n), conversation_id(n))
        reader.start()
        assert reader.live.wait(timeout=30)
        readers.append(reader)
    a.process.send_signal(signal.SIGTERM)
    assert a.process.wait(timeout=GRACE_S + 15) in (0, -signal.SIGTERM)
    for reader in readers:
        reader.fresh.clear()
    # Which streams replica A served: its audit log has a line for each.
    assert a.process.stdout is not None
    served_by_a = {json.loads(line)["conversationId"]
                   for line in a.process.stdout.read().splitlines() if line.startswith("{")}
    on_a = [r for r in readers if r.conversation in served_by_a]
    going = [r for r in readers if r.conversation not in served_by_a]
    assert on_a and going, "every stream went to one replica"
    for reader in on_a:
        assert reader.ended.wait(timeout=10)
        assert reader.outcome() == ("cancelled", "shutdown")
    for reader in going:
        assert reader.fresh.wait(timeout=10), "a stream on the other replica stopped"
        assert not reader.ended.is_set()
    # New requests all reach the replica that is left.
    for _ in range(4):
        assert httpx.get(f"{site.url}/readyz", verify=site.cert).status_code == 200
