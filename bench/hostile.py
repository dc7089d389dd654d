"""``hostile``: slow and never-reading clients by the hundred against ``assist-panel
serve``, and what the server holds before, during and after.

Four cases, each with its own server process (so each starts from a clean slate):

- ``slow headers``: connections that send half a request line and then one header byte
  a second;
- ``slow body``: complete headers, then one body byte a second;
- ``never read``: suggestion streams (the extractive generator, normal answers) whose
  client never reads a byte, with a 4 KiB receive buffer;
- ``never read, hostile model``: the same against a model that never stops talking
  (the mock's ``flood``: 16 KiB chunks without end), so the socket fills and the send
  timeout fires;
- ``largest transcripts``: suggestion requests eight at a time, each with the
  largest transcript allowed (20,000 characters of ``"4 4 4 ..."``, the redactor's
  worst case), read to the end.

For each: the server's open sockets (file descriptors), its TCP connections
(ESTABLISHED, and any state but LISTEN, with their queued bytes, from
``/proc/net/tcp``), open streams (``assist_active_streams``), threads and RSS, before
the clients connect, at their peak and after the server is done with them; how long
until its sockets are back to where they started; and ``GET /healthz`` latency,
sampled every 50 ms on a connection of its own, during the case. docs/performance.md
says what the figures mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .procs import Cpus, PanelKeys, Proc, running, start_mock, start_panel
from .report import Row, Section
from .stats import summary

CONVERSATION = "0f6d3c1e-7a2b-4c5d-9e8f-1a2b3c4d5e6f"
USER = "7c1e2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"


@dataclass(frozen=True)
class Sizes:
    connections: int
    header_timeout_s: float
    body_timeout_s: float
    send_timeout_s: float
    settle_s: float  # most time a case waits for the server to let go (bounded loop)


FULL = Sizes(connections=300, header_timeout_s=10, body_timeout_s=10, send_timeout_s=10,
             settle_s=90)
QUICK = Sizes(connections=60, header_timeout_s=2, body_timeout_s=2, send_timeout_s=2,
              settle_s=30)


# -- what the server holds ------------------------------------------------------------------


def _socket_fds(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return count


def _tcp(port: int) -> dict[str, int]:
    """The server side of connections on ``port``: ESTABLISHED, any state but LISTEN, and
    the bytes queued to send on them."""
    established = other = queued = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        state = fields[3]
        if local_port != port or state == "0A":  # 0A: LISTEN
            continue
        other += 1
        established += state == "01"
        queued += int(fields[4].split(":")[0], 16)
    return {"established": established, "not_listening": other, "queued_bytes": queued}


def _streams(url: str) -> float | None:
    with contextlib.suppress(httpx.HTTPError):
        for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
            if line.startswith("assist_active_streams "):
                return float(line.split()[1])
    return None


def snapshot(proc: Proc) -> dict[str, Any]:
    port = int(proc.url.rsplit(":", 1)[1])
    return {"socket_fds": _socket_fds(proc.pid), "tcp": _tcp(port),
            "streams": _streams(proc.url), "threads": proc.threads(),
            "rss_mib": round(proc.rss_bytes() / 2**20, 1)}


# -- the clients -----------------------------------------------------------------------------


async def _open(proc: Proc, rcvbuf: int | None = None) -> socket.socket:
    host, port = proc.url.removeprefix("http://").split(":")
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return sock


async def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        await asyncio.get_running_loop().sock_sendall(sock, data)
        return True
    except OSError:  # the server closed it
        return False


async def _trickle(sock: socket.socket, opened: float, first: bytes, byte: bytes,
                   limit_s: float, answers: list[str]) -> float:
    """Send ``first``, then ``byte`` once a second until the server closes the connection:
    the seconds it stayed open since ``opened`` (just before its connect), ``limit_s`` at
    most. What the server answered goes to ``answers``: its status and error code
    ("408 header_timeout"), "closed" for a close without an answer, "none" if the
    server still held the connection at ``limit_s``."""
    began = opened
    loop = asyncio.get_running_loop()
    answer = "none"
    if await _send(sock, first):
        while time.monotonic() - began < limit_s:
            # Readable means an answer (the 408) or the close: either way, done.
            with contextlib.suppress(TimeoutError):
                first_bytes = await asyncio.wait_for(loop.sock_recv(sock, 4096), 1.0)
                answer = _answer(await _rest(sock, first_bytes, began + limit_s))
                break
            if not await _send(sock, byte):
                answer = "closed"
                break
    answers.append(answer)
    return time.monotonic() - began


async def _rest(sock: socket.socket, data: bytes, deadline: float) -> bytes:
    """``data`` and whatever follows it until the server closes the connection (it does
    after a refusal): the status line and the JSON body may come in separate segments."""
    loop = asyncio.get_running_loop()
    chunks = [data]
    while data and time.monotonic() < deadline:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096),
                                          max(0.01, deadline - time.monotonic()))
        except (TimeoutError, OSError):
            break
        chunks.append(data)
    return b"".join(chunks)


def _answer(data: bytes) -> str:
    """``"408 header_timeout"`` from a refusal's first bytes; "closed" from none."""
    if not data:
        return "closed"
    status = data.split(b"\r\n", 1)[0].split(b" ")[1:2]
    code = re.search(rb'"error"\s*:\s*"([a-z_]+)"', data)
    return b" ".join([*status, code.group(1) if code else b""]).decode("ascii", "replace").strip()


def _stream_request(keys: PanelKeys, n: int) -> bytes:
    body = json.dumps({"conversationId": CONVERSATION, "trigger": "manual",
                       "query": "how long does a refund take",
                       "requestId": f"hostile-{n}"}).encode()
    session = keys.session(CONVERSATION, USER)
    return (b"POST /api/assist/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nAuthorization: Bearer " + session.encode()
            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def _healthz(proc: Proc, stop: asyncio.Event, samples: list[float],
                   peak: dict[str, Any], first: asyncio.Event) -> None:
    """``/healthz`` every 50 ms until ``stop``; ``peak`` keeps the snapshot taken when the
    server held the most sockets."""
    async with httpx.AsyncClient(timeout=30) as http:
        while not stop.is_set():
            began = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                await http.get(f"{proc.url}/healthz")
                samples.append((time.monotonic() - began) * 1000)
                first.set()
            if _socket_fds(proc.pid) > peak.get("socket_fds", -1):
                peak.update(snapshot(proc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.05)


async def _settle(proc: Proc, baseline: dict[str, Any], limit_s: float) -> float | None:
    """Seconds until the server holds no more sockets than at ``baseline`` and the kernel
    no more connections on its port (None: not in ``limit_s``): a connection the server
    has not accepted yet counts too. Polled: this watches another process."""
    port = int(proc.url.rsplit(":", 1)[1])
    began = time.monotonic()
    while time.monotonic() - began < limit_s:
        if (_socket_fds(proc.pid) <= baseline["socket_fds"]
                and _tcp(port)["established"] <= baseline["tcp"]["established"]):
            return time.monotonic() - began
        await asyncio.sleep(0.1)
    return None


async def _case(proc: Proc, sizes: Sizes,
                clients: Callable[[Callable[[], None]], Any]) -> dict[str, Any]:
    stop = asyncio.Event()
    samples: list[float] = []
    peak: dict[str, Any] = {}
    first = asyncio.Event()
    probe = asyncio.create_task(_healthz(proc, stop, samples, peak, first))
    await first.wait()  # "before" counts the probe's own connection
    before = snapshot(proc)

    def at_peak() -> None:
        """Called by the clients once every connection is open (and its bytes sent): the
        peak, whatever the 50 ms probe saw."""
        now = snapshot(proc)
        if now["tcp"]["established"] >= peak.get("tcp", {}).get("established", -1):
            peak.update(now)

    began = time.monotonic()
    sockets, held = await clients(at_peak)
    settled = await _settle(proc, before, sizes.settle_s)
    seconds = time.monotonic() - began
    after = snapshot(proc)
    stop.set()
    await probe
    for sock in sockets:
        sock.close()
    return {"before": before, "peak": peak, "after": after,
            "released_s": None if settled is None else round(seconds, 2),
            "held_s": summary(held) if held else None, "healthz_ms": summary(samples)}


# -- the cases -------------------------------------------------------------------------------


async def _slow(proc: Proc, sizes: Sizes, first: bytes, limit_s: float) -> dict[str, Any]:
    answers: list[str] = []

    async def clients(at_peak: Callable[[], None]
                      ) -> tuple[list[socket.socket], list[float]]:
        sockets: list[socket.socket] = []
        opened: list[float] = []
        for _ in range(sizes.connections):
            opened.append(time.monotonic())  # before the connect: never after the server's
            sockets.append(await _open(proc))
        at_peak()
        held = await asyncio.gather(*(_trickle(s, at, first, b"a", limit_s, answers)
                                      for s, at in zip(sockets, opened, strict=True)))
        return sockets, list(held)
    case = await _case(proc, sizes, clients)
    case["answers"] = dict(Counter(answers))
    return case


async def _never_read(proc: Proc, sizes: Sizes, keys: PanelKeys) -> dict[str, Any]:
    async def clients(at_peak: Callable[[], None]
                      ) -> tuple[list[socket.socket], list[float]]:
        sockets = [await _open(proc, rcvbuf=4096) for _ in range(sizes.connections)]
        await asyncio.gather(*(_send(s, _stream_request(keys, n))
                               for n, s in enumerate(sockets)))
        at_peak()
        return sockets, []
    return await _case(proc, sizes, clients)


# Under ASSIST_MAX_TRANSCRIPT_CHARS (20,000) with the query: the largest allowed.
_LARGEST = "4 " * 9_900


async def _large(proc: Proc, sizes: Sizes, keys: PanelKeys) -> dict[str, Any]:
    async def clients(at_peak: Callable[[], None]
                      ) -> tuple[list[socket.socket], list[float]]:
        gate = asyncio.Semaphore(8)
        took: list[float] = []

        async def one(http: httpx.AsyncClient, n: int) -> None:
            # A conversation each: a newer utterance would supersede the one before.
            conversation = str(uuid.UUID(int=n + 1))
            session = keys.session(conversation, USER)
            async with gate:
                began = time.monotonic()
                body = {"conversationId": conversation, "trigger": "utterance",
                        "requestId": f"large-{n}",
                        "utterances": [{"speaker": "customer", "text": _LARGEST}]}
                async with http.stream("POST", f"{proc.url}/api/assist/stream", json=body,
                                       headers={"Authorization": f"Bearer {session}"}) as r:
                    await r.aread()
                took.append(time.monotonic() - began)

        async with httpx.AsyncClient(timeout=120) as http:
            await asyncio.gather(*(one(http, n) for n in range(sizes.connections)))
        return [], took
    return await _case(proc, sizes, clients)


def _outcomes(audit: Path, since: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    if audit.exists():
        for line in audit.read_text().splitlines()[since:]:
            record = json.loads(line)
            key = f"{record.get('outcome')}/{record.get('stopReason')}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _log_counts(log: Path, since: int) -> dict[str, int]:
    text = log.read_text(errors="replace")[since:] if log.exists() else ""
    return {"tracebacks": text.count("Traceback"),
            "send_timeout_lines": text.count("client stopped reading")}


def run(quick: bool, workdir: Path, kb: Path, cpus: Cpus, sizes: Sizes | None = None
        ) -> Section:
    sizes = sizes or (QUICK if quick else FULL)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per /healthz probe
    env = {"ASSIST_HEADER_TIMEOUT_S": f"{sizes.header_timeout_s:g}",
           "ASSIST_BODY_TIMEOUT_S": f"{sizes.body_timeout_s:g}",
           "ASSIST_SEND_TIMEOUT_S": f"{sizes.send_timeout_s:g}",
           "ASSIST_SIGNIN_RATE_LIMIT_PER_MINUTE": "0"}
    limit = sizes.header_timeout_s * 6
    cases: dict[str, dict[str, Any]] = {}
    audit = workdir / "audit.jsonl"

    def measured(name: str, proc: Proc, work: Callable[[], Any]) -> None:
        log = proc.log
        log_from = log.stat().st_size if log.exists() else 0
        audit_from = _lines(audit)
        cases[name] = asyncio.run(work())
        cases[name]["log"] = _log_counts(log, log_from)
        cases[name]["outcomes"] = _outcomes(audit, audit_from)

    panel, keys = start_panel(workdir, cpus.server, kb, model_url=None, env=env)
    with running(panel):
        measured("slow headers", panel, lambda: _slow(
            panel, sizes, b"POST /auth/state HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", limit))
    panel, keys = start_panel(workdir, cpus.server, kb, model_url=None, env=env)
    with running(panel):
        measured("slow body", panel, lambda: _slow(
            panel, sizes, b"POST /auth/state HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{",
            limit))
    panel, keys = start_panel(workdir, cpus.server, kb, model_url=None, env=env)
    with running(panel):
        measured("never read", panel, lambda: _never_read(panel, sizes, keys))
    # A model that takes the largest ASSIST_MAX_TOKENS (the mock refuses a limit over
    # its own, as OpenAI does), with a context to hold it and the prompt.
    model = start_mock(workdir, cpus.harness, tokens_per_second=0, fault="flood",
                       context_tokens=65_536, max_output_tokens=32_768)
    with running(model):
        panel, keys = start_panel(workdir, cpus.server, kb, model_url=model.url, env={
            **env, "ASSIST_MAX_TOKENS": "32768", "ASSIST_MODEL_CONTEXT_TOKENS": "65536",
            "ASSIST_STREAM_LIMIT_S": "120"})
        with running(panel):
            measured("never read, hostile model", panel,
                     lambda: _never_read(panel, sizes, keys))
    panel, keys = start_panel(workdir, cpus.server, kb, model_url=None, env=env)
    with running(panel):
        measured("largest transcripts", panel, lambda: _large(panel, sizes, keys))
    return Section("hostile", _rows(cases, sizes), {"sizes": sizes.__dict__, "cases": cases})


def _rows(cases: dict[str, dict[str, Any]], sizes: Sizes) -> list[Row]:
    rows = []
    for name, case in cases.items():
        health = case["healthz_ms"]
        before, peak, after = case["before"], case["peak"], case["after"]
        held = case["held_s"]
        note = (f"{sizes.connections} clients; sockets {before['socket_fds']} -> "
                f"{peak['socket_fds']} -> {after['socket_fds']}, ESTABLISHED "
                f"{peak['tcp']['established']} -> {after['tcp']['established']}, "
                f"RSS {before['rss_mib']} -> {after['rss_mib']} MiB, released in "
                f"{case['released_s']} s")
        if held:
            note += f"; each lasted {held['p50']:.2f} s p50, {held['max']:.2f} s max"
        if case["outcomes"]:
            note += "; " + ", ".join(f"{k} {v}" for k, v in sorted(case["outcomes"].items()))
        note += f"; {case['log']['tracebacks']} tracebacks"
        rows.append(Row("hostile", f"{name}: /healthz during", "ms", health["p50"],
                        health["p99"], note=note))
    return rows
