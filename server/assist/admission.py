"""Whether a new suggestion stream may start: the per-user rate limit, then the global cap.

Refusals are plain HTTP errors before any stream exists (429 or 503, each with
``Retry-After``), counted in the metrics. An admitted stream holds a
``StreamControl`` until its response ends (see ``server/web/streamed.py``).
"""

from __future__ import annotations

from server.assist.streams import StreamControl, StreamRegistry
from server.errors import OverCapacity, RateLimited, ShuttingDown
from server.shared.limits import SharedRateLimiter
from server.shared.supersede import SharedSupersede
from server.web.metrics import Metrics


class Admission:
    def __init__(self, limiter: SharedRateLimiter, streams: StreamRegistry,
                 metrics: Metrics, supersede: SharedSupersede | None = None) -> None:
        self.limiter = limiter
        self.streams = streams
        self.metrics = metrics
        self.supersede = supersede

    async def check_rate(self, owner: str) -> None:
        """429 when ``owner`` (a user id, or an API key's name) is over its stream limit,
        counted as a refused stream request."""
        try:
            await self.limiter.check(owner)
        except RateLimited:
            self.metrics.rejected("rate_limited")
            raise

    async def check_other_rate(self, bucket: str) -> None:
        """429 when ``bucket`` is over the same limit, for requests that are not streams
        (feedback): not counted among refused stream requests."""
        await self.limiter.check(bucket)

    async def admit(self, *, owner: str, conversation_id: str, automatic: bool
                    ) -> StreamControl:
        """A control for the new stream; 503 at the cap (``over_capacity``) or while
        shutting down (``shutting_down``), each counted under its own reason. An
        automatic one supersedes the older one of its owner and conversation here, and
        with Redis on every replica."""
        try:
            control = self.streams.open(owner=owner, conversation_id=conversation_id,
                                        automatic=automatic)
        except (OverCapacity, ShuttingDown) as refused:
            self.metrics.rejected(refused.code)
            raise
        if automatic and self.supersede is not None:
            try:
                await self.supersede.announce(control)
            except BaseException:
                self.streams.close(control)  # cancelled while asking: no stream follows
                raise
        return control
