"""Configuration of the mock Genesys Cloud (one frozen value, no I/O)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

#: How the login host answers an authorization request (see :class:`MockGenesysConfig`).
SIGN_IN_MODES: tuple[str, ...] = ("auto", "prompt", "deny")
#: What a channel's open sockets see when its token expires (see :class:`MockGenesysConfig`).
TOKEN_EXPIRY_MODES: tuple[str, ...] = ("silent", "close")

#: The OAuth scopes the mock grants to every token (the ones the panel needs).
DEFAULT_SCOPES: tuple[str, ...] = (
    "user-basic-info",
    "conversations:readonly",
    "notifications",
    "knowledge:readonly",
)

#: What the admin OAuth client's role grants (client credentials): everything the
#: installer, ``status`` (roles and queues, for what agents need) and ``kb sync`` call needs.
ADMIN_PERMISSIONS: tuple[str, ...] = (
    "integrations:integration:view",
    "integrations:integration:add",
    "integrations:integration:edit",
    "integrations:integration:delete",
    "oauth:client:view",
    "oauth:client:add",
    "oauth:client:edit",
    "oauth:client:delete",
    "knowledge:knowledgebase:view",
    "knowledge:document:view",
    "authorization:role:view",
    "routing:queue:view",
)


def _origin_of(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{what} must be an absolute http(s) URL, got {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class MockGenesysConfig:
    """Settings of one mock Genesys Cloud instance.

    The mock serves the OAuth host, the REST API, the notification WebSockets
    and the mock Agent Desktop all from ``public_origin``.

    Attributes:
        public_origin: Origin the mock is reachable at, e.g. ``http://127.0.0.1:8001``;
            used to build every URL it hands out (``connectUri``, ``selfUri``...).
        panel_url: The panel page, e.g. ``http://localhost:8000/panel``. The
            desktop frames it, and it is the OAuth client's registered redirect URI.
        client_id: The dev-mode OAuth client registered from the start (``client_name``
            is its display name); the installer can register more.
        token_lifetime_s: Lifetime of issued access tokens (Genesys allows 300-172800).
        heartbeat_s: Interval of ``channel.metadata`` heartbeats on channel sockets.
        scripts_dir: Directory of scripted conversations; ``None`` = the shipped ones.
        playback_speed: Script timing divisor (tests use e.g. 50 to play fast).
        extra_redirect_uris: More registered redirect URIs, matched exactly.
        scopes: Scopes granted to every token.
        clock: Wall clock in epoch seconds; inject a fake one to expire tokens in tests.
        agent_*, org_*: The fixed scripted agent (the agent participant of every
            scripted conversation) and their organization.
        second_agent_*: Another agent of the same org, on no conversation (an agent
            who must be refused assist for someone else's conversation).
        other_org_*, other_user_*: A second organization and its one user (a token
            the panel's org allowlist must refuse).
        messaging_deployment_id: The web messaging deployment messaging scripts come
            in on (the org's side of a message's addresses).
        code_lifetime_s: Lifetime of an authorization code (single use, PKCE).
        sign_in_mode: Initial sign-in mode of the login host, changeable at runtime
            through ``PUT /mock/settings``: ``auto`` grants at once and silently (as
            inside Agent Desktop), ``prompt`` shows a sign-in page with a user
            picker, ``deny`` redirects back with ``error=access_denied``.
        login_frameable: Initial value of the ``loginFrameable`` switch: when false
            the login host refuses to be framed, like some identity providers.
        sign_in_user_id: Who ``auto`` signs in; ``None`` = the scripted agent.
        token_expiry: Initial value of the ``tokenExpiry`` setting, what the open sockets
            of a channel whose token expires (or is revoked) see: ``silent`` (the
            platform's way, as far as is known: heartbeats go on, no event is delivered
            again) or ``close`` (closed at once with 1008 "Access token expired"). Either
            way a socket opened to such a channel is closed so, and its REST calls are 401.
        expiry_check_s: Longest pause of the timer that closes the sockets of
            expired tokens and channels (it also wakes at the next known expiry).
        queue_id, queue_name: The ACD queue scripted conversations come in on.
        max_channels_per_user: Notification channels per user and client; creating
            one more removes the oldest (the platform's limit is 20).
        channel_lifetime_s: Lifetime of a notification channel (``expires``).
        admin_client_id, admin_client_secret: A client-credentials OAuth client of the
            home org, for the admin commands (``install``, ``kb sync``). Mock values,
            not secrets.
        admin_permissions: The permissions of that client's role; a call needing
            another one is refused with 403 ``missing.permissions``.
        admin_token_lifetime_s: Lifetime of client-credentials tokens.
        knowledge_base_id, knowledge_base_name: The org's one Genesys Knowledge base
            (``/api/v2/knowledge/knowledgebases/{id}``), for ``kb sync``.
        knowledge_seed: JSON file of that base's documents (see
            :mod:`.knowledge_store`); ``None`` = the shipped Brightwave Mobile seed.
        bootstrap_timeout_s: How long the mock desktop waits, after the panel's frame
            loads, for the panel to answer the Client App SDK's ``bootstrap`` hook
            with ``bootstrapped`` (it shows a loading state meanwhile).
    """

    public_origin: str
    panel_url: str
    client_id: str = "assist-panel-dev"
    client_name: str = "Dev mode sign-in (mock)"
    token_lifetime_s: int = 86400
    heartbeat_s: float = 30.0
    scripts_dir: Path | None = None
    playback_speed: float = 1.0
    extra_redirect_uris: tuple[str, ...] = ()
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)
    agent_user_id: str = "3f6c2a1e-8b4d-4f7a-9c2e-5d1b7a0e4c21"
    agent_name: str = "Alex Agent"
    agent_email: str = "alex.agent@brightwave.example"
    agent_division_id: str = "a1d0c3e2-6b5f-4e8a-b7c9-0f2e4d6a8b13"
    org_id: str = "9b2e7d4c-1a3f-4c6b-8e5d-2f7a9c0b1d35"
    org_name: str = "Brightwave Mobile"
    org_third_party_name: str = "brightwave-mobile"
    queue_id: str = "c7e1b9a4-2d6f-4a8c-9e3b-5f0d1a7c2e48"
    queue_name: str = "Brightwave Customer Care"
    max_channels_per_user: int = 20
    channel_lifetime_s: int = 86400
    second_agent_user_id: str = "7d2e9f4a-3c1b-4e6d-8a5f-0b9c2d4e6f13"
    second_agent_name: str = "Sam Second"
    second_agent_email: str = "sam.second@brightwave.example"
    other_org_id: str = "e4a8c2f6-9d3b-4b1e-a7c5-3f6d8b0a2c97"
    other_org_name: str = "Northwind Telecom"
    other_org_third_party_name: str = "northwind-telecom"
    other_org_division_id: str = "5c9e1a3d-7f2b-4d8e-b6a4-1e3c5f7a9b20"
    other_user_id: str = "b8f3d1c5-6a2e-4f9b-9d7c-4a1e8c2b6d59"
    other_user_name: str = "Olivia Other"
    other_user_email: str = "olivia.other@northwind.example"
    messaging_deployment_id: str = "2d8f6b1a-4c3e-4a7d-9f5b-8e1c3a6d0b74"
    code_lifetime_s: int = 60
    sign_in_mode: str = "auto"
    login_frameable: bool = True
    sign_in_user_id: str | None = None
    token_expiry: str = "silent"
    expiry_check_s: float = 1.0
    admin_client_id: str = "assist-panel-admin"
    admin_client_secret: str = "mock-admin-secret"
    admin_permissions: tuple[str, ...] = ADMIN_PERMISSIONS
    admin_token_lifetime_s: int = 86400
    knowledge_base_id: str = "6a1f3c9e-2b7d-4e5a-8c0f-9d4b2e7a1c36"
    knowledge_base_name: str = "Brightwave Help Center"
    knowledge_seed: Path | None = None
    bootstrap_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        """Validate the values that would otherwise fail late and confusingly."""
        _origin_of(self.public_origin, "public_origin")
        _origin_of(self.panel_url, "panel_url")
        if urlsplit(self.public_origin).path not in ("", "/"):
            raise ValueError("public_origin must be an origin, without a path")
        if self.playback_speed <= 0:
            raise ValueError("playback_speed must be positive")
        if self.heartbeat_s <= 0:
            raise ValueError("heartbeat_s must be positive")
        if self.token_lifetime_s <= 0:
            raise ValueError("token_lifetime_s must be positive")
        if self.max_channels_per_user < 1:
            raise ValueError("max_channels_per_user must be at least 1")
        if self.admin_token_lifetime_s <= 0:
            raise ValueError("admin_token_lifetime_s must be positive")
        if self.admin_client_id == self.client_id:
            raise ValueError("admin_client_id must differ from client_id")
        if self.code_lifetime_s <= 0:
            raise ValueError("code_lifetime_s must be positive")
        if self.expiry_check_s <= 0:
            raise ValueError("expiry_check_s must be positive")
        if self.bootstrap_timeout_s <= 0:
            raise ValueError("bootstrap_timeout_s must be positive")
        if self.sign_in_mode not in SIGN_IN_MODES:
            raise ValueError(f"sign_in_mode must be one of {', '.join(SIGN_IN_MODES)}")
        if self.token_expiry not in TOKEN_EXPIRY_MODES:
            raise ValueError(f"token_expiry must be one of {', '.join(TOKEN_EXPIRY_MODES)}")
        user_ids = (self.agent_user_id, self.second_agent_user_id, self.other_user_id)
        if len(set(user_ids)) != len(user_ids):
            raise ValueError("the mock's user ids must differ")
        if self.other_org_id == self.org_id:
            raise ValueError("other_org_id must differ from org_id")
        if self.sign_in_user_id is not None and self.sign_in_user_id not in user_ids:
            raise ValueError("sign_in_user_id must be one of the mock's user ids")

    @property
    def origin(self) -> str:
        """``public_origin`` normalised to ``scheme://host[:port]``."""
        return _origin_of(self.public_origin, "public_origin")

    @property
    def ws_origin(self) -> str:
        """The WebSocket origin matching ``public_origin`` (``ws://`` or ``wss://``)."""
        parts = urlsplit(self.origin)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}"

    @property
    def default_sign_in_user_id(self) -> str:
        """Who ``auto`` sign-in signs in at start: ``sign_in_user_id`` or the scripted agent."""
        return self.sign_in_user_id or self.agent_user_id

    @property
    def panel_origin(self) -> str:
        """Origin of the panel: the one origin CORS allows."""
        return _origin_of(self.panel_url, "panel_url")

    @property
    def redirect_uris(self) -> tuple[str, ...]:
        """The registered redirect URIs: ``panel_url`` first."""
        return (self.panel_url, *self.extra_redirect_uris)

    def resolved_scripts_dir(self) -> Path:
        """Directory the scripted conversations are read from."""
        if self.scripts_dir is not None:
            return self.scripts_dir
        return Path(__file__).resolve().parent / "scripts"
