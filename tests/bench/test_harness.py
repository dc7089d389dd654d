"""The benchmark harness itself: statistics, the table, the docs update, the profile summary,
and each measurement run for real at a tiny size (real processes on loopback).

No figure is checked against a speed (that is the benchmarks' job, not the tests'):
only that every measurement measured what it says and that impossible values
(negative shares of a shared clock, fallbacks before the stall timeout) never appear.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bench import capacity, hostile, latency, scale, stall, throughput
from bench.__main__ import _replace_block, checkout, table
from bench.background import Background
from bench.load import Target, Trace, new_request_id, note_event
from bench.procs import Cpus, PanelKeys, running, start_mock, start_panel
from bench.report import Row
from bench.stats import percentile, summary
from server.schemas import StreamRequest
from tests.web.rawhttp import read_request, server

ROOT = Path(__file__).resolve().parents[2]


def test_percentiles_interpolate_between_samples() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([4.0, 1.0, 3.0, 2.0], 100) == 4.0
    assert percentile(list(map(float, range(101))), 99) == 99.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    assert summary([2.0, 1.0])["n"] == 2 and summary([])["p50"] is None


def test_gaps_are_counted_inside_the_window_and_per_stream() -> None:
    one = Trace("a", 0.0, deltas=[1.0, 1.1, 1.3, 5.0])
    two = Trace("b", 0.0, deltas=[1.05, 1.25])
    gaps = sorted(round(g) for g in capacity.gaps_ms([one, two], 1.0, 2.0))
    # 5.0 is outside; nothing is measured across two streams.
    assert gaps == [100, 200, 200]


def test_a_streams_token_rate_counts_from_its_first_delta_in_the_window() -> None:
    # 2 tokens every 100 ms from 1.0: 20 a second, whatever the window's edges cut.
    one = Trace("a", 0.0, deltas=[0.95, 1.02, 1.12, 1.22, 1.32],
                words=[2, 2, 2, 2, 2])
    # 1 token every 100 ms: 10 a second; one delta alone in the window counts nothing.
    two = Trace("b", 0.0, deltas=[1.05, 1.15, 1.25], words=[1, 1, 1])
    three = Trace("c", 0.0, deltas=[1.3, 9.0], words=[5, 5])
    rate = capacity.stream_rate([one, two, three], 1.0, 1.3)
    assert rate == pytest.approx((4 + 2) / (0.2 + 0.2))
    assert capacity.stream_rate([three], 1.0, 1.3) is None


def test_a_step_short_of_its_tokens_says_how_short_and_the_models_cpu() -> None:
    step = {"streams": 1200, "held": False, "tokens_got": 0.62, "model_cpu": 0.99,
            "server_lag_max_ms": 25.0, "harness_lag_max_ms": 80.0}
    assert capacity._stopped(step) == (
        "not held at 1200 (the client got 62% of the tokens asked, the mock model at 0.99 "
        "of the harness's core; server's loop late <= 25 ms, harness's loop 80.0 ms late "
        "at most)")
    assert "tokens asked" not in capacity._stopped({**step, "tokens_got": 0.95})


def test_the_streams_a_step_lost_are_counted_by_how_they_ended() -> None:
    def trace(**fields: Any) -> Trace:
        return Trace("r", 0.0, **fields)

    traces = [
        trace(status=200),  # open
        trace(status=200, done={"outcome": "fallback", "stop_reason": "model_error"}),
        trace(status=200, done={"outcome": "fallback", "stop_reason": "model_error"}),
        trace(status=200, done={"outcome": "completed", "stop_reason": "stop"}),
        trace(status=200, error="ReadError"),
        trace(status=503, error="HTTP 503"), trace(), trace(status=200, closed=1.0)]
    assert capacity.ended(traces) == {
        "fallback/model_error": 2, "completed/stop": 1, "error": 1, "status 503": 1,
        "unanswered": 1, "closed": 1}
    step = {"streams": 1000, "ended": {"fallback/model_error": 2, "status 503": 1},
            "harness_lag_max_ms": 80.0}
    assert capacity._stopped(step) == (
        "not held at 1000 (3 streams ended: 2 fallback/model_error, 1 status 503; "
        "harness's loop 80.0 ms late at most)")


def test_profile_summary_names_functions_and_drops_the_bootstrap(tmp_path: Path) -> None:
    boot = "_run_module_as_main (<frozen runpy>:198);Command.main (click/core.py:1)"
    collapsed = tmp_path / "profile.txt"
    collapsed.write_text(
        f"{boot};Runner.run (asyncio/runners.py:118) 50\n"
        f"{boot};Runner.run (asyncio/runners.py:118);relay (server/pipeline/stream.py:10) 30\n"
        "_pump (server/pipeline/stream.py:20);stream (generators/openai_chat.py:7) 20\n")
    top = throughput.top_functions(collapsed)
    assert top["samples"] == 100
    assert top["own"][0] == ("Runner.run (asyncio/runners.py)", 50.0)
    assert ("relay (pipeline/stream.py)", 30.0) in top["own"]
    inside = dict(top["inside"])
    assert inside["_pump (pipeline/stream.py)"] == 20.0
    assert not any("click" in name or "runpy" in name for name in inside)


def test_the_table_prints_percentiles_values_and_ratios() -> None:
    text = table([Row("2 capacity", "peer: open streams", "streams", value=1000, ratio=0.5),
                  Row("1 latency", "panel: added", "ms", 9.034, 42.8),
                  Row("5 page", "frames", "ms", 16.7, 16.7, tail="p95")])
    lines = text.splitlines()
    assert lines[2].startswith("| 1 latency | panel: added | 9.03 ms | 42.8 ms |")
    assert "1,000 streams | 0.50x" in lines[3]
    assert "16.7 ms (p95)" in lines[4]


def test_the_docs_blocks_are_replaced_and_a_missing_one_is_an_error() -> None:
    text = "a\n<!-- bench:table -->\nold\n<!-- /bench:table -->\nb"
    assert _replace_block(text, "table", "new") == (
        "a\n<!-- bench:table -->\nnew\n<!-- /bench:table -->\nb")
    with pytest.raises(SystemExit):
        _replace_block(text, "machine", "x")
    doc = (ROOT / "docs" / "performance.md").read_text()
    for name in ("table", "machine"):  # what a full run rewrites is there to rewrite
        assert f"<!-- bench:{name} -->" in doc and f"<!-- /bench:{name} -->" in doc


def test_the_command_refuses_an_unknown_section() -> None:
    result = subprocess.run([sys.executable, "-m", "bench", "--only", "nonsense"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "unknown section(s) nonsense" in result.stderr


def test_against_compares_latency_alone() -> None:
    result = subprocess.run([sys.executable, "-m", "bench", "--only", "stall", "--against",
                             "HEAD"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "--against compares latency alone" in result.stderr


def test_a_revision_git_cannot_give_is_refused_with_gits_reason(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"--against no-such-rev: .*no-such-rev"):
        checkout("no-such-rev", tmp_path / "against")
    assert not (tmp_path / "against").exists()


def _as_the_panel_keeps(request_id: str) -> str | None:
    body = {"conversationId": "5b1c2a3e-0f4d-4c6b-8a9e-1d2c3b4a5f60", "trigger": "manual",
            "query": "q", "requestId": request_id}
    return StreamRequest.model_validate(body).request_id


def test_probe_ids_reach_the_model_unmasked_so_every_probe_finds_its_timing() -> None:
    # Seen in CI: a random hex id held a Luhn-valid run of 16 digits, the panel masked it
    # before sending it upstream, and that probe matched no record of the mock model.
    assert _as_the_panel_keeps("bench-4539578763621486") == "bench-" + "#" * 16
    ids = {new_request_id("bench") for _ in range(2000)}
    assert len(ids) == 2000
    assert all(_as_the_panel_keeps(i) == i for i in ids)


@pytest.fixture
def cpus() -> Cpus:
    return Cpus.split()


def test_added_latency_is_measured_against_the_model_own_time(
        tmp_path: Path, sample_kb_path: Path, cpus: Cpus) -> None:
    # Two rounds: the panel and the peer take turns, two probes a block.
    sizes = latency.Sizes(levels=(1, 3), probes=4, rounds=2)
    section = latency.run(True, tmp_path, sample_kb_path, cpus, sizes)
    levels = section.data["levels"]
    # The harness's own share is measured beside each server's probes, at each load.
    assert [(r["target"], r.get("beside"), r["streams"]) for r in levels] == [
        ("panel", None, 1), ("model-direct", "panel", 1),
        ("panel", None, 3), ("model-direct", "panel", 3),
        ("peer", None, 1), ("model-direct", "peer", 1),
        ("peer", None, 3), ("model-direct", "peer", 3),
        ("extractive", None, 1), ("extractive", None, 3)]
    for level in levels:
        # Every probe was answered and, against the model, matched to its timing record.
        assert level["answered"] == level["matched"] == 4, level
        assert level["background_failed"] == 0
        # Probing began once every background stream streamed (n minus the prober),
        # the model's own streams as well (its unnamed chunks read as deltas).
        assert level["background_streaming"] == level["streams"] - 1
        # One clock on one host: the client's interval contains the model's, so the
        # server's (or the harness's) share can never be negative.
        assert all(v > 0 for v in level["samples_ms"]), level
    # Per level: the harness's share, the panel's added latency (with its figure net of
    # the harness) and request -> suggestion, the peer's, the extractive generator's.
    assert len(section.rows) == 10
    assert [r.case for r in section.rows if r.case.startswith("model")] == [
        "model called directly: the harness's share of added, 1 streams",
        "model called directly: the harness's share of added, 3 streams"]
    before_model = [r for r in section.rows if "suggestion event" in r.case]
    assert [r.case for r in before_model] == [
        "panel: request -> suggestion event, 1 streams",
        "panel: request -> suggestion event, 3 streams"]
    for level in levels:
        if level["target"] == "panel":
            assert level["suggestion_ms"]["n"] == 4
    panel_rows = [r for r in section.rows if r.case.startswith("panel: added")]
    assert all("net of the harness" in r.note for r in panel_rows)
    peer_rows = [r for r in section.rows if r.case.startswith("peer")]
    assert all(r.ratio is not None and "net of the harness" in r.note for r in peer_rows)


def test_a_panel_from_another_checkout_runs_that_checkouts_code(
        tmp_path: Path, sample_kb_path: Path, cpus: Cpus) -> None:
    source = checkout("HEAD", tmp_path / "against")
    # Marked, so that its code is told from this tree's.
    init = source / "server" / "__init__.py"
    init.write_text(init.read_text() + "\nprint('the checkout runs', flush=True)\n")
    panel, _ = start_panel(tmp_path, cpus.server, sample_kb_path, model_url=None,
                           name="other", source=source)
    with running(panel):
        assert Path(f"/proc/{panel.pid}/cwd").resolve() == source.resolve()
    assert "the checkout runs" in (tmp_path / "other.log").read_text()


def test_a_change_is_measured_against_another_panel_taking_turns(
        tmp_path: Path, sample_kb_path: Path, cpus: Cpus) -> None:
    source = checkout("HEAD", tmp_path / "against")
    sizes = latency.Sizes(levels=(1,), probes=4, rounds=2)
    section = latency.compare(True, tmp_path, sample_kb_path, cpus, source, "panel@HEAD",
                              sizes)
    levels = section.data["levels"]
    assert [(r["target"], r.get("beside")) for r in levels] == [
        ("panel", None), ("model-direct", "panel"),
        ("panel@HEAD", None), ("model-direct", "panel@HEAD")]
    assert all(level["answered"] == level["matched"] == 4 for level in levels)
    [other] = [r for r in section.rows if r.case.startswith("panel@HEAD")]
    assert other.ratio is not None and "net of the harness" in other.note


def _level(target: str, n: int, p50: float, p99: float, beside: str | None = None
           ) -> dict[str, object]:
    level: dict[str, object] = {"target": target, "streams": n, "probes": 10, "matched": 10,
                                "background_failed": 0, "ms": {"p50": p50, "p99": p99}}
    if beside is not None:
        level["beside"] = beside
    return level


def test_probers_do_not_run_in_lockstep(tmp_path: Path, cpus: Cpus,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: every probe lasts the model's time to its first token, so probers
    # started together stayed together, and at 100 streams most probes reached the
    # server within a millisecond or two of the other prober's.
    monkeypatch.setattr(latency, "probers", lambda n: 2)
    model = start_mock(tmp_path, cpus.harness, tokens_per_second=latency.TOKENS_PER_SECOND,
                       fault="endless")
    with running(model):
        result = asyncio.run(latency.probe(Target.model(model.url), 2, 40, loop=False))
    sent = sorted(trace.sent for trace in result["traces"])
    assert len(sent) == 40

    def met(i: int) -> bool:
        """Whether another probe was sent within 2 ms of probe ``i``."""
        return any(abs(sent[j] - sent[i]) < 0.002 for j in (i - 1, i + 1) if 0 <= j < 40)

    # In lockstep every probe has such a neighbour; spread at random, few do.
    assert sum(map(met, range(40))) < 20


def test_net_figures_subtract_the_harness_measured_beside_each_server() -> None:
    rows = latency.rows([
        _level("panel", 1, 4.0, 5.0), _level("model-direct", 1, 2.0, 3.0, "panel"),
        _level("panel", 500, 8.0, 50.0), _level("model-direct", 500, 5.0, 60.0, "panel"),
        _level("peer", 1, 6.0, 9.0), _level("model-direct", 1, 2.5, 4.0, "peer"),
        _level("peer", 500, 40.0, 120.0), _level("model-direct", 500, 5.0, 60.0, "peer")])
    notes = {r.case: r.note for r in rows}
    assert notes["panel: added latency, 1 streams"].endswith("net of the harness 2.00 / 2.00 ms")
    # The peer net of its own harness (9 - 4), over the panel net of the panel's (5 - 3).
    assert notes["peer: added latency, 1 streams"].endswith("p99 2.5x the panel's")
    # At 500 the harness alone was slower at p99 than through the panel: no net p99.
    assert notes["panel: added latency, 500 streams"].endswith("3.00 / harness-bound ms")
    assert "not measurable" in notes["peer: added latency, 500 streams"]
    assert [r.ratio for r in rows if r.case.startswith("peer")] == [1.8, 2.4]
    # The harness's rows are those measured beside the panel.
    assert [(r.case, r.p50) for r in rows if r.case.startswith("model")] == [
        ("model called directly: the harness's share of added, 1 streams", 2.0),
        ("model called directly: the harness's share of added, 500 streams", 5.0)]


def test_a_net_tail_below_the_net_median_is_not_given_nor_a_ratio_made_of_it() -> None:
    # A run at 500 streams: the harness's p99 11.30 ms, the panel's 11.32, so a "net"
    # p99 of 0.02 ms under a net p50 of 1.20, and the peer 1,444x the panel's.
    rows = latency.rows([
        _level("panel", 500, 2.07, 11.32), _level("model-direct", 500, 0.87, 11.30, "panel"),
        _level("peer", 500, 6.71, 44.7), _level("model-direct", 500, 1.2, 15.8, "peer")])
    notes = {r.case: r.note for r in rows}
    assert notes["panel: added latency, 500 streams"].endswith(
        "net of the harness 1.20 / harness-bound ms")
    assert "p99 not measurable" in notes["peer: added latency, 500 streams"]
    # Gross figures are still compared.
    assert [r.ratio for r in rows if r.case.startswith("peer")] == [3.95]


def test_the_readers_count_the_model_own_chunks_as_deltas_and_its_done_as_the_end() -> None:
    trace = Trace("direct-x", 0.0)
    role = json.dumps({"choices": [{"delta": {"role": "assistant"}}]})
    text = json.dumps({"choices": [{"delta": {"content": "Refunds take"}}]})
    assert not note_event(trace, "message", role, 1.0)
    assert trace.deltas == []
    assert not note_event(trace, "message", text, 2.0)
    assert (trace.deltas, trace.words, trace.ttft) == ([2.0], [2], 2.0)
    assert note_event(trace, "message", "[DONE]", 3.0)
    assert trace.done == {}


def test_stalls_fall_back_after_the_timeout_and_disconnects_cancel(
        tmp_path: Path, sample_kb_path: Path, cpus: Cpus) -> None:
    sizes = stall.Sizes(stall_timeout_s=0.3, stalls=4, disconnects=3)
    section = stall.run(True, tmp_path, sample_kb_path, cpus, sizes)
    data = section.data
    assert data["fallbacks"] == 4 and data["stop_reasons"] == ["stalled"]
    # The watchdog never fires early: every fallback comes after the model's last
    # byte plus the stall timeout.
    assert len(data["samples_ms"]) == 4
    assert all(v >= 300 for v in data["samples_ms"])
    assert len(data["cancel_samples_ms"]) == 3
    assert all(v > 0 for v in data["cancel_samples_ms"])


def test_hostile_clients_are_let_go_and_the_server_is_back_where_it_started(
        tmp_path: Path, sample_kb_path: Path, cpus: Cpus) -> None:
    # 2 s deadlines, as the quick run has: the peak is read once every connection is
    # open, which a busy machine may delay, but not by 2 s.
    sizes = hostile.Sizes(connections=4, header_timeout_s=2, body_timeout_s=2,
                          send_timeout_s=2, settle_s=30)
    section = hostile.run(True, tmp_path, sample_kb_path, cpus, sizes)
    cases = section.data["cases"]
    assert list(cases) == ["slow headers", "slow body", "never read",
                           "never read, hostile model", "largest transcripts"]
    for name, case in cases.items():
        # Each snapshot also asks /metrics on a connection of its own, which the server
        # may not have closed yet (CLOSE_WAIT) when the next one counts: socket counts
        # are good to one; ESTABLISHED connections are exact.
        assert case["released_s"] is not None, name
        assert case["after"]["socket_fds"] <= case["before"]["socket_fds"] + 1, name
        established = [case[at]["tcp"]["established"] for at in ("before", "peak", "after")]
        if name != "largest transcripts":  # those go through one pooled client
            assert established[1] >= min(established[0], established[2]) + 4, (name, established)
        assert case["log"]["tracebacks"] == 0, name
        assert case["healthz_ms"]["n"] > 0, name
    # Each slow client was let go by the server with its 408, before the harness's own
    # limit. (How long each was held is the benchmark's figure, not checked: the server
    # times its deadline on its loop's clock, which may lag the harness's by a busy
    # moment of its loop.)
    assert cases["slow headers"]["answers"] == {"408 header_timeout": 4}
    assert cases["slow body"]["answers"] == {"408 body_timeout": 4}
    assert cases["never read"]["outcomes"] == {"completed/stop": 4}
    assert cases["never read, hostile model"]["log"]["send_timeout_lines"] == 4
    assert sum(cases["largest transcripts"]["outcomes"].values()) == 4
    assert cases["largest transcripts"]["held_s"]["n"] == 4
    assert len(section.rows) == 5


def test_a_step_reads_the_servers_loop_lateness_from_its_histogram() -> None:
    inf = float("inf")
    before = {0.001: 10.0, 0.1: 10.0, 0.25: 10.0, 0.5: 10.0, inf: 10.0}
    # 5 samples this step: 3 within 1 ms, one within 100 ms, one of 250-500 ms.
    after = {0.001: 13.0, 0.1: 14.0, 0.25: 14.0, 0.5: 15.0, inf: 15.0}
    figures = capacity.lag_figures(before, after, [0.002, 0.0305])
    assert figures == {"server_lag_max_ms": 500.0, "server_lag_over_window": 1,
                       "harness_lag_max_ms": 30.5}
    # Past the last bound; and the peer, with no metrics.
    assert capacity.lag_figures(before, {**after, 0.5: 14.0, inf: 15.0}, []
                                )["server_lag_max_ms"] == inf
    assert capacity.lag_figures({}, {}, []) == {
        "server_lag_max_ms": None, "server_lag_over_window": None, "harness_lag_max_ms": 0.0}


def test_capacity_steps_hold_open_streams_and_count_their_memory(
        tmp_path: Path, sample_kb_path: Path, cpus: Cpus) -> None:
    sizes = capacity.Sizes(idle=(4,), streaming=(4,), hold_s=0.5)
    section = capacity.run(True, tmp_path, sample_kb_path, cpus, sizes)
    results = section.data["results"]
    assert [(r["target"], r["mode"]) for r in results] == [
        ("panel", "idle"), ("peer", "idle"), ("panel-https", "idle"),
        ("panel-https-http1", "idle"), ("panel", "streaming"), ("peer", "streaming"),
        ("panel-https", "streaming"), ("panel-https-http1", "streaming")]
    for result in results:
        [step] = result["steps"]
        assert step["open"] == 4 and step["failed"] == 0, result
        assert step["rss_mb"] > 0
        # Measured (idle, it may not reach a clock tick, so 0.0 is a figure too).
        assert isinstance(step["model_cpu"], float)
        if result["mode"] == "streaming":
            assert step["gaps"] > 0 and step["relayed_tokens_per_s"] > 0
            assert step["tokens_got"] > 0
        else:
            assert step["gaps"] == 0 and step["tokens_got"] is None
        # The panel's loop lateness comes from its /metrics; the peer has none.
        if result["target"] == "peer":
            assert step["server_lag_max_ms"] is None
        else:
            assert step["server_lag_max_ms"] is not None
            assert step["server_lag_over_window"] is not None
        assert isinstance(step["harness_lag_max_ms"], float)
    # With the model at https:// offering HTTP/2, the default settings take it, and the 4
    # model requests share one connection; over HTTP/1.1, TLS or not, a connection each.
    # (Counted as connections to the model's port: the open-file count also moved with
    # the SQLite files of a search thread the loaded machine had started, 30 against 28.)
    held = {r["target"]: r["steps"][0]["server_model_connections"] for r in results
            if r["mode"] == "idle"}
    assert held == {"panel": 4, "peer": 4, "panel-https": 1, "panel-https-http1": 4}


@pytest.mark.skipif(not os.access("/proc/self/mem", os.R_OK), reason="no /proc here")
def test_throughput_steps_relay_tokens_and_profile_the_panel(
        tmp_path: Path, sample_kb_path: Path, cpus: Cpus) -> None:
    sizes = throughput.Sizes(rates=(10,), hold_s=1)
    section = throughput.run(True, tmp_path, sample_kb_path, cpus, tmp_path, sizes)
    [step] = section.data["steps"]
    assert step["open"] == throughput.STREAMS, step["ended"]
    assert step["relayed_tokens_per_s"] > 0
    # The same with the model's streams over HTTP/2 (h2c), and with the model at
    # https:// over HTTP/1.1, and over what the default settings agree with it.
    for key in ("http2_steps", "https_http1_steps", "https_steps"):
        [other] = section.data[key]
        assert other["open"] == throughput.STREAMS, (key, other["ended"])
        assert other["relayed_tokens_per_s"] > 0
    for row, (_, _, what, _, _) in zip(section.rows[-3:], throughput.OTHERS, strict=True):
        assert row.case.startswith(f"panel, {what}: tokens/s relayed"), row.case
    # Agreed to HTTP/2, the worker counts one open file a stream (its warnings say so).
    assert "1 a stream" in (tmp_path / "panel-https.log").read_text()
    assert "1 a stream" not in (tmp_path / "panel-https-http1.log").read_text()
    if step["held"]:  # the profile is kept for a step that held
        profile = section.data["profile"]
        assert profile["samples"] > 0 and profile["own"]
        assert (tmp_path / profile["file"]).exists()


def test_scale_measures_each_worker_count_direct_and_through_nginx(
        tmp_path: Path, sample_kb_path: Path, cpus: Cpus) -> None:
    # The mock model unpaced: streams of a few milliseconds, many in the short hold.
    sizes = scale.Sizes(workers=(1, 2), concurrency=4, warm_s=0.5, hold_s=2,
                        tokens_per_second=0)
    section = scale.run(True, tmp_path, sample_kb_path, cpus, sizes)
    results = section.data["results"]
    assert [(r["path"], r["workers"]) for r in results] == [
        ("direct", 1), ("nginx", 1), ("direct", 2), ("nginx", 2)]
    for result in results:
        assert result["streams_per_s"] > 0, result
        assert set(result["outcomes"]) == {"done/completed"}, result
        assert result["ttfd_ms"]["n"] > 0 and result["ttfd_ms"]["min"] > 0
        used = result["cores_used"]
        assert used["panel"] > 0 and used["model"] > 0 and used["load"] > 0
        assert result["panel_cpu_ms_per_stream"] > 0
        assert ("nginx" in used) == (result["path"] == "nginx")
        if result["path"] == "nginx":
            assert used["nginx"] > 0
    # Two workers are two processes beside their supervisor, live through the hold.
    assert all(r["panel_processes"] >= 3 for r in results if r["workers"] == 2)
    assert all(r["panel_processes"] == 1 for r in results if r["workers"] == 1)
    assert len(section.rows) == 8
    notes = [row.note for row in section.rows if row.unit == "streams/s"]
    assert "x direct" in notes[1] and "x 1 worker" in notes[2]


def _answering_only(first: int) -> Callable[
        [asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A server that sends an event on its ``first`` streams and never answers the rest."""
    answered = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        await read_request(reader)
        if answered < first:
            answered += 1
            event = b'event: delta\ndata: {"text": "Refunds"}\n\n'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n"
                         + f"{len(event):x}\r\n".encode() + event + b"\r\n")
            await writer.drain()
        await reader.read()  # held until the client goes

    return handler


@pytest.mark.anyio
async def test_a_ramp_goes_on_past_streams_the_server_never_answers() -> None:
    """Regression: a capacity run waited an hour (its client's read timeout) on the
    peer, which out of files had taken connections and never answered them."""
    async with server(_answering_only(2)) as (url, _):
        background = Background(Target("peer", url))
        await background.grow(4, batch=4, start_within_s=0.5)
        assert len(background.tasks) == 4
        assert background.open_count() == 2
        await background.close()


@pytest.mark.anyio
async def test_a_ramp_stops_growing_at_the_first_batch_left_unanswered() -> None:
    """Regression: a capacity run spent 25 minutes in the peer's idle ramp, each batch of
    a step the server had stopped answering waiting the whole minute for its streams."""
    async with server(_answering_only(2)) as (url, _):
        background = Background(Target("peer", url))
        await background.grow(8, batch=2, start_within_s=0.5)
        assert len(background.tasks) == 4  # the third and fourth batches never opened
        assert background.open_count() == 2
        await background.close()


@pytest.mark.anyio
async def test_latency_probes_are_turns_of_conversations_each_with_its_session_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Before, every probe was a conversation of its own, so every probe paid the first
    # check of a session, which a conversation's later requests do not.
    monkeypatch.setattr(latency, "PROBE_SPREAD_S", 0.0)
    seen: list[tuple[str, str]] = []  # (conversation, bearer value) of each request

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = {k.strip().lower(): v.strip() for k, _, v in (
            line.decode().partition(":") for line in head.split(b"\r\n")[1:] if line)}
        body = json.loads(await reader.readexactly(int(lines["content-length"])))
        seen.append((body["conversationId"], lines["authorization"]))
        event = b'event: delta\ndata: {"text": "Refunds"}\n\n'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n"
                     + f"{len(event):x}\r\n".encode() + event + b"\r\n")
        await writer.drain()
        await reader.read()

    keys = PanelKeys("a-secret-for-the-harness-test-only")
    async with server(handler) as (url, _):
        result = await latency.probe(Target("panel", url, keys), 1, 2 * latency.TURNS + 1,
                                     loop=False)
    assert len(seen) == 2 * latency.TURNS + 1
    # Three conversations in turn, each with its one session: TURNS turns of the first,
    # as many of the second, one of the third.
    first, second, third = dict.fromkeys(seen)
    assert seen == [first] * latency.TURNS + [second] * latency.TURNS + [third]
    assert len({first[0], second[0], third[0]}) == len({first[1], second[1], third[1]}) == 3
    firsts = [t.request_id for i, t in enumerate(result["traces"]) if i % latency.TURNS == 0]
    assert result["first_turns"] == set(firsts)
