"""Whether a new suggestion stream may start: the per-user rate limit, then the global cap.

Refusals are plain HTTP errors before any stream exists (429 or 503, each with
``Retry-After``), counted in the metrics. An admitted stream holds a
``StreamControl`` until its response ends (see ``sse.SuggestionStream``).
"""

from __future__ import annotations

from .errors import OverCapacity, RateLimited, ShuttingDown
from .metrics import Metrics
from .ratelimit import RateLimiter
from .streams import StreamControl, StreamRegistry


class Admission:
    def __init__(self, limiter: RateLimiter, streams: StreamRegistry, metrics: Metrics) -> None:
        self.limiter = limiter
        self.streams = streams
        self.metrics = metrics

    def check_rate(self, owner: str) -> None:
        """429 when ``owner`` (a user id, or an API key's name) is over its limit."""
        try:
            self.limiter.check(owner)
        except RateLimited:
            self.metrics.rejected("rate_limited")
            raise

    def admit(self, *, owner: str, conversation_id: str, automatic: bool) -> StreamControl:
        """A control for the new stream; 503 at the cap or while shutting down."""
        try:
            return self.streams.open(owner=owner, conversation_id=conversation_id,
                                     automatic=automatic)
        except (OverCapacity, ShuttingDown):
            self.metrics.rejected("over_capacity")
            raise
