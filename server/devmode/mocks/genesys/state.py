"""In-memory platform state of the mock Genesys Cloud, and its event fan-out.

Everything here runs on the server's one event loop. Mutations are plain
synchronous methods (no ``await`` inside), so they cannot interleave; delivery
to sockets goes through one :class:`~.sockets.Outbox` per socket, drained by
that socket's single writer, so a slow socket never blocks the publisher or
other sockets.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import string
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from server.devmode.mocks.genesys.client_registry import ClientRegistry
from server.devmode.mocks.genesys.config import MockGenesysConfig
from server.devmode.mocks.genesys.conversations import Conversation, Media
from server.devmode.mocks.genesys.directory import Directory, User
from server.devmode.mocks.genesys.pkce import CodeStore
from server.devmode.mocks.genesys.roles import AGENT_ROLES, DEFAULT_AGENT_ROLE
from server.devmode.mocks.genesys.settings import MockSettings
from server.devmode.mocks.genesys.sockets import Outbox

#: How a token was issued, as ``tokens/me`` reports it (``OAuthClient.authorizedGrantType``).
GrantType = Literal["TOKEN", "CODE"]

_CHANNEL_ALPHABET = string.ascii_lowercase + string.digits
TOKEN_EXPIRED = (1008, "Access token expired")
CHANNEL_EXPIRED = (1000, "Channel expired")


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
    grant_type: GrantType = "TOKEN"


@dataclass(frozen=True)
class AdminToken:
    """A client-credentials bearer token: an OAuth client of an org, no user.

    Its permissions are those of the client's role, read when the token is issued.
    """

    value: str
    client_id: str
    org_id: str
    permissions: frozenset[str]
    issued_at: float
    expires_at: float


@dataclass(eq=False)
class Channel:
    """A notification channel: its topics and the sockets connected to it."""

    id: str
    user_id: str
    client_id: str
    token: str
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
    """Users, tokens, codes, conversations and notification channels of one mock.

    Attributes:
        directory: The orgs and users (fixed by the config).
        settings: The login host's runtime switches (``/mock/settings``).
        codes: Outstanding authorization codes.
        oauth_clients: The org's OAuth clients (the config's two, then any made by API).
        expiry_changed: Set whenever a new expiry may come sooner than the
            expiry timer (:mod:`.expiry`) planned for; the timer clears it.
    """

    def __init__(self, config: MockGenesysConfig) -> None:
        """Create the state: the config's users, no tokens, conversations or channels."""
        self.config = config
        self.directory = Directory.from_config(config)
        self.settings = MockSettings.from_config(config)
        self.codes = CodeStore(config.clock, config.code_lifetime_s)
        self.oauth_clients = ClientRegistry.seeded(config)
        self.tokens: dict[str, AccessToken] = {}
        self.admin_tokens: dict[str, AdminToken] = {}
        self.conversations: dict[str, Conversation] = {}
        self.channels: dict[str, Channel] = {}
        self.expiry_changed = asyncio.Event()
        self._channel_seq = 0

    @property
    def users(self) -> dict[str, User]:
        """Every user, by id."""
        return self.directory.users

    def now(self) -> float:
        """Current time in epoch seconds, from the configured clock."""
        return self.config.clock()

    def user_permissions(self, user_id: str) -> frozenset[str]:
        """The permissions a user holds now: the home org's users those of the
        ``agentRole`` setting, the other org's user those of a full agent."""
        user = self.users.get(user_id)
        if user is not None and user.org_id == self.config.org_id:
            return AGENT_ROLES[self.settings.agent_role].permissions
        return AGENT_ROLES[DEFAULT_AGENT_ROLE].permissions

    # Tokens -------------------------------------------------------------

    def issue_token(
        self, user_id: str, client_id: str, grant_type: GrantType = "TOKEN"
    ) -> AccessToken:
        """Issue a new access token for a user through a client.

        It carries the client's scopes and lives its token lifetime (the config's
        for a client the registry does not know).
        """
        now = self.now()
        client = self.oauth_clients.get(client_id)
        token = AccessToken(
            value=secrets.token_urlsafe(64),
            user_id=user_id,
            org_id=self.users[user_id].org_id,
            client_id=client_id,
            scopes=client.scopes if client else self.config.scopes,
            issued_at=now,
            expires_at=now + (client.token_lifetime_s if client else self.config.token_lifetime_s),
            grant_type=grant_type,
        )
        self.tokens[token.value] = token
        return token

    def authenticate(self, value: str) -> AccessToken | None:
        """The token with this value if it exists and has not expired."""
        token = self.tokens.get(value)
        if token is None or token.expires_at <= self.now():
            return None
        return token

    def issue_admin_token(self) -> AdminToken:
        """Issue a client-credentials token to the config's admin client (home org)."""
        now = self.now()
        token = AdminToken(
            value=secrets.token_urlsafe(64),
            client_id=self.config.admin_client_id,
            org_id=self.config.org_id,
            permissions=frozenset(self.config.admin_permissions),
            issued_at=now,
            expires_at=now + self.config.admin_token_lifetime_s,
        )
        self.admin_tokens[token.value] = token
        return token

    def authenticate_admin(self, value: str) -> AdminToken | None:
        """The client-credentials token with this value if it exists and has not expired."""
        token = self.admin_tokens.get(value)
        if token is None or token.expires_at <= self.now():
            return None
        return token

    def expire_token(self, value: str) -> None:
        """Make a token expire now (revocation); its channels stop delivering (and with
        ``tokenExpiry`` ``close`` their sockets close)."""
        token = self.tokens.get(value)
        if token is not None and token.expires_at > self.now():
            self.tokens[value] = dataclasses.replace(token, expires_at=self.now())
        self.sweep()

    def expire_tokens(self, user_id: str | None = None) -> int:
        """Expire every live token of a user (or of everyone) now; how many were live."""
        now = self.now()
        live = [
            t
            for t in self.tokens.values()
            if t.expires_at > now and (user_id is None or t.user_id == user_id)
        ]
        for token in live:
            self.tokens[token.value] = dataclasses.replace(token, expires_at=now)
        self.sweep()
        return len(live)

    # Conversations ------------------------------------------------------

    def create_conversation(
        self, script_name: str, media: Media, customer_name: str, customer_phone: str,
        *, direct: bool = False,
    ) -> Conversation:
        """Create a connected conversation between a customer and the scripted agent
        (``direct``: a call straight to the agent, not through a queue)."""
        conversation = Conversation(
            id=str(uuid.uuid4()),
            script_name=script_name,
            media=media,
            customer_name=customer_name,
            customer_phone=customer_phone,
            start_time=self.now(),
            agent_user_id=self.config.agent_user_id,
            direct=direct,
        )
        self.conversations[conversation.id] = conversation
        return conversation

    def visible_conversation(self, token: AccessToken, conversation_id: str) -> Conversation | None:
        """A conversation this token may see: any of its own org's (all are the home org's)."""
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            return None
        agent = self.users.get(conversation.agent_user_id)
        if agent is None or agent.org_id != token.org_id:
            # Conversation ids are per org: from another org it does not exist.
            return None
        return conversation

    # Channels -----------------------------------------------------------

    def create_channel(self, token: AccessToken) -> Channel:
        """Create a channel; past the per-user limit the oldest one is removed."""
        self.sweep()
        now = self.now()
        self._channel_seq += 1
        suffix = "".join(secrets.choice(_CHANNEL_ALPHABET) for _ in range(26))
        channel = Channel(
            id=f"streaming-{self._channel_seq}-{suffix}",
            user_id=token.user_id,
            client_id=token.client_id,
            token=token.value,
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
        self.sweep()
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
        self.sweep()
        return self.channels.get(channel_id)

    def remove_channel(self, channel_id: str, code: int, reason: str) -> None:
        """Delete a channel and close its sockets."""
        channel = self.channels.pop(channel_id, None)
        if channel is not None:
            channel.close(code, reason)

    def expire_channels(self) -> int:
        """Expire every channel now (its sockets close, it is gone); how many there were."""
        count = len(self.channels)
        for channel_id in list(self.channels):
            self.remove_channel(channel_id, *CHANNEL_EXPIRED)
        return count

    def connect(self, channel: Channel) -> Outbox:
        """Attach a new socket to a channel."""
        outbox = Outbox()
        channel.connections.add(outbox)
        # The expiry timer only watches channels with sockets: it may need to wake sooner.
        self.expiry_changed.set()
        return outbox

    def disconnect(self, channel: Channel, outbox: Outbox) -> None:
        """Detach a socket from a channel."""
        channel.connections.discard(outbox)

    def token_expired(self, channel: Channel) -> bool:
        """Whether the token behind a channel has expired (it then stops delivering)."""
        token = self.tokens.get(channel.token)
        return token is None or token.expires_at <= self.now()

    @property
    def closes_on_token_expiry(self) -> bool:
        """Whether a channel's sockets are closed when its token expires (``tokenExpiry``
        ``close``), rather than left open and silent."""
        return self.settings.token_expiry == "close"

    def publish(self, topic: str, event_body: dict[str, Any]) -> int:
        """Send an event to every socket of every channel subscribed to ``topic``.

        Returns the number of sockets it was queued for. Channels whose token has
        expired are not delivered to (their sockets are closed, or left silent).
        """
        self.sweep()
        frame = channel_frame(topic, event_body)
        delivered = 0
        for channel in list(self.channels.values()):
            if topic not in channel.topics or self.token_expired(channel):
                continue
            for outbox in list(channel.connections):
                if outbox.push(frame):
                    delivered += 1
                else:
                    channel.connections.discard(outbox)
        return delivered

    # Expiry -------------------------------------------------------------

    def sweep(self) -> None:
        """Remove expired channels and, with ``tokenExpiry`` ``close``, close the sockets
        of channels whose token expired.

        Called by the expiry timer and before every channel operation, so that
        nothing is delivered past an expiry even between two timer ticks.
        """
        now = self.now()
        closing = self.closes_on_token_expiry
        for channel in list(self.channels.values()):
            if channel.expires_at <= now:
                self.remove_channel(channel.id, *CHANNEL_EXPIRED)
            elif closing and channel.connections and self.token_expired(channel):
                channel.close(*TOKEN_EXPIRED)

    def next_expiry(self) -> float | None:
        """The earliest time (by the clock) :meth:`sweep` will have something to do."""
        moments: list[float] = []
        closing = self.closes_on_token_expiry
        for channel in self.channels.values():
            moments.append(channel.expires_at)
            token = self.tokens.get(channel.token)
            if closing and channel.connections and token is not None:
                moments.append(token.expires_at)
        return min(moments, default=None)

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
