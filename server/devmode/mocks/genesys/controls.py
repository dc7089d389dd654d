"""Mock-only platform controls under ``/mock/`` (JSON), for the desktop page and tests.

Not part of the platform's contract: they change what the mock platform does
(sign-in mode, framing, who signs in, the agents' role, what a channel does when its
token expires) and make tokens or channels expire now.
Errors are ``{"error": code, "message": ...}``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.devmode.mocks.genesys.settings import SettingsError
from server.devmode.mocks.genesys.state import MockGenesysState

#: Largest body a control endpoint reads.
MAX_BODY_BYTES = 16 * 1024


def control_error(status: int, code: str, message: str) -> JSONResponse:
    """A mock-only error answer: ``{"error", "message"}``."""
    return JSONResponse({"error": code, "message": message}, status_code=status)


class _BadBody(ValueError):
    pass


async def _json_body(request: Request) -> Any:
    """The JSON body, or None when there is none."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise _BadBody("The body is too large.")
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise _BadBody("The body must be JSON.") from exc


class PlatformControls:
    """``/mock/settings``, ``/mock/users``, ``/mock/tokens/expire``, ``/mock/channels/expire``."""

    def __init__(self, state: MockGenesysState) -> None:
        """Bind to one mock's state."""
        self.state = state

    def routes(self) -> list[BaseRoute]:
        """The control routes."""
        return [
            Route("/mock/settings", self.get_settings, methods=["GET"]),
            Route("/mock/settings", self.put_settings, methods=["PUT"]),
            Route("/mock/users", self.users, methods=["GET"]),
            Route("/mock/tokens/expire", self.expire_tokens, methods=["POST"]),
            Route("/mock/channels/expire", self.expire_channels, methods=["POST"]),
        ]

    async def get_settings(self, request: Request) -> Response:
        """``GET /mock/settings``: ``{signInMode, loginFrameable, signInUserId, agentRole,
        tokenExpiry}``."""
        return JSONResponse(self.state.settings.to_json())

    async def put_settings(self, request: Request) -> Response:
        """``PUT /mock/settings``: change any of the settings; answers all of them.

        400 ``bad_request`` for a body that is not JSON, ``invalid_setting`` for an
        unknown key or a bad value (then nothing changes).
        """
        try:
            body = await _json_body(request)
        except _BadBody as exc:
            return control_error(400, "bad_request", str(exc))
        try:
            self.state.settings.update(body, set(self.state.users))
        except SettingsError as exc:
            return control_error(400, "invalid_setting", str(exc))
        # tokenExpiry may now want sockets closed: the expiry timer looks again.
        self.state.expiry_changed.set()
        return JSONResponse(self.state.settings.to_json())

    async def users(self, request: Request) -> Response:
        """``GET /mock/users``: ``{"users": [{id, name, orgId, orgName, role}]}``."""
        directory = self.state.directory
        return JSONResponse({"users": [directory.summary(u) for u in directory.users.values()]})

    async def expire_tokens(self, request: Request) -> Response:
        """``POST /mock/tokens/expire`` ``{"userId"?}`` or ``{"token"}``: expire that user's
        tokens, or all, or the one token.

        Their channels stop delivering at once (with ``tokenExpiry`` ``close``, their
        sockets close). Answers ``{"expired": count}`` (of tokens that were live).
        """
        try:
            body = await _json_body(request)
        except _BadBody as exc:
            return control_error(400, "bad_request", str(exc))
        if body is None:
            body = {}
        if not isinstance(body, dict) or not (set(body) <= {"userId"} or set(body) == {"token"}):
            return control_error(
                400, "bad_request", 'The body must be {}, {"userId": id} or {"token": value}.'
            )
        if "token" in body:
            value = body["token"]
            if not isinstance(value, str):
                return control_error(400, "bad_request", "token must be a string.")
            live = self.state.authenticate(value) is not None
            self.state.expire_token(value)
            return JSONResponse({"expired": int(live)})
        user_id = body.get("userId")
        if user_id is not None and user_id not in self.state.users:
            return control_error(404, "not_found", "No such user.")
        return JSONResponse({"expired": self.state.expire_tokens(user_id)})

    async def expire_channels(self, request: Request) -> Response:
        """``POST /mock/channels/expire``: every channel expires now; ``{"expired": count}``."""
        return JSONResponse({"expired": self.state.expire_channels()})
