"""The embedded ``extractive`` generator: a focused answer quoted from the retrieved
passages, each sentence cited.

No model needed. The answer starts from the best passage of the best source: the
sentence (or the whole run of numbered steps) that best matches the query, with
its neighbours in reading order, up to about 60-80 words. Headings and fragments are
never sentences, no sentence is said twice, and a sentence from another source
is added only when it brings a fact (a number, a price, a time) not yet said.
Matching uses the same weighted query as retrieval (``GenerationRequest.search``),
each word weighted by how rare it is among the candidate sentences; a question for a
quantity ("how long", "how much", "max") prefers sentences that hold one of its
kind, a how-to question the numbered steps, and any other question (a problem told
in the customer's words) also gets the article's way to act on it: an app path or
its steps. The whole top article is quotable, not only the passages that matched,
and an item of a list of short items can be quoted alone, as a list line.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from server.kb.passages import heading_text, is_heading, is_list_item
from server.pipeline.context import SearchQuery
from server.pipeline.generators.base import Chunk, GenerationRequest
from server.pipeline.terms import stem, stems
from server.pipeline.terms import words as word_list

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9$])")
_ORDERED = re.compile(r"^\s*\d+[.)]\s+")
_BULLET = re.compile(r"^\s*[-*]\s+")
_FACT = re.compile(r"\d|\$|%| > ")
_MIN_WORDS = 4
# A sentence opening with one of these leans on the one before it.
_ANAPHORA = re.compile(r"(?:This|That|That's|These|Those|It|It's|They|Such|You can do this)\b")
# Items of a list this short on average are quoted together ("Phones: $35").
_SHORT_ITEM = 8
# ...and a list this short in all ("two options: extend, or split") too.
_SHORT_LIST = 60
_ABBREVIATION = re.compile(
    r"(?:\b[ap]\.m\.|\be\.g\.|\bi\.e\.|\bU\.S\.|\b(?:No|St|Mr|Mrs|Ms|Dr|vs|approx|etc)\.)$",
    re.IGNORECASE)
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
    item: int = 0  # an item quoted alone: its place in its list (from 1)

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def words(self) -> int:
        return len(self.text.split())


def split_sentences(block: str) -> list[str]:
    """The sentences of a paragraph ("3 p.m. Eastern" and "e.g. this" are not ends)."""
    sentences: list[str] = []
    for piece in _SENTENCE_END.split(" ".join(block.split())):
        if sentences and _ABBREVIATION.search(sentences[-1]):
            sentences[-1] += " " + piece
        elif piece:
            sentences.append(piece)
    return sentences


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
        size = sum(len(i.split()) for i in items)
        short = items and (size / len(items) <= _SHORT_ITEM or size <= _SHORT_LIST)
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
        first = len(units)
        for index, sentence in enumerate(sentences):
            if index == len(sentences) - 1 and sentence.endswith(":"):
                lead = sentence  # goes with the list after it
            elif len(units) > first and _ANAPHORA.match(sentence):
                # "That's two full periods..." means nothing without what came before.
                units[-1] = replace(units[-1], lines=(*units[-1].lines, sentence))
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


@dataclass(frozen=True)
class Intent:
    """What kind of answer the question asks for: steps, or a quantity of some kind."""

    steps: bool = False
    quantity: str | None = None  # "time", "money", "speed", "count"

    @classmethod
    def of(cls, text: str) -> Intent:
        lowered = " ".join(word_list(text))
        for kind, pattern in _ASKS:
            if pattern.search(lowered):
                return cls(quantity=kind)
        return cls(steps=bool(_ASKS_STEPS.search(lowered)))


# Checked in order: "how long" before "how many", "how much" before the rest.
_ASKS = (
    ("time", re.compile(r"\bhow (long|soon|many (days|hours|weeks|minutes|months))\b|"
                        r"\b(deadline|turnaround|expire[sd]?|good for|cutoff|cut off|when)\b")),
    ("speed", re.compile(r"\b(speed|speeds|slow|slowed|fast|kbps|mbps|throttl\w*)\b")),
    ("money", re.compile(r"\bhow much\b|\b(price|cost|costs|fee|fees|charge|rate|rates)\b")),
    ("count", re.compile(r"\bhow many\b|\b(max|maximum|min|minimum|limit|limits)\b")),
)
_ASKS_STEPS = re.compile(r"\bhow (do|can|to|would|should)\b|\b(steps|setup|set up)\b")
_HAS = {
    # "3 business days", "by 5 p.m.", "the 22nd", "until January 8".
    "time": re.compile(r"\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|"
                       r"aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
                       r"\.?\s+\d{1,2}\b|"
                       r"\d\s*(?:[-\u2013]\s*\d+\s*)?(?:business\s+|calendar\s+)?"
                       r"(?:days?|hours?|minutes?|weeks?|months?|years?)\b|\b\d{1,2}(?::\d\d)?\s*[ap]\.m\.|"
                       r"\b\d+(?:st|nd|rd|th)\b", re.IGNORECASE),
    "money": re.compile(r"\$\d|\bno (?:extra )?(?:fee|charge|cost)\b|\bfree\b", re.IGNORECASE),
    "speed": re.compile(r"\d\s*(?:kbps|mbps|gbps)\b", re.IGNORECASE),
    "count": re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten)\b",
                        re.IGNORECASE),
}


def _score(unit: Unit, weights: dict[str, float], intent: Intent = Intent()) -> float:
    own = stems(unit.text) & weights.keys()
    # A word of the section's heading counts half: "How much the fee is" / "It's $35".
    score = sum(weights[s] for s in own) + 0.5 * sum(
        weights[s] for s in (stems(unit.heading) & weights.keys()) - own)
    if score and _FACT.search(unit.text):
        score += 0.5  # a concrete fact answers more than a general sentence
    if score and intent.quantity is not None:
        # "how long..." is answered by a duration, "how much..." by a price.
        score *= 1.6 if _HAS[intent.quantity].search(unit.text) else 0.8
    if intent.steps and len(unit.lines) > 1 and _ORDERED.match(unit.lines[-1]):
        score *= 1.6  # "how do I..." is answered by the steps
    # Long units match more words by size alone.
    return score / (1.0 + unit.words / 60)


def compose(request: GenerationRequest) -> list[Unit]:
    """The units of the answer, in the order they are said."""
    if not request.sources:
        return []
    pool = [unit for index, source in enumerate(request.sources, start=1)
            for rank, passage in enumerate((*(source.passages or (source.text,)), *source.rest))
            for unit in units_of(passage, index, rank)]
    if not pool:
        return []
    # A list of short items is quoted whole, but each item may also be quoted alone:
    # "Express shipping: $15..." answers a question about express shipping when the
    # whole list of options does not fit beside the best sentence.
    pool += [item for unit in pool for item in _items(unit)]
    weights = _idf(pool, _weights(request))
    # The anchor: the best unit of the best source's top passages, the first preferred.
    first = [u for u in pool if u.source == 1] or pool
    search = request.search or SearchQuery.of(request.query)
    # The intent is read from the words that weigh most (the question, the newest turn).
    intent = Intent.of(" ".join(p.text for p in search.parts if p.weight >= 1.0)
                       or request.query)
    anchor = max(first, key=lambda u: (
        _score(u, weights, intent) * (1.0 if u.passage == 0 else 0.85), -u.passage,
        -u.position, -len(u.lines)))
    anchor = _fit(anchor)
    chosen = [anchor]
    said = _said(anchor)
    words = anchor.words
    # A problem ("it says delivered but nothing's here") is answered with what to do
    # about it: the article's app path or steps go next to the best sentence. A
    # question for an amount or a time wants that figure instead.
    if intent.quantity is None and not _is_action(anchor) and (
            action := _action(pool, anchor, weights, intent)):
        chosen.append(action)
        said |= _said(action)
        words += action.words
    # A second topic ("return the phone, and cancel the extra line"): a query word that
    # weighs much, that the best source's passage never says, and that another source
    # answers, gets that source's best sentence, before the room is filled.
    if second := _second_topic(pool, anchor, weights, intent):
        chosen.append(second)
        said |= _said(second)
        words += second.words
    # Neighbours in the best passage by relevance, then the source's other passages.
    neighbours = sorted(
        (u for u in pool if u.source == 1 and u is not anchor),
        key=lambda u: (u.passage != anchor.passage, -_score(u, weights, intent),
                       abs(u.position - anchor.position)))
    for unit in neighbours:
        if words >= TARGET_WORDS:
            break
        if unit.passage != anchor.passage and _score(unit, weights, intent) <= 0:
            continue
        if _said(unit) & said or words + unit.words > MAX_WORDS:
            continue
        chosen.append(unit)
        said |= _said(unit)
        words += unit.words
    # Other sources: only a sentence that matches and brings a fact not yet said.
    facts = set(_facts(" ".join(u.text for u in chosen)))
    floor = 0.5 * _score(anchor, weights, intent)
    for unit in sorted((u for u in pool if u.source > 1),
                       key=lambda u: -_score(u, weights, intent)):
        if words >= TARGET_WORDS or _score(unit, weights, intent) < floor:
            break
        new = set(_facts(unit.text)) - facts
        if not new or _said(unit) & said or words + unit.words > MAX_WORDS:
            continue
        chosen.append(unit)
        said |= _said(unit)
        facts |= new
        words += unit.words
    own = [u for u in chosen if u.source == 1]
    others = [u for u in chosen if u.source > 1]
    # The anchor's passage first, in reading order, then the source's other passages.
    own.sort(key=lambda u: (u.passage != anchor.passage, u.passage, u.position, u.item))
    return own + others


_ACTION = re.compile(r"\w > \w")


def _is_action(unit: Unit) -> bool:
    """An app path ("Billing > AutoPay") or a run of numbered steps: how to act."""
    return bool(_ACTION.search(unit.text)) or (
        len(unit.lines) > 1 and bool(_ORDERED.match(unit.lines[-1])))


def _action(pool: list[Unit], anchor: Unit, weights: dict[str, float],
            intent: Intent) -> Unit | None:
    """The anchor's source's best action unit that fits beside it."""
    candidates = [u for u in pool if u.source == anchor.source and _is_action(u)
                  and anchor.words + u.words <= MAX_WORDS]
    return max(candidates, key=lambda u: (_score(u, weights, intent), -u.passage,
                                          -u.position), default=None)


def _second_topic(pool: list[Unit], anchor: Unit, weights: dict[str, float],
                  intent: Intent) -> Unit | None:
    heaviest = max(weights.values(), default=0.0)
    covered: set[str] = set()
    for unit in pool:
        if unit.source == anchor.source and unit.passage == anchor.passage:
            covered |= stems(unit.text) | stems(unit.heading)
    missing = {s for s, w in weights.items() if w >= 0.6 * heaviest} - covered
    if len(missing) < 2:  # one word unsaid is often a synonym, not a second topic
        return None
    floor = 0.5 * _score(anchor, weights, intent)
    candidates = [u for u in pool if u.source != anchor.source
                  and len((stems(u.text) | stems(u.heading)) & missing) >= 2
                  and _score(u, weights, intent) >= floor and u.words <= MAX_WORDS // 2]
    return max(candidates, key=lambda u: _score(u, weights, intent), default=None)


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


def _items(unit: Unit) -> list[Unit]:
    """The items of a list of short items quoted whole, each as a unit of its own."""
    if len(unit.lines) < 2 or not is_list_item(unit.lines[-1]) or _ORDERED.match(unit.lines[-1]):
        return []
    # Kept as a list line: one unit, one citation, however many sentences it holds.
    return [replace(unit, lines=(line,), item=index)
            for index, line in enumerate(unit.lines, start=1)
            if is_list_item(line) and len(line.split()) > _MIN_WORDS]


def _said(unit: Unit) -> set[str]:
    """What saying ``unit`` says: its lines, so an item and its list are not both said."""
    return {_key(line) for line in unit.lines if not line.endswith(":")}


def _key(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _facts(text: str) -> list[str]:
    return re.findall(r"\$?\d[\d,.]*%?(?:\s?(?:days?|hours?|minutes?|weeks?|months?|GB|MB))?",
                      text)


def render(units: list[Unit]) -> str:
    """The answer's text: each sentence or step followed by its ``[n]``."""
    parts: list[str] = []
    for unit in units:
        if is_list_item(unit.lines[-1]):
            lines = "\n".join(f"{line} [{unit.source}]" for line in unit.lines) + "\n"
            if parts and parts[-1].endswith("\n"):
                parts[-1] += lines  # items of one list quoted one by one: one list
            else:
                parts.append("\n" + lines)
        else:
            # A sentence and the one that leans on it: each cited.
            parts.append(" ".join(line if line.endswith(":") else f"{line} [{unit.source}]"
                                  for line in unit.lines))
    return " ".join(parts).replace(" \n", "\n").replace("\n ", "\n").strip()


class ExtractiveGenerator:
    """Streams a focused answer quoted from the best passages, each sentence cited."""

    name = "extractive"
    model = "extractive-passages"

    def __init__(self, *, token_delay_s: float = 0.015) -> None:
        self.token_delay_s = token_delay_s

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        answer = render(compose(request))
        tokens = re.findall(r"\s*\S+", answer)
        allowed = min(len(tokens), request.max_tokens)
        # Paced like a model, so the page shows it growing: word k is due k delays after
        # the first, on a schedule, and a read takes every word due by then. A reader
        # that comes late (the relay reads on once a window) gets what a model would
        # have sent meanwhile, not one word a read.
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        while sent < allowed:
            delay = self.token_delay_s
            due = allowed if not delay else min(
                allowed, max(sent + 1, int((loop.time() - start) / delay) + 1))
            yield Chunk(text="".join(tokens[sent:due]), tokens=due - sent)
            sent = due
            if delay and sent < allowed:
                await asyncio.sleep(max(0.0, start + sent * delay - loop.time()))
        yield Chunk(stop_reason="max_tokens" if len(tokens) > allowed else "stop")
