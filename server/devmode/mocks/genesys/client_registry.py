"""The OAuth clients registered in the mock's home org.

The login host signs users in through them (``/oauth/authorize`` and the code
exchange check the client, its redirect URIs and its grant), tokens live their
client's ``accessTokenValiditySeconds`` and carry its scopes, and
``/api/v2/oauth/clients`` lists and edits them (:mod:`.oauth_clients`). The
registry starts with the config's two clients, as a real org has clients of its
own before anything is installed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from server.devmode.mocks.genesys.config import MockGenesysConfig

#: The grant types an OAuth client may be created with (``authorizedGrantType``).
GRANTS: tuple[str, ...] = ("TOKEN", "CODE", "CLIENT-CREDENTIALS")
#: Names starting with this belong to ``assist-panel install``: it may delete any of them,
#: so no client the org starts with may carry it.
INSTALLER_PREFIX = "Assist Panel"
#: Display name of the config's client-credentials client (``tokens/me``, the listing).
ADMIN_CLIENT_NAME = "Org admin automation (mock)"


@dataclass(frozen=True)
class RegisteredClient:
    """One OAuth client of the org.

    ``also_implicit`` marks the dev client: a CODE client that still accepts the
    implicit grant, as clients registered before Genesys retired it do.
    """

    id: str
    name: str
    grant_type: str
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    token_lifetime_s: int
    secret: str
    created_at: float
    modified_at: float
    description: str = ""
    also_implicit: bool = False

    @property
    def response_types(self) -> frozenset[str]:
        """The ``response_type`` values ``/oauth/authorize`` accepts for this client."""
        if self.grant_type == "TOKEN":
            return frozenset({"token"})
        if self.grant_type == "CODE":
            return frozenset({"code", "token"} if self.also_implicit else {"code"})
        return frozenset()  # client credentials: no user ever signs in through it


class ClientRegistry:
    """The org's OAuth clients by id, in the order they were registered."""

    def __init__(self) -> None:
        """An empty registry."""
        self._clients: dict[str, RegisteredClient] = {}

    @classmethod
    def seeded(cls, config: MockGenesysConfig) -> ClientRegistry:
        """The registry a mock starts with: the dev sign-in client and the admin client.

        Raises ``ValueError`` if either is named with :data:`INSTALLER_PREFIX`.
        """
        registry = cls()
        now = config.clock()
        seeds = [
            RegisteredClient(
                id=config.client_id,
                name=config.client_name,
                grant_type="CODE",
                redirect_uris=config.redirect_uris,
                scopes=config.scopes,
                # The config's lifetime, unchecked: tests use a second or two.
                token_lifetime_s=config.token_lifetime_s,
                secret=secrets.token_urlsafe(32),
                created_at=now,
                modified_at=now,
                also_implicit=True,
            ),
            RegisteredClient(
                id=config.admin_client_id,
                name=ADMIN_CLIENT_NAME,
                grant_type="CLIENT-CREDENTIALS",
                redirect_uris=(),
                scopes=(),
                token_lifetime_s=config.admin_token_lifetime_s,
                secret=config.admin_client_secret,
                created_at=now,
                modified_at=now,
            ),
        ]
        for client in seeds:
            if client.name.startswith(INSTALLER_PREFIX):
                raise ValueError(
                    f"the mock's own OAuth client {client.name!r} must not be named with "
                    f"{INSTALLER_PREFIX!r}: the installer owns (and deletes) those names"
                )
            registry.put(client)
        return registry

    def get(self, client_id: str) -> RegisteredClient | None:
        """The client with this id, if registered."""
        return self._clients.get(client_id)

    def all(self) -> list[RegisteredClient]:
        """Every client, oldest first."""
        return list(self._clients.values())

    def put(self, client: RegisteredClient) -> None:
        """Register a client, or replace the one with its id (keeping its place)."""
        self._clients[client.id] = client

    def remove(self, client_id: str) -> RegisteredClient | None:
        """Unregister a client; the removed one, or None if there was none."""
        return self._clients.pop(client_id, None)
