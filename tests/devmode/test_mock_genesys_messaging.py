"""Messaging conversations: playback as user-conversation events, messages by id and in bulk."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from server.devmode.mocks.genesys import MockGenesysConfig
from server.devmode.mocks.genesys.scripts import ScriptLibrary
from tests.devmode.test_mock_genesys import (
    AGENT_ID,
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
    run_mock,
    start_conversation,
    subscribe,
    topic_of,
)

DEFAULTS = MockGenesysConfig(public_origin="http://x", panel_url=PANEL_URL)
USER_TOPIC = f"v2.users.{AGENT_ID}.conversations"

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    directory: Path = tmp_path_factory.mktemp("messaging-scripts")
    (directory / "test-call.json").write_text(json.dumps(TEST_SCRIPT), encoding="utf-8")
    (directory / "test-chat.json").write_text(json.dumps(MESSAGING_SCRIPT), encoding="utf-8")
    with run_mock(scripts_dir=directory, playback_speed=20, heartbeat_s=30) as running:
        yield running


@pytest.fixture
async def client(mock: MockServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=mock.origin, timeout=TIMEOUT) as http:
        yield http


def message_ids(body: dict[str, Any], purpose: str) -> list[str]:
    """The message ids one side's participant lists, in order."""
    (participant,) = [p for p in body["participants"] if p["purpose"] == purpose]
    (communication,) = participant["messages"]
    return [detail["messageId"] for detail in communication["messages"]]


async def events_until(
    ws: ClientConnection, count: int, conversation_id: str
) -> list[dict[str, Any]]:
    """Every frame until the conversation's event listing ``count`` messages arrives."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT):
        while True:
            frame = json.loads(await ws.recv())
            if frame["topicName"] == "channel.metadata":
                continue
            frames.append(frame)
            body = frame["eventBody"]
            if frame["topicName"] == USER_TOPIC and body["id"] == conversation_id:
                listed = len(message_ids(body, "customer")) + len(message_ids(body, "agent"))
                if listed == count:
                    return frames


async def play_chat(http: httpx.AsyncClient, token: str) -> tuple[str, list[dict[str, Any]]]:
    """Start the test chat, subscribe the agent's conversations topic, collect its events."""
    conversation_id = await start_conversation(http, "test-chat")
    channel = await create_channel(http, token)
    async with connect(channel["connectUri"]) as ws:
        # The transcription topic too: it must stay silent for a messaging conversation.
        topics = [topic_of(conversation_id), USER_TOPIC]
        assert (await subscribe(http, token, channel["id"], topics)).status_code == 200
        frames = await events_until(ws, len(MESSAGING_SCRIPT["lines"]), conversation_id)
    return conversation_id, frames


async def test_playback_publishes_the_conversation_after_each_message(
    client: httpx.AsyncClient,
) -> None:
    token = await get_token(client)
    conversation_id, frames = await play_chat(client, token)
    assert {f["topicName"] for f in frames} == {USER_TOPIC}, "nothing on the transcription topic"
    bodies = [f["eventBody"] for f in frames if f["eventBody"]["id"] == conversation_id]
    first, *updates = bodies
    assert message_ids(first, "customer") == [] and message_ids(first, "agent") == []
    assert len(updates) == len(MESSAGING_SCRIPT["lines"])
    lines = MESSAGING_SCRIPT["lines"]
    for index, body in enumerate(updates):
        assert body["id"] == conversation_id
        said = lines[: index + 1]
        customer_count = sum(1 for line in said if line["speaker"] == "customer")
        assert len(message_ids(body, "customer")) == customer_count
        assert len(message_ids(body, "agent")) == len(said) - customer_count
    last = updates[-1]
    customer, agent = last["participants"]
    assert customer["purpose"] == "customer" and customer["name"] == "Chat Customer"
    assert "userId" not in customer
    assert agent["purpose"] == "agent" and agent["userId"] == AGENT_ID
    assert agent["name"] == "Alex Agent"
    for participant, status in ((customer, "received"), (agent, "sent")):
        uuid.UUID(participant["id"])
        assert participant["queueId"] == DEFAULTS.queue_id
        parse_iso_z(participant["connectedTime"])
        (communication,) = participant["messages"]
        assert communication["state"] == "connected" and communication["type"] == "webmessaging"
        assert communication["held"] is False and communication["direction"] == "inbound"
        for detail in communication["messages"]:
            assert re.fullmatch(r"[0-9a-f]{32}", detail["messageId"])
            assert detail["messageStatus"] == status and detail["messageSegmentCount"] == 1
            parse_iso_z(detail["messageTime"])
    # Earlier events list a prefix of the later ones' ids: ids are stable.
    assert message_ids(updates[0], "customer") == message_ids(last, "customer")[:1]


async def test_messages_by_id_and_in_bulk(client: httpx.AsyncClient) -> None:
    token = await get_token(client)
    conversation_id, frames = await play_chat(client, token)
    last = frames[-1]["eventBody"]
    customer_ids = message_ids(last, "customer")
    agent_ids = message_ids(last, "agent")
    base = f"/api/v2/conversations/messages/{conversation_id}/messages"

    normalized_only = {"useNormalizedMessage": "true"}
    first = (await client.get(f"{base}/{customer_ids[0]}", params=normalized_only,
                              headers=bearer(token))).json()
    assert first["id"] == customer_ids[0] and first["conversationId"] == conversation_id
    assert first["direction"] == "inbound" and first["messengerType"] == "webmessaging"
    assert first["status"] == "received"
    assert first["selfUri"] == f"{base}/{customer_ids[0]}"
    parse_iso_z(first["timestamp"])
    normalized = first["normalizedMessage"]
    assert normalized["text"] == MESSAGING_SCRIPT["lines"][0]["text"]
    assert normalized["type"] == "Text" and normalized["direction"] == "Inbound"
    assert normalized["channel"]["platform"] == "WebMessaging"
    assert normalized["channel"]["from"]["nickname"] == "Chat Customer"
    assert first["fromAddress"] == normalized["channel"]["from"]["id"]

    reply = (await client.get(f"{base}/{agent_ids[0]}", params=normalized_only,
                              headers=bearer(token))).json()
    assert reply["direction"] == "outbound" and reply["status"] == "sent"
    assert reply["normalizedMessage"]["direction"] == "Outbound"
    assert reply["normalizedMessage"]["text"] == MESSAGING_SCRIPT["lines"][1]["text"]
    assert reply["fromAddress"] == first["toAddress"] and reply["toAddress"] == first["fromAddress"]

    in_order = [customer_ids[0], agent_ids[0], customer_ids[1]]
    asked = [customer_ids[1], "0" * 32, customer_ids[0], agent_ids[0], customer_ids[1]]
    bulk = await client.post(f"{base}/bulk", headers=bearer(token), json=asked)
    assert bulk.status_code == 200
    entities = bulk.json()["entities"]
    # Asked order, each once; ids the conversation does not have are left out.
    assert [e["id"] for e in entities] == [customer_ids[1], customer_ids[0], agent_ids[0]]
    texts = {e["id"]: e["textBody"] for e in entities}
    assert [texts[i] for i in in_order] == [line["text"] for line in MESSAGING_SCRIPT["lines"]]
    empty = await client.post(f"{base}/bulk", headers=bearer(token), json=[])
    assert empty.json() == {"entities": []}


async def test_message_errors(client: httpx.AsyncClient) -> None:
    token = await get_token(client)
    conversation_id, frames = await play_chat(client, token)
    message_id = message_ids(frames[-1]["eventBody"], "customer")[0]
    base = f"/api/v2/conversations/messages/{conversation_id}/messages"
    elsewhere = f"/api/v2/conversations/messages/{uuid.uuid4()}/messages/{message_id}"
    for path in (f"{base}/{'0' * 32}", elsewhere):
        assert_platform_error(await client.get(path, headers=bearer(token)), 404, "not.found")
    unknown = f"/api/v2/conversations/messages/{uuid.uuid4()}/messages/bulk"
    missing = await client.post(unknown, headers=bearer(token), json=[message_id])
    assert_platform_error(missing, 404, "not.found")
    bad_bodies: tuple[object, ...] = ({"ids": [message_id]}, [1, 2], "x")
    for bad_body in bad_bodies:
        bad = await client.post(f"{base}/bulk", headers=bearer(token), json=bad_body)
        assert_platform_error(bad, 400, "bad.request")
    too_many = await client.post(f"{base}/bulk", headers=bearer(token), json=["a"] * 1001)
    assert_platform_error(too_many, 400, "bad.request")
    at_limit = await client.post(f"{base}/bulk", headers=bearer(token), json=[message_id] * 1000)
    assert at_limit.status_code == 200 and len(at_limit.json()["entities"]) == 1
    for method, path, body in (
        ("GET", f"{base}/{message_id}", None),
        ("POST", f"{base}/bulk", [message_id]),
    ):
        for headers in ({}, bearer("not-a-token")):
            response = await client.request(method, path, headers=headers, json=body)
            assert_platform_error(response, 401, "bad.credentials")
    # Another org's token: the conversation does not exist there.
    await client.put("/mock/settings", json={"signInUserId": DEFAULTS.other_user_id})
    try:
        other = await get_token(client)
    finally:
        await client.put("/mock/settings", json={"signInUserId": AGENT_ID})
    hidden = await client.get(f"{base}/{message_id}", headers=bearer(other))
    assert_platform_error(hidden, 404, "not.found")
    hidden_bulk = await client.post(f"{base}/bulk", headers=bearer(other), json=[message_id])
    assert_platform_error(hidden_bulk, 404, "not.found")
    # The second agent of the org may read it.
    await client.put("/mock/settings", json={"signInUserId": DEFAULTS.second_agent_user_id})
    try:
        second = await get_token(client)
    finally:
        await client.put("/mock/settings", json={"signInUserId": AGENT_ID})
    assert (await client.get(f"{base}/{message_id}", headers=bearer(second))).status_code == 200


async def test_reading_message_text_needs_a_message_permission(
        client: httpx.AsyncClient) -> None:
    """As the platform: a message's text needs conversation:message:view or
    conversation:webmessaging:view (either will do); a role with neither is refused
    with 403 missing.any.permissions naming both, and may still read the conversation."""
    token = await get_token(client)
    conversation_id, frames = await play_chat(client, token)
    message_id = message_ids(frames[-1]["eventBody"], "customer")[0]
    base = f"/api/v2/conversations/messages/{conversation_id}/messages"
    requests: tuple[tuple[str, str, object], ...] = (
        ("GET", f"{base}/{message_id}", None), ("POST", f"{base}/bulk", [message_id]))
    response = await client.put("/mock/settings", json={"agentRole": "agent-without-messages"})
    assert response.status_code == 200, response.text
    try:
        for method, path, body in requests:
            refused = await client.request(method, path, headers=bearer(token), json=body)
            assert_platform_error(refused, 403, "missing.any.permissions")
            assert refused.json()["messageParams"] == {
                "permissions": "conversation:message:view, conversation:webmessaging:view"}
            assert "conversation:webmessaging:view" in refused.json()["message"]
        snapshot = await client.get(f"/api/v2/conversations/{conversation_id}",
                                    headers=bearer(token))
        assert snapshot.status_code == 200
    finally:
        await client.put("/mock/settings", json={"agentRole": "agent"})
    for method, path, body in requests:
        allowed = await client.request(method, path, headers=bearer(token), json=body)
        assert allowed.status_code == 200, allowed.text


async def test_conversation_snapshot_lists_the_messages(client: httpx.AsyncClient) -> None:
    token = await get_token(client)
    conversation_id = await start_conversation(client, "test-chat")
    waiting = await client.get(f"/api/v2/conversations/{conversation_id}", headers=bearer(token))
    for participant in waiting.json()["participants"]:
        (communication,) = participant["messages"]
        assert communication["messages"] == [] and "calls" not in participant
    channel = await create_channel(client, token)
    async with connect(channel["connectUri"]) as ws:
        await subscribe(client, token, channel["id"], [USER_TOPIC])
        frames = await events_until(ws, len(MESSAGING_SCRIPT["lines"]), conversation_id)
    event = frames[-1]["eventBody"]
    response = await client.get(f"/api/v2/conversations/{conversation_id}", headers=bearer(token))
    body = response.json()
    assert [p["purpose"] for p in body["participants"]] == ["customer", "agent"]
    assert body["participants"][1]["userId"] == AGENT_ID
    for purpose in ("customer", "agent"):
        assert message_ids(body, purpose) == message_ids(event, purpose)
    detail = body["participants"][0]["messages"][0]["messages"][0]
    uri = urlsplit(detail["messageURI"])
    assert (
        uri.path
        == f"/api/v2/conversations/messages/{conversation_id}/messages/" + (detail["messageId"])
    )


async def test_transcription_subscription_does_not_start_messaging(
    client: httpx.AsyncClient, mock: MockServer
) -> None:
    token = await get_token(client)
    conversation_id = await start_conversation(client, "test-chat")
    channel = await create_channel(client, token)
    await subscribe(client, token, channel["id"], [topic_of(conversation_id)])
    status = (await client.get(f"/mock/conversations/{conversation_id}")).json()
    assert status["status"] == "waiting" and status["media"] == "message"
    # /play starts it all the same; the desktop feed tells when it is done.
    port = urlsplit(mock.origin).port
    feed_url = f"ws://127.0.0.1:{port}/mock/conversations/{conversation_id}/feed"
    async with connect(feed_url) as feed:
        assert json.loads(await feed.recv()) == {"type": "status", "status": "waiting"}
        played = await client.post(f"/mock/conversations/{conversation_id}/play")
        assert played.status_code == 202
        async with asyncio.timeout(TIMEOUT):
            while json.loads(await feed.recv()) != {"type": "status", "status": "ended"}:
                pass
    conversation = await client.get(
        f"/api/v2/conversations/{conversation_id}", headers=bearer(token)
    )
    written = sum(len(message_ids(conversation.json(), p)) for p in ("customer", "agent"))
    assert written == len(MESSAGING_SCRIPT["lines"])


async def test_desktop_feed_shows_the_messages(client: httpx.AsyncClient, mock: MockServer) -> None:
    token = await get_token(client)
    conversation_id = await start_conversation(client, "test-chat")
    port = urlsplit(mock.origin).port
    feed_url = f"ws://127.0.0.1:{port}/mock/conversations/{conversation_id}/feed"
    messages: list[dict[str, Any]] = []
    async with connect(feed_url) as feed:
        assert json.loads(await feed.recv()) == {"type": "status", "status": "waiting"}
        channel = await create_channel(client, token)
        await subscribe(client, token, channel["id"], [USER_TOPIC])
        async with asyncio.timeout(TIMEOUT):
            while {"type": "status", "status": "ended"} not in messages:
                messages.append(json.loads(await feed.recv()))
    lines = [(m["speaker"], m["text"]) for m in messages if m["type"] == "line"]
    assert lines == [(line["speaker"], line["text"]) for line in MESSAGING_SCRIPT["lines"]]
    played = (await client.get(f"/mock/conversations/{conversation_id}")).json()
    assert played["status"] == "ended" and len(played["lines"]) == len(lines)


async def test_shipped_messaging_script_plays_end_to_end() -> None:
    library = ScriptLibrary.load(DEFAULTS.resolved_scripts_dir())
    script = library.scripts["roaming-abroad-messaging"]
    assert script.media == "message"
    with run_mock(playback_speed=500, heartbeat_s=30) as shipped:
        async with httpx.AsyncClient(base_url=shipped.origin, timeout=TIMEOUT) as http:
            token = await get_token(http)
            conversation_id = await start_conversation(http, script.name)
            channel = await create_channel(http, token)
            async with connect(channel["connectUri"]) as ws:
                await subscribe(http, token, channel["id"], [USER_TOPIC])
                frames = await events_until(ws, len(script.lines), conversation_id)
            last = frames[-1]["eventBody"]
            ids = message_ids(last, "customer") + message_ids(last, "agent")
            base = f"/api/v2/conversations/messages/{conversation_id}/messages"
            bulk = await http.post(f"{base}/bulk", headers=bearer(token), json=ids)
    texts = {e["textBody"] for e in bulk.json()["entities"]}
    assert texts == {line.text for line in script.lines}


async def test_a_messaging_conversation_is_never_a_direct_call(client: httpx.AsyncClient) -> None:
    response = await client.post("/mock/conversations", json={"script": "test-chat",
                                                                "direct": True})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


@pytest.mark.parametrize(("query", "normalized_only"), [
    ({}, False), ({"useNormalizedMessage": "false"}, False),
    ({"useNormalizedMessage": "true"}, True), ({"useNormalizedMessage": "TRUE"}, True),
])
async def test_a_message_text_is_in_text_body_unless_normalized_is_asked_for(
        client: httpx.AsyncClient, query: dict[str, str], normalized_only: bool) -> None:
    """By default a message's text is in ``textBody`` and there is no
    ``normalizedMessage`` (optional: a client must not count on it); asked with
    ``useNormalizedMessage=true`` the deprecated ``textBody`` goes and the
    ``normalizedMessage`` comes (as the JS Platform SDK 259 documents the flag)."""
    token = await get_token(client)
    conversation_id, frames = await play_chat(client, token)
    message_id = message_ids(frames[-1]["eventBody"], "customer")[0]
    base = f"/api/v2/conversations/messages/{conversation_id}/messages"
    one = await client.get(f"{base}/{message_id}", params=query, headers=bearer(token))
    bulk = await client.post(f"{base}/bulk", params=query, headers=bearer(token),
                             json=[message_id])
    text = MESSAGING_SCRIPT["lines"][0]["text"]
    for body in (one.json(), *bulk.json()["entities"]):
        if normalized_only:
            assert "textBody" not in body
            assert body["normalizedMessage"]["text"] == text
        else:
            assert body["textBody"] == text
            assert "normalizedMessage" not in body


async def test_a_bad_use_normalized_message_flag_is_400(client: httpx.AsyncClient) -> None:
    token = await get_token(client)
    conversation_id, frames = await play_chat(client, token)
    message_id = message_ids(frames[-1]["eventBody"], "customer")[0]
    base = f"/api/v2/conversations/messages/{conversation_id}/messages"
    query = {"useNormalizedMessage": "yes"}
    one = await client.get(f"{base}/{message_id}", params=query, headers=bearer(token))
    assert_platform_error(one, 400, "bad.request")
    bulk = await client.post(f"{base}/bulk", params=query, headers=bearer(token),
                             json=[message_id])
    assert_platform_error(bulk, 400, "bad.request")
