"""The mock's login host: PKCE code grant, token endpoint, sign-in modes, framing, users.

Real uvicorn on a loopback port, httpx as the browser or the panel's server.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from server.devmode.mocks.genesys import MockGenesysConfig
from tests.devmode.test_mock_genesys import (
    AGENT_ID,
    CLIENT_ID,
    PANEL_ORIGIN,
    PANEL_URL,
    TIMEOUT,
    FakeClock,
    MockServer,
    assert_platform_error,
    authorize,
    bearer,
    fragment_of,
    run_mock,
    start_conversation,
)

DEFAULTS = MockGenesysConfig(public_origin="http://x", panel_url=PANEL_URL)
SECOND_ID = DEFAULTS.second_agent_user_id
OTHER_ID = DEFAULTS.other_user_id
POPUP_URI = f"{PANEL_URL}?popup=1"
DEFAULT_SETTINGS = {
    "signInMode": "auto",
    "loginFrameable": True,
    "signInUserId": AGENT_ID,
    "agentRole": "agent",
    "tokenExpiry": "silent",
}

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def mock(clock: FakeClock) -> Iterator[MockServer]:
    with run_mock(clock=clock, extra_redirect_uris=(POPUP_URI,), heartbeat_s=30) as running:
        yield running


@pytest.fixture
async def client(mock: MockServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=mock.origin, timeout=TIMEOUT) as http:
        yield http
        # Settings are per server: put them back for the next test.
        reset = await http.put("/mock/settings", json=DEFAULT_SETTINGS)
        assert reset.status_code == 200


# Helpers ------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    """A code verifier and its S256 challenge, computed here, not by the mock."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def query_of(response: httpx.Response, base: str = PANEL_URL) -> dict[str, str]:
    """The redirect's query parameters; the rest of the location must be ``base``."""
    location = response.headers["location"]
    assert "#" not in location
    assert location.startswith(base + ("&" if "?" in base else "?")), location
    parts = urlsplit(location)
    return {key: values[0] for key, values in parse_qs(parts.query).items()}


async def authorize_code(http: httpx.AsyncClient, challenge: str, **params: str) -> httpx.Response:
    query = {"code_challenge": challenge, "code_challenge_method": "S256", **params}
    return await authorize(http, response_type="code", **query)


async def get_code(http: httpx.AsyncClient, challenge: str, redirect_uri: str = PANEL_URL) -> str:
    response = await authorize_code(http, challenge, redirect_uri=redirect_uri)
    assert response.status_code == 302, response.text
    return query_of(response, redirect_uri)["code"]


async def exchange(http: httpx.AsyncClient, **fields: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "redirect_uri": PANEL_URL,
        **fields,
    }
    return await http.post("/oauth/token", data={k: v for k, v in form.items() if v != "-"})


def assert_token_error(response: httpx.Response, error: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error and body["error_description"]
    assert response.headers["cache-control"] == "no-store"


async def settings(http: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    response = await http.put("/mock/settings", json=changes)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def token_of(http: httpx.AsyncClient, user_id: str) -> str:
    await settings(http, signInUserId=user_id)
    response = await authorize(http)
    return fragment_of(response)["access_token"]


def sign_in_form(page: httpx.Response) -> str:
    """The pending-request id of a sign-in page."""
    match = re.search(r'<input type="hidden" name="request" value="([^"]+)">', page.text)
    assert match, page.text
    return match.group(1)


async def decide(http: httpx.AsyncClient, request_id: str, **fields: str) -> httpx.Response:
    return await http.post("/oauth/authorize/decision", data={"request": request_id, **fields})


# PKCE ---------------------------------------------------------------------


async def test_code_grant_with_pkce(client: httpx.AsyncClient) -> None:
    verifier, challenge = pkce_pair()
    response = await authorize_code(client, challenge, state="conv=1&x y")
    assert response.status_code == 302
    query = query_of(response)
    assert set(query) == {"code", "state"} and query["state"] == "conv=1&x y"
    exchanged = await exchange(client, code=query["code"], code_verifier=verifier)
    assert exchanged.status_code == 200, exchanged.text
    body = exchanged.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 86400
    assert exchanged.headers["cache-control"] == "no-store"
    token = body["access_token"]
    me = await client.get("/api/v2/users/me", headers=bearer(token))
    assert me.status_code == 200 and me.json()["id"] == AGENT_ID
    info = (await client.get("/api/v2/tokens/me", headers=bearer(token))).json()
    assert info["OAuthClient"]["authorizedGrantType"] == "CODE"


async def test_implicit_tokens_report_grant_type_token(client: httpx.AsyncClient) -> None:
    token = fragment_of(await authorize(client))["access_token"]
    info = (await client.get("/api/v2/tokens/me", headers=bearer(token))).json()
    assert info["OAuthClient"]["authorizedGrantType"] == "TOKEN"


async def test_code_redirect_appends_to_a_registered_query(client: httpx.AsyncClient) -> None:
    verifier, challenge = pkce_pair()
    code = await get_code(client, challenge, redirect_uri=POPUP_URI)
    wrong_uri = await exchange(client, code=code, code_verifier=verifier)
    assert_token_error(wrong_uri, "invalid_grant")
    code = await get_code(client, challenge, redirect_uri=POPUP_URI)
    right = await exchange(client, code=code, code_verifier=verifier, redirect_uri=POPUP_URI)
    assert right.status_code == 200


async def test_wrong_verifier_is_refused_and_uses_the_code_up(client: httpx.AsyncClient) -> None:
    verifier, challenge = pkce_pair()
    code = await get_code(client, challenge)
    other_verifier, _ = pkce_pair()
    assert_token_error(
        await exchange(client, code=code, code_verifier=other_verifier), "invalid_grant"
    )
    # A code that met a wrong guess is gone, even for the right verifier.
    assert_token_error(await exchange(client, code=code, code_verifier=verifier), "invalid_grant")


async def test_a_code_is_single_use(client: httpx.AsyncClient) -> None:
    verifier, challenge = pkce_pair()
    code = await get_code(client, challenge)
    assert (await exchange(client, code=code, code_verifier=verifier)).status_code == 200
    assert_token_error(await exchange(client, code=code, code_verifier=verifier), "invalid_grant")


async def test_a_code_expires_after_its_lifetime(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    verifier, challenge = pkce_pair()
    fresh = await get_code(client, challenge)
    stale = await get_code(client, challenge)
    clock.advance(59)
    assert (await exchange(client, code=fresh, code_verifier=verifier)).status_code == 200
    clock.advance(2)
    assert_token_error(await exchange(client, code=stale, code_verifier=verifier), "invalid_grant")


async def test_a_code_is_bound_to_its_client(client: httpx.AsyncClient) -> None:
    verifier, challenge = pkce_pair()
    code = await get_code(client, challenge)
    response = await exchange(client, code=code, code_verifier=verifier, client_id="other-app")
    assert_token_error(response, "invalid_client")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"grant_type": "-"}, "invalid_request"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token"}, "unsupported_grant_type"),
        ({"code": "-"}, "invalid_request"),
        ({"code_verifier": "-"}, "invalid_request"),
        ({"client_id": "-"}, "invalid_request"),
        ({"redirect_uri": "-"}, "invalid_request"),
        ({"code_verifier": "too-short"}, "invalid_request"),
        ({"code": "not-a-code"}, "invalid_grant"),
    ],
)
async def test_token_endpoint_errors(
    client: httpx.AsyncClient, fields: dict[str, str], error: str
) -> None:
    verifier, challenge = pkce_pair()
    code = await get_code(client, challenge)
    assert_token_error(
        await exchange(client, **{"code": code, "code_verifier": verifier, **fields}), error
    )


async def test_token_endpoint_wants_a_form(client: httpx.AsyncClient) -> None:
    verifier, challenge = pkce_pair()
    code = await get_code(client, challenge)
    as_json = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    assert_token_error(await client.post("/oauth/token", json=as_json), "invalid_request")
    repeated = "grant_type=authorization_code&grant_type=authorization_code"
    response = await client.post(
        "/oauth/token",
        content=repeated,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_token_error(response, "invalid_request")


async def test_token_endpoint_answers_the_panel_origin_cors(client: httpx.AsyncClient) -> None:
    verifier, challenge = pkce_pair()
    code = await get_code(client, challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "client_id": CLIENT_ID,
        "redirect_uri": PANEL_URL,
    }
    response = await client.post("/oauth/token", data=form, headers={"Origin": PANEL_ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == PANEL_ORIGIN
    refused = await client.post("/oauth/token", data=form, headers={"Origin": PANEL_ORIGIN})
    assert refused.status_code == 400
    assert refused.headers["access-control-allow-origin"] == PANEL_ORIGIN


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"code_challenge": "CHALLENGE"},
        {"code_challenge": "CHALLENGE", "code_challenge_method": "plain"},
        {"code_challenge": "short", "code_challenge_method": "S256"},
        {"code_challenge_method": "S256"},
    ],
    ids=["nothing", "no-method", "plain", "malformed", "no-challenge"],
)
async def test_code_request_without_an_s256_challenge_is_refused(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    _, challenge = pkce_pair()
    query = {key: value.replace("CHALLENGE", challenge) for key, value in params.items()}
    response = await authorize(client, response_type="code", state="abc", **query)
    assert response.status_code == 302
    answer = query_of(response)
    assert answer["error"] == "invalid_request" and answer["state"] == "abc"
    assert answer["error_description"] and "code" not in answer


# Sign-in modes -------------------------------------------------------------


async def test_deny_mode_redirects_back_with_access_denied(client: httpx.AsyncClient) -> None:
    await settings(client, signInMode="deny")
    implicit = fragment_of(await authorize(client, state="s1"))
    assert implicit["error"] == "access_denied" and implicit["state"] == "s1"
    assert implicit["error_description"] and "access_token" not in implicit
    _, challenge = pkce_pair()
    code = query_of(await authorize_code(client, challenge, state="s2"))
    assert code["error"] == "access_denied" and code["state"] == "s2" and "code" not in code


async def test_prompt_mode_shows_a_strict_sign_in_page(client: httpx.AsyncClient) -> None:
    await settings(client, signInMode="prompt")
    page = await authorize(client)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "Sign in to Brightwave Mobile as Alex Agent" in html
    for user_id in (AGENT_ID, SECOND_ID, OTHER_ID):
        assert f'<option value="{user_id}"' in html
    assert "Northwind Telecom" in html
    assert re.search(r'<form [^>]*method="post" action="/oauth/authorize/decision"', html)
    assert 'value="allow"' in html and 'value="cancel"' in html
    # No script at all, no inline handlers or styles.
    assert "<script" not in html and not re.search(r"\son[a-z]+\s*=", html)
    assert "style=" not in html and "<style" not in html
    csp = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["form-action"] == f"'self' {PANEL_ORIGIN}"
    assert "unsafe" not in csp and "script-src" not in directives
    assert page.headers["cache-control"] == "no-store"
    assert "x-frame-options" not in page.headers and "frame-ancestors" not in csp
    style = await client.get("/mock/static/signin.css")
    assert style.status_code == 200 and "text/css" in style.headers["content-type"]


async def test_prompt_sign_in_grants_the_chosen_user_once(client: httpx.AsyncClient) -> None:
    await settings(client, signInMode="prompt")
    request_id = sign_in_form(await authorize(client, state="st"))
    granted = await decide(client, request_id, action="allow", user=SECOND_ID)
    assert granted.status_code == 302
    fragment = fragment_of(granted)
    assert fragment["state"] == "st"
    me = await client.get("/api/v2/users/me", headers=bearer(fragment["access_token"]))
    assert me.json()["id"] == SECOND_ID
    replayed = await decide(client, request_id, action="allow", user=SECOND_ID)
    assert replayed.status_code == 400 and "location" not in replayed.headers


async def test_prompt_sign_in_with_the_code_grant(client: httpx.AsyncClient) -> None:
    await settings(client, signInMode="prompt")
    verifier, challenge = pkce_pair()
    request_id = sign_in_form(await authorize_code(client, challenge, state="st"))
    granted = await decide(client, request_id, action="allow", user=OTHER_ID)
    query = query_of(granted)
    assert query["state"] == "st"
    exchanged = await exchange(client, code=query["code"], code_verifier=verifier)
    token = exchanged.json()["access_token"]
    info = (await client.get("/api/v2/tokens/me", headers=bearer(token))).json()
    assert info["organization"]["id"] == DEFAULTS.other_org_id
    assert info["OAuthClient"]["authorizedGrantType"] == "CODE"


async def test_prompt_cancel_redirects_back_with_access_denied(client: httpx.AsyncClient) -> None:
    await settings(client, signInMode="prompt")
    request_id = sign_in_form(await authorize(client, state="st"))
    cancelled = fragment_of(await decide(client, request_id, action="cancel"))
    assert cancelled["error"] == "access_denied" and cancelled["state"] == "st"
    assert "access_token" not in cancelled


@pytest.mark.parametrize(
    "fields",
    [
        {"request": "forged", "action": "allow", "user": AGENT_ID},
        {"action": "allow", "user": "not-a-user"},
        {"action": "maybe", "user": AGENT_ID},
    ],
    ids=["unknown-request", "unknown-user", "unknown-action"],
)
async def test_bad_sign_in_answers_get_an_error_page(
    client: httpx.AsyncClient, fields: dict[str, str]
) -> None:
    await settings(client, signInMode="prompt")
    request_id = sign_in_form(await authorize(client))
    response = await client.post(
        "/oauth/authorize/decision", data={"request": request_id, **fields}
    )
    assert response.status_code == 400 and "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


async def test_auto_signs_in_the_configured_user(client: httpx.AsyncClient) -> None:
    token = await token_of(client, SECOND_ID)
    me = await client.get("/api/v2/users/me", headers=bearer(token))
    assert me.json()["id"] == SECOND_ID


# Framing -------------------------------------------------------------------


def assert_unframeable(response: httpx.Response) -> None:
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_frameable_login_host_sends_no_frame_refusal(client: httpx.AsyncClient) -> None:
    for response in (await authorize(client), await authorize(client, client_id="nope")):
        assert "x-frame-options" not in response.headers
        assert "frame-ancestors" not in response.headers.get("content-security-policy", "")


async def test_unframeable_login_host_refuses_framing_everywhere(
    client: httpx.AsyncClient,
) -> None:
    await settings(client, loginFrameable=False)
    redirect = await authorize(client)
    assert redirect.status_code == 302
    assert_unframeable(redirect)
    assert_unframeable(await authorize(client, client_id="nope"))
    await settings(client, signInMode="prompt")
    page = await authorize(client)
    assert page.status_code == 200
    assert_unframeable(page)
    assert "default-src 'none'" in page.headers["content-security-policy"]
    decided = await decide(client, sign_in_form(page), action="cancel")
    assert decided.status_code == 302
    assert_unframeable(decided)
    assert_unframeable(await client.post("/oauth/token", data={"grant_type": "password"}))


async def test_unframeable_auto_mode_shows_its_page_inside_a_frame(
    client: httpx.AsyncClient,
) -> None:
    # An identity provider that refuses framing cannot be silent in a frame: it shows
    # its page (which the browser refuses to frame); in a popup it stays silent.
    await settings(client, loginFrameable=False)
    in_frame = await client.get(
        "/oauth/authorize",
        params={"response_type": "token", "client_id": CLIENT_ID, "redirect_uri": PANEL_URL},
        headers={"Sec-Fetch-Dest": "iframe"},
    )
    assert in_frame.status_code == 200 and "Sign in to" in in_frame.text
    assert_unframeable(in_frame)
    in_popup = await client.get(
        "/oauth/authorize",
        params={"response_type": "token", "client_id": CLIENT_ID, "redirect_uri": PANEL_URL},
        headers={"Sec-Fetch-Dest": "document"},
    )
    assert in_popup.status_code == 302 and "access_token" in fragment_of(in_popup)
    await settings(client, loginFrameable=True)
    framed_ok = await client.get(
        "/oauth/authorize",
        params={"response_type": "token", "client_id": CLIENT_ID, "redirect_uri": PANEL_URL},
        headers={"Sec-Fetch-Dest": "iframe"},
    )
    assert framed_ok.status_code == 302


async def test_desktop_asks_for_popup_sign_in_while_the_login_host_refuses_frames(
    client: httpx.AsyncClient,
) -> None:
    framed = (await client.post("/mock/conversations", json={})).json()["panelUrl"]
    assert "gcUsePopupAuth" not in framed
    await settings(client, loginFrameable=False)
    popup = (await client.post("/mock/conversations", json={})).json()["panelUrl"]
    assert popup.endswith("&gcUsePopupAuth=true")


# Settings and users ------------------------------------------------------------


async def test_settings_read_and_partial_update(client: httpx.AsyncClient) -> None:
    assert (await client.get("/mock/settings")).json() == DEFAULT_SETTINGS
    changed = await settings(client, signInMode="prompt")
    assert changed == {**DEFAULT_SETTINGS, "signInMode": "prompt"}
    changed = await settings(client, loginFrameable=False, signInUserId=OTHER_ID)
    assert changed == {**DEFAULT_SETTINGS, "signInMode": "prompt", "loginFrameable": False,
                       "signInUserId": OTHER_ID}
    assert (await client.get("/mock/settings")).json() == changed
    closing = await settings(client, tokenExpiry="close")
    assert closing == {**changed, "tokenExpiry": "close"}


@pytest.mark.parametrize(
    "body",
    [
        {"signInMode": "silent"},
        {"signInMode": None},
        {"loginFrameable": "false"},
        {"loginFrameable": 0},
        {"signInUserId": "nobody"},
        {"signInUserId": 7},
        {"signInMode": "deny", "colour": "blue"},
        {"signInMode": "deny", "signInUserId": "nobody"},
        {"signInMode": "deny", "agentRole": "supervisor"},
        {"signInMode": "deny", "tokenExpiry": "drop"},
        {"tokenExpiry": None},
        ["signInMode", "deny"],
        "deny",
    ],
)
async def test_bad_settings_are_400_and_change_nothing(
    client: httpx.AsyncClient, body: Any
) -> None:
    response = await client.put("/mock/settings", json=body)
    assert response.status_code == 400
    error = response.json()
    assert set(error) == {"error", "message"} and error["message"]
    assert (await client.get("/mock/settings")).json() == DEFAULT_SETTINGS


async def test_settings_body_must_be_json(client: httpx.AsyncClient) -> None:
    response = await client.put("/mock/settings", content=b"mode=deny")
    assert response.status_code == 400 and response.json()["error"] == "bad_request"


async def test_mock_users(client: httpx.AsyncClient) -> None:
    users = (await client.get("/mock/users")).json()["users"]
    assert users == [
        {
            "id": AGENT_ID,
            "name": "Alex Agent",
            "orgId": DEFAULTS.org_id,
            "orgName": "Brightwave Mobile",
            "role": "scripted-agent",
        },
        {
            "id": SECOND_ID,
            "name": DEFAULTS.second_agent_name,
            "orgId": DEFAULTS.org_id,
            "orgName": "Brightwave Mobile",
            "role": "second-agent",
        },
        {
            "id": OTHER_ID,
            "name": DEFAULTS.other_user_name,
            "orgId": DEFAULTS.other_org_id,
            "orgName": "Northwind Telecom",
            "role": "other-org",
        },
    ]


async def test_a_user_of_another_org(client: httpx.AsyncClient) -> None:
    token = await token_of(client, OTHER_ID)
    me = await client.get(
        "/api/v2/users/me", params={"expand": "organization"}, headers=bearer(token)
    )
    body = me.json()
    assert body["id"] == OTHER_ID and body["organization"]["id"] == DEFAULTS.other_org_id
    assert body["organization"]["name"] == "Northwind Telecom"
    info = (await client.get("/api/v2/tokens/me", headers=bearer(token))).json()
    other = {"id": DEFAULTS.other_org_id, "name": "Northwind Telecom"}
    assert info["organization"] == other and info["homeOrganization"] == other
    # Conversations and users of the scripted org do not exist from there.
    conversation_id = await start_conversation(client, "billing-double-charge")
    hidden = await client.get(f"/api/v2/conversations/{conversation_id}", headers=bearer(token))
    assert_platform_error(hidden, 404, "not.found")
    agent = await client.get(f"/api/v2/users/{AGENT_ID}", headers=bearer(token))
    assert_platform_error(agent, 404, "not.found")


async def test_the_second_agent_sees_the_conversation_but_is_not_on_it(
    client: httpx.AsyncClient,
) -> None:
    token = await token_of(client, SECOND_ID)
    conversation_id = await start_conversation(client, "billing-double-charge")
    response = await client.get(f"/api/v2/conversations/{conversation_id}", headers=bearer(token))
    assert response.status_code == 200
    agents = [p["userId"] for p in response.json()["participants"] if p["purpose"] == "agent"]
    assert agents == [AGENT_ID]
    info = (await client.get("/api/v2/tokens/me", headers=bearer(token))).json()
    assert info["organization"]["id"] == DEFAULTS.org_id
