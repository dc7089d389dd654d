"""server/auth/genesys.py against a scripted transport: what the panel asks Genesys, exactly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from server.auth.genesys import GenesysClient, TokenGrant, current_agents
from server.errors import (
    GenesysPermissionMissing,
    GenesysTokenRejected,
    GenesysUnavailable,
    InvalidState,
    NotAParticipant,
)

pytestmark = pytest.mark.anyio

API = "https://api.mypurecloud.com"
USER = "3f6c2a1e-8b4d-4f7a-9c2e-5d1b7a0e4c21"
ORG = "9b2e7d4c-1a3f-4c6b-8e5d-2f7a9c0b1d35"


def platform(seen: list[httpx.URL]) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        if request.url.path == "/api/v2/users/me":
            return httpx.Response(200, json={"id": USER, "name": "Alex Agent"})
        if request.url.path == "/api/v2/tokens/me":
            return httpx.Response(200, json={"organization": {"id": ORG, "name": "Brightwave"},
                                             "OAuthClient": {"id": "panel-client"}})
        return httpx.Response(200, json={"participants": [
            {"purpose": "customer"},
            {"purpose": "user", "userId": USER},
            {"purpose": "agent", "userId": "7d2e9f4a-3c1b-4e6d-8a5f-0b9c2d4e6f13"},
            {"purpose": "acd", "userId": "00000000-0000-4000-8000-000000000000"}]})
    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


async def test_identify_asks_users_me_without_expand() -> None:
    # Broke: users/me?expand=organization, when tokens/me names the org already and the
    # expand may want scopes beyond the panel's.
    seen: list[httpx.URL] = []
    async with platform(seen) as http:
        identity = await GenesysClient(http, 5).identify(API, "token")
    assert (identity.user_id, identity.org_id, identity.client_id) == (USER, ORG, "panel-client")
    users_me = next(url for url in seen if url.path == "/api/v2/users/me")
    assert users_me.query == b""


async def test_agents_are_agent_and_direct_call_user_participants() -> None:
    seen: list[httpx.URL] = []
    async with platform(seen) as http:
        agents = await GenesysClient(http, 5).agent_user_ids(API, "token", "c-1")
    assert agents == {USER, "7d2e9f4a-3c1b-4e6d-8a5f-0b9c2d4e6f13"}


@pytest.mark.parametrize(("header", "told"), [
    ("7", "7"), ("0.2", "1"), (None, "1"),
    # Regression: math.ceil(inf) raised OverflowError, a 500. Read as a day at most.
    ("inf", "86400"), ("1e999", "86400"), ("1e300", "86400")])
async def test_a_busy_genesys_tells_the_client_when_to_ask_again(
        header: str | None, told: str) -> None:
    # Broke: Genesys's 429 became a 503 that always said Retry-After: 1.
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": header} if header else {},
                              json={"code": "too.many.requests", "status": 429})
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        with pytest.raises(GenesysUnavailable) as raised:
            await GenesysClient(http, 5).agent_user_ids(API, "token", "c-1")
    assert raised.value.headers == {"Retry-After": told}


@pytest.mark.parametrize(("body", "error"), [
    ({"code": "missing.permissions", "messageParams": {
        "permissions": "conversation:communication:view"}}, GenesysPermissionMissing),
    ({"code": "missing.permissions", "messageParams": {"permissions": "<b>x</b>"}},
     GenesysPermissionMissing),
    ({"code": "missing.any.permissions", "messageParams": {
        "permissions": "conversation:communication:view"}}, GenesysPermissionMissing),
    # The OAuth client lacks a scope: the token cannot do what the panel needs, for any
    # conversation (regression: it was "not an agent on this conversation").
    ({"code": "missing.any.scopes", "messageParams": {
        "scopes": "conversations, conversations:readonly"}}, GenesysTokenRejected),
    ({"code": "not.authorized"}, NotAParticipant),
    ("not json", NotAParticipant),
])
async def test_a_403_for_a_missing_permission_is_not_taken_for_an_outsider(
        body: object, error: type[Exception]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(403, text=body)
        return httpx.Response(403, json=body)
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        with pytest.raises(error) as raised:
            await GenesysClient(http, 5).agent_user_ids(API, "token", "c-1")
    if error is GenesysPermissionMissing:
        named = "conversation:communication:view" in str(raised.value)
        assert named == ("<b>" not in str(body))  # only what looks like a permission is echoed
        assert "<b>" not in str(raised.value)


@pytest.mark.parametrize(("participants", "agents"), [
    # On the conversation: every agent still on it.
    ([{"purpose": "customer"}, {"purpose": "agent", "userId": "a"},
      {"purpose": "user", "userId": "b"}], {"a", "b"}),
    # Regression: after a transfer, the agent who handed it on still got suggestions.
    ([{"purpose": "agent", "userId": "a", "endTime": "2026-12-07T05:00:00.000Z"},
      {"purpose": "agent", "userId": "b"}], {"b"}),
    # Ended (wrap-up): the last agent to leave, not one who left before.
    ([{"purpose": "agent", "userId": "a", "endTime": "2026-12-07T05:00:00.000Z"},
      {"purpose": "agent", "userId": "b", "endTime": "2026-12-07T05:09:00.000Z"},
      {"purpose": "customer", "endTime": "2026-12-07T05:09:00.000Z"}], {"b"}),
    ([{"purpose": "acd", "userId": "q"}, {"purpose": "customer"}], set()),
])
def test_the_agents_are_those_still_on_the_conversation(
        participants: list[dict[str, str]], agents: set[str]) -> None:
    assert current_agents(participants) == agents


LOGIN = "https://login.mypurecloud.com"


async def exchange(answer: httpx.Response) -> object:
    """``exchange_code`` against a token endpoint that answers ``answer``."""
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda request: answer)) as http:
        return await GenesysClient(http, 5).exchange_code(
            LOGIN, code="c", verifier="v", client_id="panel-client",
            redirect_uri="https://panel.example/panel")


@pytest.mark.parametrize("status", [400, 401, 403])
async def test_a_refused_code_exchange_is_invalid_state(status: int) -> None:
    """A 403 from /oauth/token was a 404 ``not_found``, which POST /api/session does not
    answer: Genesys refused the code, as with 400 and 401."""
    with pytest.raises(InvalidState):
        await exchange(httpx.Response(status, json={"error": "unauthorized_client"}))


@pytest.mark.parametrize("status", [404, 500, 502])
async def test_a_token_endpoint_that_answers_otherwise_is_genesys_unavailable(
        status: int) -> None:
    """A 404 from /oauth/token was a 404 ``not_found``: no token endpoint where the login
    host should have one is Genesys not answering as it should."""
    with pytest.raises(GenesysUnavailable) as raised:
        await exchange(httpx.Response(status, text="no such page"))
    assert raised.value.status_code == 503
    assert raised.value.message == f"Genesys Cloud answered {status}."


async def test_a_busy_token_endpoint_passes_its_retry_after_on() -> None:
    with pytest.raises(GenesysUnavailable) as raised:
        await exchange(httpx.Response(429, headers={"Retry-After": "inf"}))
    assert raised.value.headers == {"Retry-After": "86400"}


@pytest.mark.parametrize("body", [
    b"[]", b'"a token"', b"null", b"{}",  # not an object; no token
    b'{"access_token": "t", "expires_in": Infinity}',  # was OverflowError
    b'{"access_token": "t", "expires_in": NaN}',
    b'{"access_token": "t", "expires_in": -5}',
    b'{"access_token": "t", "expires_in": "soon"}',
    b'{"access_token": "t", "expires_in": {"s": 1}}',
    b'{"access_token": "t", "expires_in": 1' + b"0" * 5000 + b"}",
    b'{"access_token": {"t": 1}, "expires_in": 60}',
    b'{"access_token": "", "expires_in": 60}',
    b"[" * 100_000,  # deeper than json goes: RecursionError
])
async def test_an_odd_token_answer_is_genesys_unavailable(body: bytes) -> None:
    """A list or string body was an AttributeError, an infinite expires_in an
    OverflowError: each a 500 with a traceback."""
    with pytest.raises(GenesysUnavailable, match="unexpected shape"):
        await exchange(httpx.Response(200, content=body,
                                      headers={"Content-Type": "application/json"}))


@pytest.mark.parametrize(("expires_in", "seconds"), [
    (b"86399", 86399), (b'"3600"', 3600), (b"3599.7", 3599), (b"null", 0)])
async def test_a_token_answer_gives_its_life_in_whole_seconds(
        expires_in: bytes, seconds: int) -> None:
    grant = await exchange(httpx.Response(200, content=b'{"access_token": "t", "expires_in": '
                                          + expires_in + b"}"))
    assert grant == TokenGrant("t", seconds)


@pytest.mark.parametrize(("users_me", "tokens_me"), [
    (["a list"], {"organization": {"id": ORG}}),
    ("a string", {"organization": {"id": ORG}}),
    ({"id": USER}, {"organization": "Brightwave"}),
    # Were AttributeError (a string has no .get), a 500: and a dict as an id was taken.
    ({"id": USER}, {"organization": {"id": ORG}, "OAuthClient": "panel-client"}),
    ({"id": USER, "organization": "Brightwave"}, {"organization": {"id": ORG}}),
    ({"id": {"nested": 1}}, {"organization": {"id": ORG}}),
    ({"id": ""}, {"organization": {"id": ORG}}),
    ({"id": USER}, {"organization": {"id": None}}),
    ({"id": USER}, ["organization"]),
])
async def test_an_odd_identity_answer_is_genesys_unavailable(
        users_me: object, tokens_me: object) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=users_me if request.url.path.endswith("users/me")
                              else tokens_me)
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        with pytest.raises(GenesysUnavailable, match="unexpected shape"):
            await GenesysClient(http, 5).identify(API, "token")


async def test_a_host_trickling_its_answer_is_cut_at_the_whole_calls_timeout() -> None:
    """httpx's timeout bounds each read, so a host sending a byte at a time within it
    held a sign-in without end (and nginx, in front, answered a 504 of its own)."""
    async def trickle() -> AsyncIterator[bytes]:
        while True:  # never ends: only the whole call's timeout stops it
            yield b" "
            await asyncio.sleep(0.01)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=trickle())

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        client = GenesysClient(http, timeout_s=0.2)
        with pytest.raises(GenesysUnavailable):
            await client.identify(API, "token")
        with pytest.raises(GenesysUnavailable):
            await client.exchange_code("https://login.mypurecloud.com", code="c", verifier="v",
                                       client_id="id", redirect_uri="https://panel/cb")
