"""The events of one suggestion stream, as the public SSE contract names them (README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

FallbackReason = Literal["stalled", "timeout", "upstream_error", "circuit_open", "no_answer"]
Outcome = Literal["completed", "truncated", "fallback", "cancelled", "abstained"]


@dataclass(frozen=True)
class Event:
    """One SSE event: ``name`` is the SSE ``event`` field, ``data`` its JSON payload."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)


#: The name of a keep-alive: not a public event. The SSE response sends it as a comment
#: line; it tells a client (and any proxy) that a quiet stream is still open.
KEEPALIVE = "keepalive"


def keepalive(id: str) -> Event:
    return Event(KEEPALIVE, {"id": id})


def suggestion(id: str, trigger: str, query: str, sources: list[dict[str, object]],
               confident: bool = True) -> Event:
    """``confident`` is false when nothing retrieved is relevant enough to answer from:
    no text follows, and ``done`` says ``abstained``."""
    return Event("suggestion", {"id": id, "trigger": trigger, "query": query,
                                "sources": sources, "confident": confident})


def delta(id: str, text: str) -> Event:
    return Event("delta", {"id": id, "text": text})


def fallback(id: str, reason: FallbackReason, article: dict[str, str]) -> Event:
    return Event("fallback", {"id": id, "reason": reason, "article": article})


def done(id: str, outcome: Outcome, stop_reason: str, metrics: dict[str, int | None]) -> Event:
    return Event("done", {"id": id, "complete": True, "outcome": outcome,
                          "stop_reason": stop_reason, "metrics": metrics})
