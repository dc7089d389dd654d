"""Retries of a model call that failed before any text: 429 and 503, inside the deadline.

A 429 or 503 answered before the first chunk is retried after the service's
``Retry-After`` (or a jittered exponential backoff without one), but only when
the wait still leaves time before the request's first-text deadline; otherwise
the error goes up at once and the stream falls back instead of waiting for its
watchdog. A 429 that says the account's quota is used up (OpenAI's
``insufficient_quota``) is not retried: no wait cures it. Other statuses (400, 401,
403, 404, 500, ...) and broken connections are never retried. Once text has
streamed, nothing is retried: the agent already sees it.

Written by hand rather than with tenacity: tenacity retries calls, and this is
an async generator that may have yielded before it fails.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from server.errors import UpstreamError
from server.pipeline.generators.base import Chunk, GenerationRequest, Generator

RETRYABLE = frozenset({429, 503})
#: Error codes of a retryable status that no retry cures.
FINAL_CODES = frozenset({"insufficient_quota"})


class RetryingGenerator:
    """Wraps a generator with the retry policy above."""

    def __init__(
        self,
        inner: Generator,
        *,
        max_attempts: int = 3,
        base_delay_s: float = 0.25,
        max_delay_s: float = 4.0,
        on_error: Callable[[int | None], None] | None = None,
        on_retry: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.on_error = on_error
        self.on_retry = on_retry
        self.clock = clock
        self.sleep = sleep

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """How long to wait before attempt ``attempt + 1``."""
        if retry_after is not None:
            return retry_after
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # jitter spreads retries of many streams

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        attempt = 0
        while True:
            attempt += 1
            streamed = False
            try:
                async for chunk in self.inner.stream(request):
                    streamed = True
                    yield chunk
                return
            except UpstreamError as exc:
                if self.on_error is not None:
                    self.on_error(exc.status)
                if (streamed or exc.status not in RETRYABLE or exc.code in FINAL_CODES
                        or attempt >= self.max_attempts):
                    raise
                wait = self.delay(attempt, exc.retry_after)
                if request.deadline is not None and self.clock() + wait >= request.deadline:
                    raise
                if self.on_retry is not None:
                    self.on_retry()
                if request.on_retry is not None:
                    request.on_retry()
                await self.sleep(wait)
