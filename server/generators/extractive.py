"""The embedded ``extractive`` generator: a focused answer quoted from the retrieved
passages, each sentence cited.

No model needed. The answer starts from the best passage of the best source: the
sentence (or the whole run of numbered steps) that best matches the query, with
its neighbours in reading order, up to about 60-80 words. Headings and fragments are
never sentences, no sentence is said twice, and a sentence from another source
is added only when it brings a fact (a number, a price, a time) not yet said.
Matching uses the same weighted query as retrieval (``GenerationRequest.search``).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from ..context import SearchQuery
from ..passages import heading_text, is_heading, is_list_item
from ..terms import stem, stems
from ..terms import words as word_list
from .base import Chunk, GenerationRequest

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9$])")
_ORDERED = re.compile(r"^\s*\d+[.)]\s+")
_BULLET = re.compile(r"^\s*[-*]\s+")
_FACT = re.compile(r"\d|\$|%")
_MIN_WORDS = 4
# Items of a list this short on average are quoted together ("Phones: $35").
_SHORT_ITEM = 8
# About 60-80 words: the anchor's passage first, then facts from elsewhere.
TARGET_WORDS = 65
MAX_WORDS = 90


@dataclass(frozen=True)
class Unit:
    """A quotable piece: a sentence, a list item, or a whole run of numbered steps."""

    source: int  # 1-based index into the request's sources
    passage: int  # rank of its passage within the source, 0 = best
    position: int
    lines: tuple[str, ...]  # one line, or one per step
    heading: str = ""  # its section's heading: says what the sentence is about

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def words(self) -> int:
        return len(self.text.split())


def split_sentences(block: str) -> list[str]:
    """The sentences of a paragraph."""
    return [s for s in _SENTENCE_END.split(" ".join(block.split())) if s]


def units_of(passage: str, source: int, rank: int) -> list[Unit]:
    """A passage's quotable units, in reading order; headings dropped.

    Numbered steps stay together as one unit, and so does a list of short items
    ("Phones: $35"); a list of long items gives a unit per item. A sentence that
    introduces a list ("We don't charge a fee if:") goes with it, never alone.
    """
    units: list[Unit] = []
    heading = ""
    items: list[str] = []
    ordered = False
    lead: str | None = None

    def add(lines: tuple[str, ...]) -> None:
        units.append(Unit(source, rank, len(units), lines, heading))

    def close_list() -> None:
        nonlocal items, lead
        short = items and sum(len(i.split()) for i in items) / len(items) <= _SHORT_ITEM
        if items and (ordered or short):
            add(((lead,) if lead else ()) + tuple(items))
        else:
            for index, item in enumerate(items):
                text = _sentence(_BULLET.sub("", item))
                if len(text.split()) >= _MIN_WORDS:
                    add((lead, text) if lead and index == 0 else (text,))
        items, lead = [], None

    for block in passage.split("\n\n"):
        block = block.strip()
        if not block:
            continue
        if is_heading(block):
            close_list()
            heading = heading_text(block)
            continue
        if is_list_item(block):
            if not items:
                ordered = bool(_ORDERED.match(block))
            items.append(" ".join(block.split()))
            continue
        close_list()
        sentences = split_sentences(block)
        for index, sentence in enumerate(sentences):
            if index == len(sentences) - 1 and sentence.endswith(":"):
                lead = sentence  # goes with the list after it
            elif len(sentence.split()) >= _MIN_WORDS and "|" not in sentence:
                add((sentence,))
    close_list()
    return units


def _sentence(item: str) -> str:
    return item if item.endswith((".", "!", "?")) else item + "."


def _weights(request: GenerationRequest) -> dict[str, float]:
    search = request.search or SearchQuery.of(request.query)
    weights: dict[str, float] = {}
    for term, weight in search.terms:
        key = stem(term)
        weights[key] = max(weights.get(key, 0.0), weight)
    return weights


def _idf(pool: list[Unit], weights: dict[str, float]) -> dict[str, float]:
    """Query words weighted by how rare they are among the units: "opened" tells more
    than "fee" in an article about fees."""
    counts = dict.fromkeys(weights, 0)
    for unit in pool:
        for key in (stems(unit.text) | stems(unit.heading)) & weights.keys():
            counts[key] += 1
    total = len(pool)
    return {key: weight * math.log(1.0 + (total + 1) / (counts[key] + 0.5))
            for key, weight in weights.items()}


def _score(unit: Unit, weights: dict[str, float], how: bool = False) -> float:
    own = stems(unit.text) & weights.keys()
    # A word of the section's heading counts half: "How much the fee is" / "It's $35".
    score = sum(weights[s] for s in own) + 0.5 * sum(
        weights[s] for s in (stems(unit.heading) & weights.keys()) - own)
    if score and _FACT.search(unit.text):
        score += 0.25  # a concrete fact answers more than a general sentence
    if how and len(unit.lines) > 1 and _ORDERED.match(unit.lines[-1]):
        score *= 1.6  # "how do I..." is answered by the steps
    # Long units match more words by size alone.
    return score / (1.0 + unit.words / 60)


def compose(request: GenerationRequest) -> list[Unit]:
    """The units of the answer, in the order they are said."""
    if not request.sources:
        return []
    pool = [unit for index, source in enumerate(request.sources, start=1)
            for rank, passage in enumerate(source.passages or (source.text,))
            for unit in units_of(passage, index, rank)]
    if not pool:
        return []
    weights = _idf(pool, _weights(request))
    # The anchor: the best unit of the best source's top passages, the first preferred.
    first = [u for u in pool if u.source == 1] or pool
    search = request.search or SearchQuery.of(request.query)
    how = any(w in {"how", "steps", "setup"}
              for w in word_list(" ".join(p.text for p in search.parts)))
    anchor = max(first, key=lambda u: (
        _score(u, weights, how) * (1.0 if u.passage == 0 else 0.85), -u.passage, -u.position))
    anchor = _fit(anchor)
    chosen = [anchor]
    said = {_key(anchor.text)}
    words = anchor.words
    # Neighbours in the best passage by relevance, then the source's other passages.
    neighbours = sorted(
        (u for u in pool if u.source == 1 and u is not anchor),
        key=lambda u: (u.passage != anchor.passage, -_score(u, weights),
                       abs(u.position - anchor.position)))
    for unit in neighbours:
        if words >= TARGET_WORDS:
            break
        if unit.passage != anchor.passage and _score(unit, weights) <= 0:
            continue
        if _key(unit.text) in said or words + unit.words > MAX_WORDS:
            continue
        chosen.append(unit)
        said.add(_key(unit.text))
        words += unit.words
    # Other sources: only a sentence that matches and brings a fact not yet said.
    facts = set(_facts(" ".join(u.text for u in chosen)))
    for unit in sorted((u for u in pool if u.source > 1), key=lambda u: -_score(u, weights)):
        if words >= TARGET_WORDS or _score(unit, weights) < 0.5 * _score(anchor, weights):
            break
        new = set(_facts(unit.text)) - facts
        if not new or _key(unit.text) in said or words + unit.words > MAX_WORDS:
            continue
        chosen.append(unit)
        said.add(_key(unit.text))
        facts |= new
        words += unit.words
    own = [u for u in chosen if u.source == 1]
    others = [u for u in chosen if u.source > 1]
    # The anchor's passage first, in reading order, then the source's other passages.
    own.sort(key=lambda u: (u.passage != anchor.passage, u.passage, u.position))
    return own + others


def _fit(unit: Unit) -> Unit:
    """A list unit over ``MAX_WORDS`` cut to its first whole lines that fit."""
    if unit.words <= MAX_WORDS or len(unit.lines) == 1:
        return unit
    kept: list[str] = []
    for line in unit.lines:
        if kept and len(" ".join([*kept, line]).split()) > MAX_WORDS:
            break
        kept.append(line)
    return replace(unit, lines=tuple(kept))


def _key(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _facts(text: str) -> list[str]:
    return re.findall(r"\$?\d[\d,.]*%?(?:\s?(?:days?|hours?|minutes?|weeks?|months?|GB|MB))?",
                      text)


def render(units: list[Unit]) -> str:
    """The answer's text: each sentence or step followed by its ``[n]``."""
    parts: list[str] = []
    for unit in units:
        if len(unit.lines) > 1 and is_list_item(unit.lines[-1]):
            lines = [f"{line} [{unit.source}]" for line in unit.lines]
            parts.append("\n" + "\n".join(lines) + "\n")
        else:
            parts.append(f"{unit.text} [{unit.source}]")
    return " ".join(parts).replace(" \n", "\n").replace("\n ", "\n").strip()


class ExtractiveGenerator:
    """Streams a focused answer quoted from the best passages, each sentence cited."""

    name = "extractive"
    model = "extractive-passages"

    def __init__(self, *, sentences: int = 3, token_delay_s: float = 0.015) -> None:
        # ``sentences`` is kept for the setting's sake: the answer is now sized in words.
        self.sentences = sentences
        self.token_delay_s = token_delay_s

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        answer = render(compose(request))
        tokens = re.findall(r"\s*\S+", answer)
        for count, token in enumerate(tokens, start=1):
            if count > request.max_tokens:
                yield Chunk(stop_reason="max_tokens")
                return
            yield Chunk(text=token)
            # Paces the stream like a model would, so the page shows it growing.
            if self.token_delay_s:
                await asyncio.sleep(self.token_delay_s)
        yield Chunk(stop_reason="stop")
