"""The load client: opens suggestion streams over real HTTP and notes when each event arrives.

One ``Trace`` per stream, with ``time.monotonic()`` readings: the same clock the
mock model's ``/mock/timings`` uses, so the two can be subtracted. The client
reads the panel and the peer alike (both speak the SSE contract's event names).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from .procs import PanelKeys

QUERIES = (
    "How long does a refund take to reach my card?",
    "I forgot my password and cannot sign in",
    "Where is my order, it has not arrived yet",
    "Can I change the delivery address of my parcel?",
    "Why was I charged twice on my bill this month?",
)
_WORD = re.compile(r"\S+")


@dataclass
class Trace:
    """What the client saw of one stream (monotonic seconds)."""

    request_id: str
    sent: float
    status: int | None = None
    suggestion: float | None = None
    first_delta: float | None = None
    deltas: list[float] = field(default_factory=list)
    words: list[int] = field(default_factory=list)  # tokens in each delta
    fallback: float | None = None
    done: dict[str, Any] | None = None
    closed: float | None = None
    error: str | None = None

    @property
    def ttft(self) -> float | None:
        return None if self.first_delta is None else self.first_delta - self.sent

    @property
    def open(self) -> bool:
        """Still streaming: answered 200, no ``done``, no error, not closed."""
        return (self.status == 200 and self.done is None and self.error is None
                and self.closed is None)


@dataclass(frozen=True)
class Target:
    """Where streams go: the panel (sessions) or the peer (no auth)."""

    name: str
    url: str
    keys: PanelKeys | None = None
    path: str = "/api/assist/stream"

    def request(self, n: int) -> tuple[dict[str, str], dict[str, Any], str]:
        """Headers, body and request id of stream number ``n`` (its own conversation)."""
        conversation = str(uuid.uuid4())
        request_id = f"bench-{uuid.uuid4().hex[:16]}"
        body = {"conversationId": conversation, "trigger": "manual",
                "query": QUERIES[n % len(QUERIES)], "requestId": request_id}
        headers = {}
        if self.keys is not None:
            user = str(uuid.UUID(int=n + 1))
            headers["Authorization"] = f"Bearer {self.keys.session(conversation, user)}"
        return headers, body, request_id


def client(timeout: float = 3600) -> httpx.AsyncClient:
    """One connection per stream, no pool limit: the load is the point."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout, connect=60))


_counter = itertools.count()


async def stream(http: httpx.AsyncClient, target: Target, *,
                 until: Callable[[Trace], bool] | None = None,
                 started: asyncio.Event | None = None,
                 ready: Callable[[Trace], bool] | None = None,
                 traces: list[Trace] | None = None) -> Trace:
    """Run one stream to ``done``, or until ``until(trace)`` is true after an event.

    ``started`` is set at the first event after which ``ready(trace)`` is true (any
    event without ``ready``), or at the end; the trace is appended to
    ``traces`` as soon as it exists. Cancelling the task closes the connection, like
    a browser tab going away: the trace notes it in ``closed`` and is returned.
    """
    headers, body, request_id = target.request(next(_counter))
    trace = Trace(request_id, time.monotonic())
    if traces is not None:
        traces.append(trace)
    try:
        async with aconnect_sse(http, "POST", f"{target.url}{target.path}", json=body,
                                headers=headers) as source:
            trace.status = source.response.status_code
            if trace.status != 200:
                trace.error = f"HTTP {trace.status}"
                return trace
            async for event in source.aiter_sse():
                now = time.monotonic()
                if event.event == "suggestion":
                    trace.suggestion = now
                elif event.event == "delta":
                    if trace.first_delta is None:
                        trace.first_delta = now
                    trace.deltas.append(now)
                    trace.words.append(len(_WORD.findall(json.loads(event.data)["text"])))
                elif event.event == "fallback":
                    trace.fallback = now
                elif event.event == "done":
                    trace.done = json.loads(event.data)
                    break
                if started is not None and (ready is None or ready(trace)):
                    started.set()
                if until is not None and until(trace):
                    break
            if trace.done is None:
                trace.closed = time.monotonic()
    except asyncio.CancelledError:
        # Our own harness cancelled it (see Background.close): the client went away.
        trace.closed = time.monotonic()
    except (httpx.HTTPError, OSError) as exc:
        trace.error = type(exc).__name__
    finally:
        if started is not None:
            started.set()
    return trace


#: How long a batch of new streams waits for their first events before the ramp goes on.
START_WITHIN_S = 60.0


class Background:
    """Streams kept open until ``close``; with ``loop``, each re-opened when it ends."""

    def __init__(self, http: httpx.AsyncClient, target: Target, *, loop: bool = False) -> None:
        self.http, self.target, self.loop = http, target, loop
        self.traces: list[Trace] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def grow(self, n: int, *, batch: int = 100,
                   ready: Callable[[Trace], bool] | None = None,
                   start_within_s: float = START_WITHIN_S) -> None:
        """Open streams until ``n`` are running, ``batch`` at a time, each batch waiting
        for its streams' first event (the first after which ``ready(trace)`` is true),
        at most ``start_within_s``: a server out of files can take a connection and
        never answer it, and the ramp goes on (the stream is then not counted open)."""
        while len(self.tasks) < n:
            waits: list[asyncio.Task[bool]] = []
            for _ in range(min(batch, n - len(self.tasks))):
                started = asyncio.Event()
                waits.append(asyncio.create_task(started.wait()))
                self.tasks.append(asyncio.create_task(self._slot(started, ready)))
            _, late = await asyncio.wait(waits, timeout=start_within_s)
            for wait in late:
                wait.cancel()

    async def _slot(self, started: asyncio.Event,
                    ready: Callable[[Trace], bool] | None) -> None:
        trace = await stream(self.http, self.target, started=started, ready=ready,
                             traces=self.traces)
        while self.loop and trace.error is None and trace.closed is None:
            trace = await stream(self.http, self.target, traces=self.traces)

    def open_count(self) -> int:
        """Streams open now (answered, not ended)."""
        return sum(1 for trace in self.traces if trace.open)

    def failed(self) -> list[Trace]:
        """Streams that ended other than by a ``done`` or our own close."""
        return [t for t in self.traces if t.error is not None or t.status not in (None, 200)]

    async def close(self) -> None:
        """Close every stream (the client goes away) and wait until they are closed."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def gather_bounded(jobs: Iterable[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    """Run ``jobs`` with at most ``limit`` at once, results in order."""
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))
