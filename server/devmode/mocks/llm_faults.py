"""Wire half of the mock model server: OpenAI framing, errors, pacing and fault injection.

`llm.py` decides *what* to answer (a `CompletionPlan`); this module decides *how*
the bytes go out (chunks, `[DONE]`), including the misbehaviours a developer can switch on. It works
at the ASGI level because several faults (stalls, drops) are about the
connection itself, which a plain Starlette `StreamingResponse` cannot express.
Which fault a request gets (header, runtime switch, config) and the answers of
the status-code faults (`http_*`) live in `llm_control`; OpenAI's error bodies and the
request checks in `llm_requests`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import anyio
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

if TYPE_CHECKING:  # llm_timings uses this module's JSON helpers
    from server.devmode.mocks.llm_timings import CompletionTiming

#: Valid fault names, for `MockLLMConfig.fault`, the `X-Mock-Fault` request header and
#: `PUT /mock/fault` (see `llm_control`).
FAULTS: tuple[str, ...] = (
    "stall_first",
    "stall_mid",
    "drip",
    "http_429",
    "http_500",
    "drop_mid",
    "malformed",
    "endless",
    "flood",
    "http_400",
    "http_403",
    "http_503",
    "http_429_quota",
)

# Broken SSE lines the `malformed` fault interleaves with good chunks. A line with
# no "data:" field is legal SSE that a conforming parser ignores; the other two
# are events whose data is not JSON.
_BROKEN_NOT_JSON = b"data: {not json\n\n"
_BROKEN_NO_FIELD = b"this line has no data field\n\n"


class MockConnectionDrop(Exception):
    """Raised mid-body on purpose (`drop_mid`) so the ASGI server aborts the connection."""


class StreamTracker:
    """Counts in-flight completions, so tests can prove that no stream outlives its client.

    Thread-safe because tests usually run uvicorn in a background thread.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._total = 0

    @property
    def active(self) -> int:
        """Completions currently being served (streaming or waiting)."""
        with self._cond:
            return self._active

    @property
    def total(self) -> int:
        """Completions started since the app was created."""
        with self._cond:
            return self._total

    @contextmanager
    def track(self) -> Iterator[None]:
        """Count one completion for the duration of the block."""
        with self._cond:
            self._active += 1
            self._total += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no completion is active; False if `timeout` seconds pass first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._active == 0, timeout)


@dataclass(frozen=True)
class CompletionPlan:
    """Everything needed to put one completion on the wire."""

    completion_id: str
    created: int
    model: str
    system_fingerprint: str
    tokens: tuple[str, ...]
    finish_reason: str
    prompt_tokens: int
    include_usage: bool
    fault: str | None
    token_interval_s: float
    first_token_delay_s: float
    fault_after_tokens: int

    def usage(self, completion_tokens: int | None = None) -> dict[str, Any]:
        """OpenAI's usage object (with the detail blocks current models send)."""
        done = len(self.tokens) if completion_tokens is None else completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": done,
            "total_tokens": self.prompt_tokens + done,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _envelope(self, obj: str) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": self.system_fingerprint,
        }

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        """One `chat.completion.chunk` with a single choice."""
        body = self._envelope("chat.completion.chunk")
        body["choices"] = [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        ]
        if self.include_usage:
            # OpenAI sends "usage": null on every chunk when usage was asked for.
            body["usage"] = None
        return body

    def content_event(self, token: str) -> bytes:
        """``sse(self.chunk({"content": token}))``, the same bytes, from a frame encoded
        once: the mock sends one a token, thousands a second in the benchmarks."""
        head, tail = self._content_frame
        return head + dumps(token) + tail

    @cached_property
    def _content_frame(self) -> tuple[bytes, bytes]:
        # The content is the chunk's last text a request chose (the model's name comes
        # before it): the marker's last occurrence is the content's.
        marker = "\u0000mock-token\u0000"
        head, tail = sse(self.chunk({"content": marker})).rsplit(dumps(marker), 1)
        return head, tail

    def usage_chunk(self) -> dict[str, Any]:
        """The extra last chunk sent when `stream_options.include_usage` is true."""
        body = self._envelope("chat.completion.chunk")
        body["choices"] = []
        body["usage"] = self.usage()
        return body

    def completion(self) -> dict[str, Any]:
        """The non-streaming `chat.completion` object."""
        body = self._envelope("chat.completion")
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.tokens),
            "refusal": None,
            "annotations": [],
        }
        body["choices"] = [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": self.finish_reason,
            }
        ]
        body["usage"] = self.usage()
        return body


def dumps(obj: Any) -> bytes:
    """Compact JSON, as OpenAI writes it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def sse(obj: Any) -> bytes:
    """One SSE event carrying `obj` as JSON."""
    return b"data: " + dumps(obj) + b"\n\n"


def _endless(tokens: tuple[str, ...]) -> Iterator[str]:
    """Repeat the answer forever, keeping a space between repetitions."""
    first_round = True
    while True:
        for i, token in enumerate(tokens):
            glue = not first_round and i == 0 and not token[:1].isspace()
            yield " " + token if glue else token
        first_round = False


# A `flood` chunk: the answer repeated to this many characters, one chunk after another.
FLOOD_CHUNK_CHARS = 16_384


def _flood(tokens: tuple[str, ...]) -> Iterator[str]:
    """Chunks of FLOOD_CHUNK_CHARS characters of the answer, forever: a hostile model."""
    answer = "".join(tokens).strip() + " "
    chunk = (answer * (FLOOD_CHUNK_CHARS // len(answer) + 1))[:FLOOD_CHUNK_CHARS]
    while True:
        yield chunk


class CompletionResponse(Response):
    """ASGI response that streams (or returns) a planned completion, faults included.

    A watcher task waits on `receive()` for `http.disconnect` and cancels the
    producer, so every loop, including the stalls that send nothing, ends as soon
    as the client goes away. (uvicorn's `send` silently drops writes after a
    disconnect, so relying on `send` raising would leak `endless` streams.)
    """

    def __init__(
        self,
        plan: CompletionPlan,
        tracker: StreamTracker,
        *,
        stream: bool,
        headers: dict[str, str],
        timing: CompletionTiming | None = None,
    ) -> None:
        self.plan = plan
        self.tracker = tracker
        self.stream = stream
        self.timing = timing
        self._client_left = False
        self._last_sent = False  # the final body message is on its way: no longer "left"
        # Like StreamingResponse: no body, so no Content-Length is computed here.
        self.status_code = 200
        self.media_type = "text/event-stream" if stream else "application/json"
        self.background = None
        self.init_headers({"cache-control": "no-cache", **headers} if stream else headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            with self.tracker.track():
                # The answer runs in a task of its own: each token's wake then resumes a
                # stack of three frames, not the dozen of uvicorn's and Starlette's
                # layers above this one (with asyncio's sleep and the frame encoded
                # once, a quarter of the CPU a token: the benchmarks' mock shares a
                # core with their clients, docs/performance.md). Plain asyncio tasks:
                # anyio's task group keeps a cancelled child's exception in a cycle
                # with the frame that noted it, and with it the whole connection.
                answer = asyncio.ensure_future(
                    self._send_stream(send) if self.stream else self._send_completion(send))
                watcher = asyncio.ensure_future(self._watch_disconnect(receive))
                try:
                    await asyncio.wait((answer, watcher), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    answer.cancel()
                    watcher.cancel()
                    await asyncio.wait((answer, watcher))
                if not watcher.cancelled():
                    watcher.result()  # its own failure, if any, goes on up
                dropped = not answer.cancelled() and answer.result()
        finally:
            if self.timing is not None:
                self.timing.end(client_left=self._client_left)
        if dropped:
            # Raised here, not in the answer's task, so the server sees the exception.
            raise MockConnectionDrop("mock fault drop_mid: connection dropped on purpose")

    async def _watch_disconnect(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        # After the last body message the server reports a disconnect too.
        self._client_left = not self._last_sent

    async def _pace(self, start: float, index: int) -> None:
        """Sleep until token `index` is due (a schedule, so pacing does not drift), on
        the timings' monotonic clock: uvloop's timers (libuv, whole milliseconds) may
        fire early by it, and a token is never sent before it is due."""
        plan = self.plan
        due = start + plan.first_token_delay_s + (index + 1) * plan.token_interval_s
        # sleep(0) still yields, so the disconnect watcher runs even unpaced.
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        while (left := due - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(left)

    async def _send_stream(self, send: Send) -> bool:
        """Stream chunks; returns True when the connection must be dropped."""
        plan, fault = self.plan, self.plan.fault

        timing = self.timing

        async def emit(data: bytes, *, content: bool = False) -> None:
            handed = time.monotonic()
            await send({"type": "http.response.body", "body": data, "more_body": True})
            if timing is not None:
                timing.sent(content=content, at=handed)

        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await emit(sse(plan.chunk({"role": "assistant", "content": "", "refusal": None})))
        if fault == "stall_first":
            await anyio.sleep_forever()  # ended by the disconnect watcher

        tokens: Iterator[str] = (_endless(plan.tokens) if fault == "endless"
                                 else _flood(plan.tokens) if fault == "flood"
                                 else iter(plan.tokens))
        start = time.monotonic()
        for index, token in enumerate(tokens):
            if index == plan.fault_after_tokens:
                if fault == "stall_mid":
                    await anyio.sleep_forever()
                if fault == "drop_mid":
                    return True
            await self._pace(start, index)
            if fault == "malformed" and index % 2 == 1:
                await emit(self._broken_line(index // 2))
            await emit(plan.content_event(token), content=True)

        # Answers shorter than fault_after_tokens still stall or drop before the end.
        if fault == "stall_mid":
            await anyio.sleep_forever()
        if fault == "drop_mid":
            return True
        await emit(sse(plan.chunk({}, plan.finish_reason)))
        if plan.include_usage:
            await emit(sse(plan.usage_chunk()))
        self._last_sent = True
        handed = time.monotonic()
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
        if timing is not None:
            timing.sent(content=False, at=handed)
        return False

    def _broken_line(self, n: int) -> bytes:
        kind = n % 3
        if kind == 0:
            return _BROKEN_NOT_JSON
        if kind == 1:
            good = dumps(self.plan.chunk({"content": " truncated"}))
            return b"data: " + good[: len(good) // 2] + b"\n\n"
        return _BROKEN_NO_FIELD

    async def _send_completion(self, send: Send) -> bool:
        """Answer `stream: false`; returns True when the connection must be dropped."""
        plan, fault = self.plan, self.plan.fault
        if fault in ("stall_first", "stall_mid", "endless", "flood"):
            await anyio.sleep_forever()  # never answers; ended by the disconnect watcher
        # A non-streamed answer arrives when the whole generation would have finished.
        start = time.monotonic()
        await self._pace(start, len(plan.tokens) - 1)
        body = dumps(plan.completion())
        if fault == "malformed":
            body = body[: len(body) // 2]  # a complete HTTP message whose JSON is cut short
        headers = [*self.raw_headers, (b"content-length", str(len(body)).encode())]
        start_message: Message = {"type": "http.response.start", "status": 200, "headers": headers}
        await send(start_message)
        if fault == "drop_mid":
            # Promise the full length, deliver half, then drop.
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            return True
        self._last_sent = True
        handed = time.monotonic()
        await send({"type": "http.response.body", "body": body, "more_body": False})
        if self.timing is not None:
            self.timing.sent(content=True, at=handed)
        return False

