"""The stream registry: cap, supersede per owner and conversation, shutdown."""

from __future__ import annotations

import pytest

from server.assist.streams import StreamRegistry
from server.errors import OverCapacity, ShuttingDown

CONV = "5f4b1a2e-0c1d-4e2f-9a3b-7c6d5e4f3a2b"


def test_a_newer_automatic_suggestion_supersedes_the_older_one_only() -> None:
    streams = StreamRegistry(10)
    old = streams.open(owner="agent-1", conversation_id=CONV, automatic=True)
    manual = streams.open(owner="agent-1", conversation_id=CONV, automatic=False)
    other_agent = streams.open(owner="agent-2", conversation_id=CONV, automatic=True)
    woken: list[str] = []
    old.bind(lambda: woken.append("old"))
    new = streams.open(owner="agent-1", conversation_id=CONV, automatic=True)
    assert old.reason == "superseded" and woken == ["old"]
    assert manual.reason is None and other_agent.reason is None and new.reason is None
    streams.close(old)  # the old one finishing must not forget the new one
    newest = streams.open(owner="agent-1", conversation_id=CONV, automatic=True)
    assert new.reason == "superseded" and newest.reason is None


def test_the_cap_refuses_with_503_and_frees_slots_on_close() -> None:
    streams = StreamRegistry(2)
    first = streams.open(owner="a", conversation_id=CONV, automatic=False)
    streams.open(owner="b", conversation_id=CONV, automatic=False)
    with pytest.raises(OverCapacity) as caught:
        streams.open(owner="c", conversation_id=CONV, automatic=False)
    assert caught.value.status_code == 503 and "Retry-After" in caught.value.headers
    streams.close(first)
    streams.close(first)  # twice is harmless
    assert streams.active == 1
    streams.open(owner="c", conversation_id=CONV, automatic=False)


def test_shutdown_stops_every_stream_and_refuses_new_ones() -> None:
    streams = StreamRegistry(10)
    controls = [streams.open(owner=str(n), conversation_id=CONV, automatic=n % 2 == 0)
                for n in range(4)]
    assert streams.shutdown() == 4
    assert all(c.reason == "shutdown" for c in controls)
    with pytest.raises(ShuttingDown):
        streams.open(owner="late", conversation_id=CONV, automatic=False)


def test_a_stop_before_the_loop_binds_wakes_it_when_it_binds() -> None:
    streams = StreamRegistry(10)
    control = streams.open(owner="a", conversation_id=CONV, automatic=True)
    control.stop("shutdown")
    control.stop("superseded")  # the first reason wins
    woken: list[bool] = []
    control.bind(lambda: woken.append(True))
    assert woken == [True] and control.reason == "shutdown"
