"""In-memory platform state of the mock Genesys Cloud, and its event fan-out.

Everything here runs on the server's one event loop. Mutations are plain
synchronous methods (no ``await`` inside), so they cannot interleave; delivery
to sockets goes through one :class:`~.sockets.Outbox` per socket, drained by
that socket's single writer, so a slow socket never blocks the publisher or
other sockets.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import string
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from .config import MockGenesysConfig
from .sockets import Outbox

Speaker = Literal["customer", "agent"]
PlaybackStatus = Literal["waiting", "playing", "ended"]

_CHANNEL_ALPHABET = string.ascii_lowercase + string.digits


def iso_z(epoch_s: float) -> str:
    """Format epoch seconds the way the platform does: ``2024-05-01T12:00:00.000Z``."""
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def channel_frame(topic: str, event_body: dict[str, Any]) -> str:
    """Serialise one notification frame as the platform sends it."""
    frame = {
        "topicName": topic,
        "version": "2",
        "eventBody": event_body,
        "metadata": {"CorrelationId": str(uuid.uuid4())},
    }
    return json.dumps(frame, separators=(",", ":"))


def metadata_frame(message: str) -> str:
    """Serialise a ``channel.metadata`` frame (heartbeat or pong)."""
    frame = {"topicName": "channel.metadata", "eventBody": {"message": message}}
    return json.dumps(frame, separators=(",", ":"))


@dataclass(frozen=True)
class AccessToken:
    """An opaque bearer token issued by the mock's OAuth endpoints."""

    value: str
    user_id: str
    org_id: str
    client_id: str
    scopes: tuple[str, ...]
    issued_at: float
    expires_at: float


@dataclass(frozen=True)
class User:
    """A platform user (only the scripted agent exists)."""

    id: str
    name: str
    email: str
    division_id: str
    org_id: str


@dataclass(frozen=True)
class FeedLine:
    """One final line of a playing conversation, as the mock desktop shows it."""

    speaker: Speaker
    text: str
    utterance_id: str


class ConversationFeed:
    """The mock-only live transcript of a conversation, for the desktop page."""

    def __init__(self) -> None:
        """Start empty, waiting for playback."""
        self.status: PlaybackStatus = "waiting"
        self.lines: list[FeedLine] = []
        self._listeners: set[Outbox] = set()

    def subscribe(self) -> Outbox:
        """A new listener; it first gets the status and every line so far."""
        outbox = Outbox()
        outbox.push(json.dumps({"type": "status", "status": self.status}))
        for line in self.lines:
            outbox.push(self._line_message(line))
        self._listeners.add(outbox)
        return outbox

    def unsubscribe(self, outbox: Outbox) -> None:
        """Forget a listener."""
        self._listeners.discard(outbox)

    def reset(self) -> None:
        """A (re)play starts: drop the lines so far."""
        self.lines.clear()
        self._broadcast(json.dumps({"type": "reset"}))

    def set_status(self, status: PlaybackStatus) -> None:
        """Announce a playback status change."""
        self.status = status
        self._broadcast(json.dumps({"type": "status", "status": status}))

    def add_line(self, line: FeedLine) -> None:
        """Record and announce one final line."""
        self.lines.append(line)
        self._broadcast(self._line_message(line))

    def close(self, code: int, reason: str) -> None:
        """Close every listener's socket."""
        for outbox in list(self._listeners):
            outbox.close(code, reason)
        self._listeners.clear()

    def _broadcast(self, message: str) -> None:
        for outbox in list(self._listeners):
            if not outbox.push(message):
                self._listeners.discard(outbox)

    @staticmethod
    def _line_message(line: FeedLine) -> str:
        return json.dumps(
            {
                "type": "line",
                "speaker": line.speaker,
                "text": line.text,
                "utteranceId": line.utterance_id,
            }
        )


@dataclass(eq=False)
class Conversation:
    """A live scripted voice conversation between a customer and the scripted agent."""

    id: str
    script_name: str
    media: str
    customer_name: str
    customer_phone: str
    start_time: float
    agent_user_id: str
    customer_participant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    agent_participant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    customer_communication_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    agent_communication_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    feed: ConversationFeed = field(default_factory=ConversationFeed)
    playback_requested: bool = False

    @property
    def transcription_topic(self) -> str:
        """The notification topic carrying this conversation's transcript."""
        return f"v2.conversations.{self.id}.transcription"


@dataclass(eq=False)
class Channel:
    """A notification channel: its topics and the sockets connected to it."""

    id: str
    user_id: str
    client_id: str
    token: str
    token_expires_at: float
    created_at: float
    expires_at: float
    topics: list[str] = field(default_factory=list)
    connections: set[Outbox] = field(default_factory=set)

    def close(self, code: int, reason: str) -> None:
        """Close every socket connected to this channel."""
        for outbox in list(self.connections):
            outbox.close(code, reason)
        self.connections.clear()


class MockGenesysState:
    """Tokens, users, conversations and notification channels of one mock org."""

    def __init__(self, config: MockGenesysConfig) -> None:
        """Create the state with the scripted agent as the only user."""
        self.config = config
        self.tokens: dict[str, AccessToken] = {}
        self.users: dict[str, User] = {}
        self.conversations: dict[str, Conversation] = {}
        self.channels: dict[str, Channel] = {}
        self._channel_seq = 0
        agent = User(
            id=config.agent_user_id,
            name=config.agent_name,
            email=config.agent_email,
            division_id=config.agent_division_id,
            org_id=config.org_id,
        )
        self.users[agent.id] = agent

    def now(self) -> float:
        """Current time in epoch seconds, from the configured clock."""
        return self.config.clock()

    # Tokens -------------------------------------------------------------

    def issue_token(self, user_id: str, client_id: str) -> AccessToken:
        """Issue a new access token for a user through a client."""
        now = self.now()
        token = AccessToken(
            value=secrets.token_urlsafe(64),
            user_id=user_id,
            org_id=self.users[user_id].org_id,
            client_id=client_id,
            scopes=self.config.scopes,
            issued_at=now,
            expires_at=now + self.config.token_lifetime_s,
        )
        self.tokens[token.value] = token
        return token

    def authenticate(self, value: str) -> AccessToken | None:
        """The token with this value if it exists and has not expired."""
        token = self.tokens.get(value)
        if token is None or token.expires_at <= self.now():
            return None
        return token

    def expire_token(self, value: str) -> None:
        """Make a token expire now (revocation; also handy in tests)."""
        token = self.tokens.get(value)
        if token is not None:
            self.tokens[value] = dataclasses.replace(token, expires_at=self.now())
            for channel in self.channels.values():
                if channel.token == value:
                    channel.token_expires_at = self.now()

    # Conversations ------------------------------------------------------

    def create_conversation(
        self, script_name: str, media: str, customer_name: str, customer_phone: str
    ) -> Conversation:
        """Create a connected conversation between a customer and the scripted agent."""
        conversation = Conversation(
            id=str(uuid.uuid4()),
            script_name=script_name,
            media=media,
            customer_name=customer_name,
            customer_phone=customer_phone,
            start_time=self.now(),
            agent_user_id=self.config.agent_user_id,
        )
        self.conversations[conversation.id] = conversation
        return conversation

    # Channels -----------------------------------------------------------

    def create_channel(self, token: AccessToken) -> Channel:
        """Create a channel; past the per-user limit the oldest one is removed."""
        self._prune_channels()
        now = self.now()
        self._channel_seq += 1
        suffix = "".join(secrets.choice(_CHANNEL_ALPHABET) for _ in range(26))
        channel = Channel(
            id=f"streaming-{self._channel_seq}-{suffix}",
            user_id=token.user_id,
            client_id=token.client_id,
            token=token.value,
            token_expires_at=token.expires_at,
            created_at=now,
            expires_at=now + self.config.channel_lifetime_s,
        )
        owned = self._owned_channels(token.user_id, token.client_id)
        while len(owned) >= self.config.max_channels_per_user:
            oldest = owned.pop(0)
            self.remove_channel(oldest.id, 1000, "Channel limit reached; oldest channel removed")
        self.channels[channel.id] = channel
        return channel

    def channels_for(
        self, token: AccessToken, include: Literal["token", "oauthclient"] = "token"
    ) -> list[Channel]:
        """Live channels made with this token, or by this user through this client."""
        self._prune_channels()
        owned = self._owned_channels(token.user_id, token.client_id)
        if include == "token":
            return [c for c in owned if c.token == token.value]
        return owned

    def channel_for(self, token: AccessToken, channel_id: str) -> Channel | None:
        """A live channel this token's user owns through this client, if any."""
        channel = self.live_channel(channel_id)
        if channel is None or (channel.user_id, channel.client_id) != (
            token.user_id,
            token.client_id,
        ):
            return None
        return channel

    def live_channel(self, channel_id: str) -> Channel | None:
        """A channel that exists and has not expired."""
        self._prune_channels()
        return self.channels.get(channel_id)

    def remove_channel(self, channel_id: str, code: int, reason: str) -> None:
        """Delete a channel and close its sockets."""
        channel = self.channels.pop(channel_id, None)
        if channel is not None:
            channel.close(code, reason)

    def connect(self, channel: Channel) -> Outbox:
        """Attach a new socket to a channel."""
        outbox = Outbox()
        channel.connections.add(outbox)
        return outbox

    def disconnect(self, channel: Channel, outbox: Outbox) -> None:
        """Detach a socket from a channel."""
        channel.connections.discard(outbox)

    def token_expired(self, channel: Channel) -> bool:
        """Whether the token behind a channel has expired (it then stops delivering)."""
        return channel.token_expires_at <= self.now()

    def publish(self, topic: str, event_body: dict[str, Any]) -> int:
        """Send an event to every socket of every channel subscribed to ``topic``.

        Returns the number of sockets it was queued for. Channels whose token has
        expired are not delivered to: their sockets are closed.
        """
        self._prune_channels()
        frame = channel_frame(topic, event_body)
        delivered = 0
        for channel in list(self.channels.values()):
            if topic not in channel.topics:
                continue
            if self.token_expired(channel):
                channel.close(1008, "Access token expired")
                continue
            for outbox in list(channel.connections):
                if outbox.push(frame):
                    delivered += 1
                else:
                    channel.connections.discard(outbox)
        return delivered

    def close_all(self, code: int = 1001, reason: str = "Server shutting down") -> None:
        """Close every channel socket and every desktop feed socket."""
        for channel in self.channels.values():
            channel.close(code, reason)
        for conversation in self.conversations.values():
            conversation.feed.close(code, reason)

    def _owned_channels(self, user_id: str, client_id: str) -> list[Channel]:
        owned = [
            c for c in self.channels.values() if (c.user_id, c.client_id) == (user_id, client_id)
        ]
        return sorted(owned, key=lambda c: c.created_at)

    def _prune_channels(self) -> None:
        now = self.now()
        expired: Iterable[Channel] = [c for c in self.channels.values() if c.expires_at <= now]
        for channel in expired:
            self.remove_channel(channel.id, 1000, "Channel expired")
