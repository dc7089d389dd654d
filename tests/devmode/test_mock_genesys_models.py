"""The mock's answers load cleanly into the official Python SDK's models.

Every JSON body is fetched over real HTTP and WebSocket from the mock on a real
uvicorn server, then checked against the SDK model of its endpoint by a strict
recursive checker built on the models' ``swagger_types`` and ``attribute_map``:
a key the model does not have (misnamed), a value of the wrong type, a value
outside the model's allowed values, or a missing field the product relies on is
a failure. The body is also deserialised by the SDK's own ``ApiClient``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

# The SDK import takes seconds: once, for the whole module.
from PureCloudPlatformClientV2 import models as sdk_models
from PureCloudPlatformClientV2.api_client import ApiClient
from websockets.asyncio.client import connect

from tests.devmode.test_mock_genesys import (
    AGENT_ID,
    CLIENT_ID,
    MESSAGING_SCRIPT,
    PANEL_URL,
    TEST_SCRIPT,
    TIMEOUT,
    bearer,
    create_channel,
    get_token,
    run_mock,
    start_conversation,
    topic_of,
)

ISO_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d")
PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
}


# The checker -----------------------------------------------------------------


#: Fields the platform still sends that the installed Python SDK's models have dropped,
#: with their type: ``MessageData.textBody`` is deprecated (``normalizedMessage.text``
#: replaces it) but still in the JS Platform SDK 259's model, as a required field, and
#: sent unless ``useNormalizedMessage=true`` is asked.
KEPT_FIELDS: dict[str, dict[str, str]] = {"MessageData": {"textBody": "str"}}


def _model_class(name: str) -> type | None:
    cls = getattr(sdk_models, name, None)
    return cls if isinstance(cls, type) else None


def _enum_problem(instance: Any, attribute: str, value: str) -> bool:
    """Whether the model's setter refuses ``value`` (the SDK marks it ``outdated_sdk_version``)."""
    setattr(instance, attribute, value)
    return bool(getattr(instance, attribute) == "outdated_sdk_version" != value)


def type_problems(value: Any, type_name: str, path: str = "$") -> list[str]:
    """Everything in ``value`` that does not match the SDK type ``type_name``, recursively."""
    if value is None:
        return [f"{path}: null where {type_name} is expected (the platform omits empty fields)"]
    if match := re.fullmatch(r"list\[(.+)\]", type_name):
        if not isinstance(value, list):
            return [f"{path}: expected a list ({type_name}), got {type(value).__name__}"]
        return [
            p for i, item in enumerate(value) for p in type_problems(item, match[1], f"{path}[{i}]")
        ]
    if match := re.fullmatch(r"dict\(str, (.+)\)", type_name):
        if not isinstance(value, dict):
            return [f"{path}: expected an object ({type_name}), got {type(value).__name__}"]
        return [p for k, v in value.items() for p in type_problems(v, match[1], f"{path}.{k}")]
    if type_name in PRIMITIVES:
        # bool is an int in Python, but true is no number in JSON.
        if isinstance(value, bool) and type_name != "bool":
            return [f"{path}: expected {type_name}, got a boolean"]
        if not isinstance(value, PRIMITIVES[type_name]):
            return [f"{path}: expected {type_name}, got {type(value).__name__} {value!r}"]
        return []
    if type_name == "datetime":
        if not isinstance(value, str) or not ISO_DATETIME.fullmatch(value):
            return [f"{path}: expected an ISO 8601 date-time string, got {value!r}"]
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return []
    if type_name == "date":
        ok = isinstance(value, str) and ISO_DATE.fullmatch(value)
        return [] if ok else [f"{path}: expected an ISO 8601 date, got {value!r}"]
    if type_name == "object":
        return []
    cls = _model_class(type_name)
    if cls is None:
        return [f"{path}: the SDK has no type {type_name!r}"]
    if not isinstance(value, dict):
        return [f"{path}: expected an object ({type_name}), got {type(value).__name__}"]
    instance = cls()
    attributes = {key: attr for attr, key in instance.attribute_map.items()}
    problems: list[str] = []
    for key, item in value.items():
        attribute = attributes.get(key)
        if attribute is None and key in KEPT_FIELDS.get(type_name, {}):
            problems.extend(type_problems(item, KEPT_FIELDS[type_name][key], f"{path}.{key}"))
            continue
        if attribute is None:
            problems.append(f"{path}.{key}: {type_name} has no field {key!r}")
            continue
        field_type = instance.swagger_types[attribute]
        found = type_problems(item, field_type, f"{path}.{key}")
        problems.extend(found)
        if not found and field_type == "str" and _enum_problem(instance, attribute, item):
            problems.append(f"{path}.{key}: {item!r} is not an allowed value of {type_name}")
    return problems


def missing_fields(value: Any, paths: list[str]) -> list[str]:
    """The ``paths`` absent from ``value``. ``a.b[].c`` means field ``c`` of every item of
    ``a.b``, which must not be empty."""
    missing: list[str] = []

    def walk(node: Any, parts: list[str], where: str) -> None:
        if not parts:
            return
        part, rest = parts[0], parts[1:]
        each = part.endswith("[]")
        key = part.removesuffix("[]")
        if not isinstance(node, dict) or key not in node:
            missing.append(f"{where}.{key}")
            return
        child = node[key]
        if not each:
            walk(child, rest, f"{where}.{key}")
            return
        if not isinstance(child, list) or not child:
            missing.append(f"{where}.{key}[] (empty)")
            return
        for index, item in enumerate(child):
            walk(item, rest, f"{where}.{key}[{index}]")

    for path in paths:
        walk(value, path.split("."), "$")
    return missing


class _JsonResponse:
    """What ``ApiClient.deserialize`` reads from a response."""

    def __init__(self, body: Any) -> None:
        self.data = json.dumps(body)

    def getheader(self, name: str) -> str:
        return "application/json"


def assert_model(body: Any, model: str, required: list[str]) -> None:
    """Fail on any key, type or value ``model`` does not allow, and on missing ``required``."""
    problems = type_problems(body, model) + [
        f"{path}: missing" for path in missing_fields(body, required)
    ]
    assert not problems, "\n".join(problems)
    loaded = ApiClient().deserialize(_JsonResponse(body), model)
    assert loaded is not None


# The mock's answers, fetched once -------------------------------------------


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _code_token(http: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    verifier, challenge = _pkce_pair()
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": PANEL_URL,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    answer = await http.get("/oauth/authorize", params=query)
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "client_id": CLIENT_ID,
        "redirect_uri": PANEL_URL,
    }
    exchanged = await http.post("/oauth/token", data=form)
    assert exchanged.status_code == 200, exchanged.text
    body: dict[str, Any] = exchanged.json()
    return body["access_token"], body


async def _collect(origin: str) -> dict[str, Any]:
    """Walk every endpoint the product uses, keeping each JSON answer by name."""
    got: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=origin, timeout=TIMEOUT) as http:

        async def get(name: str, path: str, token: str, **kwargs: Any) -> Any:
            response = await http.get(path, headers=bearer(token), **kwargs)
            assert response.status_code == 200, (name, response.text)
            got[name] = response.json()
            return got[name]

        token = await get_token(http)
        code_token, got["oauth_token"] = await _code_token(http)
        bad = await http.post("/oauth/token", data={"grant_type": "password"})
        got["oauth_token_error"] = bad.json()
        await get("users_me", "/api/v2/users/me", token)
        await get("users_me_org", "/api/v2/users/me", token, params={"expand": "organization"})
        await get("user", f"/api/v2/users/{AGENT_ID}", token)
        await get("tokens_me", "/api/v2/tokens/me", token)
        await get("tokens_me_code", "/api/v2/tokens/me", code_token)
        voice_id = await start_conversation(http, "test-call")
        chat_id = await start_conversation(http, "test-chat")
        await get("conversation_voice", f"/api/v2/conversations/{voice_id}", token)

        created = await http.post("/api/v2/notifications/channels", headers=bearer(token))
        got["channel"] = channel = created.json()
        await create_channel(http, token)
        await get("channels", "/api/v2/notifications/channels", token)
        subscriptions = f"/api/v2/notifications/channels/{channel['id']}/subscriptions"
        user_topic = f"v2.users.{AGENT_ID}.conversations"
        transcription_topic = topic_of(voice_id)
        async with connect(channel["connectUri"]) as ws:
            put = await http.put(
                subscriptions,
                headers=bearer(token),
                json=[{"id": transcription_topic}, {"id": user_topic}],
            )
            got["subscriptions_put"] = put.json()
            await get("subscriptions_get", subscriptions, token)
            frames = await _frames_until_both_end(ws, transcription_topic, user_topic)
        got["transcription_events"] = [f["eventBody"] for f in frames[transcription_topic]]
        got["conversation_events"] = [f["eventBody"] for f in frames[user_topic]]

        chat = await get("conversation_messaging", f"/api/v2/conversations/{chat_id}", token)
        ids = [
            detail["messageId"]
            for participant in chat["participants"]
            for communication in participant["messages"]
            for detail in communication["messages"]
        ]
        messages = f"/api/v2/conversations/messages/{chat_id}/messages"
        await get("message", f"{messages}/{ids[0]}", token)
        await get("message_agent", f"{messages}/{ids[-1]}", token)
        await get("message_normalized", f"{messages}/{ids[0]}?useNormalizedMessage=true", token)
        bulk = await http.post(f"{messages}/bulk", headers=bearer(token), json=ids)
        got["messages_bulk"] = bulk.json()
        bulk = await http.post(f"{messages}/bulk?useNormalizedMessage=true",
                               headers=bearer(token), json=ids)
        got["messages_bulk_normalized"] = bulk.json()
        await _collect_permissions(http, token, subscriptions, transcription_topic, user_topic, got)
        await _collect_ended(http, token, got)
        got["error_401"] = (await http.get("/api/v2/users/me")).json()
        missing = await http.get(f"/api/v2/conversations/{chat_id[::-1]}", headers=bearer(token))
        got["error_404"] = missing.json()
        assert missing.status_code == 404
    return got


async def _collect_permissions(
    http: httpx.AsyncClient,
    token: str,
    subscriptions: str,
    transcription_topic: str,
    user_topic: str,
    got: dict[str, Any],
) -> None:
    """Subscriptions of an agent without conversation:transcription:view."""
    await http.put("/mock/settings", json={"agentRole": "agent-without-transcription"})
    try:
        topics = [{"id": transcription_topic}, {"id": user_topic}]
        lenient = await http.put(
            subscriptions, params={"ignoreErrors": "true"}, headers=bearer(token), json=topics
        )
        assert lenient.status_code == 200, lenient.text
        got["subscriptions_ignore_errors"] = lenient.json()
        refused = await http.put(subscriptions, headers=bearer(token), json=topics)
        assert refused.status_code == 403, refused.text
        got["error_403_subscription"] = refused.json()
    finally:
        await http.put("/mock/settings", json={"agentRole": "agent"})


async def _collect_ended(http: httpx.AsyncClient, token: str, got: dict[str, Any]) -> None:
    """A call and a chat ended by the agent: their events and REST conversations."""
    call_id = await start_conversation(http, "test-call")
    chat_id = await start_conversation(http, "test-chat")
    channel = await create_channel(http, token)
    user_topic = f"v2.users.{AGENT_ID}.conversations"
    ended: dict[str, dict[str, Any]] = {}
    async with connect(channel["connectUri"]) as ws:
        url = f"/api/v2/notifications/channels/{channel['id']}/subscriptions"
        await http.put(url, headers=bearer(token), json=[{"id": user_topic}])
        for conversation_id in (call_id, chat_id):
            response = await http.post(f"/mock/conversations/{conversation_id}/end")
            assert response.status_code == 200, response.text
        async with asyncio.timeout(TIMEOUT):
            while len(ended) < 2:
                frame = json.loads(await ws.recv())
                body = frame["eventBody"]
                mine = frame["topicName"] == user_topic and body["id"] in (call_id, chat_id)
                if mine and all("endTime" in p for p in body["participants"]):
                    ended[body["id"]] = body
    got["call_event_ended"] = ended[call_id]
    got["messaging_event_ended"] = ended[chat_id]
    for name, conversation_id in (("voice", call_id), ("messaging", chat_id)):
        response = await http.get(f"/api/v2/conversations/{conversation_id}", headers=bearer(token))
        got[f"conversation_{name}_ended"] = response.json()


async def _frames_until_both_end(
    ws: Any, transcription_topic: str, user_topic: str
) -> dict[str, list[dict[str, Any]]]:
    """Frames per topic until the transcript ended and every chat message was announced."""
    frames: dict[str, list[dict[str, Any]]] = {transcription_topic: [], user_topic: []}
    lines = len(MESSAGING_SCRIPT["lines"])

    def announced(event: dict[str, Any]) -> int:
        return sum(len(c["messages"]) for p in event["participants"] for c in p.get("messages", []))

    async with asyncio.timeout(TIMEOUT):
        while True:
            frame = json.loads(await ws.recv())
            if frame["topicName"] in frames:
                frames[frame["topicName"]].append(frame)
            voice = frames[transcription_topic]
            chat = frames[user_topic]
            voice_done = voice and voice[-1]["eventBody"]["status"]["status"] == "SESSION_ENDED"
            if voice_done and chat and announced(chat[-1]["eventBody"]) == lines:
                return frames


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    directory: Path = tmp_path_factory.mktemp("model-scripts")
    (directory / "test-call.json").write_text(json.dumps(TEST_SCRIPT), encoding="utf-8")
    (directory / "test-chat.json").write_text(json.dumps(MESSAGING_SCRIPT), encoding="utf-8")
    with run_mock(scripts_dir=directory, playback_speed=50, heartbeat_s=30) as server:
        yield asyncio.run(_collect(server.origin))


# One check per endpoint ---------------------------------------------------------

PARTICIPANT = ["participants[].id", "participants[].purpose"]
ENDPOINTS: list[tuple[str, str, list[str]]] = [
    ("users_me", "UserMe", ["id", "name"]),
    ("users_me_org", "UserMe", ["id", "name", "organization.id", "organization.name"]),
    ("user", "User", ["id", "name"]),
    (
        "tokens_me",
        "TokenInfo",
        [
            "organization.id",
            "organization.name",
            "authorizedScope",
            "OAuthClient.id",
            "OAuthClient.authorizedGrantType",
            "homeOrganization.id",
        ],
    ),
    ("tokens_me_code", "TokenInfo", ["organization.id", "OAuthClient.authorizedGrantType"]),
    ("conversation_voice", "Conversation", ["id", *PARTICIPANT, "participants[].calls[].state"]),
    (
        "conversation_messaging",
        "Conversation",
        [
            "id",
            *PARTICIPANT,
            "participants[].messages[].messages[].messageId",
            "participants[].messages[].messages[].messageTime",
            "participants[].messages[].state",
        ],
    ),
    ("channel", "Channel", ["id", "connectUri", "expires"]),
    ("channels", "ChannelEntityListing", ["entities[].id", "entities[].connectUri"]),
    ("subscriptions_put", "ChannelTopicEntityListing", ["entities[].id"]),
    ("subscriptions_get", "ChannelTopicEntityListing", ["entities[].id", "entities[].state"]),
    (
        "subscriptions_ignore_errors",
        "ChannelTopicEntityListing",
        ["entities[].id", "entities[].state"],
    ),
    (
        "conversation_voice_ended",
        "Conversation",
        [
            "id",
            "endTime",
            *PARTICIPANT,
            "participants[].endTime",
            "participants[].calls[].state",
            "participants[].calls[].disconnectedTime",
            "participants[].calls[].disconnectType",
        ],
    ),
    (
        "conversation_messaging_ended",
        "Conversation",
        [
            "id",
            "endTime",
            "participants[].endTime",
            "participants[].messages[].state",
            "participants[].messages[].disconnectedTime",
        ],
    ),
    (
        "call_event_ended",
        "ConversationEventTopicConversation",
        [
            "id",
            *PARTICIPANT,
            "participants[].endTime",
            "participants[].calls[].id",
            "participants[].calls[].state",
            "participants[].calls[].disconnectedTime",
            "participants[].calls[].disconnectType",
        ],
    ),
    (
        "messaging_event_ended",
        "ConversationEventTopicConversation",
        [
            "id",
            *PARTICIPANT,
            "participants[].endTime",
            "participants[].messages[].state",
            "participants[].messages[].disconnectedTime",
        ],
    ),
    ("error_403_subscription", "ErrorBody", ["message", "code", "status", "contextId"]),
    (
        "message",
        "MessageData",
        [
            "id",
            "timestamp",
            "direction",
            "conversationId",
            "textBody",
            "messengerType",
        ],
    ),
    ("message_agent", "MessageData", ["id", "timestamp", "direction", "textBody"]),
    (
        "message_normalized",
        "MessageData",
        ["id", "timestamp", "normalizedMessage.text", "normalizedMessage.direction"],
    ),
    (
        "messages_bulk",
        "TextMessageListing",
        ["entities[].id", "entities[].timestamp", "entities[].textBody"],
    ),
    (
        "messages_bulk_normalized",
        "TextMessageListing",
        ["entities[].id", "entities[].timestamp", "entities[].normalizedMessage.text"],
    ),
    ("error_401", "ErrorBody", ["message", "code", "status", "contextId"]),
    ("error_404", "ErrorBody", ["message", "code", "status", "contextId"]),
]
TRANSCRIPTION_REQUIRED = ["eventTime", "conversationId", "communicationId", "status.status"]
TRANSCRIPT_REQUIRED = [
    "transcripts[].utteranceId",
    "transcripts[].isFinal",
    "transcripts[].channel",
    "transcripts[].alternatives[].transcript",
    "transcripts[].alternatives[].offsetMs",
]
CONVERSATION_EVENT_REQUIRED = [
    "id",
    *PARTICIPANT,
    "participants[].messages[].id",
    "participants[].messages[].state",
]
MESSAGE_DETAILS_REQUIRED = [
    "participants[].messages[].messages[].messageId",
    "participants[].messages[].messages[].messageTime",
    "participants[].messages[].messages[].messageStatus",
]


@pytest.mark.parametrize(("name", "model", "required"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_endpoint_loads_into_its_sdk_model(
    answers: dict[str, Any], name: str, model: str, required: list[str]
) -> None:
    assert_model(answers[name], model, required)


def test_agent_participants_carry_their_user_id(answers: dict[str, Any]) -> None:
    events = answers["conversation_events"]
    for body in (answers["conversation_voice"], answers["conversation_messaging"], *events):
        agents = [p for p in body["participants"] if p["purpose"] == "agent"]
        assert agents and all(p["userId"] == AGENT_ID for p in agents)


def test_a_rejected_topic_names_what_it_misses(answers: dict[str, Any]) -> None:
    rejected, allowed = answers["subscriptions_ignore_errors"]["entities"]
    assert rejected["state"] == "Rejected" and allowed["state"] == "Permitted"
    assert rejected["missingPermissions"] == ["conversation:transcription:view"]
    assert rejected["rejectionReason"]
    assert_model(
        rejected, "ChannelTopic", ["id", "state", "rejectionReason", "missingPermissions"]
    )
    assert answers["error_403_subscription"]["code"] == "missing.permissions"


def test_ended_conversations_are_disconnected(answers: dict[str, Any]) -> None:
    for name, media in (
        ("conversation_voice_ended", "calls"),
        ("conversation_messaging_ended", "messages"),
        ("call_event_ended", "calls"),
        ("messaging_event_ended", "messages"),
    ):
        for participant in answers[name]["participants"]:
            assert {c["state"] for c in participant[media]} == {"disconnected"}, name


def test_grant_types_in_tokens_me(answers: dict[str, Any]) -> None:
    assert answers["tokens_me"]["OAuthClient"]["authorizedGrantType"] == "TOKEN"
    assert answers["tokens_me_code"]["OAuthClient"]["authorizedGrantType"] == "CODE"


def test_transcription_event_bodies(answers: dict[str, Any]) -> None:
    events = answers["transcription_events"]
    *speech, last = events
    assert speech and last["status"]["status"] == "SESSION_ENDED"
    for body in speech:
        assert_model(
            body,
            "TranscriptionTopicTranscriptionMessage",
            TRANSCRIPTION_REQUIRED + TRANSCRIPT_REQUIRED,
        )
    assert_model(last, "TranscriptionTopicTranscriptionMessage", TRANSCRIPTION_REQUIRED)


def test_user_conversation_event_bodies(answers: dict[str, Any]) -> None:
    first, *with_messages = answers["conversation_events"]
    assert_model(first, "ConversationEventTopicConversation", CONVERSATION_EVENT_REQUIRED)
    assert with_messages
    for body in with_messages:
        assert_model(body, "ConversationEventTopicConversation", CONVERSATION_EVENT_REQUIRED)
    # By the last event both sides have written: every participant lists its messages.
    assert_model(with_messages[-1], "ConversationEventTopicConversation", MESSAGE_DETAILS_REQUIRED)


def test_oauth_token_answers_have_the_oauth_fields(answers: dict[str, Any]) -> None:
    # The SDK has no model for the login host's token endpoint: RFC 6749 fields instead.
    token = answers["oauth_token"]
    assert set(token) == {"access_token", "token_type", "expires_in"}
    assert isinstance(token["access_token"], str) and token["access_token"]
    assert token["token_type"] == "bearer"
    assert isinstance(token["expires_in"], int) and not isinstance(token["expires_in"], bool)
    error = answers["oauth_token_error"]
    assert set(error) == {"error", "error_description"}
    assert error["error"] == "unsupported_grant_type"
    assert isinstance(error["error_description"], str)


# The checker catches what it must --------------------------------------------------

GOOD_EVENT: dict[str, Any] = {
    "eventTime": "2024-05-01T12:00:00.000Z",
    "organizationId": "o",
    "conversationId": "c",
    "communicationId": "m",
    "sessionStartTimeMs": 1,
    "transcriptionStartTimeMs": 2,
    "transcripts": [
        {
            "utteranceId": "u",
            "isFinal": True,
            "channel": "EXTERNAL",
            "alternatives": [
                {
                    "confidence": 0.9,
                    "offsetMs": 0,
                    "durationMs": 10,
                    "transcript": "hi",
                    "words": [{"confidence": 1, "offsetMs": 0, "durationMs": 10, "word": "hi"}],
                }
            ],
        }
    ],
    "status": {"offsetMs": 0, "status": "SESSION_ONGOING"},
}


def _with(path: list[str | int], value: Any, *, delete: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(GOOD_EVENT))
    node: Any = body
    for step in path[:-1]:
        node = node[step]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return body


def _problems(body: Any, required: list[str] | None = None) -> list[str]:
    model = "TranscriptionTopicTranscriptionMessage"
    return type_problems(body, model) + missing_fields(body, required or [])


def test_checker_accepts_a_good_body() -> None:
    assert _problems(GOOD_EVENT, TRANSCRIPTION_REQUIRED + TRANSCRIPT_REQUIRED) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({**GOOD_EVENT, "conversationID": "c"}, "has no field 'conversationID'"),
        (
            _with(["transcripts", 0, "alternatives", 0, "text"], "hi"),
            "$.transcripts[0].alternatives[0].text",
        ),
        (_with(["status", "state"], "x"), "has no field 'state'"),
    ],
    ids=["top-level", "nested-in-lists", "nested-model"],
)
def test_checker_catches_a_misnamed_key(body: dict[str, Any], expected: str) -> None:
    problems = _problems(body)
    assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["sessionStartTimeMs"], "1"),
        (["sessionStartTimeMs"], True),
        (["sessionStartTimeMs"], None),
        (["transcripts", 0, "isFinal"], "true"),
        (["transcripts", 0, "alternatives", 0, "confidence"], "0.9"),
        (["transcripts", 0, "alternatives", 0, "words"], {"word": "hi"}),
        (["transcripts"], {"utteranceId": "u"}),
        (["status"], "SESSION_ONGOING"),
        (["eventTime"], "yesterday"),
        (["eventTime"], 1714564800000),
        (["status", "status"], "FINISHED"),
        (["transcripts", 0, "channel"], "CUSTOMER"),
    ],
)
def test_checker_catches_a_wrong_type_or_value(path: list[str | int], value: Any) -> None:
    problems = _problems(_with(path, value))
    assert len(problems) == 1, problems
    assert problems[0].startswith("$." + ".".join(str(p) for p in path).replace(".0", "[0]"))


def test_checker_catches_a_wrong_type_in_a_dict() -> None:
    problems = type_problems({"message": "m", "messageParams": {"a": 1}}, "ErrorBody")
    assert problems == ["$.messageParams.a: expected str, got int 1"]


@pytest.mark.parametrize(
    ("path", "required", "expected"),
    [
        (["conversationId"], "conversationId", "$.conversationId"),
        (["status", "status"], "status.status", "$.status.status"),
        (
            ["transcripts", 0, "alternatives", 0, "transcript"],
            "transcripts[].alternatives[].transcript",
            "$.transcripts[0].alternatives[0].transcript",
        ),
        (["transcripts"], "transcripts[].utteranceId", "$.transcripts"),
    ],
)
def test_checker_catches_a_missing_field(
    path: list[str | int], required: str, expected: str
) -> None:
    assert missing_fields(_with(path, None, delete=True), [required]) == [expected]


def test_checker_treats_an_empty_required_list_as_missing() -> None:
    assert missing_fields(_with(["transcripts"], []), ["transcripts[].utteranceId"]) == [
        "$.transcripts[] (empty)"
    ]
