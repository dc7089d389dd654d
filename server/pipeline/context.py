"""The context window: which recent utterances a suggestion sees, and the query built
from them.

The query is what retrieval and generation both work from. For an automatic
suggestion it is made of the last few turns: the newest customer utterance weighs
most, earlier turns (the agent's too: agents restate the problem) less the further
back they are, and filler words are dropped. A vague newest turn ("yeah, so what
now?") leans on the turns before it; a turn of pure small talk ("okay, thanks") is
marked so that nothing is suggested for it. A turn that only answers the agent
("yes", "the second one") is searched by the agent's question it answers; one that
only reads out a detail ("sure, it's [email]") is marked like small talk; one that
changes the subject leans on the turns before it only faintly; a denial before the
request ("I don't want to cancel, I need to change the address") is left out
(``server/pipeline/turns.py``).
The redactor's placeholders are never searched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from server.pipeline.terms import is_small_talk, query_terms
from server.pipeline.turns import (
    affirms,
    answered_question,
    changes_topic,
    reads_out_details,
    without_denials,
    without_placeholders,
)

Speaker = Literal["customer", "agent"]
Trigger = Literal["utterance", "manual"]

# How much a turn counts, by how far back it is (0 = the newest customer turn).
_DECAY = 0.7
_EARLIER_CUSTOMER = 0.6
_AGENT = 0.5
# Turns looked at for the query (the window may hold more for the model's prompt).
_QUERY_TURNS = 4
# A newest turn with fewer content words than this leans on the turns before it.
_VAGUE_TERMS = 2
# The conversation's weight beside an agent's own question.
_MANUAL_CONTEXT = 0.15
# An answer's own words ("yes"), beside the agent's question that gives them a topic.
_ANSWER = 0.3
# The turns before one that changes the subject count this much of their weight.
_SHIFTED = 0.2
# The agent's question a "yes, and ..." answers, beside the answer's own words.
_AFFIRMED = 1.0


@dataclass(frozen=True)
class Utterance:
    speaker: Speaker
    text: str


@dataclass(frozen=True)
class QueryPart:
    """A piece of text the query is made of, and how much it counts."""

    text: str
    weight: float


@dataclass(frozen=True)
class SearchQuery:
    """What retrieval and generation look for: weighted texts and their content words."""

    parts: tuple[QueryPart, ...]
    # Content words with the weight of the heaviest part they appear in, heaviest first.
    terms: tuple[tuple[str, float], ...]
    small_talk: bool = False

    @property
    def words(self) -> list[str]:
        return [term for term, _ in self.terms]

    @classmethod
    def of(cls, text: str) -> SearchQuery:
        """A query of one text (a typed question, a CLI search)."""
        return _query([QueryPart(" ".join(text.split()), 1.0)], small_talk=False)


@dataclass(frozen=True)
class Context:
    """What the pipeline works from.

    ``query`` is what the suggestion answers (shown on the card); ``search`` is what
    retrieval and generation look for, built from the conversation.
    """

    query: str
    search: SearchQuery
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
    if trigger == "manual" and query and query.strip():
        main = " ".join(query.split())[-max_chars:]
        parts = [QueryPart(main, 1.0)] + [
            QueryPart(p.text, p.weight * _MANUAL_CONTEXT) for p in _turn_parts(window, None)]
        return Context(query=main, search=_query(parts, small_talk=False), utterances=window)
    newest = _newest_customer(window)
    if newest is None:
        main = " ".join(query.split())[-max_chars:] if query else ""
        search = _query([QueryPart(main, 1.0)] if main else [], small_talk=not main)
        return Context(query=main, search=search, utterances=window)
    main = window[newest].text[-max_chars:]
    asked = None
    if newest > 0 and window[newest - 1].speaker == "agent":
        asked = window[newest - 1].text
    meaning = answered_question(asked, main) if asked is not None else None
    if meaning is not None:
        # "yes" / "the second one": the agent's question (or the option picked) is
        # the topic, and the card says so.
        parts = [QueryPart(meaning, 1.0), QueryPart(main, _ANSWER)] + [
            p for p in _turn_parts(window, newest) if p.text != asked]
        return Context(query=meaning, search=_query(parts, small_talk=False),
                       utterances=window)
    small_talk = is_small_talk(main) or reads_out_details(main)
    parts = [QueryPart(without_denials(main), 1.0)]
    if not small_talk:
        boost = 1.4 if len(query_terms(main)) < _VAGUE_TERMS else 1.0
        # A change of subject keeps the turns before it, faintly: "also, will it work
        # there?" may still mean the trip the customer named before.
        scale = _SHIFTED if changes_topic(main) else 1.0
        said_yes = asked is not None and affirms(asked, main)
        parts += [QueryPart(p.text, _AFFIRMED if said_yes and p.text == asked
                            else min(0.9, p.weight * boost) * scale)
                  for p in _turn_parts(window, newest)]
    return Context(query=main, search=_query(parts, small_talk=small_talk), utterances=window)


def _newest_customer(window: tuple[Utterance, ...]) -> int | None:
    for index in range(len(window) - 1, -1, -1):
        if window[index].speaker == "customer":
            return index
    return None


def _turn_parts(window: tuple[Utterance, ...], newest: int | None) -> list[QueryPart]:
    """The turns before (and around) the newest customer turn, weighted by distance."""
    parts: list[QueryPart] = []
    anchor = len(window) if newest is None else newest
    for index in range(len(window) - 1, -1, -1):
        if index == newest:
            continue
        distance = abs(anchor - index)
        if distance > _QUERY_TURNS:
            continue
        utterance = window[index]
        if is_small_talk(utterance.text):
            continue
        base = _AGENT if utterance.speaker == "agent" else _EARLIER_CUSTOMER
        parts.append(QueryPart(utterance.text, base * _DECAY ** max(0, distance - 1)))
    return parts


def _query(parts: list[QueryPart], *, small_talk: bool) -> SearchQuery:
    # A placeholder's word ("[phone]") is not what the customer talks about.
    parts = [QueryPart(without_placeholders(p.text), p.weight) for p in parts]
    weights: dict[str, float] = {}
    for part in parts:
        for term in query_terms(part.text):
            weights[term] = max(weights.get(term, 0.0), part.weight)
    terms = tuple(sorted(weights.items(), key=lambda item: -item[1]))
    return SearchQuery(tuple(p for p in parts if p.text), terms, small_talk)


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
