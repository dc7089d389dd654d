"""When the mock model received each completion and when it sent its bytes.

Benchmarks subtract the model's own share from what a client of the panel sees
(time to first token) and time the panel's reactions (a stall's fallback, a
disconnect's cancel) from the model's side. Records are keyed by the request's
`X-Request-Id` header, which the panel's `openai` generator sets to the
suggestion's request id.

Times are seconds on the host's monotonic clock (`time.monotonic()`, Linux's
`CLOCK_MONOTONIC`), which every process on one machine shares: compare them
only with readings taken on the same host. `GET /mock/timings` answers
`{"clock": "monotonic", "timings": [...]}` (`?requestId=` picks one request's
records); `DELETE /mock/timings` forgets them. The log keeps the newest
`capacity` records.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.devmode.mocks.llm_faults import dumps
from server.devmode.mocks.llm_requests import common_headers


@dataclass
class CompletionTiming:
    """One chat completion, as the mock saw it (None: did not happen)."""

    request_id: str | None
    received: float
    first_token: float | None = None  # first chunk with content text
    last_byte: float | None = None  # last body bytes handed to the server
    ended: float | None = None  # the response finished, failed or saw the client leave
    tokens: int = 0
    client_left: bool = False

    def sent(self, *, content: bool, at: float | None = None) -> None:
        """Note bytes handed to the server (`content`: a chunk carrying text) at `at`,
        read just before the send: the server may deliver them before the send returns,
        and a later reading could then fall after the client has them."""
        now = time.monotonic() if at is None else at
        self.last_byte = now
        if content:
            self.tokens += 1
            if self.first_token is None:
                self.first_token = now

    def end(self, *, client_left: bool = False) -> None:
        """Note the end of the response (once)."""
        if self.ended is None:
            self.ended = time.monotonic()
            self.client_left = client_left

    def to_json(self) -> dict[str, Any]:
        return {
            "requestId": self.request_id,
            "received": self.received,
            "firstToken": self.first_token,
            "lastByte": self.last_byte,
            "ended": self.ended,
            "tokens": self.tokens,
            "clientLeft": self.client_left,
        }


class TimingLog:
    """The newest `capacity` completion timings; thread-safe (tests read from their thread)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._records: deque[CompletionTiming] = deque(maxlen=capacity)

    def begin(self, request_id: str | None) -> CompletionTiming:
        """Start the record of a completion received now."""
        record = CompletionTiming(request_id or None, time.monotonic())
        with self._lock:
            self._records.append(record)
        return record

    def records(self, request_id: str | None = None) -> list[CompletionTiming]:
        """All records, oldest first, or those of one request id."""
        with self._lock:
            items = list(self._records)
        return [r for r in items if request_id is None or r.request_id == request_id]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def routes(self) -> list[BaseRoute]:
        """`GET` and `DELETE /mock/timings` (see the module docstring)."""
        return [Route("/mock/timings", self._handle, methods=["GET", "DELETE"])]

    async def _handle(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.clear()
        records = self.records(request.query_params.get("requestId"))
        body = {"clock": "monotonic", "timings": [r.to_json() for r in records]}
        return Response(dumps(body), headers=common_headers(), media_type="application/json")
