"""server/auth/genesys.py against a scripted transport: what the panel asks Genesys, exactly."""

from __future__ import annotations

import httpx
import pytest

from server.auth.genesys import GenesysClient, current_agents
from server.errors import GenesysPermissionMissing, GenesysUnavailable, NotAParticipant

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


@pytest.mark.parametrize(("header", "told"), [("7", "7"), ("0.2", "1"), (None, "1")])
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
