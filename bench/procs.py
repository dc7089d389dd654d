"""The processes a benchmark measures: the panel (``assist-panel serve``), the mock model and
the peer, each started as its own process, pinned to its own CPU, read from ``/proc``.

Pinning keeps the figures about *one worker on one core*: the server under test gets
a core to itself, the mock model and the load client share the other (see
``cpus``). Linux only, like the deployment target.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trustme

from server.auth.sessions import Session, SessionCodec
from server.devmode.mocks.llm import DEFAULT_MODEL, MockLLMConfig

ORG = "6d1f0c2a-3b4e-4f5a-8c7d-9e0f1a2b3c4d"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Cpus:
    """Which CPU runs what: the server alone on one, the harness on the others."""

    server: frozenset[int]
    harness: frozenset[int]

    @classmethod
    def split(cls) -> Cpus:
        available = sorted(os.sched_getaffinity(0))
        if len(available) < 2:  # nothing to split: everyone shares
            return cls(frozenset(available), frozenset(available))
        return cls(frozenset(available[:1]), frozenset(available[1:]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (``state`` first);
    OSError once the process is gone."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def cpu_ticks(fields: list[str]) -> int:
    """User + system CPU time, in clock ticks, from ``stat_fields``."""
    return int(fields[11]) + int(fields[12])


def established(pid: int, *, local_port: int | None = None,
                remote_port: int | None = None) -> int:
    """Established TCP connections process ``pid`` holds with the given local or remote
    port: its sockets (``/proc/PID/fd``) found in the kernel's tables
    (``/proc/PID/net/tcp`` and ``tcp6``)."""
    inodes: set[str] = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            # sl local remote state queues timer retransmits uid timeout inode ...
            fields = row.split()
            local = int(fields[1].rsplit(":", 1)[1], 16)
            remote = int(fields[2].rsplit(":", 1)[1], 16)
            if (fields[3] == "01" and fields[9] in inodes
                    and local_port in (None, local) and remote_port in (None, remote)):
                count += 1
    return count


@dataclass
class Proc:
    """A running server process and what it costs."""

    name: str
    url: str
    popen: subprocess.Popen[bytes]
    log: Path
    _cpu_mark: float = field(default=0.0, init=False)
    _wall_mark: float = field(default=0.0, init=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_bytes(self) -> int:
        """Resident memory now (``/proc/PID/statm``)."""
        resident = Path(f"/proc/{self.pid}/statm").read_text().split()[1]
        return int(resident) * PAGE_SIZE

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far, all threads (``/proc/PID/stat``)."""
        return cpu_ticks(stat_fields(self.pid)) / CLOCK_TICKS

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def open_files(self) -> int:
        """Files (sockets included) the process holds open now (``/proc/PID/fd``)."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def connections_to(self, port: int) -> int:
        """Established TCP connections the process holds to ``port`` on this host (its
        model's). Unlike ``open_files``, no SQLite file a new worker thread opened and no
        probe connection still closing is counted."""
        return established(self.pid, remote_port=port)

    def mark(self) -> None:
        """Start a CPU-use measurement window (see ``cpu_share``)."""
        self._cpu_mark, self._wall_mark = self.cpu_seconds(), time.monotonic()

    def cpu_share(self) -> float:
        """Share of one core used since ``mark`` (1.0 = a whole core)."""
        wall = time.monotonic() - self._wall_mark
        return (self.cpu_seconds() - self._cpu_mark) / wall if wall > 0 else 0.0

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def _pin(cpus: frozenset[int]) -> None:
    os.sched_setaffinity(0, cpus)


def _start(name: str, argv: list[str], env: dict[str, str], cpus: frozenset[int],
           ready_url: str, url: str, workdir: Path, cwd: Path | None = None,
           verify: ssl.SSLContext | bool = True, http2: bool = False) -> Proc:
    log = workdir / f"{name}.log"  # appended to: every start of a run in one file
    with log.open("ab") as out:
        popen = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=out,
                                 stdin=subprocess.DEVNULL, preexec_fn=lambda: _pin(cpus),
                                 cwd=cwd)
    proc = Proc(name, url, popen, log)
    deadline = time.monotonic() + 60
    while True:  # until it answers: a process start, not a measured interval
        if not proc.alive():
            raise RuntimeError(f"{name} exited at start; see {log}:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError), \
                httpx.Client(http1=not http2, http2=http2, verify=verify) as client:
            if client.get(ready_url, timeout=2).status_code < 500:
                return proc
        if time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"{name} did not start within 60 s; see {log}")
        time.sleep(0.05)


@dataclass(frozen=True)
class Certificate:
    """A certificate authority made in memory (``ca``) and its certificate's file
    (``authority``: ``SSL_CERT_FILE`` for who trusts it), and the chain and key of a
    certificate it issued for 127.0.0.1 (a server's ``certfile`` and ``keyfile``)."""

    ca: trustme.CA
    authority: Path
    chain: Path
    key: Path

    @classmethod
    def make(cls, folder: Path) -> Certificate:
        """A new authority and certificate, their files in ``folder``."""
        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1")
        made = cls(ca, folder / "ca.pem", folder / "chain.pem", folder / "key.pem")
        ca.cert_pem.write_to_path(str(made.authority))
        issued.private_key_and_cert_chain_pem.write_to_path(str(made.chain))
        issued.private_key_pem.write_to_path(str(made.key))
        return made

    def trusted(self) -> ssl.SSLContext:
        """A client's context trusting the authority."""
        return ssl.create_default_context(cafile=str(self.authority))


def start_mock(workdir: Path, cpus: frozenset[int], *, tokens_per_second: float,
               fault: str | None = None, stall_after_tokens: int = 3,
               first_token_delay_s: float = 0.0, port: int | None = None,
               http2: bool = False, tls: Certificate | None = None,
               context_tokens: int = MockLLMConfig.context_tokens,
               max_output_tokens: int = MockLLMConfig.max_output_tokens) -> Proc:
    """The mock model server (``bench.mock_model``); ``port`` to restart one in place;
    ``http2`` to serve HTTP/2 only (``bench/h2_server.py``) rather than HTTP/1.1
    (uvicorn); over TLS with ``tls``; ``context_tokens`` and ``max_output_tokens`` its
    limits (it refuses a request over them, as OpenAI does)."""
    port = port or free_port()
    argv = [sys.executable, "-m", "bench.mock_model", "--port", str(port),
            "--tokens-per-second", str(tokens_per_second),
            "--stall-after-tokens", str(stall_after_tokens),
            "--first-token-delay", str(first_token_delay_s),
            "--context-tokens", str(context_tokens),
            "--max-output-tokens", str(max_output_tokens)]
    if fault:
        argv += ["--fault", fault]
    if http2:
        argv.append("--http2")
    if tls is not None:
        argv += ["--certfile", str(tls.chain), "--keyfile", str(tls.key)]
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    return _start("mock-model", argv, {}, cpus, f"{url}/mock/fault", url, workdir,
                  verify=tls.trusted() if tls else True, http2=http2)


@dataclass(frozen=True)
class PanelKeys:
    """The session secret of a panel process, and sessions minted with it."""

    secret: str

    def session(self, conversation_id: str, user_id: str) -> str:
        """A signed session as ``POST /api/session`` would issue it."""
        codec = SessionCodec(self.secret)
        return codec.issue(Session(user_id, ORG, conversation_id, time.time() + 3600))


def start_panel(workdir: Path, cpus: frozenset[int], kb: Path, *, model_url: str | None,
                env: dict[str, str] | None = None, name: str = "panel",
                source: Path | None = None) -> tuple[Proc, PanelKeys]:
    """``assist-panel serve`` on a free loopback port: the production entry point.

    The per-user rate limit is off and the stream cap high (the load comes from one
    machine); everything else is the production default unless ``env`` says otherwise.
    Its output goes to ``workdir/{name}.log``. With ``source`` (another checkout of the
    project), that checkout's code runs: ``python -m server`` imports the package from
    its working directory first.
    """
    port = free_port()
    keys = PanelKeys(secrets.token_urlsafe(32))
    values = {
        "ASSIST_HOST": "127.0.0.1", "ASSIST_PORT": str(port), "ASSIST_KB_PATH": str(kb),
        "ASSIST_SESSION_SECRET": keys.secret, "ASSIST_ALLOWED_ORGS": ORG,
        "ASSIST_OAUTH_CLIENT_ID": "assist-panel-bench", "ASSIST_RATE_LIMIT_PER_MINUTE": "0",
        "ASSIST_MAX_STREAMS": "100000", "ASSIST_LOG_LEVEL": "warning",
        "ASSIST_AUDIT_LOG": str(workdir / "audit.jsonl"),
        "ASSIST_GENERATOR": "openai" if model_url else "extractive",
    }
    if model_url:
        # The mock model serves its own model alone (404 for any other, as OpenAI).
        values["ASSIST_OPENAI_BASE_URL"] = f"{model_url}/v1"
        values["ASSIST_OPENAI_MODEL"] = DEFAULT_MODEL
    values.update(env or {})
    url = f"http://127.0.0.1:{port}"
    proc = _start(name, [sys.executable, "-m", "server", "serve"], values, cpus,
                  f"{url}/healthz", url, workdir, cwd=source)
    return proc, keys


def start_peer(workdir: Path, cpus: frozenset[int], kb: Path, *, model_url: str) -> Proc:
    """The Flask + requests relay (``bench.peers.flask_relay``)."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.peers.flask_relay", "--port", str(port),
            "--kb", str(kb), "--model-url", f"{model_url}/v1"]
    url = f"http://127.0.0.1:{port}"
    # The peer has no health route: any answer (its 404/405) means it is listening.
    return _start("peer", argv, {}, cpus, f"{url}/api/assist/stream", url, workdir)


@contextlib.contextmanager
def running(*procs: Proc) -> Iterator[None]:
    """Stop the processes however the block ends."""
    try:
        yield
    finally:
        for proc in reversed(procs):
            proc.stop()
