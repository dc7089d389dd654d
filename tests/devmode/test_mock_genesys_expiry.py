"""Token and channel expiry close channel sockets promptly, by timer (a token's only with
``tokenExpiry`` ``close``; by default its channel falls silent); the /mock/ expiry controls.

Each test waits on the socket's close, never on a sleep: either the injected clock
is moved past the expiry (and the timer, checking often, notices), or a real
lifetime of a few seconds runs out while the timer's longest pause is far longer, so
only its wake-up at the known deadline can close the socket in time. What a silent
socket does not get is read up to a ping's pong: everything published before it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.devmode.mocks.genesys import MockGenesysConfig
from tests.devmode.test_mock_genesys import (
    AGENT_ID,
    HEARTBEAT,
    PANEL_URL,
    TIMEOUT,
    FakeClock,
    assert_platform_error,
    bearer,
    create_channel,
    get_token,
    next_frame,
    run_mock,
    start_conversation,
    subscribe,
)
from tests.devmode.test_mock_genesys_permissions import frames_until_pong

SECOND_ID = MockGenesysConfig(public_origin="http://x", panel_url=PANEL_URL).second_agent_user_id
PONG = {"topicName": "channel.metadata", "eventBody": {"message": "pong"}}
USER_TOPIC = f"v2.users.{AGENT_ID}.conversations"

pytestmark = pytest.mark.anyio

# A real lifetime, long enough for the token, channel, socket and ping to come first on
# a busy machine (with one second they at times did not), short beside the 30 s pause.
REAL_LIFETIME_S = 3


async def close_of(ws: ClientConnection, timeout_s: float = TIMEOUT) -> tuple[int, str]:
    """Read until the server closes the socket: its close code and reason."""
    async with asyncio.timeout(timeout_s):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "closed without a close frame"
            return closed.rcvd.code, closed.rcvd.reason


async def ping(ws: ClientConnection) -> None:
    """A ping answered: the socket is open and registered with its channel."""
    await ws.send(json.dumps({"message": "ping"}))
    assert await next_frame(ws, lambda frame: frame == PONG) == PONG


async def token_for(http: httpx.AsyncClient, user_id: str) -> str:
    changed = await http.put("/mock/settings", json={"signInUserId": user_id})
    assert changed.status_code == 200
    return await get_token(http)


async def test_token_expiry_closes_an_idle_socket() -> None:
    clock = FakeClock()
    with run_mock(clock=clock, token_lifetime_s=300, heartbeat_s=30, expiry_check_s=0.05,
                  token_expiry="close") as mock:
        async with httpx.AsyncClient(base_url=mock.origin, timeout=TIMEOUT) as http:
            token = await get_token(http)
            channel = await create_channel(http, token)
            async with connect(channel["connectUri"]) as ws:
                await ping(ws)
                clock.advance(301)
                # Nothing is published and the heartbeat is 30 s away: only the timer acts.
                assert await close_of(ws) == (1008, "Access token expired")
            fresh = await get_token(http)
            fresh_channel = await create_channel(http, fresh)
            async with connect(fresh_channel["connectUri"]) as ws:
                await ping(ws)
            # A socket opened on the expired token's channel is closed at once.
            async with connect(channel["connectUri"]) as ws:
                assert await close_of(ws) == (1008, "Access token expired")
            listed = await http.get("/api/v2/notifications/channels", headers=bearer(token))
            assert_platform_error(listed, 401, "bad.credentials")


async def end_call(http: httpx.AsyncClient) -> None:
    """Start a call and end it: an event on the agent's conversations topic."""
    conversation_id = await start_conversation(http, "damaged-phone-return")
    assert (await http.post(f"/mock/conversations/{conversation_id}/end")).status_code == 200


async def test_by_default_an_expired_tokens_channel_falls_silent() -> None:
    """As the platform may: the socket stays open, heartbeats and pongs go on, and no
    event reaches it; a socket opened to it is closed; switched to tokenExpiry close,
    the open one is closed too."""
    clock = FakeClock()
    # Heartbeats every 50 ms of real time; the scripts never get to their first line.
    with run_mock(clock=clock, token_lifetime_s=300, heartbeat_s=0.05, expiry_check_s=0.05,
                  playback_speed=0.001) as mock:
        async with httpx.AsyncClient(base_url=mock.origin, timeout=TIMEOUT) as http:
            assert (await http.get("/mock/settings")).json()["tokenExpiry"] == "silent"
            token = await get_token(http)
            channel = await create_channel(http, token)
            async with connect(channel["connectUri"]) as ws:
                assert (await subscribe(http, token, channel["id"], [USER_TOPIC])).is_success
                await end_call(http)
                assert [f["topicName"] for f in await frames_until_pong(ws)] == [USER_TOPIC]
                clock.advance(301)
                await end_call(http)
                assert await frames_until_pong(ws) == []  # open, answering, and silent
                assert await next_frame(ws, lambda frame: frame == HEARTBEAT) == HEARTBEAT
                async with connect(channel["connectUri"]) as late:
                    assert await close_of(late) == (1008, "Access token expired")
                closing = await http.put("/mock/settings", json={"tokenExpiry": "close"})
                assert closing.status_code == 200
                assert await close_of(ws) == (1008, "Access token expired")


async def test_channel_expiry_closes_its_sockets_and_removes_it() -> None:
    clock = FakeClock()
    with run_mock(clock=clock, channel_lifetime_s=600, heartbeat_s=30, expiry_check_s=0.05) as mock:
        async with httpx.AsyncClient(base_url=mock.origin, timeout=TIMEOUT) as http:
            token = await get_token(http)
            channel = await create_channel(http, token)
            async with (
                connect(channel["connectUri"]) as first,
                connect(channel["connectUri"]) as second,
            ):
                await ping(first)
                await ping(second)
                clock.advance(601)
                assert await close_of(first) == (1000, "Channel expired")
                assert await close_of(second) == (1000, "Channel expired")
            gone = await http.get(
                f"/api/v2/notifications/channels/{channel['id']}/subscriptions",
                headers=bearer(token),
            )
            assert_platform_error(gone, 404, "not.found")
            listed = await http.get("/api/v2/notifications/channels", headers=bearer(token))
            assert listed.json() == {"entities": []}


@pytest.mark.parametrize(
    ("lifetimes", "expected"),
    [
        ({"token_lifetime_s": REAL_LIFETIME_S, "token_expiry": "close"},
         (1008, "Access token expired")),
        ({"channel_lifetime_s": REAL_LIFETIME_S}, (1000, "Channel expired")),
    ],
    ids=["token", "channel"],
)
async def test_real_expiry_closes_at_the_deadline(
    lifetimes: dict[str, Any], expected: tuple[int, str]
) -> None:
    # The timer's longest pause (30 s) is far beyond the test's timeout: the socket
    # closes in time only if the timer wakes at the deadline it knows of.
    with run_mock(heartbeat_s=30, expiry_check_s=30, **lifetimes) as mock:
        async with httpx.AsyncClient(base_url=mock.origin, timeout=TIMEOUT) as http:
            token = await get_token(http)
            channel = await create_channel(http, token)
            async with connect(channel["connectUri"]) as ws:
                await ping(ws)
                assert await close_of(ws, TIMEOUT + REAL_LIFETIME_S) == expected


async def test_expire_tokens_of_one_user_then_of_everyone() -> None:
    with run_mock(heartbeat_s=30, token_expiry="close") as mock:
        async with httpx.AsyncClient(base_url=mock.origin, timeout=TIMEOUT) as http:
            agent = await token_for(http, AGENT_ID)
            second = await token_for(http, SECOND_ID)
            agent_channel = await create_channel(http, agent)
            second_channel = await create_channel(http, second)
            async with (
                connect(agent_channel["connectUri"]) as agent_ws,
                connect(second_channel["connectUri"]) as second_ws,
            ):
                await ping(agent_ws)
                await ping(second_ws)
                expired = await http.post("/mock/tokens/expire", json={"userId": AGENT_ID})
                assert expired.status_code == 200 and expired.json() == {"expired": 1}
                assert await close_of(agent_ws) == (1008, "Access token expired")
                me = await http.get("/api/v2/users/me", headers=bearer(agent))
                assert_platform_error(me, 401, "bad.credentials")
                await ping(second_ws)
                ok = await http.get("/api/v2/users/me", headers=bearer(second))
                assert ok.status_code == 200
                everyone = await http.post("/mock/tokens/expire")
                assert everyone.json() == {"expired": 1}
                assert await close_of(second_ws) == (1008, "Access token expired")
            me = await http.get("/api/v2/users/me", headers=bearer(second))
            assert_platform_error(me, 401, "bad.credentials")


async def test_expire_one_token() -> None:
    with run_mock(heartbeat_s=30) as mock:
        async with httpx.AsyncClient(base_url=mock.origin, timeout=TIMEOUT) as http:
            old, new = await get_token(http), await get_token(http)
            expired = await http.post("/mock/tokens/expire", json={"token": old})
            assert expired.status_code == 200 and expired.json() == {"expired": 1}
            me = await http.get("/api/v2/users/me", headers=bearer(old))
            assert_platform_error(me, 401, "bad.credentials")
            # The same user's other token is still good.
            assert (await http.get("/api/v2/users/me", headers=bearer(new))).status_code == 200
            again = await http.post("/mock/tokens/expire", json={"token": old})
            assert again.json() == {"expired": 0}


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"userId": "nobody"}, 404, "not_found"),
        ({"user": AGENT_ID}, 400, "bad_request"),
        ({"token": 7}, 400, "bad_request"),
        ({"token": "x", "userId": AGENT_ID}, 400, "bad_request"),
        ([AGENT_ID], 400, "bad_request"),
        ("not json", 400, "bad_request"),
    ],
)
async def test_expire_tokens_refuses_bad_bodies(body: Any, status: int, error: str) -> None:
    with run_mock(heartbeat_s=30) as mock:
        async with httpx.AsyncClient(base_url=mock.origin, timeout=TIMEOUT) as http:
            token = await get_token(http)
            content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            response = await http.post("/mock/tokens/expire", content=content)
            assert response.status_code == status
            assert response.json()["error"] == error and response.json()["message"]
            assert (await http.get("/api/v2/users/me", headers=bearer(token))).status_code == 200


async def test_expire_channels_closes_every_socket() -> None:
    with run_mock(heartbeat_s=30) as mock:
        async with httpx.AsyncClient(base_url=mock.origin, timeout=TIMEOUT) as http:
            token = await get_token(http)
            channels = [await create_channel(http, token) for _ in range(2)]
            async with (
                connect(channels[0]["connectUri"]) as first,
                connect(channels[1]["connectUri"]) as second,
            ):
                await ping(first)
                await ping(second)
                expired = await http.post("/mock/channels/expire")
                assert expired.status_code == 200 and expired.json() == {"expired": 2}
                assert await close_of(first) == (1000, "Channel expired")
                assert await close_of(second) == (1000, "Channel expired")
            listed = await http.get("/api/v2/notifications/channels", headers=bearer(token))
            assert listed.json() == {"entities": []}
            # The token is still good: a new channel works.
            fresh = await create_channel(http, token)
            async with connect(fresh["connectUri"]) as ws:
                await ping(ws)
