"""OAuth scopes in the mock: a user token may call an endpoint only when its client was
granted a scope the endpoint needs, else 403 ``missing.any.scopes``, as the platform
answers. Conversations and their messages need ``conversations`` or
``conversations:readonly``; notification channels and subscriptions ``notifications``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.devmode.test_mock_genesys import (
    MESSAGING_SCRIPT,
    TEST_SCRIPT,
    TIMEOUT,
    MockServer,
    assert_platform_error,
    bearer,
    create_channel,
    get_token,
    run_mock,
    start_conversation,
)

pytestmark = pytest.mark.anyio

CONVERSATION_SCOPES = "conversations, conversations:readonly"


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory: Path = tmp_path_factory.mktemp("scope-scripts")
    (directory / "test-call.json").write_text(json.dumps(TEST_SCRIPT), encoding="utf-8")
    (directory / "test-chat.json").write_text(json.dumps(MESSAGING_SCRIPT), encoding="utf-8")
    return directory


@pytest.fixture
def mock(scripts: Path, request: pytest.FixtureRequest) -> Iterator[MockServer]:
    """A mock whose dev client grants the scopes the test is parametrized with."""
    scopes: tuple[str, ...] = request.param
    # So slow that nothing a script says is ever published: only the calls matter.
    with run_mock(scripts_dir=scripts, playback_speed=0.001, heartbeat_s=30,
                  scopes=scopes) as running:
        yield running


def conversation_calls(conversation_id: str) -> list[tuple[str, str, object]]:
    messages = f"/api/v2/conversations/messages/{conversation_id}/messages"
    return [("GET", f"/api/v2/conversations/{conversation_id}", None),
            ("GET", f"{messages}/{'0' * 32}", None),
            ("POST", f"{messages}/bulk", ["0" * 32])]


def channel_calls(channel_id: str) -> list[tuple[str, str, object]]:
    subscriptions = f"/api/v2/notifications/channels/{channel_id}/subscriptions"
    return [("POST", "/api/v2/notifications/channels", None),
            ("GET", "/api/v2/notifications/channels", None),
            ("GET", subscriptions, None),
            ("PUT", subscriptions, []),
            ("POST", subscriptions, []),
            ("DELETE", subscriptions, None)]


@pytest.mark.parametrize("mock", [("user-basic-info", "notifications")], indirect=True)
async def test_conversations_and_messages_need_a_conversations_scope(mock: MockServer) -> None:
    async with httpx.AsyncClient(base_url=mock.origin, timeout=TIMEOUT) as http:
        token = await get_token(http)
        conversation_id = await start_conversation(http, "test-chat")
        for method, path, body in conversation_calls(conversation_id):
            response = await http.request(method, path, headers=bearer(token), json=body)
            assert_platform_error(response, 403, "missing.any.scopes")
            assert response.json()["messageParams"] == {"scopes": CONVERSATION_SCOPES}
        # The scope it has still works.
        channel = await create_channel(http, token)
        for method, path, body in channel_calls(channel["id"]):
            response = await http.request(method, path, headers=bearer(token), json=body)
            assert response.status_code == 200, (method, path, response.text)
    # Either conversations scope will do: the read-write one too.
    with run_mock(scripts_dir=mock.config.scripts_dir, playback_speed=0.001,
                  scopes=("user-basic-info", "conversations")) as other:
        async with httpx.AsyncClient(base_url=other.origin, timeout=TIMEOUT) as http:
            token = await get_token(http)
            conversation_id = await start_conversation(http, "test-chat")
            # Past the scope: the conversation, no such message, and an empty listing.
            answers = [200, 404, 200]
            for (method, path, body), status in zip(conversation_calls(conversation_id),
                                                    answers, strict=True):
                response = await http.request(method, path, headers=bearer(token), json=body)
                assert response.status_code == status, response.text


@pytest.mark.parametrize("mock", [("user-basic-info", "conversations:readonly")],
                         indirect=True)
async def test_notification_channels_need_the_notifications_scope(mock: MockServer) -> None:
    async with httpx.AsyncClient(base_url=mock.origin, timeout=TIMEOUT) as http:
        token = await get_token(http)
        # Refused before the channel is looked for: an unknown one is a 403 too.
        for method, path, body in channel_calls("streaming-1-x"):
            response = await http.request(method, path, headers=bearer(token), json=body)
            assert_platform_error(response, 403, "missing.any.scopes")
            assert response.json()["messageParams"] == {"scopes": "notifications"}
        conversation_id = await start_conversation(http)
        response = await http.get(f"/api/v2/conversations/{conversation_id}",
                                  headers=bearer(token))
        assert response.status_code == 200
