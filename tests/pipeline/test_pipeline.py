from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from server.assist.streams import StreamRegistry
from server.errors import RetrievalError, UpstreamError
from server.pipeline import stream as stream_module
from server.pipeline.breaker import CircuitBreaker
from server.pipeline.context import SearchQuery, Utterance
from server.pipeline.events import Event
from server.pipeline.generators import Chunk, ExtractiveGenerator, GenerationRequest
from server.pipeline.inbox import Inbox
from server.pipeline.retrieval import Retrieval, Source
from server.pipeline.stream import AssistRequest, Limits, Pipeline, StreamRecord
from tests.clock import anyio_backend  # noqa: F401  (the tests run on a virtual clock)
from tests.factories import make_settings

pytestmark = pytest.mark.anyio

SOURCE = Source("kb-1", "Refund timing", "https://e.example/1", "Refunds take 5 days", 2.0,
                ("Refunds take 5 days.",))
STATIC = {"id": "static-fallback", "title": "Search", "url": "", "excerpt": "None matched"}
# The production defaults (8 s, 5 s, 15 s): on the virtual clock they take no real time.
LIMITS = Limits()


class StaticRetriever:
    def __init__(self, sources: list[Source]) -> None:
        self.sources = sources

    async def retrieve(self, query: SearchQuery, limit: int) -> Retrieval:
        self.query = query
        return Retrieval(self.sources[:limit], confident=True, query=query)


class BrokenRetriever:
    async def retrieve(self, query: SearchQuery, limit: int) -> Retrieval:
        raise RuntimeError("disk on fire")


class Scripted:
    """Yields its tokens, then stops, hangs (a stall), or raises."""

    name, model = "scripted", "scripted-1"

    def __init__(self, tokens: list[str], end: str = "stop", *,
                 used_tokens: int | None = None) -> None:
        self.tokens, self.end, self.used_tokens = tokens, end, used_tokens
        self.closed = asyncio.Event()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        try:
            for token in self.tokens:
                yield Chunk(text=token, tokens=1)
            if self.end == "hang":
                await asyncio.Event().wait()
            elif self.end == "error":
                raise UpstreamError("boom", status=503)
            elif self.end == "endless":
                while True:
                    yield Chunk(text=" more", tokens=1)
                    await asyncio.sleep(0.01)
            yield Chunk(stop_reason=self.end, used_tokens=self.used_tokens)
        finally:
            self.closed.set()


def _pipeline(**parts: Any) -> Pipeline:
    """A pipeline whose deadlines are read on the test loop's virtual clock."""
    return Pipeline(clock=asyncio.get_running_loop().time, **parts)


def _request(trigger: str = "utterance") -> AssistRequest:
    return AssistRequest("c0ffee00-0000-4000-8000-000000000000", trigger,  # type: ignore[arg-type]
                         "how long for a refund" if trigger == "manual" else None,
                         (Utterance("customer", "how long for a refund"),), "rq-1")


async def _run(
    generator: Scripted, sources: list[Source] | None = None, limits: Limits = LIMITS,
    retriever: object = None,
) -> tuple[list[Event], list[StreamRecord]]:
    records: list[StreamRecord] = []
    retriever = retriever or StaticRetriever([SOURCE] if sources is None else sources)
    pipeline = _pipeline(retriever=retriever,
                        generator=generator, limits=limits, static_article=STATIC,
                        on_finish=records.append)
    return [e async for e in pipeline.stream(_request())], records


def _names(events: list[Event]) -> list[str]:
    return [e.name for e in events]


async def test_done_counts_the_models_tokens_not_the_chunks() -> None:
    """Regression: ``tokens`` counted pieces of text whatever they held. A piece counts
    the tokens its generator says it holds, and the model's own count, when it
    reports one at the end, is the figure."""

    class Grouped(Scripted):
        async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
            yield Chunk(text="Refunds take", tokens=3)
            yield Chunk(text=" five days. [1]", tokens=5)
            yield Chunk(stop_reason="stop", used_tokens=self.used_tokens)

    events, records = await _run(Grouped([]))
    assert events[-1].data["metrics"]["tokens"] == 8
    assert events[-1].data["metrics"]["chunks"] == _names(events).count("delta")
    events, records = await _run(Grouped([], used_tokens=11))
    assert events[-1].data["metrics"]["tokens"] == records[0].tokens == 11


async def test_completed_stream_order_and_single_done() -> None:
    gen = Scripted(["Refunds", " take", " 5 days.", " [1]"])
    events, records = await _run(gen)
    names = _names(events)
    assert names[0] == "suggestion" and names[-1] == "done" and names.count("done") == 1
    assert set(names[1:-1]) == {"delta"}
    assert events[0].data["sources"] == [SOURCE.public()]
    text = "".join(e.data["text"] for e in events if e.name == "delta")
    assert text == "Refunds take 5 days. [1]"
    assert events[1].data["text"] == "Refunds"  # first chunk not held back
    done = events[-1].data
    assert done["outcome"] == "completed" and done["stop_reason"] == "stop"
    assert done["metrics"]["tokens"] == 4 and done["metrics"]["ttft_ms"] is not None
    assert done["metrics"]["chunks"] == names.count("delta")
    assert len({e.data["id"] for e in events}) == 1
    assert records[0].outcome == "completed" and records[0].source_ids == ["kb-1"]
    assert gen.closed.is_set()


async def test_stall_mid_stream_ends_with_fallback_and_partial_text() -> None:
    gen = Scripted(["Refunds", " take"], end="hang")
    events, _ = await _run(gen)
    assert _names(events)[-2:] == ["fallback", "done"]
    assert "delta" in _names(events)
    fallback = events[-2].data
    assert fallback["reason"] == "stalled"
    assert fallback["article"] == {"id": "kb-1", "title": "Refund timing",
                                   "url": "https://e.example/1", "excerpt": "Refunds take 5 days"}
    assert events[-1].data["outcome"] == "fallback" and events[-1].data["stop_reason"] == "stalled"
    assert gen.closed.is_set()  # the upstream stream was closed, not left hanging


async def test_no_first_token_is_a_timeout_fallback() -> None:
    events, _ = await _run(Scripted([], end="hang"))
    assert _names(events) == ["suggestion", "fallback", "done"]
    assert events[1].data["reason"] == "timeout"
    assert events[2].data["stop_reason"] == "first_token_timeout"


async def test_hard_limit_truncates_an_endless_answer() -> None:
    gen = Scripted(["Go"], end="endless")
    events, _ = await _run(gen, limits=Limits(first_token_s=1, idle_s=1, hard_s=0.3,
                                              flush_s=0.05))
    assert events[-1].data["outcome"] == "truncated"
    assert events[-1].data["stop_reason"] == "deadline"
    assert "fallback" not in _names(events)
    assert gen.closed.is_set()


async def test_hard_limit_holds_while_text_is_always_waiting() -> None:
    """Regression: the relay checked its deadlines only when a wait for text timed out.
    A model that floods always has text waiting, so its stream ran past the hard limit
    for ever. Here the model never pauses and the pipeline's clock moves a millisecond
    each time it is read, so the wait for text never times out."""

    class Flood(Scripted):
        async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
            while True:
                yield Chunk(text="x", tokens=1)

    ticks = iter(range(10**9))
    pipeline = Pipeline(clock=lambda: next(ticks) / 1000, retriever=StaticRetriever([SOURCE]),
                        generator=Flood([]), static_article=STATIC,
                        limits=Limits(first_token_s=1, idle_s=1, hard_s=0.3, flush_s=0.05))
    events: list[Event] = []
    async for event in pipeline.stream(_request()):
        events.append(event)
        assert len(events) < 10_000, "the stream ran past its hard limit"
    assert events[-1].data["outcome"] == "truncated"
    assert events[-1].data["stop_reason"] == "deadline"


async def test_text_that_came_before_a_late_wake_is_progress_not_a_stall() -> None:
    """Regression: once the deadlines were checked before the text waiting, text that
    came inside the stall timeout but was taken after it (the relay woke late) was
    dropped and the stream fell back early. A client that takes its time makes the
    relay late here."""

    class Paced(Scripted):
        async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
            yield Chunk(text="Refunds", tokens=1)
            await asyncio.sleep(0.29)  # inside the 0.3 s stall timeout
            yield Chunk(text=" take 5 days.", tokens=3)
            await asyncio.Event().wait()  # then silence: a real stall

    pipeline = _pipeline(retriever=StaticRetriever([SOURCE]), generator=Paced([]),
                         static_article=STATIC,
                         limits=Limits(first_token_s=1, idle_s=0.3, hard_s=5, flush_s=0.05))
    events: list[Event] = []
    async for event in pipeline.stream(_request()):
        events.append(event)
        if event.name == "delta" and len(events) == 2:
            await asyncio.sleep(0.4)  # the relay waits for the client past the timeout
    text = "".join(e.data["text"] for e in events if e.name == "delta")
    assert text == "Refunds take 5 days."
    assert events[-1].data["stop_reason"] == "stalled"


async def test_max_tokens_is_truncated_without_fallback() -> None:
    events, _ = await _run(Scripted(["a", "b"], end="max_tokens"))
    assert events[-1].data["outcome"] == "truncated"
    assert "fallback" not in _names(events)


async def test_upstream_error_falls_back_keeping_partial_text() -> None:
    events, _ = await _run(Scripted(["Partial"], end="error"))
    assert _names(events) == ["suggestion", "delta", "fallback", "done"]
    assert events[2].data["reason"] == "upstream_error"
    assert events[3].data["stop_reason"] == "upstream_503"


async def test_each_step_before_the_model_is_timed_on_the_pipeline_clock() -> None:
    class SlowRetriever(StaticRetriever):
        async def retrieve(self, query: SearchQuery, limit: int) -> Retrieval:
            await asyncio.sleep(0.25)  # virtual: the store took a quarter of a second
            return await super().retrieve(query, limit)

    events, records = await _run(Scripted(["ok"]), retriever=SlowRetriever([SOURCE]))
    assert _names(events)[0] == "suggestion"
    stages = records[0].stages
    assert list(stages) == ["redaction", "context", "retrieval", "suggestion"]
    assert stages["retrieval"] == 0.25
    # Redaction and context take no time on the virtual clock: the steps add up to the
    # time to the suggestion event.
    assert stages["redaction"] == stages["context"] == 0
    assert stages["suggestion"] == 0.25


async def test_the_pre_model_path_is_timed_from_the_request_when_the_route_says_when(
        ) -> None:
    records: list[StreamRecord] = []
    pipeline = _pipeline(retriever=StaticRetriever([SOURCE]), generator=Scripted(["ok"]),
                         limits=LIMITS, static_article=STATIC, on_finish=records.append)
    received = pipeline.clock() - 0.125  # the body and the admission took an eighth
    request = dataclasses.replace(_request(), received=received)
    events = [e async for e in pipeline.stream(request)]
    assert _names(events)[0] == "suggestion"
    stages = records[0].stages
    assert list(stages) == ["request", "redaction", "context", "retrieval", "suggestion"]
    assert stages["request"] == 0.125
    assert stages["suggestion"] == 0.125  # the rest took no virtual time


async def test_no_sources_and_no_answer_uses_the_static_article() -> None:
    events, _ = await _run(Scripted([]), sources=[])
    assert _names(events) == ["suggestion", "fallback", "done"]
    assert events[1].data == {"id": events[0].data["id"], "reason": "no_answer",
                              "article": STATIC}


async def test_broken_retrieval_still_ends_with_done(caplog: pytest.LogCaptureFixture) -> None:
    events, _ = await _run(Scripted([]), retriever=BrokenRetriever())
    assert _names(events) == ["suggestion", "fallback", "done"]
    assert events[0].data["sources"] == []
    [record] = [r for r in caplog.records if r.getMessage() == "retrieval failed"]
    assert record.exc_info is not None  # a bug: its traceback


async def test_a_store_that_cannot_be_read_is_logged_in_one_line(
        caplog: pytest.LogCaptureFixture) -> None:
    class Unreadable:
        async def retrieve(self, query: SearchQuery, limit: int) -> Retrieval:
            raise RetrievalError("the knowledge base could not be read: OperationalError: "
                                 "unable to open database file")

    events, _ = await _run(Scripted([]), retriever=Unreadable())
    assert _names(events) == ["suggestion", "fallback", "done"]
    [record] = [r for r in caplog.records if r.getMessage().startswith("retrieval failed")]
    assert record.exc_info is None and "unable to open database file" in record.getMessage()


async def test_consumer_leaving_cancels_the_generator_and_records_cancelled() -> None:
    gen = Scripted(["a"], end="hang")
    records: list[StreamRecord] = []
    pipeline = _pipeline(retriever=StaticRetriever([SOURCE]), generator=gen,
                        limits=Limits(first_token_s=30, idle_s=30, hard_s=60),
                        static_article=STATIC, on_finish=records.append)
    stream = pipeline.stream(_request())
    async for event in stream:
        if event.name == "delta":
            break
    await stream.aclose()
    await asyncio.wait_for(gen.closed.wait(), 5)
    assert records[0].outcome == "cancelled"
    assert records[0].stop_reason == "client_disconnect"


async def test_the_model_is_called_in_the_streams_own_step_not_a_loop_turn_later() -> None:
    # Regression: the producer task took its first step (writing the model request) a
    # turn of the loop after the suggestion, behind every callback queued meanwhile.
    order: list[str] = []

    class Recording(Scripted):
        async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
            order.append("model called")
            async for chunk in super().stream(request):
                yield chunk

    pipeline = _pipeline(retriever=StaticRetriever([SOURCE]), generator=Recording(["Hi"]),
                         limits=LIMITS, static_article=STATIC)
    stream = pipeline.stream(_request())
    assert (await anext(stream)).name == "suggestion"
    asyncio.get_running_loop().call_soon(order.append, "callback queued before")
    events = [event async for event in stream]
    assert _names(events) == ["delta", "done"]
    assert order == ["model called", "callback queued before"]


async def _until_delta(stream: AsyncIterator[Event]) -> list[Event]:
    seen = []
    async for event in stream:
        seen.append(event)
        if event.name == "delta":
            return seen
    raise AssertionError("no delta")


@pytest.mark.parametrize("reason", ["superseded", "shutdown"])
async def test_a_stop_from_outside_ends_the_stream_cancelled_with_one_done(reason: str) -> None:
    gen = Scripted(["Partial"], end="hang")
    records: list[StreamRecord] = []
    pipeline = _pipeline(retriever=StaticRetriever([SOURCE]), generator=gen,
                        limits=Limits(first_token_s=30, idle_s=30, hard_s=60),
                        static_article=STATIC, on_finish=records.append)
    control = StreamRegistry(10).open(owner="u", conversation_id="c", automatic=True)
    stream = pipeline.stream(_request(), control)
    events = await _until_delta(stream)
    control.stop(reason)  # type: ignore[arg-type]
    events += [e async for e in stream]
    assert _names(events) == ["suggestion", "delta", "done"]
    assert events[-1].data["outcome"] == "cancelled"
    assert events[-1].data["stop_reason"] == reason
    assert gen.closed.is_set()
    assert records[0].outcome == "cancelled" and records[0].stop_reason == reason


async def test_open_circuit_answers_a_fallback_without_calling_the_model() -> None:
    breaker = CircuitBreaker(failures=2, reset_s=60)
    pipeline = _pipeline(retriever=StaticRetriever([SOURCE]),
                        generator=Scripted(["x"], end="error"), limits=LIMITS,
                        static_article=STATIC, breaker=breaker)
    for _ in range(2):
        events = [e async for e in pipeline.stream(_request())]
        assert events[-1].data["stop_reason"] == "upstream_503"
    assert breaker.state == "open"
    calls: list[GenerationRequest] = []

    class Recording(Scripted):
        async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
            calls.append(request)
            yield Chunk(stop_reason="stop")

    pipeline.generator = Recording([])
    events = [e async for e in pipeline.stream(_request())]
    assert _names(events) == ["suggestion", "fallback", "done"]
    assert events[1].data["reason"] == "circuit_open"
    assert events[1].data["article"]["id"] == "kb-1"
    assert events[2].data["stop_reason"] == "circuit_open" and calls == []


@pytest.mark.parametrize(("end", "tokens", "state"), [
    ("stop", ["ok"], "closed"),       # an answer closes it
    ("hang", [], "open"),             # no first token: a failure
    ("hang", ["a"], "open"),          # a stall: a failure
    ("error", [], "open"),            # an error status: a failure
])
async def test_the_probe_decides_the_circuit(end: str, tokens: list[str], state: str) -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=1, reset_s=10, clock=lambda: now[0])
    breaker.failure(breaker.allow())  # type: ignore[arg-type]
    assert breaker.state == "open"
    now[0] = 10.0  # the next stream is the probe
    pipeline = _pipeline(retriever=StaticRetriever([SOURCE]), generator=Scripted(tokens, end=end),
                        limits=LIMITS, static_article=STATIC, breaker=breaker)
    [e async for e in pipeline.stream(_request())]
    assert breaker.state == state


async def test_transcript_text_is_redacted_before_retrieval_and_generation() -> None:
    seen: list[str] = []

    class Spy(StaticRetriever):
        async def retrieve(self, query: SearchQuery, limit: int) -> Retrieval:
            seen.extend(part.text for part in query.parts)
            seen.extend(query.words)
            return await super().retrieve(query, limit)

    class Echo(Scripted):
        async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
            seen.extend([request.query, *(u.text for u in request.utterances)])
            assert request.search is not None
            seen.extend(request.search.words)
            yield Chunk(text="ok")
            yield Chunk(stop_reason="stop")

    pipeline = _pipeline(retriever=Spy([SOURCE]), generator=Echo([]), limits=LIMITS,
                        static_article=STATIC)
    request = AssistRequest(
        "c0ffee00-0000-4000-8000-000000000000", "utterance", None,
        (Utterance("agent", "Can I have the card number?"),
         Utterance("customer", "It is 4111 1111 1111 1111, mail me at ann@example.com")),
        "rq-2")
    events = [e async for e in pipeline.stream(request)]
    for text in [*seen, events[0].data["query"]]:
        assert "4111" not in text and "ann@example.com" not in text
    assert "[card]" in events[0].data["query"] and "[email]" in events[0].data["query"]


# This and the next hop to a worker thread: the virtual clock would not wait for it.
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(("size", "on_loop", "redacted"),
                         [(200, True, LIMITS.context_utterances), (20_000, False, 1)])
async def test_a_long_transcript_is_redacted_off_the_event_loop(
        monkeypatch: pytest.MonkeyPatch, size: int, on_loop: bool, redacted: int) -> None:
    """A 20,000-character transcript of "4 4 4 ..." held the event loop for 0.2 s; then
    its worker thread still redacted all 20,000 characters (0.2 s of the GIL) for a
    context that keeps 2,000."""
    import threading

    import server.pipeline.stream as pipeline_module

    threads: list[bool] = []
    lengths: list[int] = []
    real: Callable[[str], str] = pipeline_module.redact  # type: ignore[attr-defined]

    def spy(text: str) -> str:
        threads.append(threading.current_thread() is threading.main_thread())
        lengths.append(len(text))
        return real(text)

    monkeypatch.setattr(pipeline_module, "redact", spy)
    pipeline = _pipeline(retriever=StaticRetriever([SOURCE]), generator=Scripted(["ok"]),
                        limits=LIMITS, static_article=STATIC)
    old = tuple(Utterance("customer", "my card is 4111 1111 1111 1111") for _ in range(20))
    adversarial = Utterance("customer", ("4 " * size)[:size])
    request = AssistRequest("c0ffee00-0000-4000-8000-000000000000", "utterance", None,
                            (*old, adversarial), "rq-long")
    events = [e async for e in pipeline.stream(request)]
    assert [e.name for e in events][-1] == "done"
    # Only what the context window can keep is redacted, all in one place: the newest
    # 20,000 characters leave room for nothing older.
    assert len(threads) == redacted
    assert set(threads) == {on_loop}
    assert sum(lengths) <= 3 * LIMITS.context_max_chars + 256


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_long_redactions_take_turns_on_one_worker_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight 20,000-character transcripts at once took /healthz to 1.37 s: every worker
    thread redacting at once held the GIL against the event loop."""
    import threading

    import server.pipeline.stream as pipeline_module

    lock = threading.Lock()
    running, most = 0, 0
    real: Callable[[str], str] = pipeline_module.redact  # type: ignore[attr-defined]

    def spy(text: str) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            return real(text)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(pipeline_module, "redact", spy)
    pipeline = _pipeline(retriever=StaticRetriever([SOURCE]), generator=Scripted(["ok"]),
                        limits=LIMITS, static_article=STATIC)

    async def one(n: int) -> list[Event]:
        request = AssistRequest(f"c0ffee00-0000-4000-8000-00000000000{n}", "utterance", None,
                                (Utterance("customer", "4 " * 10_000),), f"rq-{n}")
        return [e async for e in pipeline.stream(request)]

    results = await asyncio.gather(*(one(n) for n in range(4)))
    assert all(events[-1].name == "done" for events in results)
    assert most == 1


async def test_a_card_cut_by_the_redaction_trim_never_reaches_the_context() -> None:
    seen: list[str] = []

    class Echo(Scripted):
        async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
            seen.extend([request.query, *(u.text for u in request.utterances)])
            yield Chunk(stop_reason="stop")

    budget = 3 * LIMITS.context_max_chars + 256
    filler = " and so on" * (budget // 10)
    card = "4111 1111 1111 1111"
    # The trim keeps the card's last 9 characters ("1111 1111"): not a card on their own.
    text = card + filler[:budget - 9]
    pipeline = _pipeline(retriever=StaticRetriever([SOURCE]), generator=Echo([]),
                        limits=LIMITS, static_article=STATIC)
    request = AssistRequest("c0ffee00-0000-4000-8000-000000000000", "utterance", None,
                            (Utterance("customer", "my card is " + card),
                             Utterance("customer", text)), "rq-trim")
    events = [e async for e in pipeline.stream(request)]
    assert events[-1].name == "done"
    assert seen and not any("1111" in t for t in seen)


class Flood:
    """A model that sends 16 KiB chunks without end; counts what was taken from it."""

    name, model = "flood", "flood-1"

    def __init__(self) -> None:
        self.sent = 0

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        while True:
            self.sent += 1
            yield Chunk(text="x" * 16_384)


async def test_a_flooding_model_is_read_only_as_far_as_the_client_keeps_up() -> None:
    # Broke: the pump queued 256 chunks ahead of a lagging client whatever their size:
    # 4 MiB a stream from a model sending 16 KiB chunks. Now 64 KiB of text at most.
    generator = Flood()
    pipeline = _pipeline(retriever=StaticRetriever([SOURCE]),
                        generator=generator, limits=Limits(first_token_s=60, idle_s=60,
                                                           hard_s=60, flush_s=0.05),
                        static_article=STATIC)
    stream = pipeline.stream(_request())
    try:
        assert (await anext(stream)).name == "suggestion"
        first = await anext(stream)
        assert first.name == "delta" and len(first.data["text"]) == 16_384
        # The client reads nothing more: let the pump run as far as it can.
        for _ in range(1_000):
            await asyncio.sleep(0)
        assert generator.sent <= 2 + 65_536 // 16_384
    finally:
        await stream.aclose()


def test_limits_default_to_the_settings_defaults_and_follow_settings() -> None:
    """The limits' defaults are written once, in the settings."""
    defaults = make_settings()
    assert Limits() == Limits.from_settings(defaults)
    tuned = make_settings(stall_timeout_s=2.5, flush_interval_ms=40, max_tokens=64)
    limits = Limits.from_settings(tuned)
    assert (limits.idle_s, limits.flush_s, limits.max_tokens) == (2.5, 0.04, 64)


class _Ticking(Scripted):
    """A token every 50 ms, then silence. Like a model behind a network buffer: the
    tokens come on their schedule whether or not anyone reads, and a read takes every
    one that has come, saying how long the newest had waited."""

    def __init__(self, count: int) -> None:
        super().__init__([])
        self.count = count
        self.arrived: list[float] = []
        self.reads = 0

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        loop = asyncio.get_running_loop()
        start, n = loop.time(), 0
        while n < self.count:
            await asyncio.sleep(max(0.0, start + n * 0.05 - loop.time()))
            now = loop.time()
            came = min(self.count, int((now - start) / 0.05 + 1e-6) + 1)
            self.arrived += [start + k * 0.05 for k in range(n, came)]
            self.reads += 1
            yield Chunk(text="".join(f" t{k}" for k in range(n, came)), tokens=came - n,
                        waited_s=now - self.arrived[-1])
            n = came
        await asyncio.Event().wait()


async def test_text_that_waits_for_the_window_wakes_the_relay_once_a_window(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """At 20 tokens a second and a 100 ms window, the relay woke for every token though
    it could send only once a window; text now waits in the inbox for the window's end,
    and the deltas are the same."""
    takes: list[float] = []

    class Counting(Inbox):
        async def take(self, within_s: float, *, hold_s: float = 0.0) -> list[object]:
            takes.append(asyncio.get_running_loop().time())
            return await super().take(within_s, hold_s=hold_s)

    monkeypatch.setattr(stream_module, "Inbox", Counting)
    generator = _Ticking(40)  # two seconds of text
    events, _ = await _run(generator, limits=Limits(first_token_s=1, idle_s=0.3, hard_s=10,
                                                    flush_s=0.1))
    deltas = [e for e in events if e.name == "delta"]
    assert "".join(e.data["text"] for e in deltas) == "".join(f" t{n}" for n in range(40))
    assert 19 <= len(deltas) <= 22  # the first at once, then one a window
    assert len(takes) <= len(deltas) + 4, len(takes)  # not one a token (40)
    # Nor does the producer read the model once a token: while its text waits for the
    # window it reads no further, and its next read takes what came meanwhile.
    assert generator.reads <= len(deltas) + 4, generator.reads


async def test_a_stall_counts_from_when_the_last_text_came_not_when_it_was_sent() -> None:
    generator = _Ticking(4)
    loop = asyncio.get_running_loop()
    events: list[tuple[float, Event]] = []
    pipeline = _pipeline(retriever=StaticRetriever([SOURCE]), generator=generator,
                         static_article=STATIC,
                         limits=Limits(first_token_s=1, idle_s=0.3, hard_s=5, flush_s=0.1))
    async for event in pipeline.stream(_request()):
        events.append((loop.time(), event))
    fallback_at, fallback = events[-2]
    assert fallback.name == "fallback" and fallback.data["reason"] == "stalled"
    # The last token came at 0.15 s and waited for the window; the stall is 0.3 s
    # from its arrival, not from when the window sent it.
    assert fallback_at == pytest.approx(generator.arrived[-1] + 0.3, abs=2e-3)


async def test_the_paced_extractive_generator_keeps_its_pace_through_the_window() -> None:
    """Broke in dev mode: the relay reads on once a window, and the extractive generator,
    which slept between words, then gave one word a read: ten a second instead of its
    pace, so the first card of a call was still streaming when the next utterance came.
    Its words are due on a schedule now, and a late read takes every word due."""
    words = " ".join(f"w{n}" for n in range(60))
    source = Source("kb-1", "Words", "https://e.example/1", words, 2.0, (words + ".",))
    loop = asyncio.get_running_loop()
    started = loop.time()
    generator: Any = ExtractiveGenerator(token_delay_s=0.02)
    events, _ = await _run(generator, sources=[source],
                           limits=Limits(first_token_s=1, idle_s=1, hard_s=30, flush_s=0.1))
    text = "".join(e.data["text"] for e in events if e.name == "delta")
    assert text.count(" w") >= 59 and events[-1].data["outcome"] == "completed"
    # 60 words or so at 20 ms: about 1.2 s, and a window more at most (6 s at 1 a window).
    assert loop.time() - started <= 0.02 * (len(text.split()) + 1) + 0.1
