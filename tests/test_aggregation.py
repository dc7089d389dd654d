from __future__ import annotations

from server.aggregation import Aggregator


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
