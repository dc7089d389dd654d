"""Sign-in and sessions over real HTTP: the panel server against the mock Genesys Cloud.

Every refusal the handoff and the session check make, and the happy paths of
both grants. Tokens come from the mock's real ``/oauth/authorize``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from server.app import create_app
from server.auth.oauth_state import StateCodec
from server.devmode.mocks.genesys import MockGenesysConfig, create_mock_genesys_app
from server.devmode.mocks.genesys.state import MockGenesysState
from server.web.panel import CLIENT_APP_SDK
from tests.asgi import Response, TestClient, asgi_client
from tests.factories import (
    CLIENT_ID,
    ORG,
    SECRET,
    USER,
    bearer,
    make_settings,
    session_for,
)
from tests.servers import listening_socket, serve

PANEL_PUBLIC = "http://panel.test"


# The panel app called at the ASGI level, or a client of a panel in its own process.
Panel = TestClient | httpx.Client


@dataclass
class Platform:
    """The mock Genesys and a panel server wired to it."""

    genesys: str
    panel: Panel
    state: MockGenesysState

    def conversation(self, script: str = "billing-double-charge", *, direct: bool = False
                     ) -> str:
        response = httpx.post(f"{self.genesys}/mock/conversations",
                              json={"script": script, "direct": direct})
        assert response.status_code == 201, response.text
        return str(response.json()["conversationId"])


@pytest.fixture(scope="module")
def mock_genesys() -> Iterator[tuple[str, MockGenesysState]]:
    sock = listening_socket()
    origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_mock_genesys_app(MockGenesysConfig(
        public_origin=origin, panel_url=f"{PANEL_PUBLIC}/panel", client_id=CLIENT_ID))
    with serve(app, sock=sock) as base:
        yield base, app.state.mock_genesys


def panel_settings(genesys: str, kb: Path, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "kb_path": kb, "public_url": PANEL_PUBLIC, "genesys_api_base": genesys,
        "genesys_login_base": genesys, "extra_frame_ancestors": (genesys,),
        "oauth_grant": "implicit", "extractive_token_delay_ms": 0}
    values.update(overrides)
    return make_settings(**values)


@pytest.fixture(scope="module")
def platform(mock_genesys: tuple[str, MockGenesysState],
             sample_kb_path: Path) -> Iterator[Platform]:
    genesys, state = mock_genesys
    with asgi_client(create_app(panel_settings(genesys, sample_kb_path))) as panel:
        yield Platform(genesys, panel, state)


def start(panel: Panel, conversation_id: str, **extra: str) -> dict[str, Any]:
    """POST /auth/state as the page does."""
    response = panel.post("/auth/state", json={
        "conversationId": conversation_id, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ask(panel: Panel, conversation_id: str, session: str) -> Response | httpx.Response:
    """A manual stream request with a session, read to the end (it ends with ``done``)."""
    return panel.post("/api/assist/stream", headers={"Authorization": f"Bearer {session}"},
                      json={"conversationId": conversation_id, "trigger": "manual",
                            "query": "How do I get a refund?"})


def authorize(url: str) -> dict[str, str]:
    """Follow the authorize URL to the mock and read its answer from the redirect."""
    response = httpx.get(url)
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{PANEL_PUBLIC}/panel"
    return dict(parse_qsl(location.fragment or location.query))


def handoff(panel: Panel, body: dict[str, Any], **headers: str) -> Response | httpx.Response:
    return panel.post("/api/session", json=body, headers=headers)


def sign_in(platform: Platform, conversation_id: str) -> dict[str, Any]:
    """The whole implicit-grant sign-in; the session answer."""
    started = start(platform.panel, conversation_id)
    answer = authorize(started["authorizeUrl"])
    assert answer["state"] == started["state"]
    response = handoff(platform.panel, {"state": answer["state"],
                                        "accessToken": answer["access_token"],
                                        "expiresIn": int(answer["expires_in"])})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# Happy path -----------------------------------------------------------------------------

def test_implicit_sign_in_hands_over_to_a_session_that_streams(platform: Platform) -> None:
    conversation = platform.conversation()
    result = sign_in(platform, conversation)
    assert result["conversationId"] == conversation
    assert result["user"]["id"] == USER
    assert result["organization"]["id"] == ORG
    assert result["genesys"]["apiBase"] == platform.genesys
    assert result["context"]["conversationId"] == conversation
    now_ms = time.time() * 1000
    # Never past the token (86400 s here) nor the session lifetime (3600 s by default).
    assert now_ms < result["expiresAt"] <= now_ms + 3600 * 1000 + 1000
    response = ask(platform.panel, conversation, result["session"])
    assert response.status_code == 200
    assert "event: done" in response.text


def test_an_agent_on_a_direct_call_gets_a_session(platform: Platform) -> None:
    # Broke: only "agent" participants counted; on a call dialled straight to the agent
    # (no queue) Genesys names the agent a "user" participant, and sign-in was refused.
    conversation = platform.conversation(direct=True)
    result = sign_in(platform, conversation)
    assert result["conversationId"] == conversation and result["user"]["id"] == USER
    assert ask(platform.panel, conversation, result["session"]).status_code == 200


def test_session_never_outlives_the_genesys_token(platform: Platform) -> None:
    conversation = platform.conversation()
    started = start(platform.panel, conversation)
    answer = authorize(started["authorizeUrl"])
    response = handoff(platform.panel, {"state": answer["state"],
                                        "accessToken": answer["access_token"], "expiresIn": 120})
    assert response.status_code == 200
    assert response.json()["expiresAt"] <= (time.time() + 121) * 1000


def test_state_carries_the_host_origin_and_language_through_sign_in(platform: Platform) -> None:
    conversation = platform.conversation()
    started = start(platform.panel, conversation, gcHostOrigin=platform.genesys,
                    gcTargetEnv="mock", langTag="de-DE")
    answer = authorize(started["authorizeUrl"])
    response = handoff(platform.panel, {"state": answer["state"],
                                        "accessToken": answer["access_token"],
                                        "expiresIn": int(answer["expires_in"])})
    assert response.json()["context"] == {"conversationId": conversation,
                                          "gcHostOrigin": platform.genesys,
                                          "gcTargetEnv": "mock", "langTag": "de-DE",
                                          # Framed by a desktop the settings allow: the
                                          # page loads the Client App SDK after sign-in.
                                          "clientAppSdk": CLIENT_APP_SDK}


def test_pkce_sign_in_exchanges_the_code_on_the_server(
        mock_genesys: tuple[str, MockGenesysState], sample_kb_path: Path) -> None:
    genesys, state = mock_genesys
    settings = panel_settings(genesys, sample_kb_path, oauth_grant="pkce")
    with asgi_client(create_app(settings)) as panel:
        platform = Platform(genesys, panel, state)
        conversation = platform.conversation()
        started = start(panel, conversation)
        query = dict(parse_qsl(urlsplit(started["authorizeUrl"]).query))
        assert query["response_type"] == "code"
        assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
        answer = authorize(started["authorizeUrl"])
        assert set(answer) == {"code", "state"}  # in the query; no token in the browser's URL
        response = handoff(panel, {"state": answer["state"], "code": answer["code"]})
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["user"]["id"] == USER
        assert ask(panel, conversation, result["session"]).status_code == 200
        # The code is single use at Genesys: a second handoff (with a fresh state) fails.
        again = handoff(panel, {"state": start(panel, conversation)["state"],
                                "code": answer["code"]})
        assert again.status_code == 400
        assert again.json()["error"] == "invalid_state"


def test_an_implicit_session_never_trusts_the_claimed_token_life(platform: Platform) -> None:
    """A token that really lives 300 s, claimed to live two days, gave a 3,600 s session."""
    conversation = platform.conversation()
    answer = authorize(start(platform.panel, conversation)["authorizeUrl"])
    response = handoff(platform.panel, {"state": answer["state"],
                                        "accessToken": answer["access_token"],
                                        "expiresIn": 172_800})
    assert response.status_code == 200, response.text
    # ASSIST_IMPLICIT_SESSION_TTL_S (300 s): no Genesys token lives less.
    assert response.json()["expiresAt"] <= (time.time() + 301) * 1000


def test_code_for_an_implicit_sign_in_is_refused(platform: Platform) -> None:
    started = start(platform.panel, platform.conversation())
    response = handoff(platform.panel, {"state": started["state"], "code": "abc"})
    assert response.status_code == 400
    assert response.json()["error"] == "wrong_grant"


@pytest.fixture
def short_tokens(sample_kb_path: Path) -> Iterator[Platform]:
    """A mock whose tokens live 600 s, and a PKCE panel with hour-long sessions."""
    sock = listening_socket()
    origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_mock_genesys_app(MockGenesysConfig(
        public_origin=origin, panel_url=f"{PANEL_PUBLIC}/panel", client_id=CLIENT_ID,
        token_lifetime_s=600))
    with serve(app, sock=sock) as genesys, asgi_client(create_app(panel_settings(
            genesys, sample_kb_path, oauth_grant="pkce", session_ttl_s=3600))) as panel:
        yield Platform(genesys, panel, app.state.mock_genesys)


def _pkce_sign_in(platform: Platform, conversation: str) -> dict[str, Any]:
    answer = authorize(start(platform.panel, conversation)["authorizeUrl"])
    response = handoff(platform.panel, {"state": answer["state"], "code": answer["code"]})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_pkce_session_ends_when_genesys_says_its_token_does(short_tokens: Platform) -> None:
    before = time.time()
    result = _pkce_sign_in(short_tokens, short_tokens.conversation())
    after = time.time()
    for expiry in (result["expiresAt"], result["genesys"]["expiresAt"]):
        assert (before + 600) * 1000 - 1000 <= expiry <= (after + 600) * 1000 + 1000


# Renewal ------------------------------------------------------------------------------------

def renew(panel: Panel, session: str, token: str, **body: Any) -> Response | httpx.Response:
    return panel.post("/api/session/renew", json={"accessToken": token, **body},
                      headers={"Authorization": f"Bearer {session}"})


def test_a_pkce_session_is_renewed_with_its_token_and_never_past_it(
        short_tokens: Platform) -> None:
    conversation = short_tokens.conversation()
    first = _pkce_sign_in(short_tokens, conversation)
    response = renew(short_tokens.panel, first["session"], first["genesys"]["accessToken"])
    assert response.status_code == 200, response.text
    renewed = response.json()
    assert renewed["conversationId"] == conversation and renewed["user"]["id"] == USER
    # The token's end, as Genesys gave it at the code exchange, carries over: an hour's
    # session is still cut at the token's 600 s.
    assert renewed["expiresAt"] <= first["genesys"]["expiresAt"] + 1
    assert renewed["genesys"]["expiresAt"] == first["genesys"]["expiresAt"]
    assert ask(short_tokens.panel, conversation, renewed["session"]).status_code == 200


def test_an_implicit_renewal_is_short_and_checked_again(platform: Platform) -> None:
    conversation = platform.conversation()
    first = sign_in(platform, conversation)
    response = renew(platform.panel, first["session"], first["genesys"]["accessToken"],
                     langTag="fr-FR")
    assert response.status_code == 200, response.text
    renewed = response.json()
    assert renewed["expiresAt"] <= (time.time() + 301) * 1000  # the implicit bound
    assert renewed["genesys"]["expiresAt"] == renewed["expiresAt"]  # nothing unconfirmed
    assert renewed["context"]["langTag"] == "fr-FR"


def test_a_revoked_token_gets_no_more_sessions(platform: Platform) -> None:
    conversation = platform.conversation()
    first = sign_in(platform, conversation)
    platform.state.expire_token(first["genesys"]["accessToken"])
    response = renew(platform.panel, first["session"], first["genesys"]["accessToken"])
    assert response.status_code == 401
    assert response.json()["error"] == "genesys_token_rejected"


def test_a_renewal_with_another_users_token_is_refused(platform: Platform) -> None:
    conversation = platform.conversation()
    someone_else = session_for(conversation, user_id=platform.state.config.second_agent_user_id)
    response = renew(platform.panel, someone_else, _token(platform))
    assert response.status_code == 403
    assert response.json()["error"] == "token_mismatch"


def test_a_renewal_from_an_unknown_host_origin_is_refused(platform: Platform) -> None:
    """Regression: a bracketed host that is no IPv6 address was a 500."""
    conversation = platform.conversation()
    first = sign_in(platform, conversation)
    response = renew(platform.panel, first["session"], first["genesys"]["accessToken"],
                     gcHostOrigin="http://[zz]")
    assert response.status_code == 400
    assert response.json()["error"] == "unknown_host_origin"


def test_a_renewal_needs_a_live_session(platform: Platform) -> None:
    conversation = platform.conversation()
    expired = session_for(conversation, ttl_s=-1)
    response = renew(platform.panel, expired, _token(platform))
    assert response.status_code == 401
    assert response.json()["error"] == "session_expired"


# Refusals: state ----------------------------------------------------------------------------

def _token(platform: Platform) -> str:
    return platform.state.issue_token(USER, CLIENT_ID).value


def test_forged_state_is_refused(platform: Platform) -> None:
    conversation = platform.conversation()
    state = start(platform.panel, conversation)["state"]
    forged = StateCodec("another-secret-of-enough-length", 600).issue(
        conversation_id=conversation, host_origin="", target_env="", lang_tag="en-US",
        grant="implicit")[0]
    tampered = state[:-3] + ("AAA" if not state.endswith("AAA") else "BBB")
    for bad in (forged, tampered, "not-a-state"):
        response = handoff(platform.panel, {"state": bad, "accessToken": _token(platform),
                                            "expiresIn": 600})
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_state"


def test_expired_state_is_refused(platform: Platform) -> None:
    conversation = platform.conversation()
    an_hour_ago = StateCodec(SECRET, 600, clock=lambda: time.time() - 3600)
    state, _ = an_hour_ago.issue(conversation_id=conversation, host_origin="", target_env="",
                                 lang_tag="en-US", grant="implicit")
    response = handoff(platform.panel, {"state": state, "accessToken": _token(platform),
                                        "expiresIn": 600})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_state",
                               "message": "The sign-in state has expired; sign in again."}


def test_replayed_state_is_refused(platform: Platform) -> None:
    conversation = platform.conversation()
    started = start(platform.panel, conversation)
    answer = authorize(started["authorizeUrl"])
    body = {"state": answer["state"], "accessToken": answer["access_token"], "expiresIn": 600}
    assert handoff(platform.panel, body).status_code == 200
    again = handoff(platform.panel, body)
    assert again.status_code == 400
    assert again.json()["message"] == "The sign-in state has already been used."


def test_a_state_used_on_one_replica_is_refused_on_another(
        mock_genesys: tuple[str, MockGenesysState], sample_kb_path: Path,
        redis_url: str) -> None:
    genesys, state = mock_genesys
    settings = panel_settings(genesys, sample_kb_path, redis_url=redis_url)
    with asgi_client(create_app(settings)) as a, asgi_client(create_app(settings)) as b:
        replica_a = Platform(genesys, a, state)
        started = start(a, replica_a.conversation())
        answer = authorize(started["authorizeUrl"])
        body = {"state": answer["state"], "accessToken": answer["access_token"],
                "expiresIn": 600}
        assert handoff(a, body).status_code == 200
        again = handoff(b, body)  # the same answer, replayed to the other replica
        assert again.status_code == 400
        assert again.json()["message"] == "The sign-in state has already been used."


@pytest.mark.parametrize("body", [
    {"state": "s"},
    {"state": "s", "accessToken": "t"},  # no expiresIn
    {"state": "s", "accessToken": "t", "expiresIn": 60, "code": "c"},
    {"state": "s", "accessToken": "t", "expiresIn": 60, "extra": 1},
])
def test_malformed_handoff_is_400(platform: Platform, body: dict[str, Any]) -> None:
    response = handoff(platform.panel, body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# Refusals: who the token is -----------------------------------------------------------------

def test_rejected_genesys_token_is_401(platform: Platform) -> None:
    conversation = platform.conversation()
    token = _token(platform)
    platform.state.expire_token(token)
    for value in (token, "never-issued"):
        state = start(platform.panel, conversation)["state"]
        response = handoff(platform.panel, {"state": state, "accessToken": value,
                                            "expiresIn": 600})
        assert response.status_code == 401
        assert response.json()["error"] == "genesys_token_rejected"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_org_outside_the_allowlist_is_refused(
        mock_genesys: tuple[str, MockGenesysState], sample_kb_path: Path) -> None:
    genesys, state = mock_genesys
    settings = panel_settings(genesys, sample_kb_path,
                              allowed_orgs=("00000000-0000-4000-8000-000000000000",))
    with asgi_client(create_app(settings)) as panel:
        platform = Platform(genesys, panel, state)
        conversation = platform.conversation()
        started = start(panel, conversation)
        response = handoff(panel, {"state": started["state"], "accessToken": _token(platform),
                                   "expiresIn": 600})
    assert response.status_code == 403
    assert response.json()["error"] == "org_not_allowed"


@pytest.mark.parametrize(("user", "code"), [
    # The mock's other org is a real second tenant: its user's token verifies, its org
    # is not on the allowlist.
    ("other_user_id", "org_not_allowed"),
    # An agent of the allowed org, but not on this conversation.
    ("second_agent_user_id", "not_a_participant"),
])
def test_tokens_of_other_users_are_refused(platform: Platform, user: str, code: str) -> None:
    token = platform.state.issue_token(getattr(platform.state.config, user), CLIENT_ID).value
    started = start(platform.panel, platform.conversation())
    response = handoff(platform.panel, {"state": started["state"], "accessToken": token,
                                        "expiresIn": 600})
    assert response.status_code == 403
    assert response.json()["error"] == code


@pytest.mark.parametrize(("overrides", "status", "code"), [
    ({"oauth_client_id": "someone-elses-client"}, 403, "wrong_oauth_client"),
    # Broke: with PKCE configured, {state, accessToken, expiresIn} still got a session
    # whose life was the client's word.
    ({"oauth_grant": "pkce"}, 400, "wrong_grant"),
], ids=["another oauth client", "pkce server, implicit handoff"])
def test_a_token_handoff_the_panel_is_not_configured_for_is_refused(
        mock_genesys: tuple[str, MockGenesysState], sample_kb_path: Path,
        overrides: dict[str, str], status: int, code: str) -> None:
    genesys, state = mock_genesys
    with asgi_client(create_app(panel_settings(genesys, sample_kb_path, **overrides))) as panel:
        platform = Platform(genesys, panel, state)
        started = start(panel, platform.conversation())
        response = handoff(panel, {"state": started["state"], "accessToken": _token(platform),
                                   "expiresIn": 172_800})
    assert response.status_code == status
    assert response.json()["error"] == code


def test_a_role_without_the_conversation_permission_is_named_not_taken_for_an_outsider(
        platform: Platform) -> None:
    """Regression: Genesys's 403 missing.permissions on GET /conversations/{id} was read
    as "not an agent on this conversation", and admins looked at routing, not roles."""
    conversation = platform.conversation()
    settings = f"{platform.genesys}/mock/settings"
    assert httpx.put(settings, json={"agentRole": "agent-without-communication"}).is_success
    try:
        started = start(platform.panel, conversation)
        response = handoff(platform.panel, {"state": started["state"],
                                            "accessToken": _token(platform), "expiresIn": 600})
    finally:
        assert httpx.put(settings, json={"agentRole": "agent"}).is_success
    assert response.status_code == 403
    assert response.json()["error"] == "genesys_permission_missing"
    assert "conversation:communication:view" in response.json()["message"]


def test_a_token_without_the_conversations_scope_is_rejected_not_taken_for_an_outsider(
        platform: Platform) -> None:
    """Regression: Genesys's 403 missing.any.scopes on GET /conversations/{id} (the OAuth
    client lacks conversations:readonly) was read as "not an agent on this conversation"."""
    conversation = platform.conversation()
    client = platform.state.oauth_clients.get(CLIENT_ID)
    assert client is not None
    platform.state.oauth_clients.put(dataclasses.replace(
        client, scopes=tuple(s for s in client.scopes if s != "conversations:readonly")))
    try:
        token = _token(platform)  # a token carries its client's scopes when issued
    finally:
        platform.state.oauth_clients.put(client)
    started = start(platform.panel, conversation)
    response = handoff(platform.panel, {"state": started["state"], "accessToken": token,
                                        "expiresIn": 600})
    assert response.status_code == 401
    assert response.json()["error"] == "genesys_token_rejected"
    assert "scopes" in response.json()["message"]


def test_conversation_the_agent_is_not_on_is_refused(platform: Platform) -> None:
    unknown = "0b7c2d1e-3f4a-4b5c-8d6e-7f8091a2b3c4"  # not a conversation of this org
    started = start(platform.panel, unknown)
    response = handoff(platform.panel, {"state": started["state"],
                                        "accessToken": _token(platform), "expiresIn": 600})
    assert response.status_code == 403
    assert response.json()["error"] == "not_a_participant"


def test_unreachable_genesys_is_503(sample_kb_path: Path) -> None:
    closed = listening_socket()  # bound, never listening: connections are refused
    genesys = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with asgi_client(create_app(panel_settings(genesys, sample_kb_path))) as panel:
        started = start(panel, "0b7c2d1e-3f4a-4b5c-8d6e-7f8091a2b3c4")
        response = handoff(panel, {"state": started["state"], "accessToken": "t",
                                   "expiresIn": 600})
    closed.close()
    assert response.status_code == 503
    assert response.json()["error"] == "genesys_unavailable"
    assert "retry-after" in response.headers


# Refusals: where the panel runs -------------------------------------------------------------

@pytest.mark.parametrize("host_origin", [
    "https://apps.evil.example", "https://apps.mypurecloud.com.evil.example", "javascript:1",
    "http://[::1", "http://[zz]",  # regression: urlsplit raised, a 500
])
def test_unknown_host_origin_is_refused_before_sign_in(platform: Platform,
                                                       host_origin: str) -> None:
    response = platform.panel.post("/auth/state", json={
        "conversationId": platform.conversation(), "gcHostOrigin": host_origin})
    assert response.status_code == 400
    assert response.json()["error"] == "unknown_host_origin"


# Refusals: sessions -------------------------------------------------------------------------

def test_stream_without_forged_or_expired_session_is_401(platform: Platform) -> None:
    conversation = platform.conversation()
    forged = session_for(conversation, secret="another-secret-of-enough-length")
    cases = [({}, "invalid_session"),
             ({"Authorization": "Basic abc"}, "invalid_session"),
             ({"Authorization": f"Bearer {forged}"}, "invalid_session"),
             ({"Authorization": "Bearer " + session_for(conversation)[:-2] + "xx"},
              "invalid_session"),
             (bearer(conversation, ttl_s=-1), "session_expired")]
    for headers, code in cases:
        response = platform.panel.post("/api/assist/stream", headers=headers, json={
            "conversationId": conversation, "trigger": "manual", "query": "refund"})
        assert response.status_code == 401, headers
        assert response.json()["error"] == code
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_session_for_another_conversation_is_403(platform: Platform) -> None:
    mine, other = platform.conversation(), platform.conversation()
    session = sign_in(platform, mine)["session"]
    response = ask(platform.panel, other, session)
    assert response.status_code == 403
    assert response.json()["error"] == "wrong_conversation"


def test_every_api_route_but_the_handoff_requires_a_session(platform: Platform,
                                                            sample_kb_path: Path) -> None:
    app = create_app(panel_settings(platform.genesys, sample_kb_path))
    paths = {getattr(r, "path", "") for r in app.routes}
    api_paths = sorted(p for p in paths if p.startswith("/api/") and p != "/api/session")
    assert {"/api/assist/stream", "/api/feedback"} <= set(api_paths), api_paths
    conversation = platform.conversation()
    forged = session_for(conversation, secret="another-secret-of-enough-length")
    cases = [({}, "invalid_session"),
             ({"Authorization": f"Bearer {forged}"}, "invalid_session"),
             (bearer(conversation, ttl_s=-1), "session_expired")]
    for path in api_paths:
        for headers, code in cases:
            response = platform.panel.post(path, headers=headers, json={})
            assert response.status_code == 401, (path, headers)
            assert response.json()["error"] == code, (path, headers)


# No server-side store ------------------------------------------------------------------------

@contextlib.contextmanager
def serve_process(env: dict[str, str]) -> Iterator[str]:
    """``assist-panel serve`` in its own process, on a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "serve"],
        env={**os.environ, **env, "ASSIST_PORT": str(port), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        output = []
        for line in process.stdout:  # uvicorn's own "running" line is the event
            output.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            pytest.fail("serve did not start:\n" + "".join(output))
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_a_session_from_one_process_works_on_another_sharing_the_secret(
        mock_genesys: tuple[str, MockGenesysState], sample_kb_path: Path) -> None:
    genesys, state = mock_genesys
    env = {"ASSIST_SESSION_SECRET": SECRET, "ASSIST_ALLOWED_ORGS": ORG,
           "ASSIST_OAUTH_CLIENT_ID": CLIENT_ID, "ASSIST_OAUTH_GRANT": "implicit",
           "ASSIST_GENESYS_API_BASE": genesys, "ASSIST_GENESYS_LOGIN_BASE": genesys,
           "ASSIST_PUBLIC_URL": PANEL_PUBLIC, "ASSIST_KB_PATH": str(sample_kb_path),
           "ASSIST_EXTRACTIVE_TOKEN_DELAY_MS": "0"}
    other_secret = {**env, "ASSIST_SESSION_SECRET": "a-different-secret-0123456789"}
    with serve_process(env) as one, serve_process(env) as two, \
            serve_process(other_secret) as three, httpx.Client(base_url=one) as first, \
            httpx.Client(base_url=two) as second, httpx.Client(base_url=three) as stranger:
        platform = Platform(genesys, first, state)
        conversation = platform.conversation()
        # The state comes from the first process, the handoff goes to the second...
        started = start(first, conversation)
        answer = authorize(started["authorizeUrl"])
        response = handoff(second, {"state": answer["state"], "accessToken": answer["access_token"],
                                    "expiresIn": int(answer["expires_in"])})
        assert response.status_code == 200, response.text
        session = response.json()["session"]
        # ...and the session works on both, but not where the secret differs.
        assert ask(first, conversation, session).status_code == 200
        assert ask(second, conversation, session).status_code == 200
        refused = ask(stranger, conversation, session)
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_session"
