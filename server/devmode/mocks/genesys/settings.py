"""Runtime switches of the mock platform (its login host, the agents' role, and what
a channel does when its token expires), changed through ``PUT /mock/settings``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.devmode.mocks.genesys.config import (
    SIGN_IN_MODES,
    TOKEN_EXPIRY_MODES,
    MockGenesysConfig,
)
from server.devmode.mocks.genesys.roles import AGENT_ROLES, DEFAULT_AGENT_ROLE

#: The keys ``PUT /mock/settings`` takes.
SETTING_KEYS = frozenset(
    {"signInMode", "loginFrameable", "signInUserId", "agentRole", "tokenExpiry"}
)


class SettingsError(ValueError):
    """A settings update that cannot be applied; nothing of it was applied."""


@dataclass
class MockSettings:
    """What the login host does with the next authorization request, and the agents' role.

    Attributes:
        sign_in_mode: ``auto`` (grant at once), ``prompt`` (sign-in page) or ``deny``.
        login_frameable: False makes every login-host answer refuse framing.
        sign_in_user_id: The user ``auto`` signs in.
        agent_role: The role (a key of :data:`~.roles.AGENT_ROLES`) the home org's
            users hold; their permissions are checked when they subscribe to topics.
        token_expiry: ``silent`` or ``close``: what the open sockets of a channel see
            when its token expires (see :class:`~.config.MockGenesysConfig`).
    """

    sign_in_mode: str
    login_frameable: bool
    sign_in_user_id: str
    agent_role: str = DEFAULT_AGENT_ROLE
    token_expiry: str = "silent"

    @classmethod
    def from_config(cls, config: MockGenesysConfig) -> MockSettings:
        """The settings a fresh mock starts with."""
        return cls(
            sign_in_mode=config.sign_in_mode,
            login_frameable=config.login_frameable,
            sign_in_user_id=config.default_sign_in_user_id,
            token_expiry=config.token_expiry,
        )

    def to_json(self) -> dict[str, Any]:
        """The settings as ``GET /mock/settings`` answers them."""
        return {
            "signInMode": self.sign_in_mode,
            "loginFrameable": self.login_frameable,
            "signInUserId": self.sign_in_user_id,
            "agentRole": self.agent_role,
            "tokenExpiry": self.token_expiry,
        }

    def update(self, body: Any, user_ids: set[str]) -> None:
        """Apply a partial update ``{signInMode?, loginFrameable?, signInUserId?, agentRole?,
        tokenExpiry?}``.

        Validates everything first (all or nothing); raises :class:`SettingsError`
        for anything but a JSON object of known keys with valid values.
        """
        if not isinstance(body, dict):
            raise SettingsError("The body must be a JSON object of settings.")
        unknown = sorted(set(body) - SETTING_KEYS)
        if unknown:
            raise SettingsError(f"Unknown setting {unknown[0]!r}.")
        mode = body.get("signInMode", self.sign_in_mode)
        if mode not in SIGN_IN_MODES:
            raise SettingsError(f"signInMode must be one of: {', '.join(SIGN_IN_MODES)}.")
        frameable = body.get("loginFrameable", self.login_frameable)
        if not isinstance(frameable, bool):
            raise SettingsError("loginFrameable must be true or false.")
        user_id = body.get("signInUserId", self.sign_in_user_id)
        if not isinstance(user_id, str) or user_id not in user_ids:
            raise SettingsError("signInUserId must be the id of one of the mock's users.")
        role = body.get("agentRole", self.agent_role)
        if not isinstance(role, str) or role not in AGENT_ROLES:
            raise SettingsError(f"agentRole must be one of: {', '.join(AGENT_ROLES)}.")
        expiry = body.get("tokenExpiry", self.token_expiry)
        if not isinstance(expiry, str) or expiry not in TOKEN_EXPIRY_MODES:
            raise SettingsError(f"tokenExpiry must be one of: {', '.join(TOKEN_EXPIRY_MODES)}.")
        self.sign_in_mode = mode
        self.login_frameable = frameable
        self.sign_in_user_id = user_id
        self.agent_role = role
        self.token_expiry = expiry
