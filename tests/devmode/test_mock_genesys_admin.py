"""The mock's admin endpoints an installer calls: integration types and schemas,
integrations and their versioned config, and OAuth clients that then sign users in.

Real uvicorn on a loopback port, httpx as the installer (client-credentials token)
and as the browser (``/oauth/authorize``). Every new answer is also checked
against its SDK model with the checker of ``test_mock_genesys_models``.
"""

from __future__ import annotations

import uuid
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
from tests.devmode.test_mock_genesys_models import assert_model

WIDGET = "embedded-client-app-interaction-widget"
APP_REDIRECT = "https://assist.example/panel"
GOOD_PROPERTIES: dict[str, Any] = {
    "url": "https://assist.example/panel?conversationId={{gcConversationId}}"
    "&gcHostOrigin={{gcHostOrigin}}",
    "sandbox": "allow-forms,allow-modals,allow-popups,allow-same-origin,allow-scripts",
    "permissions": "clipboard-write",
    "groups": [],
    "queueIdFilterList": ["c7e1b9a4-2d6f-4a8c-9e3b-5f0d1a7c2e48"],
    "communicationTypeFilter": "call,webmessaging",
}
GOOD_ADVANCED: dict[str, Any] = {
    "lifecycle": {"ephemeral": False,
                  "hooks": {"bootstrap": True, "focus": True, "blur": True, "stop": True}},
    "icon": {"vector": "https://assist.example/static/icons/assist-panel.svg"},
    "i10n": {"es": {"name": "Panel de asistencia"}, "pt-BR": {"name": "Painel"}},
}


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with run_mock() as running:
        yield running


@pytest.fixture
def http(mock: MockServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock.origin, timeout=TIMEOUT) as client:
        yield client


def admin_token(server: MockServer) -> str:
    config = server.config
    response = httpx.post(f"{server.origin}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(config.admin_client_id, config.admin_client_secret))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture(scope="module")
def admin(mock: MockServer) -> dict[str, str]:
    return bearer(admin_token(mock))


#: Fields a checked model must have beyond right types (else ``id``, or a listing's
#: ``entities``).
REQUIRED = {"TokenInfo": ["OAuthClient.id", "OAuthClient.name", "organization.id"]}


def ok(response: httpx.Response, model: str | None = None) -> Any:
    """The 200 answer's JSON; with ``model``, checked against that SDK model."""
    assert response.status_code == 200, response.text
    body = response.json()
    if model is not None:
        required = ["entities"] if model.endswith("Listing") else ["id"]
        assert_model(body, model, REQUIRED.get(model, required))
    return body


def create_integration(http: httpx.Client, admin: dict[str, str], name: str) -> dict[str, Any]:
    body = {"name": name, "integrationType": {"id": WIDGET}}
    made: dict[str, Any] = ok(http.post("/api/v2/integrations", headers=admin, json=body),
                              "Integration")
    return made


def configure(http: httpx.Client, admin: dict[str, str], integration_id: str,
              version: int, **changes: Any) -> httpx.Response:
    body = {"name": "Assist Panel", "version": version, "properties": GOOD_PROPERTIES,
            "advanced": GOOD_ADVANCED, "notes": "Installed by tests.", "credentials": {},
            **changes}
    return http.put(f"/api/v2/integrations/{integration_id}/config/current", headers=admin,
                    json=body)


def create_client(http: httpx.Client, admin: dict[str, str], **fields: Any) -> httpx.Response:
    body = {"name": f"Assist Panel sign-in {uuid.uuid4()}", "authorizedGrantType": "TOKEN",
            "registeredRedirectUri": [APP_REDIRECT], "scope": ["user-basic-info"], **fields}
    return http.post("/api/v2/oauth/clients", headers=admin, json=body)


# Integration types ------------------------------------------------------------------


def test_types_are_listed_in_numbered_pages(http: httpx.Client, admin: dict[str, str]) -> None:
    listing = ok(http.get("/api/v2/integrations/types", headers=admin),
                 "IntegrationTypeEntityListing")
    ids = [t["id"] for t in listing["entities"]]
    assert {WIDGET, "embedded-client-app", "purecloud-data-actions"} <= set(ids)
    first = ok(http.get("/api/v2/integrations/types", headers=admin,
                        params={"pageSize": 2, "pageNumber": 1}), "IntegrationTypeEntityListing")
    assert (first["pageSize"], first["pageNumber"], first["total"]) == (2, 1, len(ids))
    assert first["pageCount"] == 2 and first["nextUri"].endswith("pageSize=2&pageNumber=2")
    last = ok(http.get(first["nextUri"], headers=admin))
    assert "nextUri" not in last and [t["id"] for t in first["entities"] + last["entities"]] == ids
    bad = http.get("/api/v2/integrations/types", headers=admin, params={"pageSize": 0})
    assert_platform_error(bad, 400, "bad.request")


def test_a_type_and_its_config_schemas(http: httpx.Client, admin: dict[str, str]) -> None:
    widget = ok(http.get(f"/api/v2/integrations/types/{WIDGET}", headers=admin), "IntegrationType")
    assert widget["name"] == "Interaction Widget"
    properties = ok(http.get(widget["configPropertiesSchemaUri"], headers=admin),
                    "JsonSchemaDocument")
    assert properties["required"] == ["url"]
    assert {"url", "sandbox", "permissions", "groups", "queueIdFilterList",
            "communicationTypeFilter"} <= set(properties["properties"])
    advanced = ok(http.get(widget["configAdvancedSchemaUri"], headers=admin),
                  "JsonSchemaDocument")
    assert {"lifecycle", "icon", "i10n"} <= set(advanced["properties"])
    assert advanced["additionalProperties"] is False
    for path in (f"/api/v2/integrations/types/{WIDGET}/configschemas/other",
                 "/api/v2/integrations/types/no-such-type"):
        assert_platform_error(http.get(path, headers=admin), 404, "not.found")


# Integrations -----------------------------------------------------------------------


def test_create_configure_enable_list_delete(http: httpx.Client, admin: dict[str, str]) -> None:
    made = create_integration(http, admin, "Assist Panel (draft)")
    assert made["intendedState"] == "DISABLED" and made["reportedState"]["code"] == "INACTIVE"
    assert made["integrationType"]["id"] == WIDGET and made["name"] == "Assist Panel (draft)"
    current = made["config"]["current"]
    assert (current["version"], current["properties"], current["advanced"]) == (1, {}, {})
    path = f"/api/v2/integrations/{made['id']}"
    assert ok(http.get(path + "/config/current", headers=admin),
              "IntegrationConfiguration")["version"] == 1

    configured = ok(configure(http, admin, made["id"], 1), "IntegrationConfiguration")
    assert configured["version"] == 2 and configured["properties"] == GOOD_PROPERTIES
    assert configured["advanced"] == GOOD_ADVANCED
    assert ok(http.get(path, headers=admin), "Integration")["name"] == "Assist Panel"

    enabled = ok(http.patch(path, headers=admin, json={"intendedState": "ENABLED"}),
                 "Integration")
    assert enabled["intendedState"] == "ENABLED" and enabled["reportedState"]["code"] == "ACTIVE"
    listing = ok(http.get("/api/v2/integrations", headers=admin), "IntegrationEntityListing")
    listed = [i for i in listing["entities"] if i["id"] == made["id"]]
    assert listed and listed[0]["intendedState"] == "ENABLED"
    assert listed[0]["config"]["current"]["version"] == 2

    deleted = ok(http.delete(path, headers=admin), "Integration")
    assert deleted["id"] == made["id"]
    assert_platform_error(http.get(path, headers=admin), 404, "not.found")
    ids = [i["id"] for i in ok(http.get("/api/v2/integrations", headers=admin))["entities"]]
    assert made["id"] not in ids


def test_a_stale_config_version_conflicts(http: httpx.Client, admin: dict[str, str]) -> None:
    made = create_integration(http, admin, "Assist Panel (stale)")
    ok(configure(http, admin, made["id"], 1))
    stale = configure(http, admin, made["id"], 1, notes="Lost update")
    assert_platform_error(stale, 409, "conflict")
    assert_model(stale.json(), "ErrorBody", ["message", "code"])
    current = ok(http.get(f"/api/v2/integrations/{made['id']}/config/current", headers=admin))
    assert (current["version"], current["notes"]) == (2, "Installed by tests.")


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"properties": {**GOOD_PROPERTIES, "url": "ftp://assist.example/panel"}},
         "properties.url"),
        ({"properties": {**GOOD_PROPERTIES, "url": "http://assist.example/panel"}},
         "properties.url"),
        ({"properties": {k: v for k, v in GOOD_PROPERTIES.items() if k != "url"}}, "'url'"),
        ({"properties": {**GOOD_PROPERTIES, "communicationTypeFilter": "call,fax"}},
         "properties.communicationTypeFilter"),
        ({"properties": {**GOOD_PROPERTIES, "groups": "g1"}}, "properties.groups"),
        ({"properties": {**GOOD_PROPERTIES, "colour": "blue"}}, "'colour'"),
        ({"advanced": {**GOOD_ADVANCED, "lifecycle": {"hooks": {"boot": True}}}},
         "'boot'"),
        ({"advanced": {**GOOD_ADVANCED, "i10n": {"es": {"title": "x"}}}}, "advanced.i10n.es"),
        ({"properties": "url=https://x"}, "properties"),
        ({"name": ""}, "name"),
    ],
)
def test_a_bad_config_value_is_refused_by_name(
    http: httpx.Client, admin: dict[str, str], changes: dict[str, Any], named: str
) -> None:
    made = create_integration(http, admin, "Assist Panel (bad config)")
    refused = configure(http, admin, made["id"], 1, **changes)
    assert_platform_error(refused, 400, "bad.request")
    assert named in refused.json()["message"], refused.json()["message"]
    assert_model(refused.json(), "ErrorBody", ["message", "messageParams.field"])
    local = {**GOOD_PROPERTIES, "url": "http://localhost:8000/panel"}
    assert ok(configure(http, admin, made["id"], 1, properties=local))["version"] == 2


@pytest.mark.parametrize("body", [{"integrationType": {"id": "no-such-type"}}, {"name": "x"},
                                  {"integrationType": "embedded-client-app"}])
def test_creating_needs_a_known_type(http: httpx.Client, admin: dict[str, str],
                                     body: dict[str, Any]) -> None:
    refused = http.post("/api/v2/integrations", headers=admin, json=body)
    assert_platform_error(refused, 400, "bad.request")
    assert "integrationType" in refused.json()["message"]


def test_intended_state_and_unknown_ids(http: httpx.Client, admin: dict[str, str]) -> None:
    made = create_integration(http, admin, "Assist Panel (states)")
    path = f"/api/v2/integrations/{made['id']}"
    for body in ({"intendedState": "ON"}, {}, {"intendedState": "DELETED"}, ["ENABLED"]):
        assert_platform_error(http.patch(path, headers=admin, json=body), 400, "bad.request")
    not_json = http.patch(path, headers=admin, content=b"{intendedState")
    assert_platform_error(not_json, 400, "bad.request")
    unknown = f"/api/v2/integrations/{uuid.uuid4()}"
    for method, suffix in [("GET", ""), ("PATCH", ""), ("DELETE", ""),
                           ("GET", "/config/current"), ("PUT", "/config/current")]:
        answer = http.request(method, unknown + suffix, headers=admin,
                              json={"intendedState": "ENABLED", "version": 1})
        assert_platform_error(answer, 404, "not.found")


# Who may call -----------------------------------------------------------------------


def test_calls_without_a_valid_token_get_401(http: httpx.Client) -> None:
    for headers in ({}, bearer("not-a-token")):
        for path in ("/api/v2/integrations", "/api/v2/integrations/types",
                     "/api/v2/oauth/clients"):
            assert_platform_error(http.get(path, headers=headers), 401, "bad.credentials")


def test_a_user_token_is_refused_naming_the_permission(http: httpx.Client) -> None:
    signed_in = http.get("/oauth/authorize", params={
        "response_type": "token", "client_id": CLIENT_ID, "redirect_uri": PANEL_URL})
    user = bearer(parse_qs(urlsplit(signed_in.headers["location"]).fragment)["access_token"][0])
    refused = http.get("/api/v2/integrations", headers=user)
    assert_platform_error(refused, 403, "missing.permissions")
    assert "integrations:integration:view" in refused.json()["message"]
    assert_model(refused.json(), "ErrorBody", ["message", "messageParams.permissions"])
    refused = http.post("/api/v2/oauth/clients", headers=user, json={})
    assert refused.json()["messageParams"]["permissions"] == "oauth:client:add"


def test_an_admin_role_without_add_is_refused_naming_it() -> None:
    viewer = ("integrations:integration:view", "oauth:client:view")
    with run_mock(admin_permissions=viewer) as limited, httpx.Client(
        base_url=limited.origin, timeout=TIMEOUT
    ) as http:
        headers = bearer(admin_token(limited))
        assert http.get("/api/v2/integrations", headers=headers).status_code == 200
        refused = http.post("/api/v2/integrations", headers=headers,
                            json={"integrationType": {"id": WIDGET}})
        assert_platform_error(refused, 403, "missing.permissions")
        assert refused.json()["messageParams"]["permissions"] == "integrations:integration:add"
        refused = create_client(http, headers)
        assert_platform_error(refused, 403, "missing.permissions")
        assert "oauth:client:add" in refused.json()["message"]
        listing = http.get("/api/v2/oauth/clients", headers=headers)
        assert_model(listing.json(), "OAuthClientEntityListing", ["entities"])
        refused = http.delete(f"/api/v2/oauth/clients/{CLIENT_ID}", headers=headers)
        assert refused.json()["messageParams"]["permissions"] == "oauth:client:delete"

