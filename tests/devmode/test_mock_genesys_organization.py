"""The mock's org roles and queues, as ``assist-panel status`` reads them:
``GET /api/v2/authorization/roles`` and ``GET /api/v2/routing/queues``.

Real uvicorn on a loopback port, httpx as the admin client (client-credentials
token). Every answer is checked against its SDK model with the strict checker of
``test_mock_genesys_models``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from server.devmode.mocks.genesys.config import ADMIN_PERMISSIONS
from tests.devmode.test_mock_genesys import (
    CLIENT_ID,
    PANEL_URL,
    TIMEOUT,
    MockServer,
    assert_platform_error,
    bearer,
    run_mock,
)
from tests.devmode.test_mock_genesys_admin import admin_token
from tests.devmode.test_mock_genesys_models import assert_model

ROLES = "/api/v2/authorization/roles"
QUEUES = "/api/v2/routing/queues"
TRANSCRIPTION = "conversation:transcription:view"
ROLE_REQUIRED = ["entities[].id", "entities[].name", "entities[].permissionPolicies",
                 "pageCount", "total"]
QUEUE_REQUIRED = ["entities[].id", "entities[].name", "entities[].enableTranscription",
                  "pageCount", "total"]
ALL_ROLES = ["Agent", "Assist Agent", "Employee", "Master Admin", "Supervisor"]


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


def roles(http: httpx.Client, admin: dict[str, str], **params: Any) -> dict[str, Any]:
    response = http.get(ROLES, headers=admin, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert_model(body, "OrganizationRoleEntityListing", ROLE_REQUIRED if body["entities"] else [])
    return body


def queues(http: httpx.Client, admin: dict[str, str], **params: Any) -> dict[str, Any]:
    response = http.get(QUEUES, headers=admin, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert_model(body, "QueueEntityListing", QUEUE_REQUIRED if body["entities"] else [])
    return body


def names(listing: dict[str, Any]) -> list[str]:
    return [entity["name"] for entity in listing["entities"]]


# Roles --------------------------------------------------------------------------------


def test_roles_are_listed_by_name_with_their_permission_policies(
        http: httpx.Client, admin: dict[str, str]) -> None:
    listing = roles(http, admin)
    assert names(listing) == ALL_ROLES
    by_name = {r["name"]: r for r in listing["entities"]}
    assert by_name["Assist Agent"]["permissionPolicies"] == [
        {"domain": "conversation", "entityName": "transcription", "actionSet": ["view"],
         "allowConditions": False}]
    assert by_name["Master Admin"]["permissions"] == ["admin"]
    assert by_name["Master Admin"]["defaultRoleId"] == "admin"
    assert "defaultRoleId" not in by_name["Agent"] and by_name["Agent"]["default"] is False
    for role in listing["entities"]:
        assert role["selfUri"] == f"{ROLES}/{role['id']}"
    # The ids are stable: the same on the next read.
    assert [r["id"] for r in roles(http, admin)["entities"]] == [
        r["id"] for r in listing["entities"]]


def test_user_counts_only_when_asked_and_they_count_the_mocks_users(
        mock: MockServer, http: httpx.Client, admin: dict[str, str]) -> None:
    assert all("userCount" not in r for r in roles(http, admin)["entities"])
    assert all("userCount" not in r for r in roles(http, admin, userCount="false")["entities"])
    counted = {r["name"]: r["userCount"] for r in roles(http, admin, userCount="true")["entities"]}
    home_users = [u for u in http.get("/mock/users").json()["users"]
                  if u["orgId"] == mock.config.org_id]
    assert counted["Employee"] == len(home_users) == 2
    assert counted == {"Agent": 2, "Assist Agent": 2, "Employee": 2, "Master Admin": 0,
                       "Supervisor": 0}


def test_the_agents_roles_follow_the_agent_role_setting() -> None:
    with run_mock() as fresh, httpx.Client(base_url=fresh.origin, timeout=TIMEOUT) as http:
        admin = bearer(admin_token(fresh))
        changed = http.put("/mock/settings", json={"agentRole": "agent-without-transcription"})
        assert changed.status_code == 200, changed.text
        counted = {r["name"]: r["userCount"]
                   for r in roles(http, admin, userCount="true")["entities"]}
        # Agents without the transcript hold no role granting it; they keep the others.
        assert counted == {"Agent": 2, "Assist Agent": 0, "Employee": 2, "Master Admin": 0,
                           "Supervisor": 0}
        granting = roles(http, admin, permission=TRANSCRIPTION, userCount="true")
        assert all(r["userCount"] == 0 for r in granting["entities"])


def test_the_permission_filter_keeps_roles_granting_it_wildcards_included(
        http: httpx.Client, admin: dict[str, str]) -> None:
    granting = roles(http, admin, permission=TRANSCRIPTION)
    assert names(granting) == ["Assist Agent", "Master Admin", "Supervisor"]
    assert names(roles(http, admin, permission="conversation:webmessaging:view")) == [
        "Agent", "Master Admin"]
    # Master Admin grants conversation:*:* only.
    assert names(roles(http, admin, permission="conversation:recording:delete")) == [
        "Master Admin"]
    assert roles(http, admin, permission="telephony:plugin:all")["entities"] == []
    # Repeated: roles granting any of them.
    either = roles(http, admin, permission=[TRANSCRIPTION, "directory:user:view"])
    assert names(either) == ["Assist Agent", "Employee", "Master Admin", "Supervisor"]


def test_roles_are_paged_and_the_links_keep_the_filters(
        http: httpx.Client, admin: dict[str, str]) -> None:
    first = roles(http, admin, pageSize=2, permission="conversation:communication:view",
                  userCount="true")
    assert (first["total"], first["pageCount"], first["pageNumber"]) == (3, 2, 1)
    assert names(first) == ["Agent", "Master Admin"]
    assert "previousUri" not in first
    following = parse_qs(urlsplit(first["nextUri"]).query)
    assert following == {"pageSize": ["2"], "pageNumber": ["2"],
                         "permission": ["conversation:communication:view"],
                         "userCount": ["true"]}
    second = http.get(first["nextUri"], headers=admin).json()
    assert names(second) == ["Supervisor"] and second["entities"][0]["userCount"] == 0
    assert "nextUri" not in second
    past = roles(http, admin, pageSize=2, pageNumber=9)
    assert past["entities"] == [] and past["total"] == len(ALL_ROLES)


def test_the_name_filter_takes_a_wildcard_at_either_end(
        http: httpx.Client, admin: dict[str, str]) -> None:
    assert names(roles(http, admin, name="agent")) == ["Agent"]
    assert names(roles(http, admin, name="*agent")) == ["Agent", "Assist Agent"]
    assert names(roles(http, admin, name="master*")) == ["Master Admin"]
    assert names(roles(http, admin, name="*st*")) == ["Assist Agent", "Master Admin"]


# Queues -------------------------------------------------------------------------------


def test_queues_say_whether_voice_transcription_is_on(
        mock: MockServer, http: httpx.Client, admin: dict[str, str]) -> None:
    listing = queues(http, admin)
    flags = {q["name"]: q["enableTranscription"] for q in listing["entities"]}
    assert flags == {
        "Brightwave Billing": False,
        "Brightwave Customer Care": True,
        "Brightwave Retentions": True,
        "Brightwave Technical Support": False,
        "Brightwave Web Messaging": False,
    }
    assert list(flags) == sorted(flags)
    [care] = [q for q in listing["entities"] if q["name"] == mock.config.queue_name]
    # The queue scripted conversations come in on, with both agents on it.
    assert care["id"] == mock.config.queue_id
    assert care["memberCount"] == 2
    assert care["division"]["id"] == mock.config.agent_division_id
    assert care["selfUri"] == f"{QUEUES}/{care['id']}"


def test_queues_are_paged_and_filtered_by_name(
        http: httpx.Client, admin: dict[str, str]) -> None:
    seen: list[str] = []
    page = queues(http, admin, pageSize=2)
    assert (page["total"], page["pageCount"]) == (5, 3)
    for _ in range(page["pageCount"]):  # bounded: a nextUri that never ends fails
        seen += names(page)
        if "nextUri" not in page:
            break
        page = http.get(page["nextUri"], headers=admin).json()
    assert "nextUri" not in page
    assert seen == names(queues(http, admin))
    assert names(queues(http, admin, name="brightwave b*")) == ["Brightwave Billing"]
    filtered = queues(http, admin, name="*messaging", pageSize=1)
    assert names(filtered) == ["Brightwave Web Messaging"]
    assert "name=%2Amessaging" in filtered["selfUri"]


# Refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "permission"), [(ROLES, "authorization:role:view"),
                                                  (QUEUES, "routing:queue:view")])
def test_an_admin_without_the_view_permission_is_refused_naming_it(
        path: str, permission: str) -> None:
    lacking = tuple(p for p in ADMIN_PERMISSIONS if p != permission)
    with run_mock(admin_permissions=lacking) as limited, httpx.Client(
            base_url=limited.origin, timeout=TIMEOUT) as http:
        headers = bearer(admin_token(limited))
        refused = http.get(path, headers=headers)
        assert_platform_error(refused, 403, "missing.permissions")
        assert refused.json()["messageParams"] == {"permissions": permission}
        assert permission in refused.json()["message"]
        assert_model(refused.json(), "ErrorBody", ["message", "code", "status", "contextId"])
        other = QUEUES if path == ROLES else ROLES
        assert http.get(other, headers=headers).status_code == 200


def test_a_user_token_is_refused_and_no_token_is_401(http: httpx.Client) -> None:
    signed_in = http.get("/oauth/authorize", params={
        "response_type": "token", "client_id": CLIENT_ID, "redirect_uri": PANEL_URL})
    user = bearer(parse_qs(urlsplit(signed_in.headers["location"]).fragment)["access_token"][0])
    for path in (ROLES, QUEUES):
        assert_platform_error(http.get(path, headers=user), 403, "missing.permissions")
        assert_platform_error(http.get(path), 401, "bad.credentials")
        assert_platform_error(http.get(path, headers=bearer("nope")), 401, "bad.credentials")


@pytest.mark.parametrize("params", [{"userCount": "yes"}, {"pageSize": "0"},
                                    {"pageSize": "501"}, {"pageNumber": "x"}])
def test_bad_parameters_are_400(http: httpx.Client, admin: dict[str, str],
                                params: dict[str, str]) -> None:
    path = QUEUES if "userCount" not in params else ROLES
    answer = http.get(path, headers=admin, params=params)
    assert_platform_error(answer, 400, "bad.request")
    assert_model(answer.json(), "ErrorBody", ["message", "code"])
