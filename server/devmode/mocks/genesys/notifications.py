"""The Notifications API: channels, their topic subscriptions, and channel WebSockets.

Subscribing checks the user's permissions, as the platform does. ``PUT`` (replace)
and ``POST`` (add) ``.../subscriptions`` take ``[{"id": topic}]`` and an optional
query parameter ``ignoreErrors`` (``true`` or ``false``, any case; false when absent):

* without it, one topic the user may not have refuses the whole request: 403
  ``missing.permissions`` naming the topic and the permission, and the channel's
  topics stay as they were;
* with ``ignoreErrors=true`` the answer is 200 and lists every topic of the request
  (a ``ChannelTopicEntityListing``): ``"state": "Permitted"`` for those subscribed,
  ``"state": "Rejected"`` with ``rejectionReason`` and ``missingPermissions`` for the
  others, which are left out (``PUT`` replaces the topics with the permitted ones,
  ``POST`` adds them).

A conversation's transcription topic needs ``conversation:transcription:view``; a
user's own ``v2.users.{id}.conversations`` topic needs no more than the token.
Only a topic actually subscribed starts what waits for it (``on_subscribed``).

Every REST call here needs a token granted the ``notifications`` scope: without it
the platform's 403 ``missing.any.scopes``, before anything else is looked at.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from server.devmode.mocks.genesys.api import PlatformError, require_token
from server.devmode.mocks.genesys.config import MockGenesysConfig
from server.devmode.mocks.genesys.roles import TRANSCRIPTION_VIEW
from server.devmode.mocks.genesys.sockets import Outbox, serve_outbox
from server.devmode.mocks.genesys.state import (
    TOKEN_EXPIRED,
    Channel,
    MockGenesysState,
    iso_z,
    metadata_frame,
)

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
TRANSCRIPTION_TOPIC = re.compile(rf"v2\.conversations\.({_UUID})\.transcription")
USER_CONVERSATIONS_TOPIC = re.compile(rf"v2\.users\.({_UUID})\.conversations")
#: Topic patterns the mock accepts; anything else is a 400.
TOPIC_PATTERNS: tuple[re.Pattern[str], ...] = (TRANSCRIPTION_TOPIC, USER_CONVERSATIONS_TOPIC)
MAX_TOPICS_PER_CHANNEL = 1000
HEARTBEAT_MESSAGE = "WebSocket Heartbeat"
#: The values ``ignoreErrors`` may take (compared in lower case).
_BOOLEANS = {"true": True, "false": False}
#: The OAuth scope every notifications call needs.
NOTIFICATIONS_SCOPES: tuple[str, ...] = ("notifications",)


def required_permissions(topic: str) -> tuple[str, ...]:
    """The permissions a user needs to subscribe to ``topic`` (a valid topic).

    A conversation's transcript needs ``conversation:transcription:view``. The user's
    own conversations topic needs nothing more; another user's is let through as it
    always was (the mock does not model supervisors).
    """
    if TRANSCRIPTION_TOPIC.fullmatch(topic):
        return (TRANSCRIPTION_VIEW,)
    return ()


@dataclass(frozen=True)
class TopicCheck:
    """One topic of a subscription request, and the permissions the user lacks for it."""

    topic: str
    missing: tuple[str, ...] = ()

    @property
    def permitted(self) -> bool:
        """Whether the user may subscribe to the topic."""
        return not self.missing

    def entity(self) -> dict[str, Any]:
        """The topic as a ``ChannelTopic``, with its state."""
        if self.permitted:
            return {"id": self.topic, "state": "Permitted"}
        return {
            "id": self.topic,
            "state": "Rejected",
            "rejectionReason": "The user lacks the permission(s) this topic needs: "
            + ", ".join(self.missing),
            "missingPermissions": list(self.missing),
        }


def topic_refused(check: TopicCheck) -> PlatformError:
    """The platform's 403 for a subscription to a topic the user lacks permissions for."""
    listed = ", ".join(check.missing)
    return PlatformError(
        403,
        "missing.permissions",
        f"Unable to subscribe to {check.topic}. You are missing the following "
        f"permission(s): [{listed}]",
        {"permissions": listed, "topic": check.topic},
    )


def ignore_errors(request: Request) -> bool:
    """The ``ignoreErrors`` query parameter: false when absent, 400 when not a boolean."""
    value = request.query_params.get("ignoreErrors")
    if value is None:
        return False
    if value.lower() not in _BOOLEANS:
        raise PlatformError(
            400,
            "bad.request",
            f"ignoreErrors must be true or false, not {value!r}.",
            {"ignoreErrors": value},
        )
    return _BOOLEANS[value.lower()]


class NotificationsApi:
    """Channels per user and client, and the sockets events are pushed on."""

    def __init__(
        self,
        config: MockGenesysConfig,
        state: MockGenesysState,
        on_subscribed: Callable[[str], None] | None = None,
    ) -> None:
        """Bind to one mock; the callback gets each topic a channel newly subscribes to."""
        self.config = config
        self.state = state
        self.on_subscribed = on_subscribed

    def routes(self) -> list[BaseRoute]:
        """The REST routes and the channel WebSocket route."""
        subscriptions = "/api/v2/notifications/channels/{channel_id}/subscriptions"
        return [
            Route("/api/v2/notifications/channels", self.create_channel, methods=["POST"]),
            Route("/api/v2/notifications/channels", self.list_channels, methods=["GET"]),
            Route(subscriptions, self.get_subscriptions, methods=["GET"]),
            Route(subscriptions, self.replace_subscriptions, methods=["PUT"]),
            Route(subscriptions, self.add_subscriptions, methods=["POST"]),
            Route(subscriptions, self.clear_subscriptions, methods=["DELETE"]),
            WebSocketRoute("/channels/{channel_id}", self.channel_socket),
        ]

    # REST ---------------------------------------------------------------

    async def create_channel(self, request: Request) -> Response:
        """``POST /api/v2/notifications/channels``: ``{id, connectUri, expires}``."""
        token = require_token(self.state, request, NOTIFICATIONS_SCOPES)
        channel = self.state.create_channel(token)
        return JSONResponse(self.channel_body(channel))

    async def list_channels(self, request: Request) -> Response:
        """``GET /api/v2/notifications/channels[?includechannels=token|oauthclient]``."""
        token = require_token(self.state, request, NOTIFICATIONS_SCOPES)
        include: Literal["token", "oauthclient"] = "token"
        if request.query_params.get("includechannels", "token").lower() == "oauthclient":
            include = "oauthclient"
        channels = self.state.channels_for(token, include)
        return JSONResponse({"entities": [self.channel_body(c) for c in channels]})

    async def get_subscriptions(self, request: Request) -> Response:
        """``GET .../subscriptions``: the channel's topics (each ``Permitted``)."""
        channel = self._owned_channel(request)
        return self._topics_response(channel)

    async def replace_subscriptions(self, request: Request) -> Response:
        """``PUT .../subscriptions[?ignoreErrors=]``: replace the channel's topics.

        Answers the channel's topics, or with ``ignoreErrors=true`` every topic asked
        for with its state (see the module's docstring).
        """
        channel = self._owned_channel(request)
        lenient = ignore_errors(request)
        checks = await self._checked_topics(request, channel, lenient)
        self._set_topics(channel, [c.topic for c in checks if c.permitted])
        return self._subscribed_response(channel, checks, lenient)

    async def add_subscriptions(self, request: Request) -> Response:
        """``POST .../subscriptions[?ignoreErrors=]``: add topics to the channel.

        Answers as ``PUT`` does.
        """
        channel = self._owned_channel(request)
        lenient = ignore_errors(request)
        checks = await self._checked_topics(request, channel, lenient)
        self._set_topics(channel, [*channel.topics, *(c.topic for c in checks if c.permitted)])
        return self._subscribed_response(channel, checks, lenient)

    async def clear_subscriptions(self, request: Request) -> Response:
        """``DELETE .../subscriptions``: remove every topic."""
        channel = self._owned_channel(request)
        self._set_topics(channel, [])
        return self._topics_response(channel)

    def channel_body(self, channel: Channel) -> dict[str, Any]:
        """A channel in the platform's ``Channel`` shape."""
        return {
            "connectUri": f"{self.config.ws_origin}/channels/{channel.id}",
            "id": channel.id,
            "expires": iso_z(channel.expires_at),
        }

    def _owned_channel(self, request: Request) -> Channel:
        token = require_token(self.state, request, NOTIFICATIONS_SCOPES)
        channel = self.state.channel_for(token, request.path_params["channel_id"])
        if channel is None:
            raise PlatformError(404, "not.found", "The notification channel could not be found.")
        return channel

    async def _topics_from_body(self, request: Request) -> list[str]:
        try:
            body: Any = json.loads(await request.body())
        except ValueError as exc:
            raise PlatformError(400, "bad.request", "The request body is not valid JSON.") from exc
        if not isinstance(body, list) or not all(
            isinstance(item, dict) and isinstance(item.get("id"), str) for item in body
        ):
            raise PlatformError(
                400, "bad.request", 'The body must be a list of topics: [{"id": "<topic>"}].'
            )
        topics: list[str] = [item["id"] for item in body]
        unknown = [t for t in topics if not any(p.fullmatch(t) for p in TOPIC_PATTERNS)]
        if unknown:
            raise PlatformError(
                400,
                "bad.request",
                f"Invalid or unsupported topic: {unknown[0]}",
                {"topic": unknown[0]},
            )
        return topics

    async def _checked_topics(
        self, request: Request, channel: Channel, lenient: bool
    ) -> list[TopicCheck]:
        """The request's topics (each once), checked against the user's permissions now.

        Without ``lenient`` (``ignoreErrors``), the first refused topic is a 403.
        """
        held = self.state.user_permissions(channel.user_id)
        checks = [
            TopicCheck(
                topic,
                tuple(p for p in required_permissions(topic) if p not in held),
            )
            for topic in dict.fromkeys(await self._topics_from_body(request))
        ]
        refused = next((c for c in checks if not c.permitted), None)
        if refused is not None and not lenient:
            raise topic_refused(refused)
        return checks

    def _subscribed_response(
        self, channel: Channel, checks: list[TopicCheck], lenient: bool
    ) -> Response:
        if lenient:
            return JSONResponse({"entities": [c.entity() for c in checks]})
        return self._topics_response(channel)

    def _set_topics(self, channel: Channel, topics: list[str]) -> None:
        unique = list(dict.fromkeys(topics))
        if len(unique) > MAX_TOPICS_PER_CHANNEL:
            raise PlatformError(
                400,
                "bad.request",
                f"A channel can be subscribed to at most {MAX_TOPICS_PER_CHANNEL} topics.",
            )
        added = [t for t in unique if t not in channel.topics]
        channel.topics = unique
        if self.on_subscribed is not None:
            for topic in added:
                self.on_subscribed(topic)

    @staticmethod
    def _topics_response(channel: Channel) -> Response:
        return JSONResponse(
            {"entities": [TopicCheck(topic).entity() for topic in channel.topics]}
        )

    # WebSocket ----------------------------------------------------------

    async def channel_socket(self, websocket: WebSocket) -> None:
        """``/channels/{channelId}``: heartbeats, ping/pong, and the subscribed events.

        The socket of an unknown or expired channel, or of one whose token has
        expired, is accepted and closed at once with code 1008 and a reason. When the
        token of a connected channel expires, the socket is closed so with
        ``tokenExpiry`` ``close``; with ``silent`` it stays open, its heartbeats and
        pongs go on, and no event reaches it again.
        """
        channel = self.state.live_channel(websocket.path_params["channel_id"])
        await websocket.accept()
        if channel is None:
            await websocket.close(1008, "Channel not found")
            return
        if self.state.token_expired(channel):
            await websocket.close(*TOKEN_EXPIRED)
            return
        outbox = self.state.connect(channel)
        heartbeat = asyncio.create_task(self._heartbeat(channel, outbox))
        try:
            await serve_outbox(websocket, outbox, lambda text: self._on_client_text(outbox, text))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            self.state.disconnect(channel, outbox)

    async def _heartbeat(self, channel: Channel, outbox: Outbox) -> None:
        while not outbox.closed:
            await asyncio.sleep(self.config.heartbeat_s)
            if self.state.closes_on_token_expiry and self.state.token_expired(channel):
                outbox.close(*TOKEN_EXPIRED)
                return
            outbox.push(metadata_frame(HEARTBEAT_MESSAGE))

    @staticmethod
    def _on_client_text(outbox: Outbox, text: str) -> None:
        try:
            message: Any = json.loads(text)
        except ValueError:
            return
        if isinstance(message, dict) and message.get("message") == "ping":
            outbox.push(metadata_frame("pong"))
