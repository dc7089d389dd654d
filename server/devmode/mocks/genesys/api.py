"""The mock's REST API under ``/api/v2/``: who the token is, conversations, messages.

Responses use the platform's camelCase field names, as in the official SDK's
models (``UserMe``, ``Organization``, ``TokenInfo``, ``Conversation``,
``MessageData``, ``TextMessageListing``); errors use its ``ErrorBody``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

# Re-exported: the name is the admin client's, kept where callers have found it.
from server.devmode.mocks.genesys.client_registry import ADMIN_CLIENT_NAME as ADMIN_CLIENT_NAME
from server.devmode.mocks.genesys.config import MockGenesysConfig
from server.devmode.mocks.genesys.conversation_body import conversation_body
from server.devmode.mocks.genesys.conversations import Conversation
from server.devmode.mocks.genesys.directory import Org, User
from server.devmode.mocks.genesys.messaging import message_data
from server.devmode.mocks.genesys.roles import COMMUNICATION_VIEW, MESSAGE_TEXT_PERMISSIONS
from server.devmode.mocks.genesys.state import AccessToken, MockGenesysState

#: Most message ids one bulk request may ask for.
MAX_BULK_MESSAGES = 1000
#: The OAuth scopes, any one of which lets a token read conversations and their messages.
CONVERSATION_SCOPES: tuple[str, ...] = ("conversations", "conversations:readonly")
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class PlatformError(Exception):
    """An error the platform answers with its JSON ``ErrorBody``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        message_params: dict[str, str] | None = None,
    ) -> None:
        """Describe the error; ``code`` is the platform's, e.g. ``bad.credentials``."""
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.message_params = message_params or {}

    def body(self) -> dict[str, Any]:
        """The platform's error body, with a fresh ``contextId``."""
        return {
            "message": self.message,
            "code": self.code,
            "status": self.status,
            "messageParams": self.message_params,
            "contextId": str(uuid.uuid4()),
            "details": [],
            "errors": [],
        }


async def platform_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette exception handler turning :class:`PlatformError` into its JSON body."""
    if not isinstance(exc, PlatformError):  # pragma: no cover - registered for it only
        raise exc
    body = exc.body()
    return JSONResponse(
        body, status_code=exc.status, headers={"ININ-Correlation-Id": body["contextId"]}
    )


def bearer_value(request: Request) -> str:
    """The request's bearer token value, or a 401 ``bad.credentials`` error if it has none."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise PlatformError(
            401,
            "bad.credentials",
            "No authentication bearer token specified in authorization header.",
        )
    return value


def missing_permissions(permissions: list[str]) -> PlatformError:
    """The platform's 403 for a caller whose roles lack ``permissions``."""
    listed = ", ".join(permissions)
    return PlatformError(
        403,
        "missing.permissions",
        f"Unable to perform the requested action. You are missing the following "
        f"permission(s): [{listed}]",
        {"permissions": listed},
    )


def missing_any_permissions(permissions: tuple[str, ...]) -> PlatformError:
    """The platform's 403 for a caller whose roles hold none of ``permissions`` (any one
    of them would do)."""
    listed = ", ".join(permissions)
    return PlatformError(
        403,
        "missing.any.permissions",
        f"Unable to perform the requested action. You need at least one of the "
        f"following permission(s): [{listed}]",
        {"permissions": listed},
    )


def missing_any_scopes(scopes: tuple[str, ...]) -> PlatformError:
    """The platform's 403 for a token whose OAuth client was granted none of ``scopes``."""
    listed = ", ".join(scopes)
    return PlatformError(
        403,
        "missing.any.scopes",
        f"This request requires a token with one of the following scopes: [{listed}]",
        {"scopes": listed},
    )


def require_token(
    state: MockGenesysState, request: Request, scopes: tuple[str, ...] = ()
) -> AccessToken:
    """The valid user bearer token of a request, or a 401 ``bad.credentials`` error;
    with ``scopes``, a 403 ``missing.any.scopes`` unless the token carries one of them."""
    token = state.authenticate(bearer_value(request))
    if token is None:
        raise PlatformError(401, "bad.credentials", "Invalid login credentials.")
    if scopes and not set(scopes) & set(token.scopes):
        raise missing_any_scopes(scopes)
    return token


def require_any_permission(
    state: MockGenesysState, token: AccessToken, permissions: tuple[str, ...]
) -> None:
    """A 403 ``missing.any.permissions`` unless the token's user holds one of ``permissions``."""
    if not set(permissions) & state.user_permissions(token.user_id):
        raise missing_any_permissions(permissions)


def _expansions(request: Request) -> set[str]:
    values = request.query_params.getlist("expand")
    return {part.strip() for value in values for part in value.split(",") if part.strip()}


class PlatformApi:
    """Handlers of the REST endpoints the panel's server and page call."""

    def __init__(self, config: MockGenesysConfig, state: MockGenesysState) -> None:
        """Bind the handlers to one mock's config and state."""
        self.config = config
        self.state = state

    def routes(self) -> list[BaseRoute]:
        """The REST routes (the catch-all 404 is separate: see :meth:`fallback_routes`)."""
        messages = "/api/v2/conversations/messages/{conversation_id}/messages"
        return [
            Route("/api/v2/users/me", self.users_me, methods=["GET"]),
            Route("/api/v2/users/{user_id}", self.user, methods=["GET"]),
            Route("/api/v2/tokens/me", self.tokens_me, methods=["GET"]),
            Route("/api/v2/conversations/{conversation_id}", self.conversation, methods=["GET"]),
            Route(messages + "/bulk", self.messages_bulk, methods=["POST"]),
            Route(messages + "/{message_id}", self.message, methods=["GET"]),
        ]

    def fallback_routes(self) -> list[BaseRoute]:
        """A catch-all under ``/api/v2/`` answering the platform's 404; mount it last."""
        return [Route("/api/v2/{path:path}", self.unknown_resource, methods=ALL_METHODS)]

    async def users_me(self, request: Request) -> Response:
        """``GET /api/v2/users/me`` (``?expand=organization`` adds the org): ``UserMe``."""
        token = require_token(self.state, request)
        user = self.state.users[token.user_id]
        body = user_body(user)
        if "organization" in _expansions(request):
            body["organization"] = organization_body(self.state.directory.org_of(user))
        return JSONResponse(body)

    async def user(self, request: Request) -> Response:
        """``GET /api/v2/users/{userId}``: ``User`` (users of the token's own org only)."""
        token = require_token(self.state, request)
        user = self.state.users.get(request.path_params["user_id"])
        if user is None or user.org_id != token.org_id:
            raise PlatformError(404, "not.found", "The requested user could not be found.")
        return JSONResponse(user_body(user))

    async def tokens_me(self, request: Request) -> Response:
        """``GET /api/v2/tokens/me``: ``TokenInfo``, with the client that granted the token."""
        admin = self.state.authenticate_admin(bearer_value(request))
        if admin is not None:
            org = self._named_org(admin.org_id)
            client = {
                "id": admin.client_id,
                "name": self._client_name(admin.client_id, ADMIN_CLIENT_NAME),
                "authorizedGrantType": "CLIENT-CREDENTIALS",
                "organization": org,
            }
            return JSONResponse(
                {"organization": org, "homeOrganization": org, "authorizedScope": [],
                 "OAuthClient": client}
            )
        token = require_token(self.state, request)
        org = self._named_org(token.org_id)
        return JSONResponse(
            {
                "organization": org,
                "homeOrganization": org,
                "authorizedScope": list(token.scopes),
                "OAuthClient": {
                    "id": token.client_id,
                    "name": self._client_name(token.client_id, self.config.client_name),
                    "authorizedGrantType": token.grant_type,
                    # The one client id stands for the panel's client in each org.
                    "organization": org,
                },
            }
        )

    async def conversation(self, request: Request) -> Response:
        """``GET /api/v2/conversations/{conversationId}``: ``Conversation``; 403
        ``missing.any.scopes`` for a token without ``conversations`` or
        ``conversations:readonly``, ``missing.permissions`` for a user whose role lacks
        ``conversation:communication:view``."""
        token = require_token(self.state, request, CONVERSATION_SCOPES)
        if COMMUNICATION_VIEW not in self.state.user_permissions(token.user_id):
            raise missing_permissions([COMMUNICATION_VIEW])
        conversation = self._conversation(token, request)
        return JSONResponse(conversation_body(self.config, conversation))

    async def message(self, request: Request) -> Response:
        """``GET /api/v2/conversations/messages/{conversationId}/messages/{messageId}
        [?useNormalizedMessage=true]``.

        Answers ``MessageData`` (see :func:`.messaging.message_data` for which text
        field) to a token of the conversation's org with a conversations scope (else 403
        ``missing.any.scopes``) whose user holds ``conversation:message:view`` or
        ``conversation:webmessaging:view`` (else 403 ``missing.any.permissions``).
        """
        token = require_token(self.state, request, CONVERSATION_SCOPES)
        require_any_permission(self.state, token, MESSAGE_TEXT_PERMISSIONS)
        conversation = self._conversation(token, request)
        normalized = _use_normalized_message(request)
        message = conversation.message(request.path_params["message_id"])
        if message is None:
            raise PlatformError(404, "not.found", "The requested message could not be found.")
        return JSONResponse(message_data(self.config, conversation, message, normalized))

    async def messages_bulk(self, request: Request) -> Response:
        """``POST /api/v2/conversations/messages/{conversationId}/messages/bulk``.

        The body is a JSON list of message ids (at most 1,000); answers
        ``TextMessageListing`` ``{"entities": [MessageData...]}`` in the order asked,
        each id once. Ids the conversation does not have are left out.
        ``?useNormalizedMessage=true``, scopes and permissions as for one message.
        """
        token = require_token(self.state, request, CONVERSATION_SCOPES)
        require_any_permission(self.state, token, MESSAGE_TEXT_PERMISSIONS)
        conversation = self._conversation(token, request)
        normalized = _use_normalized_message(request)
        try:
            ids: Any = json.loads(await request.body())
        except ValueError as exc:
            raise PlatformError(400, "bad.request", "The request body is not valid JSON.") from exc
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise PlatformError(400, "bad.request", "The body must be a list of message ids.")
        if len(ids) > MAX_BULK_MESSAGES:
            raise PlatformError(
                400,
                "bad.request",
                f"At most {MAX_BULK_MESSAGES} message ids may be requested at once.",
                {"max": str(MAX_BULK_MESSAGES)},
            )
        found = (conversation.message(i) for i in dict.fromkeys(ids))
        entities = [
            message_data(self.config, conversation, m, normalized) for m in found if m is not None
        ]
        return JSONResponse({"entities": entities})

    async def unknown_resource(self, request: Request) -> Response:
        """Any other ``/api/v2/`` path: 401 without a valid token, else 404 ``not.found``."""
        if self.state.authenticate_admin(bearer_value(request)) is None:
            require_token(self.state, request)
        raise PlatformError(404, "not.found", f"No resource found for {request.url.path}.")

    def _client_name(self, client_id: str, fallback: str) -> str:
        # Deleting a client revokes its tokens, but an admin token outlives its client.
        client = self.state.oauth_clients.get(client_id)
        return client.name if client else fallback

    def _named_org(self, org_id: str) -> dict[str, str]:
        org = self.state.directory.orgs[org_id]
        return {"id": org.id, "name": org.name}

    def _conversation(self, token: AccessToken, request: Request) -> Conversation:
        conversation_id = request.path_params["conversation_id"]
        conversation = self.state.visible_conversation(token, conversation_id)
        if conversation is None:
            raise PlatformError(
                404, "not.found", "Unable to find a conversation with that conversationId."
            )
        return conversation


def _use_normalized_message(request: Request) -> bool:
    """The ``useNormalizedMessage`` query flag (default false); 400 for a non-boolean."""
    value = request.query_params.get("useNormalizedMessage", "false").lower()
    if value not in ("true", "false"):
        raise PlatformError(400, "bad.request", "useNormalizedMessage must be true or false.")
    return value == "true"


def user_body(user: User) -> dict[str, Any]:
    """A user in the ``UserMe`` / ``User`` shape."""
    return {
        "id": user.id,
        "name": user.name,
        "division": {
            "id": user.division_id,
            "name": "Home",
            "selfUri": f"/api/v2/authorization/divisions/{user.division_id}",
        },
        "email": user.email,
        "primaryContactInfo": [{"address": user.email, "mediaType": "EMAIL", "type": "PRIMARY"}],
        "addresses": [],
        "state": "active",
        "title": user.title,
        "username": user.email,
        "version": 1,
        "acdAutoAnswer": False,
        "selfUri": f"/api/v2/users/{user.id}",
    }


def organization_body(org: Org) -> dict[str, Any]:
    """An org in the ``Organization`` shape."""
    return {
        "id": org.id,
        "name": org.name,
        "defaultLanguage": "en",
        "defaultCountryCode": "US",
        "thirdPartyOrgName": org.third_party_name,
        "domain": org.third_party_name,
        "version": 1,
        "state": "active",
        "voicemailEnabled": True,
        "productPlatform": "PureCloud",
        "selfUri": f"/api/v2/organizations/{org.id}",
    }
