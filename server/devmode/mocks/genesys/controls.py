"""Mock-only platform controls under ``/mock/`` (JSON), for the desktop page and tests.

Not part of the platform's contract: they change what the mock platform does
(sign-in mode, framing, who signs in, the agents' role) and make tokens or channels
expire now.
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
        """``GET /mock/settings``: ``{signInMode, loginFrameable, signInUserId, agentRole}``."""
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
        return JSONResponse(self.state.settings.to_json())

    async def users(self, request: Request) -> Response:
        """``GET /mock/users``: ``{"users": [{id, name, orgId, orgName, role}]}``."""
        directory = self.state.directory
        return JSONResponse({"users": [directory.summary(u) for u in directory.users.values()]})

    async def expire_tokens(self, request: Request) -> Response:
        """``POST /mock/tokens/expire`` ``{"userId"?}``: expire that user's tokens, or all.

        Their channels' sockets close at once. Answers ``{"expired": count}``.
        """
        try:
            body = await _json_body(request)
        except _BadBody as exc:
            return control_error(400, "bad_request", str(exc))
        if body is None:
            body = {}
        if not isinstance(body, dict) or set(body) - {"userId"}:
            return control_error(400, "bad_request", 'The body must be {} or {"userId": id}.')
        user_id = body.get("userId")
        if user_id is not None and user_id not in self.state.users:
            return control_error(404, "not_found", "No such user.")
        return JSONResponse({"expired": self.state.expire_tokens(user_id)})

    async def expire_channels(self, request: Request) -> Response:
        """``POST /mock/channels/expire``: every channel expires now; ``{"expired": count}``."""
        return JSONResponse({"expired": self.state.expire_channels()})
