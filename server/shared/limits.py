"""Limits that hold across every worker and replica when Redis is set.

- ``SharedRateLimiter``: a token bucket per key, kept in Redis and updated by one Lua
  script (atomic; its clock is Redis's own, so replicas' clocks do not matter). The
  same arithmetic as ``server.assist.ratelimit.RateLimiter``, the process's own
  bucket, which is checked first, is all there is without Redis, and is what holds
  while Redis is down.
- ``SharedStates``: a sign-in ``state`` is claimed once across replicas
  (``SET NX`` with the state's own expiry), on top of the process's replay cache.

Redis down: each falls back to the process's own limit and counts the fallback
(``assist_redis_fallbacks_total``); the panel keeps serving. Keys hold an HMAC, under
the session secret, of what they limit (a user id, a client address, a state's
nonce), never the value itself: a plain hash of an IPv4 address is undone by hashing
all four billion of them.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable

from server.assist.ratelimit import RateLimiter
from server.errors import InvalidState, RateLimited, SharedStoreDown
from server.shared.link import RedisLink

PREFIX = "assist-panel"

# KEYS[1]: the bucket. ARGV[1]: capacity (requests a minute, also the burst);
# ARGV[2]: refill rate a second. Returns the seconds to wait, "0" when admitted.
_TOKEN_BUCKET = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(saved[1]) or capacity
local at = tonumber(saved[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens < 1 then
  wait = (1 - tokens) / rate
else
  tokens = tokens - 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return tostring(wait)
"""


class KeyDigest:
    """What a Redis key holds of a value: a keyed hash (HMAC-SHA256 under the session
    secret, which every replica shares), cut to 32 hex digits as the plain hash was."""

    def __init__(self, secret: str | bytes) -> None:
        key = secret.encode("utf-8") if isinstance(secret, str) else secret
        # A key of its own, derived: the secret itself signs sessions and states.
        self._key = hmac.new(key, b"assist-panel redis keys", hashlib.sha256).digest()

    def __call__(self, value: str) -> str:
        return hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def _digest_for(link: RedisLink | None, secret: str | bytes | None) -> KeyDigest | None:
    if link is None:
        return None  # nothing is written anywhere
    if not secret:
        raise ValueError("a Redis link needs the session secret to key its entries with")
    return KeyDigest(secret)


class SharedRateLimiter:
    """``per_minute`` requests a minute per key, across replicas when ``link`` is set."""

    def __init__(self, local: RateLimiter, link: RedisLink | None, scope: str, *,
                 secret: str | bytes | None = None,
                 on_fallback: Callable[[str], None] | None = None) -> None:
        """``secret`` (the session secret; required with a ``link``) keys the buckets'
        names in Redis."""
        self.local = local
        self.link = link
        self.scope = scope
        self.on_fallback = on_fallback
        self._digest = _digest_for(link, secret)
        self._script = link.client.register_script(_TOKEN_BUCKET) if link else None

    @property
    def per_minute(self) -> int:
        return self.local.per_minute

    async def retry_after(self, key: str) -> float | None:
        """Take one request from ``key``'s bucket; seconds to wait if it is empty, else None.

        The process's own bucket counts every request it sees, Redis or not: it sees
        a share of the user's requests, so it never refuses before the shared one
        would, it saves Redis a call when it refuses, and if Redis goes away it takes
        over from where this process stood.
        """
        if self.per_minute <= 0:
            return None
        local = self.local.retry_after(key)
        if (local is not None or self.link is None or self._script is None
                or self._digest is None):
            return local
        script = self._script
        bucket = f"{PREFIX}:rate:{self.scope}:{self._digest(key)}"
        try:
            answer = await self.link.call(lambda client: script(
                keys=[bucket], args=[self.per_minute, self.per_minute / 60.0], client=client))
        except SharedStoreDown:
            if self.on_fallback is not None:
                self.on_fallback(self.scope)
            return None
        wait = float(answer)
        if wait > 0:
            # Refused by the shared bucket: this process's own bucket counts only what
            # was let through, so it never refuses before the shared one would.
            self.local.refund(key)
            return wait
        return None

    async def check(self, key: str) -> None:
        """Raise ``RateLimited`` (429 with ``Retry-After``) when ``key`` is over its limit."""
        wait = await self.retry_after(key)
        if wait is not None:
            raise RateLimited("Too many requests; slow down.", retry_after=max(1, math.ceil(wait)))


class SharedStates:
    """Sign-in states used once across replicas (the process's replay cache runs first)."""

    def __init__(self, link: RedisLink | None, *, secret: str | bytes | None = None,
                 on_fallback: Callable[[str], None] | None = None) -> None:
        """``secret`` (the session secret; required with a ``link``) keys the states'
        names in Redis."""
        self.link = link
        self.on_fallback = on_fallback
        self._digest = _digest_for(link, secret)

    async def claim(self, nonce: str, expires_at: float) -> None:
        """Mark a state's ``nonce`` used until ``expires_at`` (epoch seconds); 400
        ``invalid_state`` when another replica has used it already."""
        if self.link is None or self._digest is None:
            return
        key = f"{PREFIX}:state:{self._digest(nonce)}"
        try:
            fresh = await self.link.call(lambda client: client.set(
                key, b"1", nx=True, pxat=max(1, math.ceil(expires_at * 1000))))
        except SharedStoreDown:
            if self.on_fallback is not None:
                self.on_fallback("signin_state")
            return
        if not fresh:
            raise InvalidState("The sign-in state has already been used.")
