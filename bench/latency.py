"""Item 1, added latency: request to the first ``delta`` at the client, minus the mock
model's own time to first token, while 0, 99 or 499 other streams are open.

Method: background streams stream endlessly at 20 tokens/s (the mock's
``endless`` fault; opened at random moments over ``STAGGER_S``, so that their tokens
keep no step; probing starts once each has its first delta) beside a few
probers (one per 50 streams, at most 10; they make up the ``n``), each opening
probe streams one after another, at random spacing (``PROBE_SPREAD_S``), as turns of
conversations (``TURNS``), and closing each at its first ``delta``, each on a new
connection, read by the background's lean reader (before 2026-12-06 through httpx,
which was most of the harness's share below). For each probe the mock's
``/mock/timings`` says when it received the request and when it sent the first token;
the panel's share is the rest. The same for the peer, the two
taking turns at each level in blocks of probes (``Sizes.rounds``; before 2026-12-06
03:00 UTC the peer's levels ran after all of the panel's, minutes later), and for the
``extractive`` generator (no model: its absolute time).

Beside each server's probes, and taking turns with them, the same probers call the
mock model directly (``/v1/chat/completions``): what "added" holds that is the
harness's own (its HTTP client, the loopback, the model server's request parsing
before its timer starts), measured at the same moments and under the same load. A
server's own share is its added latency minus that. (Before 2026-12-05 08:30 UTC
the harness was measured in a phase of its own, before the servers': minutes apart
on a machine whose speed drifts by a fifth in that time.)
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .background import STAGGER_S, Background, read_stream
from .load import Target, Trace, next_stream
from .procs import Cpus, Proc, running, start_mock, start_panel, start_peer
from .report import Row, Section
from .stats import summary

TOKENS_PER_SECOND = 20.0
# Each prober waits a random time up to this before each probe. Without it the probers
# ran in lockstep (every probe lasts the model's first-token time, 50 ms): at 100
# streams most probes reached the server within a millisecond or two of the other
# prober's, so nearly every probe measured two requests arriving at once. With it,
# probes meet only as often as independent arrivals do.
PROBE_SPREAD_S = 0.05
# A prober's probes are turns of a conversation, this many to one, as an agent's page
# asks again at each thing the customer says, with the conversation's session (before
# 2026-12-07 each probe was a conversation of its own: every one the first of a
# conversation, whose session a worker has not yet checked). The first turns are also
# summarised apart (``first_turns_ms``).
TURNS = 8
# The panels probed against the model: the background streams are endless, so the
# stream limit is raised past the run's length.
PANEL_ENV = {"ASSIST_STREAM_LIMIT_S": "3600"}


@dataclass(frozen=True)
class Sizes:
    levels: tuple[int, ...]
    probes: int
    # Blocks each server's probes at a level come in, the servers taking turns.
    rounds: int = 1


# A p99 from 1,200 samples (the 12th largest), in four blocks a server.
FULL = Sizes(levels=(1, 100, 500), probes=1200, rounds=4)
QUICK = Sizes(levels=(1, 100), probes=30)  # within the two minutes of --quick


def probers(n: int) -> int:
    return max(1, min(10, n // 50))


async def probe(target: Target, n: int, probes: int, *, loop: bool,
                beside: Target | None = None) -> dict[str, Any]:
    """``probes`` streams, each to its first delta, while ``n`` streams are open in all;
    with ``beside``, each prober's probes take turns with as many to ``beside``."""
    workers = probers(n)
    background = Background(target, loop=loop)
    # Probed once every background stream streams: not while the burst of their
    # starts (retrieval, a model call each) is still being served.
    await background.grow(n - workers, ready=lambda t: t.first_delta is not None,
                          stagger_s=STAGGER_S)
    streaming = sum(1 for t in background.traces if t.first_delta is not None)
    traces: list[Trace] = []
    beside_traces: list[Trace] = []
    first_turns: set[str] = set()  # request ids

    def first_delta(trace: Trace) -> bool:
        return trace.first_delta is not None

    async def prober(count: int, seed: int) -> None:
        spread = random.Random(seed)  # seeded: a re-run spaces its probes the same way
        conversation = None
        for i in range(count):
            if i % TURNS == 0:
                conversation = target.conversation(next_stream())
            await asyncio.sleep(spread.uniform(0, PROBE_SPREAD_S))
            trace = await read_stream(target, until=first_delta, conversation=conversation)
            traces.append(trace)
            if i % TURNS == 0:
                first_turns.add(trace.request_id)
            if beside is not None:
                beside_traces.append(await read_stream(beside, until=first_delta))

    share = [probes // workers + (i < probes % workers) for i in range(workers)]
    # The harness's own full collections walk every trace it holds: none while it
    # probes, as timeit does (capacity.py has the pause this kept out).
    gc.collect()
    gc.disable()
    try:
        await asyncio.gather(*(prober(count, seed) for seed, count in enumerate(share)))
    finally:
        gc.enable()
    open_after = background.open_count()
    failed = len(background.failed())
    await background.close()
    return {"traces": traces, "beside_traces": beside_traces, "open_after": open_after,
            "background_failed": failed, "background_streaming": streaming,
            "first_turns": first_turns}


def model_ttft(model: Proc) -> dict[str, float]:
    """The mock's own time to first token of each request it timed, by request id."""
    records = httpx.get(f"{model.url}/mock/timings", timeout=60).json()["timings"]
    return {r["requestId"]: r["firstToken"] - r["received"]
            for r in records if r["requestId"] and r["firstToken"] is not None}


def level(servers: list[tuple[Target, Proc]], n: int, sizes: Sizes, *,
          model: Proc | None, loop: bool = False) -> list[dict[str, Any]]:
    """One concurrency level: added (or, without a model, absolute) time to first delta
    of each server, the servers taking turns in ``sizes.rounds`` blocks, so that each is
    measured in the same minutes of a machine whose speed drifts; with a model, also the
    harness's own share, measured beside each server's probes (``beside``)."""
    if model is not None:
        httpx.delete(f"{model.url}/mock/timings")
    beside = Target.model(model.url) if model is not None else None
    blocks = [sizes.probes // sizes.rounds + (i < sizes.probes % sizes.rounds)
              for i in range(sizes.rounds)]
    runs: dict[str, list[dict[str, Any]]] = {target.name: [] for target, _ in servers}
    busy = {target.name: [0.0, 0.0] for target, _ in servers}  # CPU seconds, wall seconds
    for i, block in enumerate(blocks):
        # A, B, B, A: neither server always goes first after the other's load.
        for target, server in (servers if i % 2 == 0 else servers[::-1]):
            cpu, wall = server.cpu_seconds(), time.monotonic()
            runs[target.name].append(
                asyncio.run(probe(target, n, block, loop=loop, beside=beside)))
            busy[target.name][0] += server.cpu_seconds() - cpu
            busy[target.name][1] += time.monotonic() - wall
    own = model_ttft(model) if model is not None else {}
    out: list[dict[str, Any]] = []
    for target, server in servers:
        done = runs[target.name]
        shared = {"streams": n,
                  "background_streaming": min(r["background_streaming"] for r in done),
                  "background_open_after": min(r["open_after"] for r in done),
                  "background_failed": sum(r["background_failed"] for r in done)}
        traces: list[Trace] = [t for r in done for t in r["traces"]]
        firsts = set().union(*(r["first_turns"] for r in done))
        cpu, wall = busy[target.name]
        out.append({"target": target.name, **_added(traces, own, model is not None),
                    "first_turns_ms": _added([t for t in traces if t.request_id in firsts],
                                             own, model is not None)["ms"],
                    # Before any model call: redaction, context, retrieval, `suggestion`.
                    "suggestion_ms": summary((t.suggestion - t.sent) * 1000 for t in traces
                                             if t.suggestion is not None),
                    **shared, "server_cpu": round(cpu / wall if wall > 0 else 0.0, 3),
                    "server_rss_mb": round(server.rss_bytes() / 2**20, 1)})
        if beside is not None:
            out.append({"target": beside.name, "beside": target.name,
                        **_added([t for r in done for t in r["beside_traces"]], own, True),
                        **shared})
    return out


def _added(traces: list[Trace], own: dict[str, float], against_model: bool
           ) -> dict[str, Any]:
    answered = [t for t in traces if t.ttft is not None]
    if against_model:
        samples = [(t.ttft - own[t.request_id]) * 1000 for t in answered  # type: ignore[operator]
                   if t.request_id in own]
    else:
        samples = [t.ttft * 1000 for t in answered]  # type: ignore[operator]
    return {"probes": len(traces), "answered": len(answered), "matched": len(samples),
            "ms": summary(samples),
            "model_ttft_ms": summary(own[t.request_id] * 1000 for t in answered
                                     if t.request_id in own),
            "samples_ms": [round(v, 3) for v in samples]}


def _beside_panel(workdir: Path, kb: Path, cpus: Cpus, sizes: Sizes,
                  other: Callable[[str], tuple[Target, Proc]]) -> list[dict[str, Any]]:
    """Every level of this tree's panel and of ``other`` (started given the mock
    model's URL), against the mock, the two taking turns; the panel's levels first,
    as the table reads."""
    results: list[dict[str, Any]] = []
    model = start_mock(workdir, cpus.harness, tokens_per_second=TOKENS_PER_SECOND,
                       fault="endless")
    with running(model):
        panel, keys = start_panel(workdir, cpus.server, kb, model_url=model.url,
                                  env=PANEL_ENV)
        with running(panel):
            target, server = other(model.url)
            with running(server):
                servers = [(Target("panel", panel.url, keys), panel), (target, server)]
                for n in sizes.levels:
                    results += level(servers, n, sizes, model=model)
    results.sort(key=lambda r: r.get("beside", r["target"]) != "panel")
    return results


def run(quick: bool, workdir: Path, kb: Path, cpus: Cpus,
        sizes: Sizes | None = None) -> Section:
    """All of item 1: panel (openai generator) and peer against the mock; extractive."""
    sizes = sizes or (QUICK if quick else FULL)

    def peer(model_url: str) -> tuple[Target, Proc]:
        proc = start_peer(workdir, cpus.server, kb, model_url=model_url)
        return Target("peer", proc.url), proc

    results = _beside_panel(workdir, kb, cpus, sizes, peer)
    # The embedded generator at the same pace (50 ms a token); its streams end, so the
    # background ones start again as they finish.
    panel, keys = start_panel(workdir, cpus.server, kb, model_url=None,
                              env={"ASSIST_EXTRACTIVE_TOKEN_DELAY_MS": "50"})
    with running(panel):
        target = Target("extractive", panel.url, keys)
        for n in sizes.levels:
            results += level([(target, panel)], n, sizes, model=None, loop=True)
    return Section("latency", rows(results), {
        "levels": results, "tokens_per_second": TOKENS_PER_SECOND})


def compare(quick: bool, workdir: Path, kb: Path, cpus: Cpus, source: Path, label: str,
            sizes: Sizes | None = None) -> Section:
    """Item 1 for a change: this tree's panel and the panel of ``source`` (another
    checkout, named ``label``) against the mock, taking turns at each level as the panel
    and the peer do, so that both are measured in the same minutes of the machine."""

    def base(model_url: str) -> tuple[Target, Proc]:
        proc, keys = start_panel(workdir, cpus.server, kb, model_url=model_url,
                                 env=PANEL_ENV, name=label, source=source)
        return Target(label, proc.url, keys), proc

    results = _beside_panel(workdir, kb, cpus, sizes or (QUICK if quick else FULL), base)
    return Section("latency", rows(results), {
        "levels": results, "tokens_per_second": TOKENS_PER_SECOND, "against": label})


def rows(results: list[dict[str, Any]]) -> list[Row]:
    """Table rows: the harness's own share at each load (measured beside the panel's
    probes), each server's figure, net of the harness measured beside its own probes,
    and the peer's (or the other panel's) over the panel's (gross, and net of the
    harness)."""
    servers = {(r["target"], r["streams"]): r for r in results if "beside" not in r}
    harness = {(r["beside"], r["streams"]): r for r in results if "beside" in r}
    out: list[Row] = []
    for r in results:
        n, name = r["streams"], r["target"]
        ms = r["ms"]
        note = f"{r['matched']}/{r['probes']} probes"
        if r["background_failed"]:
            note += f", {r['background_failed']} background streams failed"
        if "beside" in r:
            if r["beside"] == "panel":
                out.append(Row("1 latency", f"model called directly: the harness's share of "
                               f"added, {n} streams", "ms", ms["p50"], ms["p99"],
                               note=note + ", taking turns with the panel's; a server's own "
                               "share is its added latency minus this"))
            continue
        mine = harness.get((name, n))
        ratio = None
        compared = name not in ("panel", "extractive")  # the peer, or another panel
        if compared and ("panel", n) in servers and servers[("panel", n)]["ms"]["p99"]:
            panel = servers[("panel", n)]["ms"]
            ratio = _ratio(ms["p99"], panel["p99"])
            panels = harness.get(("panel", n))
            if mine is not None and panels is not None:
                net = _ratio(_net(ms, mine)[1], _net(panel, panels)[1])
                note += ("; net of the harness, p99 " + (f"{net}x the panel's" if net else
                         "not measurable (the harness's own tail swamps a server's)"))
        elif name == "panel" and mine is not None:
            p50, p99 = _net(ms, mine)
            note += f"; net of the harness {_fmt(p50)} / {_fmt(p99)} ms"
        firsts = r.get("first_turns_ms", {})
        if name != "peer" and firsts.get("p50") is not None:  # the peer has no sessions
            note += (f"; first turns of their conversations (1 in {TURNS}) "
                     f"{firsts['p50']:.2f} / {firsts['p99']:.2f} ms")
        what = "time to first delta" if name == "extractive" else "added latency"
        out.append(Row("1 latency", f"{name}: {what}, {n} streams", "ms", ms["p50"], ms["p99"],
                       ratio=ratio, note=note))
        if name == "panel" and r.get("suggestion_ms", {}).get("p50") is not None:
            before = r["suggestion_ms"]
            out.append(Row("1 latency", f"panel: request -> suggestion event, {n} streams", "ms",
                           before["p50"], before["p99"],
                           note="absolute; the pre-model path: context, retrieval, sources"))
    return out


def _net(ms: dict[str, Any], harness: dict[str, Any]) -> tuple[float | None, float | None]:
    """A server's p50 and p99 less the harness's own at the same percentiles (an
    estimate: the percentiles of a difference are not the differences of percentiles).

    None where the harness's own is the larger (the figure is the harness's, not the
    server's), and a p99 None too where its difference comes out below the p50's: no
    distribution has a tail under its median, so the harness's tail (its core
    saturated) swamped the server's. A run at 500 streams had the harness at 11.30 ms
    and the panel at 11.32, and gave a "net" p99 of 0.02 ms and a peer 1,444x it."""
    p50, p99 = _less(ms["p50"], harness["ms"]["p50"]), _less(ms["p99"], harness["ms"]["p99"])
    if p50 is not None and p99 is not None and p99 < p50:
        p99 = None
    return p50, p99


def _less(value: float | None, own: float | None) -> float | None:
    if value is None or own is None or value <= own:
        return None
    return value - own


def _fmt(value: float | None) -> str:
    return "harness-bound" if value is None else f"{value:.2f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None
