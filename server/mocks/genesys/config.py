"""Configuration of the mock Genesys Cloud (one frozen value, no I/O)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

#: The OAuth scopes the mock grants to every token (the ones the panel needs).
DEFAULT_SCOPES: tuple[str, ...] = (
    "user-basic-info",
    "conversations:readonly",
    "notifications",
    "knowledge:readonly",
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
        client_id: The one registered OAuth client (``client_name`` is its display name).
        token_lifetime_s: Lifetime of issued access tokens (Genesys allows 300-172800).
        heartbeat_s: Interval of ``channel.metadata`` heartbeats on channel sockets.
        scripts_dir: Directory of scripted conversations; ``None`` = the shipped ones.
        playback_speed: Script timing divisor (tests use e.g. 50 to play fast).
        extra_redirect_uris: More registered redirect URIs, matched exactly.
        scopes: Scopes granted to every token.
        clock: Wall clock in epoch seconds; inject a fake one to expire tokens in tests.
        agent_*, org_*: The fixed scripted agent and their organization.
        queue_id, queue_name: The ACD queue scripted conversations come in on.
        max_channels_per_user: Notification channels per user and client; creating
            one more removes the oldest (the platform's limit is 20).
        channel_lifetime_s: Lifetime of a notification channel (``expires``).
    """

    public_origin: str
    panel_url: str
    client_id: str = "assist-panel-dev"
    client_name: str = "Assist Panel (dev)"
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
