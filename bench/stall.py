"""Item 6, stall to fallback: from the model's last byte to the ``fallback`` event at the
client, against the configured stall timeout; and, the other way, from a client
closing its stream to the model's request being closed (disconnect to cancel).

Both read the mock model's ``/mock/timings`` (the host's monotonic clock, shared
with this process): its last byte before going silent (fault ``stall_mid``, after
3 tokens), and when it saw its client, the panel, go away.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .background import Background
from .load import Target, Trace, client, stream
from .procs import Cpus, running, start_mock, start_panel
from .report import Row, Section
from .stats import summary


@dataclass(frozen=True)
class Sizes:
    stall_timeout_s: float
    stalls: int
    disconnects: int


FULL = Sizes(stall_timeout_s=5.0, stalls=200, disconnects=200)
QUICK = Sizes(stall_timeout_s=2.0, stalls=50, disconnects=40)


def _timings(url: str) -> dict[str, dict[str, Any]]:
    records = httpx.get(f"{url}/mock/timings", timeout=60).json()["timings"]
    return {r["requestId"]: r for r in records if r["requestId"]}


async def _stalls(target: Target, n: int) -> list[Trace]:
    async with client() as http:
        # Spread over a second, as a busy contact center's would be.
        async def one(i: int) -> Trace:
            await asyncio.sleep(i / n)
            return await stream(http, target)

        return list(await asyncio.gather(*(one(i) for i in range(n))))


async def _disconnects(target: Target, n: int) -> list[tuple[Trace, float]]:
    """Open ``n`` streaming streams, then close them one at a time: (trace, closed at).

    Each is closed once its first ``delta`` came: the model has its request then. A
    stream closed at its ``suggestion`` event may not have reached the model yet, and
    leaves it nothing to end (a test saw that, on a busy machine)."""
    background = Background(target)
    await background.grow(n, ready=lambda trace: trace.first_delta is not None)
    closed: list[tuple[Trace, float]] = []
    for task, trace in zip(background.tasks, background.traces, strict=True):
        await asyncio.sleep(0.01)
        at = time.monotonic()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        closed.append((trace, at))
    return closed


def _wait_ended(url: str, ids: set[str], timeout: float = 30) -> dict[str, dict[str, Any]]:
    """The mock's records once every one of ``ids`` has ended (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        records = _timings(url)
        if all(records.get(i, {}).get("ended") for i in ids) or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def run(quick: bool, workdir: Path, kb: Path, cpus: Cpus,
        sizes: Sizes | None = None) -> Section:
    sizes = sizes or (QUICK if quick else FULL)
    timeout = sizes.stall_timeout_s
    model = start_mock(workdir, cpus.harness, tokens_per_second=20, fault="stall_mid",
                       stall_after_tokens=3)
    with running(model):
        panel, keys = start_panel(workdir, cpus.server, kb, model_url=model.url, env={
            "ASSIST_STALL_TIMEOUT_S": f"{timeout:g}", "ASSIST_STREAM_LIMIT_S": "60"})
        with running(panel):
            traces = asyncio.run(_stalls(Target("panel", panel.url, keys), sizes.stalls))
        records = _timings(model.url)
    after_last_byte = [
        (t.fallback - records[t.request_id]["lastByte"]) * 1000 for t in traces
        if t.fallback is not None and t.request_id in records
        and records[t.request_id]["lastByte"] is not None]
    fallbacks = sum(1 for t in traces if t.fallback is not None)
    outcomes = sorted({(t.done or {}).get("stop_reason", "none") for t in traces})

    model = start_mock(workdir, cpus.harness, tokens_per_second=20, fault="endless")
    with running(model):
        panel, keys = start_panel(workdir, cpus.server, kb, model_url=model.url,
                                  env={"ASSIST_STREAM_LIMIT_S": "3600"})
        with running(panel):
            closed = asyncio.run(_disconnects(Target("panel", panel.url, keys),
                                              sizes.disconnects))
            records = _wait_ended(model.url, {t.request_id for t, _ in closed})
    cancel_ms = [(records[t.request_id]["ended"] - at) * 1000 for t, at in closed
                 if records.get(t.request_id, {}).get("ended")]

    stall = summary(after_last_byte)
    excess = summary(v - timeout * 1000 for v in after_last_byte)
    cancel = summary(cancel_ms)
    rows = [
        Row("6 stall", f"last model byte -> fallback at client (stall timeout {timeout:g} s)",
            "ms", stall["p50"], stall["p99"],
            note=f"{fallbacks}/{len(traces)} fell back; over the timeout by "
                 f"p50 {excess['p50'] or 0:.0f} ms, p99 {excess['p99'] or 0:.0f} ms"),
        Row("6 stall", "client closes -> model request closed", "ms", cancel["p50"],
            cancel["p99"], note=f"{len(cancel_ms)}/{len(closed)} streams"),
    ]
    return Section("stall", rows, {
        "stall_timeout_s": timeout, "streams": len(traces), "fallbacks": fallbacks,
        "stop_reasons": outcomes, "last_byte_to_fallback_ms": stall,
        "over_timeout_ms": excess, "samples_ms": [round(v, 3) for v in after_last_byte],
        "disconnect_to_cancel_ms": cancel, "cancel_samples_ms": [round(v, 3) for v in cancel_ms],
    })
