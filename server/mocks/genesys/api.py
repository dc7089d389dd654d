"""The mock's REST API under ``/api/v2/``: who the token is, and conversations.

Responses use the platform's camelCase field names, as in the official SDK's
models (``UserMe``, ``Organization``, ``TokenInfo``, ``Conversation``,
``Participant``, ``Call``); errors use its ``ErrorBody``.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .config import MockGenesysConfig
from .state import AccessToken, Conversation, MockGenesysState, User, iso_z

#: The number customers of the scripted org dial (the conversations' DNIS).
CARE_LINE = "tel:+18005550142"
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


def require_token(state: MockGenesysState, request: Request) -> AccessToken:
    """The valid bearer token of a request, or a 401 ``bad.credentials`` error."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise PlatformError(
            401,
            "bad.credentials",
            "No authentication bearer token specified in authorization header.",
        )
    token = state.authenticate(value)
    if token is None:
        raise PlatformError(401, "bad.credentials", "Invalid login credentials.")
    return token


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
        return [
            Route("/api/v2/users/me", self.users_me, methods=["GET"]),
            Route("/api/v2/users/{user_id}", self.user, methods=["GET"]),
            Route("/api/v2/tokens/me", self.tokens_me, methods=["GET"]),
            Route("/api/v2/conversations/{conversation_id}", self.conversation, methods=["GET"]),
        ]

    def fallback_routes(self) -> list[BaseRoute]:
        """A catch-all under ``/api/v2/`` answering the platform's 404; mount it last."""
        return [Route("/api/v2/{path:path}", self.unknown_resource, methods=ALL_METHODS)]

    async def users_me(self, request: Request) -> Response:
        """``GET /api/v2/users/me`` (``?expand=organization`` adds the org): ``UserMe``."""
        token = require_token(self.state, request)
        body = self.user_body(self.state.users[token.user_id])
        if "organization" in _expansions(request):
            body["organization"] = self.organization_body()
        return JSONResponse(body)

    async def user(self, request: Request) -> Response:
        """``GET /api/v2/users/{userId}``: ``User``."""
        require_token(self.state, request)
        user = self.state.users.get(request.path_params["user_id"])
        if user is None:
            raise PlatformError(404, "not.found", "The requested user could not be found.")
        return JSONResponse(self.user_body(user))

    async def tokens_me(self, request: Request) -> Response:
        """``GET /api/v2/tokens/me``: ``TokenInfo``."""
        token = require_token(self.state, request)
        org = {"id": self.config.org_id, "name": self.config.org_name}
        return JSONResponse(
            {
                "organization": org,
                "homeOrganization": org,
                "authorizedScope": list(token.scopes),
                "OAuthClient": {
                    "id": token.client_id,
                    "name": self.config.client_name,
                    "authorizedGrantType": "TOKEN",
                    "organization": org,
                },
            }
        )

    async def conversation(self, request: Request) -> Response:
        """``GET /api/v2/conversations/{conversationId}``: ``Conversation``."""
        require_token(self.state, request)
        conversation = self.state.conversations.get(request.path_params["conversation_id"])
        if conversation is None:
            raise PlatformError(
                404, "not.found", "Unable to find a conversation with that conversationId."
            )
        return JSONResponse(self.conversation_body(conversation))

    async def unknown_resource(self, request: Request) -> Response:
        """Any other ``/api/v2/`` path: 401 without a valid token, else 404 ``not.found``."""
        require_token(self.state, request)
        raise PlatformError(404, "not.found", f"No resource found for {request.url.path}.")

    # Bodies -------------------------------------------------------------

    def user_body(self, user: User) -> dict[str, Any]:
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
            "primaryContactInfo": [
                {"address": user.email, "mediaType": "EMAIL", "type": "PRIMARY"}
            ],
            "addresses": [],
            "state": "active",
            "title": "Customer Care Agent",
            "username": user.email,
            "version": 1,
            "acdAutoAnswer": False,
            "selfUri": f"/api/v2/users/{user.id}",
        }

    def organization_body(self) -> dict[str, Any]:
        """The scripted org in the ``Organization`` shape."""
        config = self.config
        return {
            "id": config.org_id,
            "name": config.org_name,
            "defaultLanguage": "en",
            "defaultCountryCode": "US",
            "thirdPartyOrgName": config.org_third_party_name,
            "domain": config.org_third_party_name,
            "version": 1,
            "state": "active",
            "voicemailEnabled": True,
            "productPlatform": "PureCloud",
            "selfUri": f"/api/v2/organizations/{config.org_id}",
        }

    def conversation_body(self, conversation: Conversation) -> dict[str, Any]:
        """A conversation in the ``Conversation`` shape: customer and agent participants."""
        config = self.config
        started = iso_z(conversation.start_time)
        customer_address = f"tel:{conversation.customer_phone}"
        customer = {
            "id": conversation.customer_participant_id,
            "startTime": started,
            "connectedTime": started,
            "name": conversation.customer_name,
            "queueId": config.queue_id,
            "queueName": config.queue_name,
            "purpose": "customer",
            "participantType": "External",
            "address": customer_address,
            "ani": customer_address,
            "aniName": conversation.customer_name,
            "dnis": CARE_LINE,
            "wrapupRequired": False,
            "attributes": {},
            **self._media(
                conversation,
                conversation.customer_communication_id,
                (conversation.customer_name, customer_address),
                (config.queue_name, CARE_LINE),
            ),
        }
        agent = {
            "id": conversation.agent_participant_id,
            "startTime": started,
            "connectedTime": started,
            "name": config.agent_name,
            "userUri": f"/api/v2/users/{conversation.agent_user_id}",
            "userId": conversation.agent_user_id,
            "queueId": config.queue_id,
            "queueName": config.queue_name,
            "purpose": "agent",
            "participantType": "Internal",
            "address": f"sip:{conversation.agent_user_id}@localhost",
            "wrapupRequired": True,
            "attributes": {},
            **self._media(
                conversation,
                conversation.agent_communication_id,
                (config.agent_name, f"sip:{conversation.agent_user_id}@localhost"),
                (conversation.customer_name, customer_address),
            ),
        }
        return {
            "id": conversation.id,
            "startTime": started,
            "address": CARE_LINE,
            "participants": [customer, agent],
            "recordingState": "none",
            "selfUri": f"/api/v2/conversations/{conversation.id}",
        }

    def _media(
        self,
        conversation: Conversation,
        communication_id: str,
        own: tuple[str, str],
        other: tuple[str, str],
    ) -> dict[str, Any]:
        started = iso_z(conversation.start_time)
        if conversation.media == "message":
            return {
                "messages": [
                    {
                        "state": "connected",
                        "id": communication_id,
                        "held": False,
                        "type": "webmessaging",
                        "connectedTime": started,
                        "messages": [],
                    }
                ]
            }
        return {
            "calls": [
                {
                    "state": "connected",
                    "id": communication_id,
                    "direction": "inbound",
                    "recording": False,
                    "recordingState": "none",
                    "muted": False,
                    "confined": False,
                    "held": False,
                    "connectedTime": started,
                    "provider": "Edge",
                    "self": {"name": own[0], "addressNormalized": own[1]},
                    "other": {"name": other[0], "addressNormalized": other[1]},
                }
            ]
        }
