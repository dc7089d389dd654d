"""Authorization codes of the code grant with PKCE (RFC 7636, ``S256`` only).

A code is single use, short-lived, and bound to the client, the redirect URI,
the code challenge and the user it was granted to.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

#: An ``S256`` challenge: base64url of a SHA-256 digest, without padding.
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
#: A verifier: 43 to 128 unreserved characters.
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")


def valid_challenge(challenge: str) -> bool:
    """Whether ``challenge`` can be an ``S256`` code challenge."""
    return bool(_CHALLENGE.fullmatch(challenge))


def valid_verifier(verifier: str) -> bool:
    """Whether ``verifier`` is a well-formed code verifier."""
    return bool(_VERIFIER.fullmatch(verifier))


def s256(verifier: str) -> str:
    """The ``S256`` challenge of a verifier: ``BASE64URL(SHA256(verifier))``, unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class AuthorizationCode:
    """A code handed to the client's redirect URI, to be exchanged once at ``/oauth/token``."""

    value: str
    client_id: str
    redirect_uri: str
    challenge: str
    user_id: str
    expires_at: float


class CodeStore:
    """Outstanding authorization codes; redeeming one removes it, valid or not."""

    def __init__(self, clock: Callable[[], float], lifetime_s: float) -> None:
        """Codes expire ``lifetime_s`` after issue, by ``clock`` (epoch seconds)."""
        self._clock = clock
        self._lifetime_s = lifetime_s
        self._codes: dict[str, AuthorizationCode] = {}

    def issue(
        self, *, client_id: str, redirect_uri: str, challenge: str, user_id: str
    ) -> AuthorizationCode:
        """A new code for this client, redirect URI, challenge and user."""
        self._drop_expired()
        code = AuthorizationCode(
            value=secrets.token_urlsafe(32),
            client_id=client_id,
            redirect_uri=redirect_uri,
            challenge=challenge,
            user_id=user_id,
            expires_at=self._clock() + self._lifetime_s,
        )
        self._codes[code.value] = code
        return code

    def redeem(self, value: str) -> AuthorizationCode | None:
        """Take a code out for good; None if unknown, used or expired.

        Any presentation uses the code up, even one that then fails its checks:
        a code that leaked must not stay usable for a second guess.
        """
        code = self._codes.pop(value, None)
        if code is None or code.expires_at <= self._clock():
            return None
        return code

    def _drop_expired(self) -> None:
        now = self._clock()
        for value in [v for v, c in self._codes.items() if c.expires_at <= now]:
            del self._codes[value]
