"""The mock Agent Desktop: a page that starts scripted conversations and frames the panel.

Mock-only endpoints (not part of the platform's contract) live under ``/mock/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.websockets import WebSocket

from server.devmode.mocks.genesys.config import (
    SIGN_IN_MODES,
    TOKEN_EXPIRY_MODES,
    MockGenesysConfig,
)
from server.devmode.mocks.genesys.pages import page_headers
from server.devmode.mocks.genesys.player import ConversationPlayer
from server.devmode.mocks.genesys.roles import AGENT_ROLES
from server.devmode.mocks.genesys.scripts import ScriptLibrary
from server.devmode.mocks.genesys.sockets import serve_outbox
from server.devmode.mocks.genesys.state import MockGenesysState, iso_z

STATIC_PATH = "/mock/static"
#: How the Platform section of the page names each sign-in mode.
SIGN_IN_LABELS = {
    "auto": "Automatic (silent)",
    "prompt": "Sign-in page",
    "deny": "Refuse sign-in",
}
#: How the Platform section names what a channel does when its token expires.
TOKEN_EXPIRY_LABELS = {
    "silent": "Channel falls silent",
    "close": "Channel socket closes",
}
#: The iframe sandbox Genesys usually gives interaction widgets.
PANEL_SANDBOX = (
    "allow-forms allow-modals allow-popups allow-presentation "
    "allow-same-origin allow-scripts allow-downloads"
)


def panel_url_for(
    config: MockGenesysConfig, conversation_id: str, popup_auth: bool = False
) -> str:
    """The panel URL as Agent Desktop would interpolate it for a conversation.

    ``popup_auth`` adds ``gcUsePopupAuth=true``, as an org whose identity provider
    refuses framing gets from Genesys (the mock's login host refuses frames then).
    """
    params = {
        "conversationId": conversation_id,
        "gcHostOrigin": config.origin,
        "gcTargetEnv": "mock",
        "langTag": "en-US",
    }
    if popup_auth:
        params["gcUsePopupAuth"] = "true"
    query = "&".join(f"{key}={quote(value, safe='')}" for key, value in params.items())
    separator = "&" if "?" in config.panel_url else "?"
    return f"{config.panel_url}{separator}{query}"


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


class MockDesktop:
    """The desktop page, its static files, and the ``/mock/`` endpoints it calls."""

    def __init__(
        self,
        config: MockGenesysConfig,
        state: MockGenesysState,
        library: ScriptLibrary,
        player: ConversationPlayer,
    ) -> None:
        """Bind to one mock; reads the template directory now (not at import)."""
        self.config = config
        self.state = state
        self.library = library
        self.player = player
        here = Path(__file__).resolve().parent
        self.templates = Jinja2Templates(directory=here / "templates")
        self.static_dir = here / "static"

    def routes(self) -> list[BaseRoute]:
        """The page, static files, and mock endpoints."""
        return [
            Route("/", self.page, methods=["GET"]),
            Mount(STATIC_PATH, StaticFiles(directory=self.static_dir), name="mock-static"),
            Route("/mock/scripts", self.list_scripts, methods=["GET"]),
            Route("/mock/conversations", self.create_conversation, methods=["POST"]),
            Route("/mock/conversations/{conversation_id}", self.conversation, methods=["GET"]),
            Route("/mock/conversations/{conversation_id}/play", self.play, methods=["POST"]),
            Route("/mock/conversations/{conversation_id}/end", self.end, methods=["POST"]),
            WebSocketRoute("/mock/conversations/{conversation_id}/feed", self.feed),
        ]

    def content_security_policy(self) -> str:
        """The desktop page's CSP: own scripts and styles, frames the panel only."""
        return "; ".join(
            [
                "default-src 'none'",
                "script-src 'self'",
                "style-src 'self'",
                "img-src 'self' data:",
                f"connect-src 'self' {self.config.ws_origin}",
                f"frame-src 'self' {self.config.panel_origin}",
                "base-uri 'none'",
                "form-action 'none'",
                "frame-ancestors 'none'",
            ]
        )

    async def page(self, request: Request) -> Response:
        """``GET /``: the mock Agent Desktop."""
        directory = self.state.directory
        context: dict[str, Any] = {
            "scripts": list(self.library.scripts.values()),
            "static_path": STATIC_PATH,
            "conversations_url": "/mock/conversations",
            "settings_url": "/mock/settings",
            "tokens_expire_url": "/mock/tokens/expire",
            "channels_expire_url": "/mock/channels/expire",
            "agent_name": self.config.agent_name,
            "org_name": self.config.org_name,
            "panel_origin": self.config.panel_origin,
            "panel_sandbox": PANEL_SANDBOX,
            "sign_in_modes": SIGN_IN_MODES,
            "sign_in_labels": SIGN_IN_LABELS,
            "agent_roles": list(AGENT_ROLES.values()),
            "token_expiry_modes": TOKEN_EXPIRY_MODES,
            "token_expiry_labels": TOKEN_EXPIRY_LABELS,
            "bootstrap_timeout_s": self.config.bootstrap_timeout_s,
            "settings": self.state.settings,
            "users": [directory.summary(u) for u in directory.users.values()],
        }
        return self.templates.TemplateResponse(
            request,
            "desktop.html",
            context,
            headers=page_headers(self.content_security_policy()),
        )

    async def list_scripts(self, request: Request) -> Response:
        """``GET /mock/scripts``: ``{"scripts": [{name, title, description, media, lines}]}``."""
        return JSONResponse({"scripts": self.library.summaries()})

    async def create_conversation(self, request: Request) -> Response:
        """``POST /mock/conversations {"script": name, "direct": bool}``:
        ``{conversationId, media, panelUrl}``. ``direct`` (voice scripts only): a call
        straight to the agent, whose participant then has the purpose ``user``.

        The conversation waits: its script plays once a channel subscribes to its
        transcription topic (voice) or to its agent's ``v2.users.{id}.conversations``
        topic (messaging), or on ``POST .../play``.
        """
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return _error(400, "bad_request", "The body must be JSON.")
        if not isinstance(body, dict):
            return _error(400, "bad_request", 'The body must be {"script": name}.')
        name = body.get("script", self.library.default.name)
        script = self.library.get(name) if isinstance(name, str) else None
        if script is None:
            return _error(400, "unknown_script", f"No script named {name!r}.")
        direct = body.get("direct", False)
        if not isinstance(direct, bool) or (direct and script.media != "voice"):
            return _error(400, "bad_request", '"direct" is true or false, and only for calls.')
        conversation = self.state.create_conversation(
            script.name, script.media, script.customer_name, script.customer_phone,
            direct=direct,
        )
        return JSONResponse(
            {
                "conversationId": conversation.id,
                "media": conversation.media,
                "panelUrl": panel_url_for(
                    self.config, conversation.id, not self.state.settings.login_frameable
                ),
            },
            status_code=201,
        )

    async def conversation(self, request: Request) -> Response:
        """``GET /mock/conversations/{id}``: script, playback status and final lines."""
        conversation = self.state.conversations.get(request.path_params["conversation_id"])
        if conversation is None:
            return _error(404, "not_found", "No such conversation.")
        return JSONResponse(
            {
                "conversationId": conversation.id,
                "script": conversation.script_name,
                "media": conversation.media,
                "status": conversation.feed.status,
                "lines": [
                    {"speaker": line.speaker, "text": line.text} for line in conversation.feed.lines
                ],
                "panelUrl": panel_url_for(
                    self.config, conversation.id, not self.state.settings.login_frameable
                ),
            }
        )

    async def play(self, request: Request) -> Response:
        """``POST /mock/conversations/{id}/play``: replay the script from the start (202).

        404 for an unknown conversation, 409 ``conversation_ended`` for an ended one.
        """
        conversation_id = request.path_params["conversation_id"]
        conversation = self.state.conversations.get(conversation_id)
        if conversation is not None and conversation.ended:
            return _error(409, "conversation_ended", "The conversation has ended.")
        if not await self.player.play(conversation_id):
            return _error(404, "not_found", "No such conversation.")
        return JSONResponse({"conversationId": conversation_id, "status": "playing"}, 202)

    async def end(self, request: Request) -> Response:
        """``POST /mock/conversations/{id}/end``: end the conversation, as the agent would.

        Its script stops; both participants leave, and the platform publishes the
        ended conversation on the agent's ``v2.users.{id}.conversations`` topic and,
        for a call still being transcribed, ``SESSION_ENDED`` on its transcription
        topic (see :mod:`.ending`). Answers ``{conversationId, status: "disconnected",
        endTime}`` (200, also for a conversation ended before: nothing is published
        again); 404 for an unknown one.
        """
        conversation = await self.player.end(request.path_params["conversation_id"])
        if conversation is None or conversation.end_time is None:
            return _error(404, "not_found", "No such conversation.")
        return JSONResponse(
            {
                "conversationId": conversation.id,
                "status": "disconnected",
                "endTime": iso_z(conversation.end_time),
            }
        )

    async def feed(self, websocket: WebSocket) -> None:
        """``/mock/conversations/{id}/feed``: the live transcript for the desktop page.

        Messages: ``{"type": "status", "status": "waiting"|"playing"|"ended"|"disconnected"}``
        (``disconnected``: the conversation was ended),
        ``{"type": "reset"}`` (a replay starts), and
        ``{"type": "line", "speaker", "text", "utteranceId"}`` per final line.
        """
        conversation = self.state.conversations.get(websocket.path_params["conversation_id"])
        await websocket.accept()
        if conversation is None:
            await websocket.close(1008, "Conversation not found")
            return
        outbox = conversation.feed.subscribe()
        try:
            await serve_outbox(websocket, outbox)
        finally:
            conversation.feed.unsubscribe(outbox)
