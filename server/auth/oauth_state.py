"""Signed, time-limited, single-use OAuth ``state``, and the PKCE verifier derived from it.

The redirect URI must match the registered one exactly, so everything the
panel needs after sign-in (conversation, host origin, region, language) rides
in ``state``, signed by the server so it cannot be altered on the way. Each
state is accepted once per server process (a replay cache keyed by its nonce,
kept only for the state's lifetime).

For the authorization-code grant the PKCE verifier is never sent to the
browser: it is an HMAC of the state's nonce under the server's secret, so the
server that receives the code can recompute it and exchange the code itself.
No server-side store is needed, and any replica with the secret can do it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from server.errors import InvalidState

SALT = "assist-panel.oauth-state.v1"
#: Nonces remembered at most; past it the oldest are forgotten early.
REPLAY_CAPACITY = 100_000


@dataclass(frozen=True)
class SignInState:
    """What a sign-in carries through the identity provider and back."""

    nonce: str
    conversation_id: str
    host_origin: str
    target_env: str
    lang_tag: str
    grant: str
    expires_at: float


class ReplayCache:
    """Nonces seen recently, each kept until its state would have expired anyway."""

    def __init__(self, capacity: int = REPLAY_CAPACITY) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()

    def add(self, nonce: str, expires_at: float, now: float) -> bool:
        """Remember ``nonce``; False if it was already there (a replay)."""
        # Entries arrive in time order with one lifetime, so expired ones sit at the front.
        while self._seen and next(iter(self._seen.values())) <= now:
            self._seen.popitem(last=False)
        if nonce in self._seen:
            return False
        self._seen[nonce] = expires_at
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier (RFC 7636)."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


class StateCodec:
    """Issues and consumes sign-in states under one secret."""

    def __init__(self, secret: str, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        """``clock`` gives epoch seconds (tests pass a fake one)."""
        self._serializer = URLSafeSerializer(secret, salt=SALT)
        self._key = secret.encode("utf-8")
        self.ttl_s = ttl_s
        self.clock = clock
        self.replays = ReplayCache()

    def issue(
        self, *, conversation_id: str, host_origin: str, target_env: str, lang_tag: str,
        grant: str,
    ) -> tuple[str, SignInState]:
        """A new signed state and what it says."""
        state = SignInState(
            nonce=secrets.token_urlsafe(18),
            conversation_id=conversation_id,
            host_origin=host_origin,
            target_env=target_env,
            lang_tag=lang_tag,
            grant=grant,
            expires_at=self.clock() + self.ttl_s,
        )
        payload = {"n": state.nonce, "c": conversation_id, "h": host_origin, "t": target_env,
                   "l": lang_tag, "g": grant, "e": round(state.expires_at, 3)}
        return self._serializer.dumps(payload), state

    def consume(self, value: str) -> SignInState:
        """The state ``value`` says, once: forged, expired or reused ones raise InvalidState."""
        try:
            payload: Any = self._serializer.loads(value)
            state = SignInState(
                nonce=str(payload["n"]), conversation_id=str(payload["c"]),
                host_origin=str(payload["h"]), target_env=str(payload["t"]),
                lang_tag=str(payload["l"]), grant=str(payload["g"]),
                expires_at=float(payload["e"]),
            )
        except (BadSignature, KeyError, TypeError, ValueError):
            raise InvalidState("The sign-in state is not one this server issued.") from None
        now = self.clock()
        if state.expires_at <= now:
            raise InvalidState("The sign-in state has expired; sign in again.")
        if not self.replays.add(state.nonce, state.expires_at, now):
            raise InvalidState("The sign-in state has already been used.")
        return state

    def pkce_verifier(self, nonce: str) -> str:
        """The PKCE code verifier of a state's nonce (43 URL-safe characters)."""
        digest = hmac.new(self._key, b"pkce:" + nonce.encode("utf-8"), hashlib.sha256).digest()
        return _b64url(digest)
