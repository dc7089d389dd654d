"""Item 2, capacity: how many open streams one worker holds, idle (pings only) and streaming
20 tokens/s; resident memory per stream; the p99 gap between chunks against the
aggregation window. The peer is measured on the same steps.

Streams are added step by step and kept open. A step is *held* when every stream
is still open after the hold and the server still answers a plain request (its
``/healthz``; any route of the peer) in under a second; streaming, also when the
p99 gap between ``delta`` events stays within twice the aggregation window (the
peer sends a token at a time, so its gaps are the model's 50 ms when it keeps up)
and each stream gets at least 90% of the tokens a second it asks for (``SENT_FLOOR``:
a mock model short of its core sent fewer, its streams' gaps still one window, and
the step measured less than it says; its share of the harness's core is recorded).
The first step not held ends the ramp. Streaming, the streams of each batch open at
random moments over two token intervals (``STAGGER_S``), out of step.

Each step also records how late the event loops ran what was due while it was held:
the panel's own (``assist_event_loop_lag_seconds`` on its ``/metrics``: the highest
bucket that gained a sample, and how many samples were over the 100 ms window) and
the harness's (the same watch, in the client's loop). A step lost to a pause shows
whose loop it was: the server's, the client's, or both (the machine).
"""

from __future__ import annotations

import asyncio
import collections
import gc
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from server.web.loop_lag import watch_loop_lag

from .background import STAGGER_S, Background
from .load import Target, Trace, client
from .procs import Certificate, Cpus, Proc, running, start_mock, start_panel, start_peer
from .report import Row, Section
from .stats import percentile

WINDOW_MS = 100  # ASSIST_FLUSH_INTERVAL_MS, the production default
TOKENS_PER_SECOND = 20.0
HEALTH_LIMIT_S = 1.0
SENT_FLOOR = 0.9


@dataclass(frozen=True)
class Sizes:
    idle: tuple[int, ...]
    streaming: tuple[int, ...]
    hold_s: float


FULL = Sizes(idle=(1000, 2000, 4000, 8000, 10000, 12000, 16000),
             streaming=(50, 100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500), hold_s=8)
QUICK = Sizes(idle=(250, 500), streaming=(50, 100), hold_s=2)


def gaps_ms(traces: list[Trace], start: float, end: float) -> list[float]:
    """Gaps between consecutive deltas of each stream, both inside ``[start, end]``."""
    out: list[float] = []
    for trace in traces:
        times = [t for t in trace.deltas if start <= t <= end]
        out.extend((b - a) * 1000 for a, b in itertools.pairwise(times))
    return out


def stream_rate(traces: list[Trace], start: float, end: float) -> float | None:
    """Tokens a second a stream got in ``[start, end]``: each stream's tokens after its
    first delta there over the time from that delta to its last, summed over streams
    (a hold of a few windows counts no partial window at its edges). None without two
    deltas in any stream."""
    tokens = 0
    seconds = 0.0
    for trace in traces:
        inside = [(at, words) for at, words in zip(trace.deltas, trace.words, strict=False)
                  if start <= at <= end]
        if len(inside) >= 2:
            tokens += sum(words for _, words in inside[1:])
            seconds += inside[-1][0] - inside[0][0]
    return tokens / seconds if seconds > 0 else None


def ended(traces: list[Trace]) -> dict[str, int]:
    """How the streams no longer open ended, counted: ``done`` by its outcome and stop
    reason, a transport error, an answer other than 200, or none yet."""
    counts: collections.Counter[str] = collections.Counter()
    for trace in traces:
        if trace.open:
            continue
        if trace.done is not None:
            counts[f"{trace.done.get('outcome')}/{trace.done.get('stop_reason')}"] += 1
        elif trace.status not in (None, 200):  # its error says the status too
            counts[f"status {trace.status}"] += 1
        elif trace.error is not None:
            counts["error"] += 1
        elif trace.status is None:
            counts["unanswered"] += 1
        else:
            counts["closed"] += 1
    return dict(counts.most_common())


async def _health(http: httpx.AsyncClient, url: str, until: float) -> list[float]:
    """Latency of plain requests, one after another, until ``until``."""
    samples: list[float] = []
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            await http.get(url, timeout=30)
            samples.append(time.monotonic() - started)
        except httpx.HTTPError:
            samples.append(float("inf"))
        await asyncio.sleep(0.2)
    return samples


async def _loop_lag(http: httpx.AsyncClient, metrics_url: str | None) -> dict[float, float]:
    """The server's ``assist_event_loop_lag_seconds`` buckets (bound -> count); empty
    without a metrics URL (the peer) or when it does not answer."""
    if metrics_url is None:
        return {}
    try:
        text = (await http.get(metrics_url, timeout=30)).text
    except httpx.HTTPError:
        return {}
    return {float(sample.labels["le"]): sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "assist_event_loop_lag_seconds"
            for sample in family.samples if sample.name.endswith("_bucket")}


def lag_figures(before: dict[float, float], after: dict[float, float],
                harness: list[float]) -> dict[str, Any]:
    """How late the loops ran in a step: the server's lateness at most (ms: the smallest
    bucket bound that took every sample of the step) and its samples over the window;
    the harness's largest lateness (ms). The server's are None without its metrics."""
    def gained(bound: float) -> float:
        return after.get(bound, 0.0) - before.get(bound, 0.0)

    most = None
    if after:
        most = next((bound * 1000 for bound in sorted(after)
                     if gained(bound) >= gained(float("inf"))), float("inf"))
    window = WINDOW_MS / 1000
    return {"server_lag_max_ms": most,
            "server_lag_over_window": (round(gained(float("inf")) - gained(window))
                                       if window in after else None),
            "harness_lag_max_ms": round(max(harness, default=0.0) * 1000, 1)}


async def ramp(target: Target, server: Proc, health_url: str, steps: tuple[int, ...],
               hold_s: float, *, streaming: bool, metrics_url: str | None = None,
               model: Proc | None = None) -> list[dict[str, Any]]:
    """Add streams step by step; measure each step until one is not held. ``model``:
    the mock model's process, whose share of its core each step records."""
    results: list[dict[str, Any]] = []
    baseline = server.rss_bytes()
    harness_lag: list[float] = []
    watch = asyncio.create_task(watch_loop_lag(harness_lag.append))
    async with client() as probe:
        background = Background(target)
        for n in steps:
            grown = time.monotonic()
            # Streaming, each batch's streams open out of step (background.STAGGER_S).
            await background.grow(n, stagger_s=STAGGER_S if streaming else 0.0)
            grow_s = time.monotonic() - grown
            lag_before = await _loop_lag(probe, metrics_url)
            # The harness's own full collections walk every trace it holds (tens of
            # thousands of streams' by the last steps): a run lost its 50-stream step
            # to a 400 ms pause of the harness's loop. None while a step is held.
            gc.collect()
            gc.disable()
            server.mark()
            if model is not None:
                model.mark()
            harness_lag.clear()
            start = time.monotonic()
            try:
                health = await _health(probe, health_url, start + hold_s)
            finally:
                gc.enable()
            end = time.monotonic()
            # Read before the metrics request, whose connection may still be closing.
            measured = {"server_cpu": round(server.cpu_share(), 3),
                        "server_threads": server.threads(),
                        "server_open_files": server.open_files(),
                        "server_model_connections": (
                            server.connections_to(urlsplit(model.url).port or 0)
                            if model else None),
                        "model_cpu": round(model.cpu_share(), 3) if model else None}
            lags = lag_figures(lag_before, await _loop_lag(probe, metrics_url), harness_lag)
            open_now = background.open_count()
            gaps = gaps_ms(background.traces, start, end) if streaming else []
            tokens = sum(w for t in background.traces
                         for at, w in zip(t.deltas, t.words, strict=False) if start <= at <= end)
            p99_gap = percentile(gaps, 99)
            rate = stream_rate(background.traces, start, end) if streaming else None
            got = round(rate / TOKENS_PER_SECOND, 3) if rate is not None else None
            rss = server.rss_bytes()
            held = (open_now == n and max(health, default=0) < HEALTH_LIMIT_S
                    and (not streaming or (p99_gap is not None and p99_gap <= 2 * WINDOW_MS
                                           and got is not None and got >= SENT_FLOOR)))
            results.append({
                "streams": n, "open": open_now, "held": held, "failed": len(background.failed()),
                "ended": ended(background.traces),
                "ramp_s": round(grow_s, 2),
                "health_max_ms": round(max(health, default=0) * 1000, 1),
                "gap_p50_ms": percentile(gaps, 50), "gap_p99_ms": p99_gap, "gaps": len(gaps),
                "relayed_tokens_per_s": round(tokens / (end - start), 1),
                "tokens_got": got,
                "rss_mb": round(rss / 2**20, 1),
                "rss_per_stream_kb": round((rss - baseline) / n / 1024, 1),
                **measured, **lags,
            })
            if not held:
                break
        await background.close()
    watch.cancel()
    return results


def _measure(kind: str, target: Target, server: Proc, health_url: str, sizes: Sizes, *,
             streaming: bool, model: Proc, metrics_url: str | None = None) -> dict[str, Any]:
    steps = sizes.streaming if streaming else sizes.idle
    result = asyncio.run(ramp(target, server, health_url, steps, sizes.hold_s,
                              streaming=streaming, metrics_url=metrics_url, model=model))
    held = [r for r in result if r["held"]]
    return {"target": kind, "mode": "streaming" if streaming else "idle", "steps": result,
            "held": held[-1]["streams"] if held else 0,
            "rss_per_stream_kb": held[-1]["rss_per_stream_kb"] if held else None,
            "ceiling": len(held) == len(steps)}


def _panel(kind: str, workdir: Path, kb: Path, cpus: Cpus, model: Proc, sizes: Sizes, *,
           streaming: bool, env: dict[str, str] | None = None) -> dict[str, Any]:
    # Idle streams wait for a first token that never comes: limits far away.
    panel, keys = start_panel(workdir, cpus.server, kb, model_url=model.url, name=kind, env={
        "ASSIST_FIRST_TOKEN_TIMEOUT_S": "3600", "ASSIST_STALL_TIMEOUT_S": "3600",
        "ASSIST_STREAM_LIMIT_S": "3600", "ASSIST_SSE_PING_S": "5",
        "ASSIST_FLUSH_INTERVAL_MS": str(WINDOW_MS), **(env or {})})
    with running(panel):
        return _measure(kind, Target("panel", panel.url, keys), panel, f"{panel.url}/healthz",
                        sizes, streaming=streaming, model=model,
                        metrics_url=f"{panel.url}/metrics")


def run(quick: bool, workdir: Path, kb: Path, cpus: Cpus,
        sizes: Sizes | None = None) -> Section:
    """Idle and streaming ramps for the panel and the peer; the panel again with its
    model at https://, offering HTTP/2, in the default settings (the model's streams
    then over HTTP/2), and over HTTP/1.1."""
    sizes = sizes or (QUICK if quick else FULL)
    results: list[dict[str, Any]] = []
    for streaming in (False, True):
        fault = "endless" if streaming else "stall_first"
        model = start_mock(workdir, cpus.harness, tokens_per_second=TOKENS_PER_SECOND,
                           fault=fault)
        with running(model):
            results.append(_panel("panel", workdir, kb, cpus, model, sizes,
                                  streaming=streaming))
            peer = start_peer(workdir, cpus.server, kb, model_url=model.url)
            with running(peer):
                results.append(_measure("peer", Target("peer", peer.url), peer,
                                        f"{peer.url}/health-probe", sizes, streaming=streaming,
                                        model=model))
        # A model at https:// whose TLS handshake offers HTTP/2, as hosted models' do:
        # with the default settings the streams share a few connections to it, one
        # open file a stream where HTTP/1.1 takes two; and the same model over
        # HTTP/1.1, a TLS connection a stream, for what the default saves or costs.
        # The mock serves each on its own: HTTP/2 by bench/h2_server.py (hypercorn's
        # machinery took most of the harness's core past 600 streams), HTTP/1.1 by
        # uvicorn.
        tls = Certificate.make(workdir)
        for kind, protocol in (("panel-https", "auto"), ("panel-https-http1", "false")):
            model = start_mock(workdir, cpus.harness, tokens_per_second=TOKENS_PER_SECOND,
                               fault=fault, http2=protocol == "auto", tls=tls)
            with running(model):
                results.append(_panel(kind, workdir, kb, cpus, model, sizes,
                                      streaming=streaming,
                                      env={"SSL_CERT_FILE": str(tls.authority),
                                           "ASSIST_MODEL_HTTP2": protocol}))
    return Section("capacity", rows(results), {
        "window_ms": WINDOW_MS, "tokens_per_second": TOKENS_PER_SECOND,
        "hold_s": sizes.hold_s, "results": results})


def rows(results: list[dict[str, Any]]) -> list[Row]:
    by = {(r["target"], r["mode"]): r for r in results}
    out: list[Row] = []
    for r in results:
        panel = by.get(("panel", r["mode"]))
        ratio = None
        if r["target"] == "peer" and panel and panel["held"]:
            ratio = round(r["held"] / panel["held"], 2)
        what = "idle (pings)" if r["mode"] == "idle" else f"streaming {TOKENS_PER_SECOND:g} tok/s"
        bound = "+" if r["ceiling"] else ""
        note = f"{r['rss_per_stream_kb']} KB RSS/stream" if r["rss_per_stream_kb"] else ""
        if bound:
            note += ("; " if note else "") + "every step held: more may fit"
        elif stopped := next((s for s in r["steps"] if not s["held"]), None):
            note += ("; " if note else "") + _stopped(stopped)
        out.append(Row("2 capacity", f"{r['target']}: open streams, {what}", "streams",
                       value=r["held"], ratio=ratio, note=note))
        if r["mode"] == "streaming":
            last = [s for s in r["steps"] if s["held"]] or r["steps"][:1]
            step = last[-1]
            out.append(Row("2 capacity", f"{r['target']}: chunk gap at {step['streams']} streams "
                           f"(window {WINDOW_MS} ms)", "ms", step["gap_p50_ms"],
                           step["gap_p99_ms"]))
    return out


def _stopped(step: dict[str, Any]) -> str:
    """The step that ended a ramp, and how late each loop ran in it; streaming, what
    share of the tokens asked the client got when it was short, and the model's CPU."""
    late = f"harness's loop {step.get('harness_lag_max_ms')} ms late at most"
    if step.get("server_lag_max_ms") is not None:
        late = f"server's loop late <= {step['server_lag_max_ms']:g} ms, " + late
    gone = step.get("ended") or {}
    if gone:
        how = ", ".join(f"{count} {what}" for what, count in gone.items())
        late = f"{sum(gone.values())} streams ended: {how}; " + late
    got = step.get("tokens_got")
    if got is not None and got < SENT_FLOOR:
        late = (f"the client got {got:.0%} of the tokens asked, the mock model at "
                f"{step.get('model_cpu')} of the harness's core; ") + late
    return f"not held at {step['streams']} ({late})"
