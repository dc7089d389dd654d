"""The agent's permissions in the mock: topic subscriptions checked against the agent's
role (``agentRole``), with and without ``ignoreErrors``; and ending a conversation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from server.devmode.mocks.genesys import MockGenesysConfig
from tests.devmode.test_mock_genesys import (
    AGENT_ID,
    HEARTBEAT,
    MESSAGING_SCRIPT,
    PANEL_URL,
    TEST_SCRIPT,
    TIMEOUT,
    MockServer,
    assert_platform_error,
    bearer,
    create_channel,
    get_token,
    parse_iso_z,
    permitted,
    run_mock,
    start_conversation,
    subscribe,
    topic_of,
)

DEFAULTS = MockGenesysConfig(public_origin="http://x", panel_url=PANEL_URL)
USER_TOPIC = f"v2.users.{AGENT_ID}.conversations"
TRANSCRIPTION_VIEW = "conversation:transcription:view"
WITHOUT = "agent-without-transcription"

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    directory: Path = tmp_path_factory.mktemp("permission-scripts")
    (directory / "test-call.json").write_text(json.dumps(TEST_SCRIPT), encoding="utf-8")
    (directory / "test-chat.json").write_text(json.dumps(MESSAGING_SCRIPT), encoding="utf-8")
    # So slow that a script started here is still "playing" when a test looks, and its
    # first line never comes: what a test sees is what subscribing or ending did.
    with run_mock(scripts_dir=directory, playback_speed=0.001, heartbeat_s=30) as running:
        yield running


@pytest.fixture
async def client(mock: MockServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=mock.origin, timeout=TIMEOUT) as http:
        yield http
        # Every test starts with the default role.
        await http.put("/mock/settings", json={"agentRole": "agent", "signInUserId": AGENT_ID})


async def set_role(http: httpx.AsyncClient, role: str) -> None:
    response = await http.put("/mock/settings", json={"agentRole": role})
    assert response.status_code == 200, response.text
    assert response.json()["agentRole"] == role


async def subscriptions(http: httpx.AsyncClient, token: str, channel_id: str) -> Any:
    url = f"/api/v2/notifications/channels/{channel_id}/subscriptions"
    response = await http.get(url, headers=bearer(token))
    assert response.status_code == 200
    return response.json()


async def subscribe_with(
    http: httpx.AsyncClient,
    token: str,
    channel_id: str,
    topics: list[str],
    ignore_errors: str,
    method: str = "PUT",
) -> httpx.Response:
    return await http.request(
        method,
        f"/api/v2/notifications/channels/{channel_id}/subscriptions",
        params={"ignoreErrors": ignore_errors},
        headers=bearer(token),
        json=[{"id": topic} for topic in topics],
    )


async def status_of(http: httpx.AsyncClient, conversation_id: str) -> str:
    status: str = (await http.get(f"/mock/conversations/{conversation_id}")).json()["status"]
    return status


def rejected(topic: str) -> dict[str, Any]:
    return {
        "id": topic,
        "state": "Rejected",
        "rejectionReason": "The user lacks the permission(s) this topic needs: "
        + TRANSCRIPTION_VIEW,
        "missingPermissions": [TRANSCRIPTION_VIEW],
    }


async def token_of(http: httpx.AsyncClient, user_id: str) -> str:
    await http.put("/mock/settings", json={"signInUserId": user_id})
    try:
        return await get_token(http)
    finally:
        await http.put("/mock/settings", json={"signInUserId": AGENT_ID})


# The agentRole setting ---------------------------------------------------------------


async def test_agent_role_setting(client: httpx.AsyncClient) -> None:
    settings = (await client.get("/mock/settings")).json()
    assert settings["agentRole"] == "agent"
    changed = await client.put("/mock/settings", json={"agentRole": WITHOUT})
    assert changed.status_code == 200
    assert changed.json() == {**settings, "agentRole": WITHOUT}
    assert (await client.get("/mock/settings")).json()["agentRole"] == WITHOUT


@pytest.mark.parametrize("value", ["admin", "Agent", "", 1, None, ["agent"]])
async def test_a_bad_agent_role_changes_nothing(client: httpx.AsyncClient, value: Any) -> None:
    before = (await client.get("/mock/settings")).json()
    # All or nothing: the valid signInMode of the same body is not applied either.
    response = await client.put("/mock/settings", json={"signInMode": "prompt", "agentRole": value})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_setting"
    assert "agentRole" in response.json()["message"]
    assert (await client.get("/mock/settings")).json() == before


# Subscriptions: a full agent -----------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "POST"])
async def test_a_full_agent_subscribes_to_everything(
    client: httpx.AsyncClient, method: str
) -> None:
    token = await get_token(client)
    channel_id = (await create_channel(client, token))["id"]
    topics = [topic_of(await start_conversation(client)), USER_TOPIC]
    plain = await subscribe(client, token, channel_id, topics, method=method)
    assert plain.status_code == 200 and plain.json() == {"entities": permitted(*topics)}
    for value in ("true", "TRUE", "True"):
        lenient = await subscribe_with(client, token, channel_id, topics, value, method)
        assert lenient.status_code == 200 and lenient.json() == {"entities": permitted(*topics)}
    assert await subscriptions(client, token, channel_id) == {"entities": permitted(*topics)}


# Subscriptions: an agent without conversation:transcription:view -------------------------


@pytest.mark.parametrize("method", ["PUT", "POST"])
@pytest.mark.parametrize("ignore_errors", [None, "false", "FALSE"])
async def test_without_the_permission_the_whole_request_is_refused(
    client: httpx.AsyncClient, method: str, ignore_errors: str | None
) -> None:
    token = await get_token(client)
    channel_id = (await create_channel(client, token))["id"]
    earlier = topic_of(await start_conversation(client))
    assert (await subscribe(client, token, channel_id, [earlier])).status_code == 200
    voice_id = await start_conversation(client)
    await set_role(client, WITHOUT)
    topics = [USER_TOPIC, topic_of(voice_id)]
    if ignore_errors is None:
        response = await subscribe(client, token, channel_id, topics, method=method)
    else:
        response = await subscribe_with(client, token, channel_id, topics, ignore_errors, method)
    assert_platform_error(response, 403, "missing.permissions")
    body = response.json()
    assert topic_of(voice_id) in body["message"] and TRANSCRIPTION_VIEW in body["message"]
    assert body["messageParams"] == {"permissions": TRANSCRIPTION_VIEW, "topic": topic_of(voice_id)}
    # Nothing changed: neither the permitted topic nor the refused one was subscribed,
    # and nothing started playing.
    assert await subscriptions(client, token, channel_id) == {"entities": permitted(earlier)}
    assert await status_of(client, voice_id) == "waiting"


async def test_with_ignore_errors_only_the_permitted_topics_are_subscribed(
    client: httpx.AsyncClient,
) -> None:
    token = await get_token(client)
    channel_id = (await create_channel(client, token))["id"]
    voice_id = await start_conversation(client)
    chat_id = await start_conversation(client, "test-chat")
    other_call = topic_of(await start_conversation(client))
    assert (await subscribe(client, token, channel_id, [other_call])).status_code == 200
    await set_role(client, WITHOUT)

    voice_topic = topic_of(voice_id)
    put = await subscribe_with(client, token, channel_id, [voice_topic, USER_TOPIC], "true")
    assert put.status_code == 200
    assert put.json() == {"entities": [rejected(voice_topic), *permitted(USER_TOPIC)]}
    # PUT replaced the topics with the permitted ones.
    assert await subscriptions(client, token, channel_id) == {"entities": permitted(USER_TOPIC)}
    # The permitted topic started its conversation; the rejected one did not.
    assert await status_of(client, chat_id) == "playing"
    assert await status_of(client, voice_id) == "waiting"

    post = await subscribe_with(client, token, channel_id, [voice_topic], "True", "POST")
    assert post.status_code == 200 and post.json() == {"entities": [rejected(voice_topic)]}
    assert await subscriptions(client, token, channel_id) == {"entities": permitted(USER_TOPIC)}
    assert await status_of(client, voice_id) == "waiting"

    # The role is read at each subscription: given back, the same request is permitted.
    await set_role(client, "agent")
    again = await subscribe_with(client, token, channel_id, [voice_topic], "true", "POST")
    assert again.json() == {"entities": permitted(voice_topic)}
    assert await subscriptions(client, token, channel_id) == {
        "entities": permitted(USER_TOPIC, voice_topic)
    }
    assert await status_of(client, voice_id) == "playing"


async def test_the_role_is_the_home_orgs(client: httpx.AsyncClient) -> None:
    voice_topic = topic_of(await start_conversation(client))
    second = await token_of(client, DEFAULTS.second_agent_user_id)
    other = await token_of(client, DEFAULTS.other_user_id)
    await set_role(client, WITHOUT)
    refused = await subscribe(
        client, second, (await create_channel(client, second))["id"], [voice_topic]
    )
    assert_platform_error(refused, 403, "missing.permissions")
    # The other org's user is no agent of the home org: the setting does not apply.
    allowed = await subscribe(client, other, (await create_channel(client, other))["id"],
                              [voice_topic])
    assert allowed.status_code == 200


async def test_reading_a_conversation_needs_the_communication_permission(
        client: httpx.AsyncClient) -> None:
    """As the platform: GET /api/v2/conversations/{id} needs
    conversation:communication:view, refused with 403 missing.permissions naming it."""
    token = await get_token(client)
    conversation_id = await start_conversation(client)
    url = f"/api/v2/conversations/{conversation_id}"
    assert (await client.get(url, headers=bearer(token))).status_code == 200
    await set_role(client, "agent-without-communication")
    refused = await client.get(url, headers=bearer(token))
    assert_platform_error(refused, 403, "missing.permissions")
    assert refused.json()["messageParams"] == {"permissions": "conversation:communication:view"}


@pytest.mark.parametrize("value", ["yes", "1", "", "ture"])
async def test_a_bad_ignore_errors_is_400(client: httpx.AsyncClient, value: str) -> None:
    token = await get_token(client)
    channel_id = (await create_channel(client, token))["id"]
    for method in ("PUT", "POST"):
        response = await subscribe_with(client, token, channel_id, [USER_TOPIC], value, method)
        assert_platform_error(response, 400, "bad.request")
    assert await subscriptions(client, token, channel_id) == {"entities": []}


# Ending a conversation ---------------------------------------------------------------------


async def frames_until_pong(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every event frame queued before a ping's pong: what was published until now."""
    await ws.send(json.dumps({"message": "ping"}))
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT):
        while True:
            frame = json.loads(await ws.recv())
            if frame == {"topicName": "channel.metadata", "eventBody": {"message": "pong"}}:
                return frames
            if frame != HEARTBEAT:
                frames.append(frame)


async def test_ending_a_call(client: httpx.AsyncClient, mock: MockServer) -> None:
    token = await get_token(client)
    voice_id = await start_conversation(client)
    channel = await create_channel(client, token)
    port = urlsplit(mock.origin).port
    feed_url = f"ws://127.0.0.1:{port}/mock/conversations/{voice_id}/feed"
    async with connect(channel["connectUri"]) as ws, connect(feed_url) as feed:
        assert json.loads(await feed.recv()) == {"type": "status", "status": "waiting"}
        await subscribe(client, token, channel["id"], [topic_of(voice_id), USER_TOPIC])
        assert await status_of(client, voice_id) == "playing"
        await frames_until_pong(ws)  # whatever subscribing started is out of the way

        ended = await client.post(f"/mock/conversations/{voice_id}/end")
        assert ended.status_code == 200
        body = ended.json()
        assert body["conversationId"] == voice_id and body["status"] == "disconnected"
        end_time = body["endTime"]
        parse_iso_z(end_time)

        frames = await frames_until_pong(ws)
        by_topic = {f["topicName"]: f["eventBody"] for f in frames}
        assert len(frames) == 2 and set(by_topic) == {USER_TOPIC, topic_of(voice_id)}
        event = by_topic[USER_TOPIC]
        assert event["id"] == voice_id
        assert [p["purpose"] for p in event["participants"]] == ["customer", "agent"]
        for participant, disconnect_type in zip(
            event["participants"], ("peer", "client"), strict=True
        ):
            assert participant["endTime"] == end_time
            (call,) = participant["calls"]
            assert call["state"] == "disconnected" and call["disconnectedTime"] == end_time
            assert call["disconnectType"] == disconnect_type
        transcription = by_topic[topic_of(voice_id)]
        assert transcription["status"]["status"] == "SESSION_ENDED"
        assert transcription["conversationId"] == voice_id and transcription["transcripts"] == []

        async with asyncio.timeout(TIMEOUT):
            while json.loads(await feed.recv()) != {"type": "status", "status": "disconnected"}:
                pass

        # Ending it again answers the same and publishes nothing.
        again = await client.post(f"/mock/conversations/{voice_id}/end")
        assert again.status_code == 200 and again.json() == body
        assert await frames_until_pong(ws) == []

    assert await status_of(client, voice_id) == "disconnected"
    rest = (await client.get(f"/api/v2/conversations/{voice_id}", headers=bearer(token))).json()
    assert rest["endTime"] == end_time
    for participant in rest["participants"]:
        assert participant["endTime"] == end_time
        assert participant["calls"][0]["state"] == "disconnected"
    replay = await client.post(f"/mock/conversations/{voice_id}/play")
    assert replay.status_code == 409 and replay.json()["error"] == "conversation_ended"


async def test_ending_a_messaging_conversation(client: httpx.AsyncClient) -> None:
    token = await get_token(client)
    chat_id = await start_conversation(client, "test-chat")
    channel = await create_channel(client, token)
    async with connect(channel["connectUri"]) as ws:
        await subscribe(client, token, channel["id"], [topic_of(chat_id), USER_TOPIC])
        await frames_until_pong(ws)
        ended = await client.post(f"/mock/conversations/{chat_id}/end")
        assert ended.status_code == 200
        end_time = ended.json()["endTime"]
        # Only the conversation event: messaging has no transcription.
        (frame,) = [f for f in await frames_until_pong(ws) if f["eventBody"]["id"] == chat_id]
    assert frame["topicName"] == USER_TOPIC
    for participant in frame["eventBody"]["participants"]:
        assert participant["endTime"] == end_time
        (communication,) = participant["messages"]
        assert communication["state"] == "disconnected"
        assert communication["disconnectedTime"] == end_time


async def test_ending_a_call_nobody_transcribed(client: httpx.AsyncClient) -> None:
    token = await get_token(client)
    voice_id = await start_conversation(client)
    channel = await create_channel(client, token)
    async with connect(channel["connectUri"]) as ws:
        # The agent follows its conversations only: no transcription session was open.
        await subscribe(client, token, channel["id"], [USER_TOPIC])
        await frames_until_pong(ws)
        assert (await client.post(f"/mock/conversations/{voice_id}/end")).status_code == 200
        frames = [f for f in await frames_until_pong(ws) if f["eventBody"].get("id") == voice_id]
    assert [f["topicName"] for f in frames] == [USER_TOPIC]


async def test_ending_an_unknown_conversation_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/mock/conversations/6a1f3c9e-2b7d-4e5a-8c0f-9d4b2e7a1c36/end")
    assert response.status_code == 404 and response.json()["error"] == "not_found"
