"""The mock Genesys Cloud, over real uvicorn servers on loopback ports.

Each server runs in its own thread and event loop; tests talk to it with httpx
and the ``websockets`` client, and wait on frames, never on sleeps.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.devmode.mocks.genesys import MockGenesysConfig, create_mock_genesys_app
from server.devmode.mocks.genesys.scripts import ScriptLibrary

PANEL_URL = "http://localhost:8000/panel"
PANEL_ORIGIN = "http://localhost:8000"
CLIENT_ID = "assist-panel-dev"
AGENT_ID = MockGenesysConfig(public_origin="http://x", panel_url=PANEL_URL).agent_user_id
TIMEOUT = 5.0
ERROR_KEYS = {"message", "code", "status", "messageParams", "contextId", "details", "errors"}
EVENT_BODY_KEYS = {
    "eventTime",
    "organizationId",
    "conversationId",
    "communicationId",
    "sessionStartTimeMs",
    "transcriptionStartTimeMs",
    "transcripts",
    "status",
}
HEARTBEAT = {"topicName": "channel.metadata", "eventBody": {"message": "WebSocket Heartbeat"}}
TEST_SCRIPT: dict[str, Any] = {
    "title": "Test call",
    "description": "A short call for tests.",
    "media": "voice",
    "customer_name": "Test Customer",
    "lines": [
        {
            "delay_ms": 500,
            "speaker": "customer",
            "text": "My phone has had no signal since early this morning",
        },
        {"delay_ms": 500, "speaker": "agent", "text": "Let me check the outage map for you"},
        {"delay_ms": 500, "speaker": "customer", "text": "Thanks"},
    ],
}

#: A short web messaging chat (tests of messaging import it from here).
MESSAGING_SCRIPT: dict[str, Any] = {
    "title": "Test chat",
    "description": "A short web messaging chat for tests.",
    "media": "message",
    "customer_name": "Chat Customer",
    "lines": [
        {"delay_ms": 100, "speaker": "customer", "text": "Can I use my phone abroad?"},
        {"delay_ms": 100, "speaker": "agent", "text": "Yes, with a Travel Pass."},
        {"delay_ms": 100, "speaker": "customer", "text": "How much is it per day?"},
    ],
}

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class _ReadyServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


@dataclass
class MockServer:
    origin: str
    config: MockGenesysConfig
    thread: threading.Thread
    server: _ReadyServer

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@contextmanager
def run_mock(**overrides: Any) -> Iterator[MockServer]:
    """Start a mock on a free loopback port; stop it on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = MockGenesysConfig(public_origin=origin, panel_url=PANEL_URL, **overrides)
    server = _ReadyServer(
        uvicorn.Config(
            create_mock_genesys_app(config), log_level="warning", timeout_graceful_shutdown=2
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    running = MockServer(origin, config, thread, server)
    try:
        assert server.ready.wait(10), "the mock did not start"
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def scripts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("scripts")
    (directory / "test-call.json").write_text(json.dumps(TEST_SCRIPT), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def mock(scripts_dir: Path) -> Iterator[MockServer]:
    with run_mock(scripts_dir=scripts_dir, playback_speed=50, heartbeat_s=0.1) as running:
        yield running


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def clocked(scripts_dir: Path, clock: FakeClock) -> Iterator[MockServer]:
    with run_mock(
        scripts_dir=scripts_dir, clock=clock, token_lifetime_s=300, heartbeat_s=0.05
    ) as running:
        yield running


@pytest.fixture(scope="module")
def shipped() -> Iterator[MockServer]:
    with run_mock(playback_speed=500, heartbeat_s=10) as running:
        yield running


@pytest.fixture
async def client(mock: MockServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=mock.origin, timeout=TIMEOUT) as http:
        yield http


# Helpers ------------------------------------------------------------------


def fragment_of(response: httpx.Response) -> dict[str, str]:
    base, _, fragment = response.headers["location"].partition("#")
    assert base == PANEL_URL
    return {key: values[0] for key, values in parse_qs(fragment).items()}


async def authorize(http: httpx.AsyncClient, **params: str) -> httpx.Response:
    """GET /oauth/authorize with the registered client and redirect, overridden by ``params``."""
    query = {
        "response_type": "token",
        "client_id": CLIENT_ID,
        "redirect_uri": PANEL_URL,
        "state": "s",
        **params,
    }
    return await http.get("/oauth/authorize", params=query)


async def get_token(http: httpx.AsyncClient) -> str:
    response = await authorize(http)
    assert response.status_code == 302
    return fragment_of(response)["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def start_conversation(http: httpx.AsyncClient, script: str = "test-call") -> str:
    response = await http.post("/mock/conversations", json={"script": script})
    assert response.status_code == 201, response.text
    conversation_id: str = response.json()["conversationId"]
    return conversation_id


async def create_channel(http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await http.post("/api/v2/notifications/channels", headers=bearer(token))
    assert response.status_code == 200, response.text
    channel: dict[str, Any] = response.json()
    return channel


def topic_of(conversation_id: str) -> str:
    return f"v2.conversations.{conversation_id}.transcription"


async def subscribe(
    http: httpx.AsyncClient, token: str, channel_id: str, topics: list[str], method: str = "PUT"
) -> httpx.Response:
    return await http.request(
        method,
        f"/api/v2/notifications/channels/{channel_id}/subscriptions",
        headers=bearer(token),
        json=[{"id": topic} for topic in topics],
    )


async def next_frame(
    ws: ClientConnection, accept: Callable[[dict[str, Any]], bool] = lambda _: True
) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if accept(frame):
                return frame


async def transcription_until_end(ws: ClientConnection) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT):
        while True:
            frame = json.loads(await ws.recv())
            if frame["topicName"] == "channel.metadata":
                continue
            events.append(frame)
            if frame["eventBody"]["status"]["status"] == "SESSION_ENDED":
                return events


async def closed_code(ws: ClientConnection) -> int:
    """Read until the server closes the socket; the close code it sent."""
    async with asyncio.timeout(TIMEOUT):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code


def permitted(*topics: str) -> list[dict[str, str]]:
    """Subscribed topics as the subscriptions endpoints list them."""
    return [{"id": topic, "state": "Permitted"} for topic in topics]


def assert_platform_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["status"] == status and body["code"] == code
    assert body["message"] and isinstance(body["messageParams"], dict)
    assert body["details"] == [] and body["errors"] == []
    uuid.UUID(body["contextId"])


def parse_iso_z(value: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def check_transcription(
    events: list[dict[str, Any]], conversation_id: str, script: dict[str, Any]
) -> None:
    """Every frame has the platform's shape; each line is interims then one final."""
    for frame in events:
        assert set(frame) == {"topicName", "version", "eventBody", "metadata"}
        assert frame["topicName"] == topic_of(conversation_id) and frame["version"] == "2"
        uuid.UUID(frame["metadata"]["CorrelationId"])
        body = frame["eventBody"]
        assert set(body) == EVENT_BODY_KEYS and body["conversationId"] == conversation_id
        parse_iso_z(body["eventTime"])
        assert isinstance(body["sessionStartTimeMs"], int)
        assert body["transcriptionStartTimeMs"] >= body["sessionStartTimeMs"]
        assert set(body["status"]) == {"offsetMs", "status"}
    *speech, last = events
    assert last["eventBody"]["status"]["status"] == "SESSION_ENDED"
    assert last["eventBody"]["transcripts"] == []
    utterances: dict[str, list[dict[str, Any]]] = {}
    for frame in speech:
        assert frame["eventBody"]["status"]["status"] == "SESSION_ONGOING"
        (transcript,) = frame["eventBody"]["transcripts"]
        utterances.setdefault(transcript["utteranceId"], []).append(transcript)
    assert len(utterances) == len(script["lines"])
    for line, results in zip(script["lines"], utterances.values(), strict=True):
        *interims, final = results
        assert 1 <= len(interims) <= 2
        assert [r["isFinal"] for r in results] == [False] * len(interims) + [True]
        expected_channel = "EXTERNAL" if line["speaker"] == "customer" else "INTERNAL"
        assert {r["channel"] for r in results} == {expected_channel}
        (alternative,) = final["alternatives"]
        assert alternative["transcript"] == line["text"]
        assert set(alternative) == {"confidence", "offsetMs", "durationMs", "transcript", "words"}
        assert " ".join(w["word"] for w in alternative["words"]) == line["text"]
        assert set(alternative["words"][0]) == {"confidence", "offsetMs", "durationMs", "word"}
        for interim in interims:
            assert line["text"].startswith(interim["alternatives"][0]["transcript"])
        assert final["engineId"] and final["dialect"] == "en-US"


# OAuth --------------------------------------------------------------------


async def test_authorize_implicit_grant_redirects_with_token_and_state(
    client: httpx.AsyncClient,
) -> None:
    state = "conv=1&origin=http://x y/é"
    response = await authorize(client, state=state)
    assert response.status_code == 302
    fragment = fragment_of(response)
    assert fragment["state"] == state
    assert fragment["token_type"] == "bearer" and fragment["expires_in"] == "86400"
    me = await client.get("/api/v2/users/me", headers=bearer(fragment["access_token"]))
    assert me.status_code == 200


async def test_authorize_refuses_unknown_client_with_error_page(client: httpx.AsyncClient) -> None:
    response = await authorize(client, client_id="someone-else")
    assert response.status_code == 400 and "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    "redirect_uri",
    [f"{PANEL_URL}?conversationId=1", f"{PANEL_URL}/", "https://evil.example/panel", ""],
)
async def test_authorize_refuses_unregistered_redirect_uri(
    client: httpx.AsyncClient, redirect_uri: str
) -> None:
    response = await authorize(client, redirect_uri=redirect_uri)
    assert response.status_code == 400 and "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


async def test_authorize_unsupported_response_type_redirects_with_error(
    client: httpx.AsyncClient,
) -> None:
    response = await authorize(client, response_type="id_token", state="abc")
    assert response.status_code == 302
    fragment = fragment_of(response)
    assert fragment["error"] == "unsupported_response_type"
    assert fragment["error_description"] and fragment["state"] == "abc"
    assert "access_token" not in fragment


# REST ---------------------------------------------------------------------


async def test_users_me(client: httpx.AsyncClient, mock: MockServer) -> None:
    token = await get_token(client)
    plain = (await client.get("/api/v2/users/me", headers=bearer(token))).json()
    assert plain["id"] == AGENT_ID and plain["name"] == "Alex Agent"
    assert plain["email"] == mock.config.agent_email and plain["username"]
    assert plain["state"] == "active" and isinstance(plain["version"], int)
    assert plain["selfUri"] == f"/api/v2/users/{AGENT_ID}"
    assert "organization" not in plain
    expanded = await client.get(
        "/api/v2/users/me", params={"expand": "organization"}, headers=bearer(token)
    )
    org = expanded.json()["organization"]
    assert org["id"] == mock.config.org_id and org["name"] == "Brightwave Mobile"
    assert org["selfUri"] == f"/api/v2/organizations/{mock.config.org_id}"


async def test_tokens_me(client: httpx.AsyncClient, mock: MockServer) -> None:
    token = await get_token(client)
    info = (await client.get("/api/v2/tokens/me", headers=bearer(token))).json()
    org = {"id": mock.config.org_id, "name": "Brightwave Mobile"}
    assert info["organization"] == org and info["homeOrganization"] == org
    assert {"user-basic-info", "conversations:readonly", "notifications"} <= set(
        info["authorizedScope"]
    )
    assert info["OAuthClient"]["id"] == CLIENT_ID
    assert info["OAuthClient"]["organization"] == org and info["OAuthClient"]["name"]


async def test_conversation(client: httpx.AsyncClient) -> None:
    token = await get_token(client)
    conversation_id = await start_conversation(client)
    response = await client.get(f"/api/v2/conversations/{conversation_id}", headers=bearer(token))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == conversation_id
    assert body["selfUri"] == f"/api/v2/conversations/{conversation_id}"
    parse_iso_z(body["startTime"])
    customer, agent = body["participants"]
    assert customer["purpose"] == "customer" and customer["name"] == "Test Customer"
    assert "userId" not in customer
    assert agent["purpose"] == "agent" and agent["userId"] == AGENT_ID
    assert agent["name"] == "Alex Agent"
    for participant in (customer, agent):
        uuid.UUID(participant["id"])
        (call,) = participant["calls"]
        assert call["state"] == "connected" and "endTime" not in participant


async def test_unknown_conversation_is_404(client: httpx.AsyncClient) -> None:
    token = await get_token(client)
    response = await client.get(f"/api/v2/conversations/{uuid.uuid4()}", headers=bearer(token))
    assert_platform_error(response, 404, "not.found")


ENDPOINTS = [
    ("GET", "/api/v2/users/me"),
    ("GET", "/api/v2/users/me?expand=organization"),
    ("GET", "/api/v2/tokens/me"),
    ("GET", "/api/v2/conversations/0d9c8b7a-6f5e-4d3c-9b2a-1f0e9d8c7b6a"),
    ("POST", "/api/v2/notifications/channels"),
    ("GET", "/api/v2/notifications/channels"),
    ("GET", "/api/v2/notifications/channels/streaming-1-x/subscriptions"),
    ("PUT", "/api/v2/notifications/channels/streaming-1-x/subscriptions"),
    ("POST", "/api/v2/notifications/channels/streaming-1-x/subscriptions"),
    ("DELETE", "/api/v2/notifications/channels/streaming-1-x/subscriptions"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic abc"])
async def test_missing_or_unknown_token_is_401(
    client: httpx.AsyncClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.request(method, path, headers=headers, json=[])
    assert_platform_error(response, 401, "bad.credentials")


async def test_expired_token_is_401_everywhere(clocked: MockServer, clock: FakeClock) -> None:
    async with httpx.AsyncClient(base_url=clocked.origin, timeout=TIMEOUT) as http:
        token = await get_token(http)
        conversation_id = await start_conversation(http)
        assert (await http.get("/api/v2/users/me", headers=bearer(token))).status_code == 200
        channel = await create_channel(http, token)
        clock.advance(301)
        for method, path in ENDPOINTS:
            path = path.replace("streaming-1-x", channel["id"])
            response = await http.request(method, path, headers=bearer(token), json=[])
            assert_platform_error(response, 401, "bad.credentials")
        response = await http.get(f"/api/v2/conversations/{conversation_id}", headers=bearer(token))
        assert_platform_error(response, 401, "bad.credentials")


async def test_channel_stops_when_its_token_expires(clocked: MockServer, clock: FakeClock) -> None:
    async with httpx.AsyncClient(base_url=clocked.origin, timeout=TIMEOUT) as http:
        # The socket closes with tokenExpiry "close" (it falls silent by default:
        # test_mock_genesys_expiry.py).
        assert (await http.put("/mock/settings", json={"tokenExpiry": "close"})).is_success
        try:
            token = await get_token(http)
            channel = await create_channel(http, token)
            async with connect(channel["connectUri"]) as ws:
                assert await next_frame(ws) == HEARTBEAT
                clock.advance(301)
                assert await closed_code(ws) == 1008
        finally:
            await http.put("/mock/settings", json={"tokenExpiry": "silent"})


# Channels -----------------------------------------------------------------


async def test_create_and_list_channels(clocked: MockServer, clock: FakeClock) -> None:
    async with httpx.AsyncClient(base_url=clocked.origin, timeout=TIMEOUT) as http:
        token = await get_token(http)
        channel = await create_channel(http, token)
        assert set(channel) == {"id", "connectUri", "expires"}
        assert re.fullmatch(r"streaming-\d+-[a-z0-9]+", channel["id"])
        port = urlsplit(clocked.origin).port
        assert channel["connectUri"] == f"ws://127.0.0.1:{port}/channels/{channel['id']}"
        assert parse_iso_z(channel["expires"]).timestamp() == pytest.approx(clock.now + 86400)
        listed = await http.get("/api/v2/notifications/channels", headers=bearer(token))
        assert listed.json() == {"entities": [channel]}


async def test_subscriptions_put_replaces_post_adds_get_lists_delete_clears(
    client: httpx.AsyncClient,
) -> None:
    token = await get_token(client)
    channel_id = (await create_channel(client, token))["id"]
    first, second, third = (topic_of(str(uuid.uuid4())) for _ in range(3))
    user_topic = f"v2.users.{AGENT_ID}.conversations"

    put = await subscribe(client, token, channel_id, [first, second])
    assert put.json() == {"entities": permitted(first, second)}
    put = await subscribe(client, token, channel_id, [third])
    assert put.json() == {"entities": permitted(third)}
    post = await subscribe(client, token, channel_id, [first, user_topic], method="POST")
    assert post.json() == {"entities": permitted(third, first, user_topic)}
    listed = await client.get(
        f"/api/v2/notifications/channels/{channel_id}/subscriptions", headers=bearer(token)
    )
    assert listed.json() == post.json()
    cleared = await client.delete(
        f"/api/v2/notifications/channels/{channel_id}/subscriptions", headers=bearer(token)
    )
    assert cleared.status_code == 200 and cleared.json() == {"entities": []}


@pytest.mark.parametrize(
    "body",
    [
        [{"id": "v2.conversations.not-a-uuid.transcription"}],
        [{"id": "v2.analytics.queues.x.observations"}],
        [{"topic": "v2.users.x.presence"}],
        {"id": "v2.users.x.conversations"},
    ],
)
async def test_bad_subscriptions_are_400(client: httpx.AsyncClient, body: Any) -> None:
    token = await get_token(client)
    channel_id = (await create_channel(client, token))["id"]
    response = await client.put(
        f"/api/v2/notifications/channels/{channel_id}/subscriptions",
        headers=bearer(token),
        json=body,
    )
    assert_platform_error(response, 400, "bad.request")


async def test_subscriptions_of_unknown_channel_are_404(client: httpx.AsyncClient) -> None:
    token = await get_token(client)
    response = await subscribe(client, token, "streaming-9-nope", [topic_of(str(uuid.uuid4()))])
    assert_platform_error(response, 404, "not.found")


async def test_twenty_first_channel_drops_the_oldest(scripts_dir: Path) -> None:
    with run_mock(scripts_dir=scripts_dir, heartbeat_s=30) as server:
        async with httpx.AsyncClient(base_url=server.origin, timeout=TIMEOUT) as http:
            token = await get_token(http)
            channels = [await create_channel(http, token) for _ in range(20)]
            async with connect(channels[0]["connectUri"]) as oldest:
                await oldest.send(json.dumps({"message": "ping"}))
                await next_frame(oldest)  # the socket is registered
                newest = await create_channel(http, token)
                assert await closed_code(oldest) == 1000
            listed = await http.get("/api/v2/notifications/channels", headers=bearer(token))
            ids = [c["id"] for c in listed.json()["entities"]]
            assert ids == [c["id"] for c in channels[1:]] + [newest["id"]]
            gone = await http.get(
                f"/api/v2/notifications/channels/{channels[0]['id']}/subscriptions",
                headers=bearer(token),
            )
            assert_platform_error(gone, 404, "not.found")


# WebSocket ----------------------------------------------------------------


async def test_heartbeat_and_ping_pong(client: httpx.AsyncClient) -> None:
    token = await get_token(client)
    channel = await create_channel(client, token)
    async with connect(channel["connectUri"]) as ws:
        assert await next_frame(ws) == HEARTBEAT
        await ws.send(json.dumps({"message": "ping"}))
        pong = await next_frame(ws, lambda f: f != HEARTBEAT)
        assert pong == {"topicName": "channel.metadata", "eventBody": {"message": "pong"}}


async def test_socket_of_unknown_channel_is_closed_with_error(mock: MockServer) -> None:
    port = urlsplit(mock.origin).port
    async with connect(f"ws://127.0.0.1:{port}/channels/streaming-0-unknown") as ws:
        assert await closed_code(ws) == 1008


async def test_script_plays_after_subscription_in_the_platform_shape(
    client: httpx.AsyncClient,
) -> None:
    token = await get_token(client)
    conversation_id = await start_conversation(client)
    channel = await create_channel(client, token)
    async with connect(channel["connectUri"]) as ws:
        # Two heartbeats (0.2 s) is longer than the first line takes at this speed:
        # had playback started with the conversation, its events would be missed.
        for _ in range(2):
            assert await next_frame(ws) == HEARTBEAT
        status = await client.get(f"/mock/conversations/{conversation_id}")
        assert status.json()["status"] == "waiting" and status.json()["lines"] == []
        response = await subscribe(client, token, channel["id"], [topic_of(conversation_id)])
        assert response.status_code == 200
        events = await transcription_until_end(ws)
    check_transcription(events, conversation_id, TEST_SCRIPT)
    first = events[0]["eventBody"]["transcripts"][0]
    assert first["isFinal"] is False and first["channel"] == "EXTERNAL"
    played = (await client.get(f"/mock/conversations/{conversation_id}")).json()
    assert played["status"] == "ended"
    assert [line["text"] for line in played["lines"]] == [
        line["text"] for line in TEST_SCRIPT["lines"]
    ]


async def test_replay_and_desktop_feed(client: httpx.AsyncClient, mock: MockServer) -> None:
    token = await get_token(client)
    conversation_id = await start_conversation(client)
    channel = await create_channel(client, token)
    port = urlsplit(mock.origin).port
    feed_url = f"ws://127.0.0.1:{port}/mock/conversations/{conversation_id}/feed"
    async with connect(channel["connectUri"]) as ws, connect(feed_url) as feed:
        assert json.loads(await feed.recv()) == {"type": "status", "status": "waiting"}
        await subscribe(client, token, channel["id"], [topic_of(conversation_id)])
        first_run = await transcription_until_end(ws)
        replay = await client.post(f"/mock/conversations/{conversation_id}/play")
        assert replay.status_code == 202
        second_run = await transcription_until_end(ws)
        messages: list[dict[str, Any]] = []
        async with asyncio.timeout(TIMEOUT):
            while len([m for m in messages if m == {"type": "status", "status": "ended"}]) < 2:
                messages.append(json.loads(await feed.recv()))
    check_transcription(second_run, conversation_id, TEST_SCRIPT)
    first_ids = {e["eventBody"]["transcripts"][0]["utteranceId"] for e in first_run[:-1]}
    second_ids = {e["eventBody"]["transcripts"][0]["utteranceId"] for e in second_run[:-1]}
    assert first_ids.isdisjoint(second_ids)
    lines = [(m["speaker"], m["text"]) for m in messages if m["type"] == "line"]
    expected = [(line["speaker"], line["text"]) for line in TEST_SCRIPT["lines"]]
    assert lines == expected * 2
    assert [m["type"] for m in messages].count("reset") == 2
    missing = await client.post(f"/mock/conversations/{uuid.uuid4()}/play")
    assert missing.status_code == 404


async def test_shutdown_cancels_playback_and_closes_sockets(scripts_dir: Path) -> None:
    with run_mock(scripts_dir=scripts_dir, playback_speed=0.01) as server:
        async with httpx.AsyncClient(base_url=server.origin, timeout=TIMEOUT) as http:
            token = await get_token(http)
            conversation_id = await start_conversation(http)
            channel = await create_channel(http, token)
            async with connect(channel["connectUri"]) as ws:
                await subscribe(http, token, channel["id"], [topic_of(conversation_id)])
                status = await http.get(f"/mock/conversations/{conversation_id}")
                assert status.json()["status"] == "playing"
                await asyncio.to_thread(server.stop)
                assert not server.thread.is_alive()
                assert await closed_code(ws) in (1001, 1012)


# CORS ---------------------------------------------------------------------


async def test_cors_allows_the_panel_origin_only(client: httpx.AsyncClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    path = "/api/v2/notifications/channels/x/subscriptions"
    allowed = await client.options(path, headers={"Origin": PANEL_ORIGIN, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == PANEL_ORIGIN
    assert "PUT" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    refused = await client.options(path, headers={"Origin": "https://evil.example", **preflight})
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    simple = await client.get("/api/v2/users/me", headers={"Origin": PANEL_ORIGIN})
    assert simple.status_code == 401
    assert simple.headers["access-control-allow-origin"] == PANEL_ORIGIN


# Scripts and the desktop --------------------------------------------------


def test_shipped_scripts() -> None:
    library = ScriptLibrary.load(
        MockGenesysConfig(public_origin="http://x", panel_url=PANEL_URL).resolved_scripts_dir()
    )
    assert len(library.scripts) >= 4
    assert {s.media for s in library.scripts.values()} == {"voice", "message"}
    for script in library.scripts.values():
        assert 6 <= len(script.lines) <= 10
        assert all(2000 <= line.delay_ms <= 6000 for line in script.lines)
        speakers = [line.speaker for line in script.lines]
        assert speakers[0] == "customer" and {"customer", "agent"} == set(speakers)
    said = {
        name: " ".join(line.text.lower() for line in script.lines if line.speaker == "customer")
        for name, script in library.scripts.items()
    }
    topics = [
        ("switched", "charged twice", "dispute", "money back"),
        ("outage", "signal", "credit"),
        ("arrived", "cracked", "restocking fee", "shipping label", "refund"),
        ("abroad", "daily roaming pass", "travel pass", "per day", "data", "data roaming"),
    ]
    for words in topics:
        assert any(all(w in text for w in words) for text in said.values()), words


async def test_shipped_script_plays_end_to_end(shipped: MockServer) -> None:
    library = ScriptLibrary.load(shipped.config.resolved_scripts_dir())
    script = library.scripts["damaged-phone-return"]
    as_dict = {"lines": [{"speaker": ln.speaker, "text": ln.text} for ln in script.lines]}
    async with httpx.AsyncClient(base_url=shipped.origin, timeout=TIMEOUT) as http:
        token = await get_token(http)
        conversation_id = await start_conversation(http, script.name)
        channel = await create_channel(http, token)
        async with connect(channel["connectUri"]) as ws:
            await subscribe(http, token, channel["id"], [topic_of(conversation_id)])
            events = await transcription_until_end(ws)
    check_transcription(events, conversation_id, as_dict)


async def test_mock_conversation_endpoints(shipped: MockServer) -> None:
    async with httpx.AsyncClient(base_url=shipped.origin, timeout=TIMEOUT) as http:
        scripts = (await http.get("/mock/scripts")).json()["scripts"]
        assert {s["name"] for s in scripts} >= {
            "billing-double-charge",
            "no-signal-outage",
            "damaged-phone-return",
        }
        assert all(s["title"] and s["lines"] >= 6 for s in scripts)
        created = await http.post("/mock/conversations", json={"script": "no-signal-outage"})
        assert created.status_code == 201
        body = created.json()
        conversation_id = body["conversationId"]
        uuid.UUID(conversation_id)
        port = urlsplit(shipped.origin).port
        assert body["panelUrl"] == (
            f"{PANEL_URL}?conversationId={conversation_id}"
            f"&gcHostOrigin=http%3A%2F%2F127.0.0.1%3A{port}&gcTargetEnv=mock&langTag=en-US"
        )
        unknown = await http.post("/mock/conversations", json={"script": "nope"})
        assert unknown.status_code == 400 and unknown.json()["error"] == "unknown_script"


async def test_desktop_page(shipped: MockServer) -> None:
    async with httpx.AsyncClient(base_url=shipped.origin, timeout=TIMEOUT) as http:
        page = await http.get("/")
        assert page.status_code == 200
        html = page.text
        assert "Mock Agent Desktop (dev)" in html
        for element_id in (
            *("md-script", "md-start", "md-replay", "md-end", "md-transcript", "md-panel"),
            *("md-reply", "md-app-log", "md-widget", "md-panel-loading", "md-lifecycle-note"),
            *("md-toasts", "md-platform", "md-signin-mode", "md-frameable", "md-signin-user"),
            *("md-agent-role", "md-expire-tokens", "md-expire-channels", "md-platform-status"),
            "md-token-expiry",
        ):
            assert f'id="{element_id}"' in html
        assert 'data-bootstrap-timeout-s="10.0"' in html
        widget = re.search(r'<aside id="md-widget"[^>]*>', html)
        assert widget and 'data-lifecycle="idle"' in widget.group(0)
        assert re.search(r'<p id="md-panel-loading"[^>]*\shidden>Loading Assist Panel…</p>', html)
        role = re.search(r'<select id="md-agent-role".*?</select>', html, re.S)
        assert role and '<option value="agent" selected>Agent (all permissions)</option>' in (
            role.group(0)
        )
        assert (
            '<option value="agent-without-transcription">'
            "Agent without conversation:transcription:view</option>"
        ) in role.group(0)
        assert '<script type="module" src="/mock/static/desktop.js"></script>' in html
        assert len(re.findall(r"<script\b", html)) == 1
        assert not re.search(r"\son[a-z]+\s*=", html)
        assert "Charged twice after a plan change" in html
        assert "Using my phone abroad (web messaging)" in html
        expiry = re.search(r'<select id="md-token-expiry".*?</select>', html, re.S)
        assert expiry and '<option value="silent" selected>' in expiry.group(0)
        assert '<option value="close">' in expiry.group(0)
        mode = re.search(r'<select id="md-signin-mode".*?</select>', html, re.S)
        assert mode and '<option value="auto" selected>' in mode.group(0)
        assert 'value="prompt"' in mode.group(0) and 'value="deny"' in mode.group(0)
        users = re.search(r'<select id="md-signin-user".*?</select>', html, re.S)
        assert users and f'<option value="{AGENT_ID}" selected>' in users.group(0)
        assert users.group(0).count("<option") == 3
        assert re.search(r'<input id="md-frameable" type="checkbox"[^>]* checked>', html)
        iframe = re.search(r"<iframe[^>]*>", html)
        assert iframe and 'allow="clipboard-write"' in iframe.group(0)
        assert "allow-scripts" in iframe.group(0) and "allow-same-origin" in iframe.group(0)
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and PANEL_ORIGIN in csp
        for name in ("desktop.js", "lifecycle.js"):
            script = await http.get(f"/mock/static/{name}")
            assert script.status_code == 200 and "javascript" in script.headers["content-type"]
            assert "innerHTML" not in script.text and "outerHTML" not in script.text
        for url in ("/mock/settings", "/mock/tokens/expire", "/mock/channels/expire"):
            assert url in html
        style = await http.get("/mock/static/desktop.css")
        assert style.status_code == 200 and "text/css" in style.headers["content-type"]


def test_desktop_template_comment_lists_its_element_ids() -> None:
    template = (
        Path(__file__).resolve().parents[2]
        / "server/devmode/mocks/genesys/templates/desktop.html"
    ).read_text(encoding="utf-8")
    comment = re.search(r"\{#- Element ids(.*?)#\}", template, re.S)
    assert comment
    listed = set(re.findall(r"\bmd-[a-z-]+", comment.group(1)))
    assert listed == set(re.findall(r'\sid="(md-[a-z-]+)"', template))


async def test_a_direct_call_has_the_agent_as_a_user_participant_and_no_queue(
        client: httpx.AsyncClient) -> None:
    token = await get_token(client)
    created = await client.post("/mock/conversations", json={"script": "test-call",
                                                             "direct": True})
    assert created.status_code == 201, created.text
    conversation_id = created.json()["conversationId"]
    body = (await client.get(f"/api/v2/conversations/{conversation_id}",
                             headers=bearer(token))).json()
    customer, agent = body["participants"]
    assert agent["purpose"] == "user" and agent["userId"] == AGENT_ID
    assert customer["purpose"] == "customer"
    assert all("queueId" not in p and "queueName" not in p for p in (customer, agent))


async def test_direct_is_a_boolean(client: httpx.AsyncClient) -> None:
    response = await client.post("/mock/conversations", json={"script": "test-call",
                                                                "direct": "yes"})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
