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
MODEL_PATH = "/v1/chat/completions"


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
class Conversation:
    """A conversation several requests belong to, as an agent's do: its page asks for a
    session once (``POST /api/session``) and sends that bearer value with each request
    of the conversation (``bearer`` None for a server without sessions)."""

    id: str
    user: str
    bearer: str | None = None


@dataclass(frozen=True)
class Target:
    """Where streams go: the panel (sessions) or the peer (no auth)."""

    name: str
    url: str
    keys: PanelKeys | None = None
    path: str = "/api/assist/stream"

    @classmethod
    def model(cls, url: str) -> Target:
        """The mock model itself: chat completions, whose unnamed events the readers
        count as deltas (the harness's own share of "added")."""
        return cls("model-direct", url, path=MODEL_PATH)

    def conversation(self, n: int) -> Conversation:
        """A new conversation, of user number ``n``, with its session minted once."""
        conversation, user = str(uuid.uuid4()), str(uuid.UUID(int=n + 1))
        bearer = None if self.keys is None else self.keys.session(conversation, user)
        return Conversation(conversation, user, bearer)

    def request(self, n: int, conversation: Conversation | None = None
                ) -> tuple[dict[str, str], dict[str, Any], str]:
        """Headers, body and request id of stream number ``n``: a turn of
        ``conversation``, or without it the first of a conversation of its own."""
        if self.path == MODEL_PATH:
            request_id = new_request_id("direct")
            return {"X-Request-Id": request_id}, {
                "model": "mock-assist-1", "stream": True,
                "messages": [{"role": "user", "content": QUERIES[n % len(QUERIES)]}],
            }, request_id
        conversation = conversation or self.conversation(n)
        request_id = new_request_id("bench")
        body = {"conversationId": conversation.id, "trigger": "manual",
                "query": QUERIES[n % len(QUERIES)], "requestId": request_id}
        headers = {}
        if conversation.bearer is not None:
            headers["Authorization"] = f"Bearer {conversation.bearer}"
        return headers, body, request_id


# Hex digits as letters: the panel masks a card-shaped digit run in a request id (13 to
# 19 digits passing Luhn, which 16 random hex characters sometimes hold), and a masked
# id would no longer find its record in the mock model's timings.
_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def new_request_id(prefix: str) -> str:
    """A fresh request id with no digits, which the panel passes on unchanged."""
    return f"{prefix}-{uuid.uuid4().hex[:16].translate(_LETTERS)}"


def client(timeout: float = 3600) -> httpx.AsyncClient:
    """One connection per stream, no pool limit: the load is the point."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout, connect=60))


_counter = itertools.count()


def next_stream() -> int:
    """The number of the next stream this process opens (its user, its question)."""
    return next(_counter)


def count_words(text: str) -> int:
    """The tokens a delta's text holds, as the harness counts them: its words."""
    return len(_WORD.findall(text))


async def stream(http: httpx.AsyncClient, target: Target) -> Trace:
    """Run one stream to ``done``. Cancelling the task closes the connection, like a
    browser tab going away: the trace notes it in ``closed`` and is returned.
    (``bench/background.py`` reads streams by the thousand, and to an event.)
    """
    headers, body, request_id = target.request(next_stream())
    trace = Trace(request_id, time.monotonic())
    try:
        async with aconnect_sse(http, "POST", f"{target.url}{target.path}", json=body,
                                headers=headers) as source:
            trace.status = source.response.status_code
            if trace.status != 200:
                trace.error = f"HTTP {trace.status}"
                return trace
            async for event in source.aiter_sse():
                if note_event(trace, event.event, event.data, time.monotonic()):
                    break
            if trace.done is None:
                trace.closed = time.monotonic()
    except asyncio.CancelledError:
        # Our own harness cancelled it: the client went away.
        trace.closed = time.monotonic()
    except (httpx.HTTPError, OSError) as exc:
        trace.error = type(exc).__name__
    return trace


def note_event(trace: Trace, name: str, data: str, now: float) -> bool:
    """Notes one event in ``trace``; true at the stream's end (``done``, or the model's
    ``[DONE]``). An unnamed event with data is the model's own chunk (``Target.model``):
    a delta when it carries text."""
    if name == "suggestion":
        trace.suggestion = now
    elif name == "delta":
        _delta(trace, json.loads(data)["text"], now)
    elif name == "fallback":
        trace.fallback = now
    elif name == "done":
        trace.done = json.loads(data)
        return True
    elif name == "message" and data:
        if data.strip() == "[DONE]":
            trace.done = {}
            return True
        choices = json.loads(data).get("choices") or [{}]
        if text := (choices[0].get("delta") or {}).get("content"):
            _delta(trace, text, now)
    return False


def _delta(trace: Trace, text: str, now: float) -> None:
    if trace.first_delta is None:
        trace.first_delta = now
    trace.deltas.append(now)
    trace.words.append(count_words(text))


async def gather_bounded(jobs: Iterable[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    """Run ``jobs`` with at most ``limit`` at once, results in order."""
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))
