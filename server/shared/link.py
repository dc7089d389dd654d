"""The one connection to Redis, and whether it is answering.

Every shared limit goes through :meth:`RedisLink.call`. A call that fails (refused,
timed out, a Redis error) marks the link down and raises ``SharedStoreDown``; for
``RETRY_S`` after that, calls fail at once without touching the network, so a dead
Redis costs a request nothing. Then one call tries again, and a success marks it up.
The supersede listener reports its subscription too (made: up; failed: down), and
:meth:`RedisLink.current` pings when nothing has told the state for ``STALE_S``, so
``/readyz`` and ``assist_redis_up`` follow Redis on a replica that checks no limits.
The log says ``Redis unreachable`` and ``Redis reachable again`` on each change only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.errors import SharedStoreDown

log = logging.getLogger("assist_panel.shared")

#: How long a failed Redis is left alone before the next call tries it again.
RETRY_S = 5.0
#: Bound on connecting and on each command: a limit check must never hold a request up.
TIMEOUT_S = 0.25
#: A state nothing has confirmed for this long is asked of Redis (one ping) when read.
STALE_S = 5.0

LinkState = Literal["up", "down"]
T = TypeVar("T")


class RedisLink:
    """A Redis client from a ``redis://`` URL, with up/down tracking."""

    def __init__(self, url: str, *, on_change: Callable[[LinkState], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 timeout_s: float = TIMEOUT_S) -> None:
        """``timeout_s`` bounds connecting and each command (``TIMEOUT_S`` in the app)."""
        self.client = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            retry_on_timeout=False, health_check_interval=30)
        # A subscription waits for messages as long as it lives: no read timeout (its
        # reader pings a silent connection itself: supersede.SILENCE_S).
        self.subscriber = aioredis.Redis.from_url(
            url, socket_timeout=None, socket_connect_timeout=timeout_s,
            health_check_interval=30)
        self.on_change = on_change
        self.clock = clock
        self.timeout_s = timeout_s
        self.state: LinkState = "up"
        self._down_until = 0.0
        self._told_at = -STALE_S  # when something last showed the state: stale at first
        self._pinging = False

    async def call(self, operation: Callable[[aioredis.Redis], Awaitable[T]], *,
                   now: bool = False) -> T:
        """``operation(client)``, or ``SharedStoreDown`` when Redis does not answer.
        ``now``: try Redis even within ``RETRY_S`` of a failure (something else just
        showed it answering)."""
        if not now and self.state == "down" and self.clock() < self._down_until:
            raise SharedStoreDown("Redis is down; using per-process limits.")
        try:
            result = await operation(self.client)
        except (RedisError, OSError, TimeoutError) as exc:
            self.mark_down(type(exc).__name__)
            raise SharedStoreDown(f"Redis did not answer: {type(exc).__name__}") from None
        self.mark_up()
        return result

    def mark_up(self) -> None:
        """Redis answered (a call, a subscription made)."""
        self._told_at = self.clock()
        self._set("up", "")

    def mark_down(self, why: str) -> None:
        """Redis did not answer (``why``: the error's type); calls skip it for ``RETRY_S``."""
        self._told_at = self.clock()
        self._down_until = self._told_at + RETRY_S
        self._set("down", why)

    async def ping(self) -> bool:
        """Whether Redis answers now (at start, so ``/readyz`` tells the truth at once)."""
        try:
            await self.call(self._bounded_ping, now=True)
        except SharedStoreDown:
            return False
        return True

    async def current(self) -> LinkState:
        """The state, after one ping if nothing has shown it for ``STALE_S``.

        At most one ping at a time (a read meanwhile gets the state as it stands), and
        it is bounded by the link's timeout, so a reader such as ``/readyz`` waits a
        fraction of a second at worst, once per ``STALE_S``.
        """
        if self._pinging or self.clock() - self._told_at < STALE_S:
            return self.state
        self._pinging = True
        try:
            await self.ping()
        finally:
            self._pinging = False
        return self.state

    async def close(self) -> None:
        await self.client.aclose()
        await self.subscriber.aclose()

    async def _bounded_ping(self, client: aioredis.Redis) -> object:
        # The socket timeouts bound each step, but a connect and redis-py's own health
        # check before the command are two more: one bound for the whole.
        return await asyncio.wait_for(client.ping(), 3 * self.timeout_s)

    def _set(self, state: LinkState, why: str) -> None:
        if state == self.state:
            return
        self.state = state
        if state == "down":
            log.warning("Redis unreachable (%s): limits are per process until it is back", why)
        else:
            log.info("Redis reachable again: limits are shared")
        if self.on_change is not None:
            self.on_change(state)
