"""The mock's OAuth clients API, and clients made through it signing users in.

Real uvicorn on a loopback port, httpx as the installer (client-credentials token)
and as the browser (``/oauth/authorize``, ``/oauth/token``). Answers are checked
against their SDK models (``OAuthClient``, ``OAuthClientEntityListing``, ``TokenInfo``).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.devmode.test_mock_genesys import (
    CLIENT_ID,
    PANEL_URL,
    TIMEOUT,
    MockServer,
    assert_platform_error,
    bearer,
    run_mock,
)
from tests.devmode.test_mock_genesys_admin import APP_REDIRECT, admin_token, create_client, ok


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with run_mock() as running:
        yield running


@pytest.fixture
def http(mock: MockServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock.origin, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture(scope="module")
def admin(mock: MockServer) -> dict[str, str]:
    return bearer(admin_token(mock))


# OAuth clients ----------------------------------------------------------------------


def test_the_org_starts_with_its_own_clients(http: httpx.Client, admin: dict[str, str],
                                             mock: MockServer) -> None:
    listing = ok(http.get("/api/v2/oauth/clients", headers=admin, params={"pageSize": 100}),
                 "OAuthClientEntityListing")
    seeded = {c["id"]: c for c in listing["entities"]}
    dev, admin_client = seeded[CLIENT_ID], seeded[mock.config.admin_client_id]
    assert (dev["authorizedGrantType"], dev["registeredRedirectUri"]) == ("CODE", [PANEL_URL])
    assert dev["name"] == mock.config.client_name and dev["scope"] == list(mock.config.scopes)
    assert admin_client["authorizedGrantType"] == "CLIENT-CREDENTIALS"
    # The installer deletes clients named with its prefix: none of the org's own may be.
    assert not [c for c in (dev, admin_client) if c["name"].startswith("Assist Panel")]


def test_client_create_read_update_delete(http: httpx.Client, admin: dict[str, str]) -> None:
    made = ok(create_client(http, admin, authorizedGrantType="CODE", description="Signs in",
                            scope=["user-basic-info", "notifications"]), "OAuthClient")
    assert made["authorizedGrantType"] == "CODE" and made["state"] == "active"
    assert made["secret"] and made["accessTokenValiditySeconds"] == 86400
    assert made["registeredRedirectUri"] == [APP_REDIRECT] and made["description"] == "Signs in"
    path = f"/api/v2/oauth/clients/{made['id']}"
    assert ok(http.get(path, headers=admin), "OAuthClient") == made

    change = {"name": made["name"], "authorizedGrantType": "TOKEN", "scope": ["user-basic-info"],
              "registeredRedirectUri": [APP_REDIRECT, APP_REDIRECT + "?popup=1"],
              "accessTokenValiditySeconds": 3600}
    updated = ok(http.put(path, headers=admin, json=change), "OAuthClient")
    assert (updated["id"], updated["secret"], updated["dateCreated"]) == (
        made["id"], made["secret"], made["dateCreated"])
    assert updated["authorizedGrantType"] == "TOKEN" and "description" not in updated
    assert updated["accessTokenValiditySeconds"] == 3600
    assert len(updated["registeredRedirectUri"]) == 2
    listing = ok(http.get("/api/v2/oauth/clients", headers=admin, params={"pageSize": 500}))
    assert updated in listing["entities"]

    deleted = http.delete(path, headers=admin)
    assert deleted.status_code == 204 and deleted.content == b""
    for method in ("GET", "PUT", "DELETE"):
        assert_platform_error(http.request(method, path, headers=admin, json=change), 404,
                              "not.found")


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"name": " "}, "name"),
        ({"authorizedGrantType": "PASSWORD"}, "authorizedGrantType"),
        ({"registeredRedirectUri": []}, "registeredRedirectUri"),
        ({"registeredRedirectUri": ["/panel"]}, "registeredRedirectUri"),
        ({"registeredRedirectUri": [APP_REDIRECT + "#x"]}, "registeredRedirectUri"),
        ({"authorizedGrantType": "CODE", "scope": []}, "scope"),
        ({"scope": "user-basic-info"}, "scope"),
        ({"accessTokenValiditySeconds": 299}, "accessTokenValiditySeconds"),
        ({"accessTokenValiditySeconds": 172801}, "accessTokenValiditySeconds"),
        ({"accessTokenValiditySeconds": "86400"}, "accessTokenValiditySeconds"),
    ],
)
def test_a_bad_client_request_says_what_is_wrong(
    http: httpx.Client, admin: dict[str, str], fields: dict[str, Any], named: str
) -> None:
    refused = create_client(http, admin, **fields)
    assert_platform_error(refused, 400, "bad.request")
    assert named in refused.json()["message"] and refused.json()["messageParams"]["field"] == named


def test_a_client_credentials_client_needs_no_redirect(http: httpx.Client,
                                                        admin: dict[str, str]) -> None:
    made = ok(create_client(http, admin, authorizedGrantType="CLIENT-CREDENTIALS",
                            registeredRedirectUri=[], scope=[],
                            accessTokenValiditySeconds=300), "OAuthClient")
    assert "registeredRedirectUri" not in made and made["accessTokenValiditySeconds"] == 300
    page = http.get("/oauth/authorize", params={"response_type": "token", "client_id": made["id"],
                                                "redirect_uri": APP_REDIRECT})
    assert page.status_code == 400 and "location" not in page.headers


# Created clients sign users in ----------------------------------------------------------


def authorize(http: httpx.Client, client_id: str, redirect_uri: str = APP_REDIRECT,
              **params: str) -> httpx.Response:
    query = {"response_type": "token", "client_id": client_id, "redirect_uri": redirect_uri,
             "state": "s", **params}
    return http.get("/oauth/authorize", params=query)


def answer_of(response: httpx.Response, base: str = APP_REDIRECT) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert location._replace(query="", fragment="").geturl() == base
    found = parse_qs(location.fragment or location.query)
    return {key: values[0] for key, values in found.items()}


def test_a_created_token_client_signs_a_user_in(http: httpx.Client,
                                                admin: dict[str, str]) -> None:
    client = ok(create_client(http, admin, accessTokenValiditySeconds=600))
    signed_in = answer_of(authorize(http, client["id"]))
    assert signed_in["expires_in"] == "600" and signed_in["state"] == "s"
    user = bearer(signed_in["access_token"])
    me = ok(http.get("/api/v2/tokens/me", headers=user), "TokenInfo")
    assert me["OAuthClient"]["id"] == client["id"] and me["OAuthClient"]["name"] == client["name"]
    assert me["OAuthClient"]["authorizedGrantType"] == "TOKEN"
    assert me["authorizedScope"] == ["user-basic-info"]

    # Its own redirect URI only, and not the code grant.
    wrong = authorize(http, client["id"], PANEL_URL)
    assert wrong.status_code == 400 and "location" not in wrong.headers
    refused = answer_of(authorize(http, client["id"], response_type="code",
                                  code_challenge="a" * 43, code_challenge_method="S256"))
    assert refused["error"] == "unauthorized_client" and "code" not in refused
    # The dev client still does not accept the created client's redirect URI.
    assert authorize(http, CLIENT_ID).status_code == 400

    # Deleting the client revokes its tokens and stops its sign-ins.
    assert http.delete(f"/api/v2/oauth/clients/{client['id']}", headers=admin).status_code == 204
    assert_platform_error(http.get("/api/v2/users/me", headers=user), 401, "bad.credentials")
    assert authorize(http, client["id"]).status_code == 400


def test_a_created_code_client_signs_in_with_pkce(http: httpx.Client,
                                                  admin: dict[str, str]) -> None:
    client = ok(create_client(http, admin, authorizedGrantType="CODE"))
    token_client = ok(create_client(http, admin))
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    pkce = {"response_type": "code", "code_challenge": challenge, "code_challenge_method": "S256"}
    implicit = answer_of(authorize(http, client["id"]))
    assert implicit["error"] == "unauthorized_client"

    form = {"grant_type": "authorization_code", "code_verifier": verifier,
            "redirect_uri": APP_REDIRECT}
    # A code can only be exchanged by a registered CODE client (and only by its own).
    code = answer_of(authorize(http, client["id"], **pkce))["code"]
    wrong = http.post("/oauth/token", data={**form, "code": code, "client_id": token_client["id"]})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_client"
    code = answer_of(authorize(http, client["id"], **pkce))["code"]
    exchanged = http.post("/oauth/token", data={**form, "code": code, "client_id": client["id"]})
    assert exchanged.status_code == 200, exchanged.text
    assert exchanged.json()["expires_in"] == 86400
    me = ok(http.get("/api/v2/tokens/me", headers=bearer(exchanged.json()["access_token"])))
    assert (me["OAuthClient"]["id"], me["OAuthClient"]["authorizedGrantType"]) == (
        client["id"], "CODE")


def test_admin_tokens_me_names_the_admin_client(http: httpx.Client, admin: dict[str, str],
                                                mock: MockServer) -> None:
    me = ok(http.get("/api/v2/tokens/me", headers=admin), "TokenInfo")
    assert me["OAuthClient"]["id"] == mock.config.admin_client_id
    assert me["OAuthClient"]["authorizedGrantType"] == "CLIENT-CREDENTIALS"
