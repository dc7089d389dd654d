"""Benchmark item 5 (bench/page.py) runs end to end on a small feed: the real dev-mode
stack, Debian's Chromium, frames recorded while the last card streams. No timing
thresholds: the figures are the benchmark's to report, not the test's to judge."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.page import measure

pytestmark = pytest.mark.browser


def test_twenty_cards_one_second_of_streaming(tmp_path: Path) -> None:
    section = measure(cards=20, stream_seconds=1.0, workdir=tmp_path)

    assert section.name == "page"
    frames, mounted = section.rows
    assert frames.unit == "ms" and frames.tail == "p95"
    assert frames.p50 is not None and frames.p_tail is not None
    assert frames.p50 <= frames.p_tail
    data = section.data
    assert data["frame_ms"]["n"] == len(data["frame_deltas_ms"]) > 0
    assert data["cards_total"] == 20
    assert data["aria_setsize"] == 20
    assert mounted.value is not None and 1 <= mounted.value <= data["cards_total"]
    streaming = data["streaming_card"]
    assert streaming["tokens_after"] > streaming["tokens_before"]
    assert streaming["chars_after"] > streaming["chars_before"]
    assert streaming["state_after"] == "generating"
    assert data["page_errors"] == []
    # Every card before the last was answered in full (the last ends when the page closes).
    assert data["audit_outcomes"].get("manual:completed") == data["cards_asked"] - 1
    assert data["chromium"]
