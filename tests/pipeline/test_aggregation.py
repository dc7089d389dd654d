from __future__ import annotations

import pytest

from server.pipeline.aggregation import Aggregator


def test_first_chunk_goes_out_at_once_then_flushes_per_interval() -> None:
    agg = Aggregator(0.1)
    assert agg.push("Hello", now=0.0) == "Hello"
    assert agg.deadline() is None
    assert agg.push(" wor", now=0.01) is None
    assert agg.push("ld", now=0.05) is None
    assert agg.deadline() == 0.1
    assert agg.flush(now=0.1) == " world"
    assert agg.push("!", now=0.25) == "!"  # past the interval: sent at once


def test_flush_of_empty_buffer_is_none() -> None:
    agg = Aggregator(0.1)
    assert agg.flush(0.0) is None
    agg.push("a", 0.0)
    assert agg.flush(0.01) is None


def test_nothing_is_lost_across_many_pushes() -> None:
    agg = Aggregator(0.05)
    sent = []
    for i in range(100):
        out = agg.push(f"{i},", now=i * 0.01)
        if out:
            sent.append(out)
    rest = agg.flush(1.0)
    assert "".join(sent) + (rest or "") == "".join(f"{i}," for i in range(100))
    assert len(sent) < 30


def test_a_flood_is_sent_in_bounded_deltas_before_the_interval() -> None:
    # Broke: a model flooding the stream made one delta of everything it sent in a
    # window (megabytes), held in memory several times over while the client lagged.
    agg = Aggregator(0.1, max_chars=10)
    assert agg.push("a", 0.0) == "a"
    assert agg.push("bcdef", 0.01) is None
    assert agg.push("ghijk", 0.02) == "bcdefghijk"  # 10 buffered: out before 0.1 s
    assert agg.push("l", 0.03) is None
    assert agg.flush(0.2) == "l"


def test_ready_at_is_when_text_pushed_now_would_go() -> None:
    agg = Aggregator(0.1)
    assert agg.ready_at() is None  # the first text goes at once
    assert agg.push("a", 1.0) == "a"
    assert agg.ready_at() == pytest.approx(1.1)
    assert agg.push("b", 1.05) is None
    assert agg.ready_at() == agg.deadline() == pytest.approx(1.1)
