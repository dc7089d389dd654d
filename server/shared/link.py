"""The one connection to Redis, and whether it is answering.

Every shared limit goes through :meth:`RedisLink.call`. A call that fails (refused,
timed out, a Redis error) marks the link down and raises ``SharedStoreDown``; for
``RETRY_S`` after that, calls fail at once without touching the network, so a dead
Redis costs a request nothing. Then one call tries again, and a success marks it up.
The state is reported on ``/readyz`` and in ``assist_redis_up``.
"""

from __future__ import annotations

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
        self.state: LinkState = "up"
        self._down_until = 0.0

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
            self._set("down", type(exc).__name__)
            self._down_until = self.clock() + RETRY_S
            raise SharedStoreDown(f"Redis did not answer: {type(exc).__name__}") from None
        self._set("up", "")
        return result

    async def ping(self) -> bool:
        """Whether Redis answers now (at start, so ``/readyz`` tells the truth at once)."""
        try:
            await self.call(lambda client: client.ping())
        except SharedStoreDown:
            return False
        return True

    async def close(self) -> None:
        await self.client.aclose()
        await self.subscriber.aclose()

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
