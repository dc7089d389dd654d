"""One suggestion, end to end: redaction -> context -> retrieval -> generation ->
aggregation -> watchdog.

``Pipeline.stream`` yields the events of one suggestion stream. The generator
runs in its own task feeding an inbox, so the loop here can wake for whichever
comes first: new text, an aggregation flush, a watchdog limit, or a stop from
outside (supersede, shutdown). Whatever happens, the stream ends with exactly
one ``done`` (see ARCHITECTURE.md, "The stream lifecycle").
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread

from server.assist.streams import StreamControl
from server.errors import RetrievalError, UpstreamError
from server.pipeline import events
from server.pipeline.aggregation import Aggregator
from server.pipeline.breaker import CircuitBreaker, Permit
from server.pipeline.context import Trigger, Utterance, build_context
from server.pipeline.eager import start_task
from server.pipeline.events import Event, FallbackReason, Outcome
from server.pipeline.generators import Chunk, GenerationRequest, Generator
from server.pipeline.inbox import Inbox, Room
from server.pipeline.redaction import redact
from server.pipeline.retrieval import Retrieval, Retriever, Source
from server.pipeline.watchdog import Expiry, Watchdog
from server.settings import Settings

log = logging.getLogger("assist_panel.pipeline")


@dataclass(frozen=True)
class AssistRequest:
    conversation_id: str
    trigger: Trigger
    query: str | None
    utterances: tuple[Utterance, ...]
    request_id: str
    user_id: str = ""
    # When the request reached its route, on the pipeline's clock (``Pipeline.clock``):
    # the ``request`` stage (session, body, admission) and the whole pre-model path are
    # timed from there. None: from the start of the stream.
    received: float | None = None


def _default(setting: str) -> Any:
    """A setting's default: the one place each limit's default is written."""
    return Settings.model_fields[setting].default


@dataclass(frozen=True)
class Limits:
    """Per-stream limits (seconds unless named otherwise); the defaults are the
    settings' (:meth:`from_settings` for a configured server)."""

    first_token_s: float = _default("first_token_timeout_s")
    idle_s: float = _default("stall_timeout_s")
    hard_s: float = _default("stream_limit_s")
    flush_s: float = _default("flush_interval_ms") / 1000
    max_tokens: int = _default("max_tokens")
    top_k: int = _default("retrieval_top_k")
    context_utterances: int = _default("context_utterances")
    context_max_chars: int = _default("context_max_chars")

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits ``settings`` configure."""
        return cls(
            first_token_s=settings.first_token_timeout_s,
            idle_s=settings.stall_timeout_s,
            hard_s=settings.stream_limit_s,
            flush_s=settings.flush_interval_ms / 1000,
            max_tokens=settings.max_tokens,
            top_k=settings.retrieval_top_k,
            context_utterances=settings.context_utterances,
            context_max_chars=settings.context_max_chars,
        )


#: The timed steps of the pre-model path: the request (its body read and checked, the
#: rate limit and the cap: from the route handler's start, the session already
#: verified, to the stream's), redaction, context building, retrieval, and the whole of
#: it, from the route handler's start to the ``suggestion`` event.
STAGES = ("request", "redaction", "context", "retrieval", "suggestion")


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
    # The model's tokens (its own usage count when it reports one); ``texts`` counts
    # the pieces of text that came, whatever their size.
    tokens: int = 0
    texts: int = 0
    outcome: str = "cancelled"
    stop_reason: str = "client_disconnect"
    fallback_reason: str | None = None
    retries: int = 0
    # Seconds each step before the model took (see ``STAGES``): the pre-model path.
    stages: dict[str, float] = field(default_factory=dict)

    def count_retry(self) -> None:
        self.retries += 1

    def metrics(self) -> dict[str, int | None]:
        return {"ttft_ms": self.ttft_ms, "duration_ms": self.duration_ms,
                "chunks": self.chunks, "tokens": self.tokens}


# Up to this much text is redacted on the event loop (tens of microseconds); more goes
# to a worker thread.
INLINE_REDACTION_CHARS = 2000
# Longer than any one item the redactor finds (an email is at most 254 characters).
_REDACTION_MARGIN = 256

_END = object()
_WAKE = object()  # put in the inbox by StreamControl.stop, to wake the loop
# What the pump may hold ahead of the relay. A real model's tokens fill the 256
# places first; a model that floods 16 KiB chunks stops at the characters, so a
# stream whose client lags holds tens of kilobytes of it, not megabytes.
_AHEAD_ITEMS = 256
_AHEAD_CHARS = 65_536


def new_suggestion_id() -> str:
    return "sg_" + secrets.token_urlsafe(12)


@dataclass
class _Ending:
    """How the relay loop ended, decided inside it and read after it."""

    outcome: Outcome = "completed"
    stop_reason: str = "stop"
    fallback: FallbackReason | None = None
    model_failed: bool = False
    stopped: bool = False  # by supersede or shutdown, not by the stream itself

    def stop(self, reason: str) -> None:
        self.outcome, self.stop_reason, self.stopped = "cancelled", reason, True


class Pipeline:
    """Runs suggestion streams; one instance is shared by every request of an app."""

    def __init__(
        self,
        *,
        retriever: Retriever,
        generator: Generator,
        limits: Limits,
        static_article: dict[str, str],
        breaker: CircuitBreaker | None = None,
        on_start: Callable[[], None] | None = None,
        on_finish: Callable[[StreamRecord], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retriever = retriever
        self.generator = generator
        self.limits = limits
        self.static_article = static_article
        self.breaker = breaker or CircuitBreaker(failures=1_000_000)
        self.on_start = on_start
        self.on_finish = on_finish
        self.clock = clock
        # Long redactions run one at a time on one worker thread: each holds the GIL
        # while it runs, and the event loop waits on every thread that wants it.
        self._redaction_lane: anyio.CapacityLimiter | None = None

    async def stream(self, request: AssistRequest, control: StreamControl | None = None, *,
                     keepalive_s: float | None = None) -> AsyncGenerator[Event, None]:
        """The events of one suggestion: ``suggestion``, ``delta``*, ``fallback``?, ``done``.

        Transcript text is redacted before anything else sees it. ``control``
        lets others end the stream early (``cancelled``, with its reason). With
        ``keepalive_s``, a ``keepalive`` event comes whenever the stream has sent
        nothing for that long while it waits on the model (the response sends no
        pings of its own: one task per stream, ``server/web/streamed.py``).
        """
        limits = self.limits
        control = control or StreamControl(None)
        started = self.clock()
        record = StreamRecord(
            suggestion_id=new_suggestion_id(), request_id=request.request_id,
            conversation_id=request.conversation_id, user_id=request.user_id,
            trigger=request.trigger, generator=self.generator.name, model=self.generator.model,
        )
        sid = record.suggestion_id
        permit: Permit | None = None
        ending = _Ending()
        if self.on_start is not None:
            self.on_start()
        try:
            stages = record.stages
            arrived = started if request.received is None else min(request.received, started)
            if request.received is not None:
                stages["request"] = started - arrived
            utterances, query = await self._redacted(request)
            step = self.clock()
            stages["redaction"] = step - started
            context = build_context(
                utterances, trigger=request.trigger, query=query,
                max_utterances=limits.context_utterances, max_chars=limits.context_max_chars,
            )
            now = self.clock()
            stages["context"], step = now - step, now
            # A broken store must not break the stream: the static fallback article.
            try:
                retrieval = await self.retriever.retrieve(context.search, limits.top_k)
            except RetrievalError as exc:  # the environment's: what, without a traceback
                log.error("retrieval failed: %s", exc)
                retrieval = Retrieval(confident=True)
            except Exception:  # a bug
                log.exception("retrieval failed")
                retrieval = Retrieval(confident=True)
            stages["retrieval"] = self.clock() - step
            sources = retrieval.sources
            record.source_ids = [s.id for s in sources]
            stages["suggestion"] = self.clock() - arrived
            yield events.suggestion(sid, request.trigger, context.query,
                                    [s.public() for s in sources], retrieval.confident)

            if control.reason is not None:
                ending.stop(control.reason)
            elif not retrieval.confident:
                # Confident silence: nothing relevant enough to answer from, so no text
                # is made from unrelated articles; the sources are offered as "might help".
                ending = _Ending("abstained",
                                 "small_talk" if context.search.small_talk else "low_confidence")
            else:
                permit = self.breaker.allow()
                if permit is None:
                    ending = _Ending("fallback", "circuit_open", "circuit_open")
                else:
                    generation = GenerationRequest(
                        context.query, context.utterances, tuple(sources), limits.max_tokens,
                        deadline=started + min(limits.first_token_s, limits.hard_s),
                        on_retry=record.count_retry, request_id=request.request_id,
                        search=retrieval.query or context.search)
                    async for event in self._relay(sid, generation, control, started, record,
                                                   ending, keepalive_s):
                        yield event
            if (not ending.stopped and ending.fallback is None and record.texts == 0
                    and ending.outcome != "abstained"):
                ending.fallback, ending.stop_reason = "no_answer", "no_answer"
            if ending.fallback is not None:
                ending.outcome = "fallback"
                yield events.fallback(sid, ending.fallback, self._fallback_article(sources))
            record.outcome, record.stop_reason = ending.outcome, ending.stop_reason
            record.fallback_reason = ending.fallback
            record.duration_ms = round((self.clock() - started) * 1000)
            yield events.done(sid, ending.outcome, ending.stop_reason, record.metrics())
        finally:
            if permit is not None:
                if ending.stopped or record.outcome == "cancelled":
                    self.breaker.release(permit)
                elif ending.model_failed:
                    self.breaker.failure(permit)
                else:
                    self.breaker.success(permit)
            if record.outcome == "cancelled":
                record.duration_ms = round((self.clock() - started) * 1000)
            if self.on_finish is not None:
                self.on_finish(record)

    async def _redacted(self, request: AssistRequest
                        ) -> tuple[tuple[Utterance, ...], str | None]:
        """The request's text with PII redacted: only what the context window can keep,
        and on a worker thread when there is much of it, so that a long transcript never
        holds up the other streams on the event loop.

        The context keeps the newest ``context_max_chars`` characters; redacting can
        shrink a text to under half ("4111111111111" -> "[card]"), so three times that
        from the end, plus a margin longer than any one item, holds everything the
        context can take, redacted as a whole: an item cut by the trim lies in the
        margin, which never reaches the context.
        """
        budget = 3 * self.limits.context_max_chars + _REDACTION_MARGIN
        newest_first: list[Utterance] = []
        for utterance in reversed(request.utterances[-self.limits.context_utterances:]):
            if budget <= 0:
                break  # older than anything the context can keep
            text = " ".join(utterance.text.split())  # as the context reads it
            newest_first.append(Utterance(utterance.speaker, text[-budget:]))
            budget -= len(text)
        window = tuple(reversed(newest_first))
        query = (" ".join(request.query.split())[-(3 * self.limits.context_max_chars
                                                   + _REDACTION_MARGIN):]
                 if request.query else None)
        texts = [u.text for u in window] + ([query] if query else [])

        def redact_all() -> list[str]:
            return [redact(text) for text in texts]

        if sum(map(len, texts)) <= INLINE_REDACTION_CHARS:
            clean = redact_all()
        else:
            if self._redaction_lane is None:
                self._redaction_lane = anyio.CapacityLimiter(1)
            clean = await anyio.to_thread.run_sync(redact_all, limiter=self._redaction_lane)
        utterances = tuple(Utterance(u.speaker, text) for u, text in zip(window, clean,
                                                                           strict=False))
        return utterances, (clean[-1] if query else None)

    async def _relay(self, sid: str, generation: GenerationRequest, control: StreamControl,
                     started: float, record: StreamRecord, ending: _Ending,
                     keepalive_s: float | None) -> AsyncIterator[Event]:
        """Generated text as ``delta`` events until the generator, the watchdog or a stop
        ends it; how it ended is left in ``ending``. Buffered text is always flushed;
        ``keepalive`` events fill silences of ``keepalive_s``."""
        limits = self.limits
        # When the next keep-alive is due: pushed back by every delta sent (counted in
        # ``record.chunks``) and by every keep-alive.
        ping_at, chunks_then = float("inf"), -1
        inbox = Inbox(self.clock)
        room = Room(items=_AHEAD_ITEMS, chars=_AHEAD_CHARS)
        # The model request is written now, in this step, not a turn of the loop later
        # behind other streams' work (server/pipeline/eager.py).
        producer = start_task(self._pump(generation, inbox, room))
        control.bind(lambda: inbox.put(_WAKE))
        aggregator = Aggregator(limits.flush_s)
        watchdog = Watchdog(started, first_token_s=limits.first_token_s,
                            idle_s=limits.idle_s, hard_s=limits.hard_s)
        try:
            while True:
                if control.reason is not None:
                    ending.stop(control.reason)
                    break
                if keepalive_s and record.chunks != chunks_then:
                    ping_at, chunks_then = self.clock() + keepalive_s, record.chunks
                due = aggregator.deadline()
                wake_at = min(watchdog.deadline(), ping_at, *(() if due is None else (due,)))
                # Everything that has arrived, in one wake: under load a stream's tokens
                # come several to a read, and the relay handles them as one. Text that
                # cannot be sent before the window ends does not wake it sooner.
                now = self.clock()
                ready = aggregator.ready_at()
                items = await inbox.take(wake_at - now,
                                         hold_s=0.0 if ready is None else ready - now)
                now = self.clock()
                finished = False
                # Text in hand first: it came before the loop looked (a wake can be late
                # on a busy worker), so it is progress, not a stall.
                for item in items:
                    if control.reason is not None:
                        break  # stopped while a delta waited for the client: end now
                    if isinstance(item, Chunk):
                        room.give(len(item.text))
                        if item.text:
                            record.tokens += item.tokens
                            record.texts += 1
                            # From when the text came: it may have waited for the window.
                            came = inbox.last_at
                            watchdog.progress(now if came is None else min(now, came))
                            if record.ttft_ms is None:
                                record.ttft_ms = round((now - started) * 1000)
                            # One at a time: the aggregator bounds each delta's size.
                            if text := aggregator.push(item.text, now):
                                record.chunks += 1
                                yield events.delta(sid, text)
                        if item.stop_reason:
                            if item.used_tokens is not None:
                                record.tokens = item.used_tokens
                            ending.stop_reason = item.stop_reason
                            if item.stop_reason == "max_tokens":
                                ending.outcome = "truncated"
                            finished = True
                    elif isinstance(item, UpstreamError):
                        ending.fallback, ending.model_failed = "upstream_error", True
                        ending.stop_reason = (f"upstream_{item.status}" if item.status
                                              else "upstream_network")
                        finished = True
                    elif item is _END:  # the generator simply ran out, without a stop chunk
                        finished = True
                    if finished:
                        break
                if finished:
                    break
                # Then the deadlines, whether or not text came: a model that floods
                # always has some waiting, and must still meet the hard limit.
                now = self.clock()
                if now < wake_at:
                    continue
                due = aggregator.deadline()
                if due is not None and now >= due and (text := aggregator.flush(now)):
                    record.chunks += 1
                    yield events.delta(sid, text)
                expiry = watchdog.check(now)
                if expiry is not None:
                    ending.stop_reason = expiry.value
                    if expiry is Expiry.HARD_LIMIT and record.texts:
                        ending.outcome = "truncated"
                    else:
                        ending.fallback = "stalled" if expiry is Expiry.STALLED else "timeout"
                        ending.model_failed = True
                    break
                if keepalive_s and now >= ping_at and record.chunks == chunks_then:
                    yield events.keepalive(sid)
                    ping_at = self.clock() + keepalive_s
            if text := aggregator.flush(self.clock()):
                record.chunks += 1
                yield events.delta(sid, text)
        finally:
            producer.cancel()
            # asyncio.wait, not gather: when this task is itself being cancelled (the
            # client left; anyio re-delivers that at every await), a cancelled gather
            # would cancel the producer again, mid-cleanup, leaving the model's
            # connection open. wait leaves the producer to close it undisturbed.
            await asyncio.wait([producer])

    async def _pump(self, request: GenerationRequest, inbox: Inbox, room: Room) -> None:
        try:
            async for chunk in self.generator.stream(request):
                await room.take(len(chunk.text))
                # Text alone can wait for the aggregation window; an end cannot.
                urgent = bool(chunk.stop_reason) or not chunk.text
                inbox.put(chunk, urgent=urgent, waited_s=chunk.waited_s)
                if not urgent:
                    # The relay sends nothing before its window ends: read on only
                    # then, and that read takes every token that came meanwhile.
                    await inbox.held()
        except UpstreamError as exc:
            inbox.put(exc)
        except Exception as exc:  # a generator bug must still end the stream cleanly
            log.exception("generator %s failed", self.generator.name)
            inbox.put(UpstreamError(f"generator failed: {type(exc).__name__}"))
        else:
            inbox.put(_END)

    def _fallback_article(self, sources: list[Source]) -> dict[str, str]:
        if not sources:
            return dict(self.static_article)
        top = sources[0]
        excerpt = top.snippet or top.text[:300]
        return {"id": top.id, "title": top.title, "url": top.url, "excerpt": excerpt}
