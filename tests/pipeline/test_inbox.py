"""The relay's inbox and the room the producer may fill ahead of it (virtual clock)."""

from __future__ import annotations

import asyncio

import pytest

from server.pipeline.inbox import Inbox, Room
from tests.clock import anyio_backend  # noqa: F401  (the tests run on a virtual clock)

pytestmark = pytest.mark.anyio


async def test_take_returns_everything_put_so_far_in_order_without_waiting() -> None:
    inbox = Inbox()
    for item in ("a", "b", "c"):
        inbox.put(item)
    loop = asyncio.get_running_loop()
    before = loop.time()
    assert await inbox.take(10) == ["a", "b", "c"]
    assert loop.time() == before and len(inbox) == 0


async def test_take_waits_for_the_first_item_and_no_longer() -> None:
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    loop.call_later(0.25, inbox.put, "late")
    started = loop.time()
    assert await inbox.take(5) == ["late"]
    assert loop.time() - started == pytest.approx(0.25, abs=1e-5)


async def test_take_gives_an_empty_list_when_nothing_comes_in_time() -> None:
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await inbox.take(0.5) == []
    assert loop.time() - started == pytest.approx(0.5, abs=1e-5)
    assert await inbox.take(-1) == []  # a deadline already past: no wait at all
    inbox.put("x")  # nobody waits: kept for the next take
    assert await inbox.take(0) == ["x"]


async def test_a_cancelled_take_leaves_later_items_for_the_next() -> None:
    inbox = Inbox()
    waiting = asyncio.ensure_future(inbox.take(60))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    inbox.put("after")  # no waiter to wake, nothing raised
    assert await inbox.take(0) == ["after"]


async def test_room_holds_the_producer_at_its_item_bound_until_the_consumer_takes() -> None:
    room = Room(items=2, chars=1000)
    await room.take(1)
    await room.take(1)
    third = asyncio.ensure_future(room.take(1))
    await asyncio.sleep(0.1)
    assert not third.done()
    room.give(1)
    await asyncio.wait_for(third, 1)


async def test_room_holds_the_producer_at_its_character_bound_but_lets_one_large_item_by(
        ) -> None:
    room = Room(items=100, chars=10)
    await room.take(50)  # larger than the whole budget: it still goes, alone
    blocked = asyncio.ensure_future(room.take(1))
    await asyncio.sleep(0.1)
    assert not blocked.done()
    room.give(50)
    await asyncio.wait_for(blocked, 1)
    assert room.free_chars == 9 and room.free_items == 99


async def test_an_ordinary_item_in_the_hold_wakes_the_consumer_at_its_end() -> None:
    inbox = Inbox(clock=asyncio.get_running_loop().time)
    loop = asyncio.get_running_loop()
    loop.call_later(0.02, lambda: inbox.put("a", urgent=False))
    loop.call_later(0.05, lambda: inbox.put("b", urgent=False))
    started = loop.time()
    assert await inbox.take(5, hold_s=0.1) == ["a", "b"]
    assert loop.time() - started == pytest.approx(0.1, abs=1e-5)
    assert inbox.last_at == pytest.approx(started + 0.05, abs=1e-5)  # when "b" came


async def test_an_urgent_item_wakes_the_consumer_through_a_hold() -> None:
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    loop.call_later(0.02, lambda: inbox.put("text", urgent=False))
    loop.call_later(0.03, inbox.put, "end")
    started = loop.time()
    assert await inbox.take(5, hold_s=0.1) == ["text", "end"]
    assert loop.time() - started == pytest.approx(0.03, abs=1e-5)


async def test_a_hold_never_outlasts_the_deadline_and_ends_with_its_take() -> None:
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, lambda: inbox.put("a", urgent=False))
    started = loop.time()
    assert await inbox.take(0.04, hold_s=0.1) == ["a"]  # the deadline came first
    assert loop.time() - started == pytest.approx(0.04, abs=1e-5)
    loop.call_later(0.01, lambda: inbox.put("b", urgent=False))
    assert await inbox.take(5) == ["b"]  # no hold now: at once
    assert loop.time() - started == pytest.approx(0.05, abs=1e-5)


async def test_the_producer_waits_while_its_item_is_held_and_goes_on_once_taken() -> None:
    inbox = Inbox(clock=asyncio.get_running_loop().time)
    loop = asyncio.get_running_loop()
    started = loop.time()
    resumed: list[float] = []

    async def producer() -> None:
        await asyncio.sleep(0.02)
        inbox.put("a", urgent=False, waited_s=0.015)  # it had come at 0.005
        await inbox.held()
        resumed.append(loop.time())
        inbox.put("b", urgent=False)
        await inbox.held()  # the consumer does not wait now: nothing is held
        resumed.append(loop.time())

    task = asyncio.create_task(producer())
    assert await inbox.take(5, hold_s=0.1) == ["a"]
    assert inbox.last_at == pytest.approx(started + 0.005, abs=1e-5)
    await task
    # It read on only once its item was taken at the hold's end, then went on at once.
    assert resumed == [pytest.approx(started + 0.1, abs=1e-5)] * 2
    assert await inbox.take(5) == ["b"]


async def test_nothing_held_lets_the_producer_go_on_at_once() -> None:
    inbox = Inbox()
    inbox.put("a", urgent=False)  # the consumer is not waiting: no hold
    loop = asyncio.get_running_loop()
    started = loop.time()
    await inbox.held()
    assert loop.time() == started
    waiting = asyncio.create_task(inbox.take(5))  # no hold_s: an item wakes it at once
    await asyncio.sleep(0)
    assert waiting.done() and waiting.result() == ["a"]
