"""The generator interface: a query, its context and sources in; a stream of text chunks out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from server.pipeline.context import SearchQuery, Utterance
from server.pipeline.retrieval import Source


@dataclass(frozen=True)
class GenerationRequest:
    query: str
    utterances: tuple[Utterance, ...]
    sources: tuple[Source, ...]
    max_tokens: int
    # time.monotonic() by which the first text is due; retries never wait past it.
    deadline: float | None = None
    # Told of each retry, for the stream's audit record.
    on_retry: Callable[[], None] | None = None
    # The suggestion's request id, sent upstream so model-side logs can be matched to ours.
    request_id: str | None = None
    # What retrieval searched for (the weighted conversation): generators rank by it too.
    search: SearchQuery | None = None


@dataclass(frozen=True)
class Chunk:
    """A piece of generated text, or (with ``stop_reason`` set) the end of the generation.

    ``stop_reason`` is ``"stop"`` for a finished answer and ``"max_tokens"`` when the
    answer was cut at the token limit. ``tokens`` is how many of the model's tokens a
    piece of text holds (the generator's own unit: one streamed delta of a chat
    model, one word of the extractive generator). The end may carry ``used_tokens``:
    the model's own count of the tokens it generated (an OpenAI-compatible
    ``usage.completion_tokens``), which then replaces the sum of the pieces'.
    ``waited_s`` is how long the text had already waited, arrived but unread, when the
    generator took it: the watchdog counts the model's progress from its arrival.
    """

    text: str = ""
    stop_reason: str | None = None
    tokens: int = 0
    used_tokens: int | None = None
    waited_s: float = 0.0


class Generator(Protocol):
    name: str
    model: str

    def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        """Yield text chunks, then one chunk with ``stop_reason``; raise ``UpstreamError``."""
        ...
