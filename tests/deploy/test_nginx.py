"""Debian's nginx with ``deploy/nginx/assist-panel.conf`` (the configuration docs/deploy.md
gives), terminating TLS in front of two real ``serve`` replicas that share a real Redis:
streams are not buffered, a session made on one replica works on the other, the rate
limit holds across them, and SIGTERM to one replica ends its streams with ``done``
while the other keeps serving."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from server.devmode.mocks.genesys import MockGenesysConfig, create_mock_genesys_app
from server.devmode.mocks.llm import MockLLMConfig, create_mock_llm_app
from tests.auth.test_signin import PANEL_PUBLIC, authorize
from tests.checks import wait_until
from tests.factories import CLIENT_ID, bearer
from tests.serve_process import Serve, free_port, running_serve, serve_env
from tests.servers import listening_socket, serve

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "nginx" / "assist-panel.conf"
GRACE_S = 5
PER_MINUTE = 4
QUERY = "how long does a refund take"


@dataclass
class Site:
    url: str  # https://127.0.0.1:PORT, through nginx
    cert: ssl.SSLContext  # trusts nginx's self-signed certificate
    replicas: list[Serve]
    genesys: str


def _certificate(workdir: Path) -> tuple[Path, Path]:
    cert, key = workdir / "tls.crt", workdir / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def site_config(ports: list[int], listen: int, cert: Path, key: Path) -> str:
    """The shipped configuration with only its addresses and certificate paths replaced."""
    text = CONF.read_text()
    replacements = [
        (r"server 10\.0\.0\.11:8000", f"server 127.0.0.1:{ports[0]}"),
        (r"server 10\.0\.0\.12:8000", f"server 127.0.0.1:{ports[1]}"),
        (r"listen 443 ssl http2;", f"listen 127.0.0.1:{listen} ssl http2;"),
        (r"/etc/nginx/tls/assist\.example\.com\.crt", str(cert)),
        (r"/etc/nginx/tls/assist\.example\.com\.key", str(key)),
    ]
    for pattern, value in replacements:
        text, count = re.subn(pattern, value, text)
        assert count == 1, pattern
    return text


@contextlib.contextmanager
def running_nginx(workdir: Path, site: str, port: int) -> Iterator[None]:
    """Debian's nginx in the foreground with ``site`` in its http block, on ``port``."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.fail("nginx is missing: run scripts/test, which installs Debian's nginx")
    (workdir / "site.conf").write_text(site)
    main = "\n".join([
        "user root;" if os.geteuid() == 0 else "",
        "daemon off;", "worker_processes 1;", f"pid {workdir}/nginx.pid;",
        "error_log stderr warn;", "events { worker_connections 512; }",
        "http {", "  access_log off;",
        *(f"  {kind}_temp_path {workdir}/{kind};"
          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
        f"  include {workdir}/site.conf;", "}", ""])
    (workdir / "nginx.conf").write_text(main)
    command = [binary, "-p", str(workdir), "-c", str(workdir / "nginx.conf")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        # nginx prints nothing when it is ready: its port accepting is the event.
        def accepting() -> bool:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
            return True

        wait_until(accepting, message="nginx did not start listening")
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


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
    cert, key = _certificate(tmp_path)
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
