"""The mock's OAuth clients API: ``/api/v2/oauth/clients``, as an installer drives it.

Clients live in the state's registry (:mod:`.client_registry`), so one created
here is real: the login host signs users in through it, with its redirect URIs,
grant, scopes and token lifetime. Every endpoint needs a client-credentials token
holding the matching ``oauth:client:*`` permission. Bodies are the SDK's
``OAuthClient`` and ``OAuthClientEntityListing``; requests its ``OAuthClientRequest``.
"""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.devmode.mocks.genesys.admin_auth import require_admin
from server.devmode.mocks.genesys.api import PlatformError
from server.devmode.mocks.genesys.client_registry import GRANTS, RegisteredClient
from server.devmode.mocks.genesys.integrations import bad_request, json_object
from server.devmode.mocks.genesys.listing import numbered_page
from server.devmode.mocks.genesys.state import MockGenesysState, iso_z

VIEW = "oauth:client:view"
ADD = "oauth:client:add"
EDIT = "oauth:client:edit"
DELETE = "oauth:client:delete"
#: The platform's bounds of ``accessTokenValiditySeconds``, and its default.
MIN_TOKEN_LIFETIME_S = 300
MAX_TOKEN_LIFETIME_S = 172800
DEFAULT_TOKEN_LIFETIME_S = 86400
#: Grants through which users sign in: they need redirect URIs and scopes.
USER_GRANTS = ("TOKEN", "CODE")


@dataclass(frozen=True)
class ClientRequest:
    """A validated ``OAuthClientRequest``."""

    name: str
    description: str
    grant_type: str
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    token_lifetime_s: int

    def fields(self) -> dict[str, Any]:
        """The request's fields, named as :class:`RegisteredClient` names them."""
        return dataclasses.asdict(self)


def _strings(body: dict[str, Any], key: str) -> tuple[str, ...]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise bad_request(f"{key} must be a list of non-empty strings.", key)
    return tuple(dict.fromkeys(value))


def _absolute(uri: str) -> bool:
    parts = urlsplit(uri)
    # RFC 6749 section 3.1.2: absolute, and no fragment (the answer travels in it).
    return bool(parts.scheme and parts.netloc) and "#" not in uri


def parse_client_request(body: dict[str, Any]) -> ClientRequest:
    """Validate an ``OAuthClientRequest`` the platform's way; 400 ``bad.request`` saying
    what is wrong."""
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("name is required.", "name")
    description = body.get("description", "")
    if not isinstance(description, str):
        raise bad_request("description must be a string.", "description")
    grant = body.get("authorizedGrantType")
    if grant not in GRANTS:
        raise bad_request(
            f"authorizedGrantType must be one of {', '.join(GRANTS)}.", "authorizedGrantType"
        )
    redirect_uris = _strings(body, "registeredRedirectUri")
    scopes = _strings(body, "scope")
    for uri in redirect_uris:
        if not _absolute(uri):
            raise bad_request(
                f"registeredRedirectUri {uri!r} must be an absolute URL without a fragment.",
                "registeredRedirectUri",
            )
    if grant in USER_GRANTS and not redirect_uris:
        raise bad_request(
            f"A {grant} client needs at least one registeredRedirectUri.", "registeredRedirectUri"
        )
    if grant in USER_GRANTS and not scopes:
        raise bad_request(f"A {grant} client needs at least one scope.", "scope")
    lifetime = body.get("accessTokenValiditySeconds", DEFAULT_TOKEN_LIFETIME_S)
    if (
        not isinstance(lifetime, int)
        or isinstance(lifetime, bool)
        or not MIN_TOKEN_LIFETIME_S <= lifetime <= MAX_TOKEN_LIFETIME_S
    ):
        raise bad_request(
            f"accessTokenValiditySeconds must be a whole number from {MIN_TOKEN_LIFETIME_S} "
            f"to {MAX_TOKEN_LIFETIME_S}.",
            "accessTokenValiditySeconds",
        )
    return ClientRequest(name.strip(), description, str(grant), redirect_uris, scopes, lifetime)


def client_body(client: RegisteredClient) -> dict[str, Any]:
    """A client in the ``OAuthClient`` shape (empty lists and description left out)."""
    body: dict[str, Any] = {
        "id": client.id,
        "name": client.name,
        "accessTokenValiditySeconds": client.token_lifetime_s,
        "description": client.description,
        "registeredRedirectUri": list(client.redirect_uris),
        "secret": client.secret,
        "dateCreated": iso_z(client.created_at),
        "dateModified": iso_z(client.modified_at),
        "authorizedGrantType": client.grant_type,
        "scope": list(client.scopes),
        "state": "active",
        "selfUri": f"/api/v2/oauth/clients/{client.id}",
    }
    return {key: value for key, value in body.items() if value not in ("", [])}


class OAuthClientsApi:
    """``/api/v2/oauth/clients`` over the state's client registry."""

    def __init__(self, state: MockGenesysState) -> None:
        """Bind to one mock's state (its tokens and OAuth clients)."""
        self.state = state

    def routes(self) -> list[BaseRoute]:
        """The OAuth client routes."""
        base = "/api/v2/oauth/clients"
        one = base + "/{client_id}"
        return [
            Route(base, self.list_clients, methods=["GET"]),
            Route(base, self.create, methods=["POST"]),
            Route(one, self.get_client, methods=["GET"]),
            Route(one, self.put, methods=["PUT"]),
            Route(one, self.delete, methods=["DELETE"]),
        ]

    async def list_clients(self, request: Request) -> Response:
        """``GET /api/v2/oauth/clients``: ``OAuthClientEntityListing``, oldest first."""
        require_admin(self.state, request, VIEW)
        entities = [client_body(c) for c in self.state.oauth_clients.all()]
        return JSONResponse(numbered_page(request, entities))

    async def create(self, request: Request) -> Response:
        """``POST /api/v2/oauth/clients`` with an ``OAuthClientRequest``: the new
        ``OAuthClient``, with its ``secret``."""
        require_admin(self.state, request, ADD)
        wanted = parse_client_request(await json_object(request))
        now = self.state.now()
        client = RegisteredClient(
            id=str(uuid.uuid4()),
            secret=secrets.token_urlsafe(32),
            created_at=now,
            modified_at=now,
            **wanted.fields(),
        )
        self.state.oauth_clients.put(client)
        return JSONResponse(client_body(client))

    async def get_client(self, request: Request) -> Response:
        """``GET /api/v2/oauth/clients/{clientId}``: ``OAuthClient``."""
        require_admin(self.state, request, VIEW)
        return JSONResponse(client_body(self._client(request)))

    async def put(self, request: Request) -> Response:
        """``PUT /api/v2/oauth/clients/{clientId}`` with an ``OAuthClientRequest``: the
        request's fields replace the client's (id, secret and creation date stay)."""
        require_admin(self.state, request, EDIT)
        client = self._client(request)
        wanted = parse_client_request(await json_object(request))
        updated = replace(client, modified_at=self.state.now(), **wanted.fields())
        self.state.oauth_clients.put(updated)
        return JSONResponse(client_body(updated))

    async def delete(self, request: Request) -> Response:
        """``DELETE /api/v2/oauth/clients/{clientId}``: 204, no body.

        The client's user tokens are revoked with it (their sockets close), and its
        outstanding codes can no longer be exchanged.
        """
        require_admin(self.state, request, DELETE)
        client = self._client(request)
        self.state.oauth_clients.remove(client.id)
        for value in [t.value for t in self.state.tokens.values() if t.client_id == client.id]:
            self.state.expire_token(value)
        return Response(status_code=204)

    def _client(self, request: Request) -> RegisteredClient:
        client = self.state.oauth_clients.get(request.path_params["client_id"])
        if client is None:
            raise PlatformError(404, "not.found", "The requested OAuth client could not be found.")
        return client
