"""The context window: which recent utterances a suggestion sees, and the query built from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Speaker = Literal["customer", "agent"]
Trigger = Literal["utterance", "manual"]


@dataclass(frozen=True)
class Utterance:
    speaker: Speaker
    text: str


@dataclass(frozen=True)
class Context:
    """What the pipeline works from.

    ``query`` is what the suggestion answers (shown on the card); ``search_text``
    is what retrieval searches with: the query plus the customer's previous
    utterance, so that "how long does that take?" still finds its topic.
    """

    query: str
    search_text: str
    utterances: tuple[Utterance, ...]


def build_context(
    utterances: tuple[Utterance, ...],
    *,
    trigger: Trigger,
    query: str | None,
    max_utterances: int,
    max_chars: int,
) -> Context:
    """The last ``max_utterances`` utterances, at most ``max_chars`` in all, and the query.

    Oldest utterances go first when over the cap; a single overlong utterance is
    cut from its start, keeping its most recent words.
    """
    window = _cap(utterances[-max_utterances:], max_chars)
    customer = [u.text for u in window if u.speaker == "customer"]
    if trigger == "manual" and query and query.strip():
        main = " ".join(query.split())
        extra = ""
    else:
        main = customer[-1] if customer else (" ".join(query.split()) if query else "")
        extra = customer[-2] if len(customer) > 1 else ""
    main = main[-max_chars:]
    search_text = f"{main} {extra}".strip() if extra else main
    return Context(query=main, search_text=search_text, utterances=window)


def _cap(window: tuple[Utterance, ...], max_chars: int) -> tuple[Utterance, ...]:
    kept: list[Utterance] = []
    budget = max_chars
    for utterance in reversed(window):
        text = " ".join(utterance.text.split())
        if not text:
            continue
        if len(text) > budget:
            if not kept:
                kept.append(Utterance(utterance.speaker, text[-budget:]))
            break
        kept.append(Utterance(utterance.speaker, text))
        budget -= len(text)
    return tuple(reversed(kept))
