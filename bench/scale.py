"""Scale-out: streams per second and time to first ``delta`` with 1, 2 and 4 workers
(``serve --workers N``), straight to the panel and through nginx with TLS (the shipped
``deploy/nginx/assist-panel.conf``), all in one run.

Method: for each worker count and path, a closed loop. Load processes keep
``concurrency`` streams going in all, each read to its ``done`` and followed at once
by the next, through a warm-up and then the measured hold. Streams per second
counts the ``done`` events that arrive in the hold; time to first delta is that of
the streams sent in it (the wait for a free worker included: at a fixed
concurrency, more throughput is less queueing). The mock model answers every
request at 100 tokens a second.

Nothing is pinned: the workers, nginx, the mock model and the load share the
machine's cores, as they would share a node. The CPU each used during the hold is
read from ``/proc`` (a process and all its children), so the figures say where the
cores went; the panel's CPU per stream is what docs/deploy.md sizes replicas by.
Two cores are noisy: compare the ratios of one run, not figures of different runs.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import httpx

from .load import Target, stream
from .nginx import certificate, running_nginx, site_config
from .procs import (
    CLOCK_TICKS,
    Cpus,
    Proc,
    cpu_ticks,
    free_port,
    running,
    start_mock,
    start_panel,
    stat_fields,
)
from .report import Row, Section
from .stats import summary

ITEM = "scale"
LOAD_PROCESSES = 2  # one Python load process cannot keep four workers busy


@dataclass(frozen=True)
class Sizes:
    workers: tuple[int, ...]
    concurrency: int
    warm_s: float
    hold_s: float
    tokens_per_second: float = 100.0  # the mock model's pace (0: as fast as it can)


FULL = Sizes(workers=(1, 2, 4), concurrency=96, warm_s=4, hold_s=20)
QUICK = Sizes(workers=(1, 2), concurrency=32, warm_s=1, hold_s=4)


# The load: runs in its own processes ----------------------------------------------


def _load(target: Target, cafile: str | None, concurrency: int, start: float,
          end: float) -> dict[str, Any]:
    """One load process (a pool task): ``concurrency`` streams back to back until ``end``;
    what happened in ``[start, end]`` (monotonic clock, shared by every process)."""
    return asyncio.run(_closed_loop(target, cafile, concurrency, start, end))


async def _closed_loop(target: Target, cafile: str | None, concurrency: int, start: float,
                       end: float) -> dict[str, Any]:
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=cafile) if cafile else True
    # Kept-alive connections, as a browser keeps its own to the panel.
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    done = 0
    ttfd_ms: list[float] = []
    outcomes: Counter[str] = Counter()
    cpu: dict[str, float] = {}

    def note_cpu(key: str) -> None:
        cpu[key] = time.process_time()

    loop = asyncio.get_running_loop()
    loop.call_at(start, note_cpu, "start")
    loop.call_at(end, note_cpu, "end")
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60), verify=verify) as http:

        async def agent() -> None:
            nonlocal done
            while time.monotonic() < end:
                trace = await stream(http, target)
                finished = time.monotonic()
                if trace.done is not None and start <= finished <= end:
                    done += 1
                if start <= trace.sent <= end:
                    outcome = (f"done/{trace.done.get('outcome')}" if trace.done is not None
                               else trace.error or "closed")
                    outcomes[outcome] += 1
                    if trace.ttft is not None:
                        ttfd_ms.append(trace.ttft * 1000)

        await asyncio.gather(*(agent() for _ in range(concurrency)))
    return {"done": done, "ttfd_ms": ttfd_ms, "outcomes": dict(outcomes),
            "cpu_s": cpu.get("end", 0.0) - cpu.get("start", 0.0)}


# The measured processes ---------------------------------------------------------


def _children() -> dict[int, list[int]]:
    """Every process's children, from ``/proc/*/stat``."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parent = int(stat_fields(int(entry))[1])
        except OSError:
            continue  # it has just exited
        out.setdefault(parent, []).append(int(entry))
    return out


def _tree(pid: int, children: dict[int, list[int]]) -> Iterator[int]:
    yield pid
    for child in children.get(pid, []):
        yield from _tree(child, children)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and all its live descendants."""
    total = 0
    for member in _tree(pid, _children()):
        try:
            total += cpu_ticks(stat_fields(member))
        except OSError:
            continue  # it has just exited
    return total / CLOCK_TICKS


def _wait_for_workers(panel: Proc, workers: int) -> None:
    """Until every worker says it accepts connections (their log lines, at ``info``):
    the supervisor's socket answers as soon as the first one does. One worker is the
    plain server, up once it answers."""
    if workers == 1:
        return
    deadline = time.monotonic() + 120
    while panel.log.read_text(errors="replace").count("accepting connections") < workers:
        if not panel.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{workers} workers did not all start; see {panel.log}")
        time.sleep(0.05)


# One configuration --------------------------------------------------------------


def measure(pool: Pool, target: Target, cafile: str | None, sizes: Sizes,
            processes: dict[str, int]) -> dict[str, Any]:
    """One closed-loop run against ``target``; ``processes`` are the pids whose CPU
    (with their children's) is read over the hold."""
    share = [sizes.concurrency // LOAD_PROCESSES + (i < sizes.concurrency % LOAD_PROCESSES)
             for i in range(LOAD_PROCESSES)]
    start = time.monotonic() + 0.5 + sizes.warm_s  # the pool's processes are up already
    end = start + sizes.hold_s
    jobs = [pool.apply_async(_load, (target, cafile, n, start, end)) for n in share]
    time.sleep(max(0.0, start - time.monotonic()))  # the hold is a window on a clock
    before = {name: tree_cpu_seconds(pid) for name, pid in processes.items()}
    time.sleep(max(0.0, end - time.monotonic()))
    after = {name: tree_cpu_seconds(pid) for name, pid in processes.items()}
    panel_processes = len(list(_tree(processes["panel"], _children())))
    loads = [job.get(timeout=sizes.warm_s + sizes.hold_s + 300) for job in jobs]
    done = sum(load["done"] for load in loads)
    outcomes: Counter[str] = Counter()
    for load in loads:
        outcomes.update(load["outcomes"])
    cpu = {name: round((after[name] - before[name]) / sizes.hold_s, 3) for name in processes}
    cpu["load"] = round(sum(load["cpu_s"] for load in loads) / sizes.hold_s, 3)
    per_stream = (after["panel"] - before["panel"]) / done * 1000 if done else None
    return {
        "streams_per_s": round(done / sizes.hold_s, 1),
        "ttfd_ms": summary(v for load in loads for v in load["ttfd_ms"]),
        "outcomes": dict(outcomes),
        "cores_used": cpu,
        "panel_cpu_ms_per_stream": round(per_stream, 2) if per_stream is not None else None,
        "panel_processes": panel_processes,  # the supervisor, its workers and helpers
    }


def run(quick: bool, workdir: Path, kb: Path, cpus: Cpus, sizes: Sizes | None = None
        ) -> Section:
    """Every worker count, direct and through nginx."""
    sizes = sizes or (QUICK if quick else FULL)
    every_cpu = cpus.server | cpus.harness
    cert, key = certificate(workdir)
    results: list[dict[str, Any]] = []
    spawn = multiprocessing.get_context("spawn")
    model = start_mock(workdir, every_cpu, tokens_per_second=sizes.tokens_per_second)
    with running(model), spawn.Pool(LOAD_PROCESSES) as pool:
        for workers in sizes.workers:
            panel, keys = start_panel(
                workdir, every_cpu, kb, model_url=model.url, name=f"panel-{workers}w",
                # info: the production default, and how each worker says it is ready.
                env={"ASSIST_WORKERS": str(workers), "ASSIST_LOG_LEVEL": "info"})
            with running(panel):
                _wait_for_workers(panel, workers)
                port = int(panel.url.rsplit(":", 1)[1])
                direct = Target("panel", panel.url, keys)
                measured = {"panel": panel.pid, "model": model.pid}
                results.append({"path": "direct", "workers": workers,
                                **measure(pool, direct, None, sizes, measured)})
                listen = free_port()
                site = site_config([port], listen, cert, key)
                nginx_dir = workdir / f"nginx-{workers}w"
                nginx_dir.mkdir(exist_ok=True)
                with running_nginx(nginx_dir, site, listen, connections=4096) as nginx:
                    proxied = Target("panel", f"https://127.0.0.1:{listen}", keys)
                    results.append({"path": "nginx", "workers": workers, **measure(
                        pool, proxied, str(cert), sizes, {**measured, "nginx": nginx.pid})})
    return Section(ITEM, rows(results), {
        "tokens_per_second": sizes.tokens_per_second, "concurrency": sizes.concurrency,
        "load_processes": LOAD_PROCESSES, "warm_s": sizes.warm_s, "hold_s": sizes.hold_s,
        "cores": len(every_cpu), "results": results})


def rows(results: list[dict[str, Any]]) -> list[Row]:
    """Two rows per configuration; the notes carry the ratios of the same run."""
    by = {(r["path"], r["workers"]): r for r in results}
    out: list[Row] = []
    for r in results:
        path, workers = r["path"], r["workers"]
        label = f"{path}, {workers} worker{'s' if workers > 1 else ''}"
        ratios = []
        one = by.get((path, 1))
        if workers != 1 and one and one["streams_per_s"]:
            ratios.append(f"{r['streams_per_s'] / one['streams_per_s']:.2f}x 1 worker")
        straight = by.get(("direct", workers))
        if path == "nginx" and straight and straight["streams_per_s"]:
            ratios.append(f"{r['streams_per_s'] / straight['streams_per_s']:.2f}x direct")
        cores = r["cores_used"]
        ratios.append(f"panel {r['panel_cpu_ms_per_stream']} CPU-ms/stream, "
                      f"{cores['panel']:.2f} cores")
        failed = sum(n for k, n in r["outcomes"].items() if k != "done/completed")
        if failed:
            ratios.append(f"{failed} streams not completed")
        out.append(Row(ITEM, f"{label}: streams per second", "streams/s",
                       value=r["streams_per_s"], note="; ".join(ratios)))
        ttfd = r["ttfd_ms"]
        out.append(Row(ITEM, f"{label}: time to first delta", "ms", ttfd["p50"], ttfd["p99"],
                       note=f"{ttfd['n']} streams"))
    return out
