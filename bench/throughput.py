"""Item 3, throughput: upstream tokens per second one worker relays before the p99 gap
between chunks passes twice the aggregation window, and a profile of where the time goes.

Fifty streams stay open while the mock model's pace rises step by step; the
relayed rate is counted at the client (tokens in the ``delta`` text). py-spy
samples the panel during every step (without pausing it); the profile of the last
step that held is summarised (functions by own time and by time inside them) and
saved whole, as collapsed stacks, beside the results.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .background import Background
from .capacity import WINDOW_MS, gaps_ms
from .load import Target
from .procs import Certificate, Cpus, Proc, free_port, running, start_mock, start_panel
from .report import Row, Section
from .stats import percentile

STREAMS = 50


@dataclass(frozen=True)
class Sizes:
    rates: tuple[float, ...]  # tokens/s of each stream
    hold_s: float


FULL = Sizes(rates=(20, 40, 80, 130, 200, 300, 400, 500, 600, 800, 1000), hold_s=6)
QUICK = Sizes(rates=(40, 100), hold_s=3)


def py_spy() -> str | None:
    """The py-spy executable next to this Python, or on PATH."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


async def step(target: Target, panel: Proc, hold_s: float, profile: Path | None,
               cpus: frozenset[int]) -> dict[str, Any]:
    background = Background(target)
    await background.grow(STREAMS)
    await asyncio.sleep(0.5)  # past the first tokens: the steady state is measured
    spy = None
    if profile is not None and (exe := py_spy()):
        spy = await asyncio.create_subprocess_exec(
            exe, "record", "--pid", str(panel.pid), "--duration", str(int(hold_s)),
            "--rate", "200", "--format", "raw", "--nonblocking", "-o", str(profile),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    panel.mark()
    start = time.monotonic()
    await asyncio.sleep(hold_s)
    end = time.monotonic()
    cpu = panel.cpu_share()
    if spy is not None:
        await spy.wait()
    gaps = gaps_ms(background.traces, start, end)
    tokens = sum(w for t in background.traces
                 for at, w in zip(t.deltas, t.words, strict=False) if start <= at <= end)
    open_now = background.open_count()
    # Why a stream is not open any more, for the record (an error, or its done).
    ended = [{"status": t.status, "error": t.error, "done": t.done}
             for t in background.traces if not t.open][:5]
    await background.close()
    p99 = percentile(gaps, 99)
    return {"relayed_tokens_per_s": round(tokens / (end - start), 1), "open": open_now,
            "ended": ended,
            "gap_p50_ms": percentile(gaps, 50), "gap_p99_ms": p99, "server_cpu": round(cpu, 3),
            "held": open_now == STREAMS and p99 is not None and p99 <= 2 * WINDOW_MS}


# Frames that only start the process and its loop: every sample of the loop has them.
_BOOTSTRAP = ("<frozen runpy>", "click/", "server/__main__.py", "server/cli.py",
              "uvicorn/server.py", "uvicorn/_compat.py", "uvicorn/main.py")
LOOP_FRAME = "Runner.run (asyncio/runners.py)"


def top_functions(collapsed: Path, n: int = 12) -> dict[str, Any]:
    """Functions by own samples and by samples inside them, as % of the samples taken
    while the panel was busy. ``Runner.run``'s own share is uvloop's C code (sockets,
    timers, callbacks); coroutine stacks start at the task's coroutine."""
    own: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [f for f in stack.split(";") if f and not any(b in f for b in _BOOTSTRAP)]
        names = [_name(f) for f in frames]
        if names:
            own[names[-1]] += samples
        for name in set(names) - {LOOP_FRAME}:
            inside[name] += samples

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * c / total, 1)) for name, c in counter.most_common(n)]

    return {"samples": total, "own": share(own) if total else [],
            "inside": share(inside) if total else []}


def _name(frame: str) -> str:
    """``func (path/to/module.py:12)`` -> ``func (to/module.py)``: lines merged."""
    func, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{func} ({short})"


def ramp(kind: str, sizes: Sizes, workdir: Path, kb: Path, cpus: Cpus, *,
         http2: bool | str = False, tls: Certificate | None = None,
         profile: bool = False) -> tuple[list[dict[str, Any]], Path | None]:
    """The steps of one panel, the pace rising until one is not held; and the profile
    of the last that held (when ``profile``). ``http2``: its ``ASSIST_MODEL_HTTP2``;
    ``tls``: the model at https://, trusted through ``SSL_CERT_FILE``; the mock serves
    HTTP/2 only where the panel may speak it, HTTP/1.1 (uvicorn) otherwise."""
    port = free_port()
    steps: list[dict[str, Any]] = []
    best_profile: Path | None = None
    h2 = http2 in (True, "auto")
    model = start_mock(workdir, cpus.harness, tokens_per_second=sizes.rates[0],
                       fault="endless", port=port, http2=h2, tls=tls)
    env = {"ASSIST_STREAM_LIMIT_S": "3600", "ASSIST_FLUSH_INTERVAL_MS": str(WINDOW_MS),
           "ASSIST_MODEL_HTTP2": str(http2).lower()}
    if tls is not None:
        env["SSL_CERT_FILE"] = str(tls.authority)
    panel, keys = start_panel(workdir, cpus.server, kb, model_url=model.url, name=kind, env=env)
    with running(panel):
        for rate in sizes.rates:
            if rate != sizes.rates[0]:  # the same port: the panel keeps its model URL
                model.stop()
                model = start_mock(workdir, cpus.harness, tokens_per_second=rate,
                                   fault="endless", port=port, http2=h2, tls=tls)
            spied = workdir / f"profile-{kind}-{rate:g}.txt" if profile else None
            with running(model):
                result = asyncio.run(step(Target("panel", panel.url, keys), panel,
                                          sizes.hold_s, spied, cpus.harness))
            result.update(per_stream_tokens_per_s=rate, offered_tokens_per_s=rate * STREAMS)
            steps.append(result)
            if not result["held"]:
                break
            if spied is not None and spied.exists():
                best_profile = spied
    return steps, best_profile


#: The ramps after the panel's own: the key of their steps, the panel's name, what its
#: row says of the model, its ASSIST_MODEL_HTTP2 and whether the model is at https://.
OTHERS = (
    ("http2_steps", "panel-http2", "model over HTTP/2 (h2c)", True, False),
    ("https_http1_steps", "panel-https-http1", "model at https://, HTTP/1.1", False, True),
    ("https_steps", "panel-https", "model at https://, HTTP/2 as agreed (the default)",
     "auto", True),
)


def run(quick: bool, workdir: Path, kb: Path, cpus: Cpus, results_dir: Path,
        sizes: Sizes | None = None) -> Section:
    """The panel's ramp, profiled; then the same with the model's streams over HTTP/2
    (the mock served by ``bench/h2_server.py``), for what HTTP/2's framing costs a
    token, and with
    the model at https://, over HTTP/1.1 and over what the default settings agree
    with it (HTTP/2), for what each costs where TLS is in the way too."""
    sizes = sizes or (QUICK if quick else FULL)
    steps, best_profile = ramp("panel", sizes, workdir, kb, cpus, profile=True)
    tls = Certificate.make(workdir)
    others = {key: ramp(kind, sizes, workdir, kb, cpus, http2=http2,
                        tls=tls if https else None)[0]
              for key, kind, _, http2, https in OTHERS}
    held = [s for s in steps if s["held"]]
    best = max(held, key=lambda s: s["relayed_tokens_per_s"]) if held else None
    data: dict[str, Any] = {"streams": STREAMS, "window_ms": WINDOW_MS, "steps": steps,
                            **others, "hold_s": sizes.hold_s, "profile": None}
    if best_profile is not None:
        saved = results_dir / f"profile-{'quick' if quick else 'full'}.txt"
        shutil.copyfile(best_profile, saved)
        data["profile"] = {"file": saved.name, **top_functions(best_profile)}
    rows = [Row("3 throughput", f"panel: tokens/s relayed, p99 gap <= {2 * WINDOW_MS} ms",
                "tokens/s", value=best["relayed_tokens_per_s"] if best else 0,
                note=(f"{STREAMS} streams x {best['per_stream_tokens_per_s']:g} tok/s, "
                      f"{best['server_cpu']:.0%} of a core" if best else "no step held")
                + ("; every step held: more may fit" if len(held) == len(sizes.rates) else ""))]
    if best:
        rows.append(Row("3 throughput", f"panel: chunk gap at {best['relayed_tokens_per_s']:g} "
                        "tokens/s", "ms", best["gap_p50_ms"], best["gap_p99_ms"]))
    rows += [_other_row(what, others[key], len(sizes.rates)) for key, _, what, _, _ in OTHERS]
    return Section("throughput", rows, data)


def _other_row(what: str, steps: list[dict[str, Any]], rates: int) -> Row:
    held = [s for s in steps if s["held"]]
    best = max(held, key=lambda s: s["relayed_tokens_per_s"]) if held else None
    note = "no step held"
    if best:
        note = (f"{STREAMS} streams x {best['per_stream_tokens_per_s']:g} tok/s offered, "
                f"{best['server_cpu']:.0%} of a core")
        if best["relayed_tokens_per_s"] < 0.95 * best["offered_tokens_per_s"]:
            # The mock fell short of its pace before the panel did: the ceiling is the
            # harness's.
            note += "; the mock's ceiling, not the panel's"
        elif len(held) == rates:
            note += "; every step held: more may fit"
    return Row("3 throughput", f"panel, {what}: tokens/s relayed, p99 gap <= "
               f"{2 * WINDOW_MS} ms", "tokens/s", value=best["relayed_tokens_per_s"] if best else 0,
               note=note)
