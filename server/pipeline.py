"""One suggestion, end to end: context -> retrieval -> generation -> aggregation -> watchdog.

``Pipeline.stream`` yields the events of one suggestion stream. The generator
runs in its own task feeding a queue, so the loop here can wake for whichever
comes first: new text, an aggregation flush, or a watchdog limit. Whatever
happens, the stream ends with exactly one ``done`` (see ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from . import events
from .aggregation import Aggregator
from .context import Trigger, Utterance, build_context
from .events import Event, FallbackReason, Outcome
from .generators import Chunk, GenerationRequest, Generator, UpstreamError
from .retrieval import Retriever, Source
from .watchdog import Expiry, Watchdog

log = logging.getLogger("assist_panel.pipeline")


@dataclass(frozen=True)
class AssistRequest:
    conversation_id: str
    trigger: Trigger
    query: str | None
    utterances: tuple[Utterance, ...]
    request_id: str
    user_id: str = ""


@dataclass(frozen=True)
class Limits:
    """Per-stream limits (seconds unless named otherwise), from settings."""

    first_token_s: float = 8.0
    idle_s: float = 5.0
    hard_s: float = 15.0
    flush_s: float = 0.1
    max_tokens: int = 512
    top_k: int = 3
    context_utterances: int = 6
    context_max_chars: int = 2000


@dataclass
class StreamRecord:
    """What happened to one suggestion: the audit line's content (no transcript text)."""

    suggestion_id: str
    request_id: str
    conversation_id: str
    user_id: str
    trigger: str
    generator: str
    model: str
    source_ids: list[str] = field(default_factory=list)
    ttft_ms: int | None = None
    duration_ms: int = 0
    chunks: int = 0
    tokens: int = 0
    outcome: str = "cancelled"
    stop_reason: str = "client_disconnect"

    def metrics(self) -> dict[str, int | None]:
        return {"ttft_ms": self.ttft_ms, "duration_ms": self.duration_ms,
                "chunks": self.chunks, "tokens": self.tokens}


_END = object()


def new_suggestion_id() -> str:
    return "sg_" + secrets.token_urlsafe(12)


class Pipeline:
    """Runs suggestion streams; one instance is shared by every request of an app."""

    def __init__(
        self,
        *,
        retriever: Retriever,
        generator: Generator,
        limits: Limits,
        static_article: dict[str, str],
        on_finish: Callable[[StreamRecord], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retriever = retriever
        self.generator = generator
        self.limits = limits
        self.static_article = static_article
        self.on_finish = on_finish
        self.clock = clock

    async def stream(self, request: AssistRequest) -> AsyncIterator[Event]:
        """The events of one suggestion: ``suggestion``, ``delta``*, ``fallback``?, ``done``."""
        limits = self.limits
        started = self.clock()
        record = StreamRecord(
            suggestion_id=new_suggestion_id(), request_id=request.request_id,
            conversation_id=request.conversation_id, user_id=request.user_id,
            trigger=request.trigger, generator=self.generator.name, model=self.generator.model,
        )
        sid = record.suggestion_id
        producer: asyncio.Task[None] | None = None
        try:
            context = build_context(
                request.utterances, trigger=request.trigger, query=request.query,
                max_utterances=limits.context_utterances, max_chars=limits.context_max_chars,
            )
            try:
                sources = await self.retriever.retrieve(context.search_text, limits.top_k)
            except Exception:  # a broken store must not break the stream: static fallback
                log.exception("retrieval failed")
                sources = []
            record.source_ids = [s.id for s in sources]
            yield events.suggestion(sid, request.trigger, context.query,
                                    [s.public() for s in sources])

            queue: asyncio.Queue[object] = asyncio.Queue(maxsize=256)
            generation = GenerationRequest(context.query, context.utterances, tuple(sources),
                                           limits.max_tokens)
            producer = asyncio.create_task(self._pump(generation, queue))
            aggregator = Aggregator(limits.flush_s)
            watchdog = Watchdog(started, first_token_s=limits.first_token_s,
                                idle_s=limits.idle_s, hard_s=limits.hard_s)
            fallback_reason: FallbackReason | None = None
            outcome: Outcome = "completed"
            stop_reason = "stop"

            while True:
                due = aggregator.deadline()
                wake = watchdog.deadline() if due is None else min(due, watchdog.deadline())
                try:
                    item = await asyncio.wait_for(queue.get(), max(0.0, wake - self.clock()))
                except TimeoutError:
                    now = self.clock()
                    if due is not None and now >= due and (text := aggregator.flush(now)):
                        record.chunks += 1
                        yield events.delta(sid, text)
                    expiry = watchdog.check(now)
                    if expiry is None:
                        continue
                    stop_reason = expiry.value
                    if expiry is Expiry.HARD_LIMIT and record.tokens:
                        outcome = "truncated"
                    else:
                        fallback_reason = "stalled" if expiry is Expiry.STALLED else "timeout"
                    break
                now = self.clock()
                if isinstance(item, Chunk):
                    if item.text:
                        record.tokens += 1
                        watchdog.progress(now)
                        if record.ttft_ms is None:
                            record.ttft_ms = round((now - started) * 1000)
                        if text := aggregator.push(item.text, now):
                            record.chunks += 1
                            yield events.delta(sid, text)
                    if item.stop_reason:
                        stop_reason = item.stop_reason
                        if stop_reason == "max_tokens":
                            outcome = "truncated"
                        break
                elif isinstance(item, UpstreamError):
                    fallback_reason = "upstream_error"
                    stop_reason = f"upstream_{item.status}" if item.status else "upstream_network"
                    break
                else:  # _END without a stop chunk: the generator simply ran out
                    break

            if text := aggregator.flush(self.clock()):
                record.chunks += 1
                yield events.delta(sid, text)
            if fallback_reason is None and record.tokens == 0:
                fallback_reason, stop_reason = "no_answer", "no_answer"
            if fallback_reason is not None:
                outcome = "fallback"
                yield events.fallback(sid, fallback_reason, self._fallback_article(sources))
            record.outcome, record.stop_reason = outcome, stop_reason
            record.duration_ms = round((self.clock() - started) * 1000)
            yield events.done(sid, outcome, stop_reason, record.metrics())
        finally:
            if producer is not None:
                producer.cancel()
                await asyncio.gather(producer, return_exceptions=True)
            if record.outcome == "cancelled":
                record.duration_ms = round((self.clock() - started) * 1000)
            if self.on_finish is not None:
                self.on_finish(record)

    async def _pump(self, request: GenerationRequest, queue: asyncio.Queue[object]) -> None:
        try:
            async for chunk in self.generator.stream(request):
                await queue.put(chunk)
        except UpstreamError as exc:
            await queue.put(exc)
        except Exception as exc:  # a generator bug must still end the stream cleanly
            log.exception("generator %s failed", self.generator.name)
            await queue.put(UpstreamError(f"generator failed: {type(exc).__name__}"))
        else:
            await queue.put(_END)

    def _fallback_article(self, sources: list[Source]) -> dict[str, str]:
        if not sources:
            return dict(self.static_article)
        top = sources[0]
        excerpt = top.snippet or top.text[:300]
        return {"id": top.id, "title": top.title, "url": top.url, "excerpt": excerpt}
