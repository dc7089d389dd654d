"""The answer benchmark's labelled cases and how each is scored (bench/quality.py runs them).

A case is what an agent asked or a conversation said, with the articles that answer it
(none for a case where the panel should stay silent) and the facts a good answer says.
A record is what the pipeline did with one case; ``metrics`` turns the records into
every figure of docs/quality.md, ``misses`` into the list of what went wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

DATA = Path(__file__).resolve().parent / "quality"
#: The labelled questions and utterances (issue 14).
CASES = DATA / "cases.jsonl"
#: Every kind of case, in the order the table lists them.
KINDS = ("agent", "customer", "multi_turn", "typo", "two_topics", "unanswerable", "small_talk")
#: Kinds whose cases have no answer in the knowledge base: the panel should abstain.
SILENT_KINDS = ("unanswerable", "small_talk")
#: Live-conversation shapes: where a turn's meaning lives, and what should stay silent.
CONVERSATIONS = DATA / "conversations.jsonl"
CONVERSATION_KINDS = ("answer", "topic_change", "spoken", "rambling", "courtesy", "negation",
                      "other_language", "details", "not_in_kb")
#: Ranks scored: top-1, top-3; MRR looks at the first ``MRR_DEPTH`` sources.
MRR_DEPTH = 3
#: Outcomes that count as an answer (with ``confident``).
ANSWERED = frozenset({"completed", "truncated"})

Speaker = Literal["customer", "agent"]


# -- the labelled cases ------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One labelled question: what the agent asked or the customer said, and what answers it.

    ``expected`` are article ids, best first (empty when nothing in the knowledge base
    answers); ``facts`` what a good answer says, each a list of equivalent phrasings.
    """

    id: str
    kind: str
    trigger: Literal["manual", "utterance"]
    query: str | None
    utterances: tuple[tuple[Speaker, str], ...]
    expected: tuple[str, ...]
    facts: tuple[tuple[str, ...], ...]

    @property
    def answerable(self) -> bool:
        return bool(self.expected)

    @classmethod
    def from_json(cls, data: dict[str, Any], kinds: Sequence[str] = KINDS) -> Case:
        if data["kind"] not in kinds:
            raise ValueError(f"case {data.get('id')}: unknown kind {data['kind']!r}")
        if data["trigger"] not in ("manual", "utterance"):
            raise ValueError(f"case {data['id']}: unknown trigger {data['trigger']!r}")
        return cls(
            id=data["id"], kind=data["kind"], trigger=data["trigger"], query=data.get("query"),
            utterances=tuple((u["speaker"], u["text"]) for u in data.get("utterances", [])),
            expected=tuple(data.get("expected", [])),
            facts=tuple(tuple(alternatives) for alternatives in data.get("facts", [])),
        )


def load_cases(path: Path = CASES, kinds: Sequence[str] = KINDS) -> list[Case]:
    """The cases of a JSON-lines file (blank lines skipped), each of one of ``kinds``;
    ids must be unique."""
    cases = [Case.from_json(json.loads(line), kinds)
             for line in path.read_text().splitlines() if line.strip()]
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise ValueError(f"{path}: case id {case.id} twice")
        seen.add(case.id)
    return cases


# -- scoring one answer --------------------------------------------------------------------

_DASHES = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"})
_CITATION = re.compile(r"\[(\d+)\]")
_CITATIONS = re.compile(r"(?:\s*\[\d+\])+")
_LIST_LINE = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9$])")
# What may follow a line's last citation: closing punctuation only ("... [1].").
_TAIL_OK = re.compile(r"^[\s.!?;:,)]*$")


def normalize(text: str) -> str:
    """Text as facts are compared: lower case, ``**`` dropped, dashes as ``-``,
    whitespace collapsed."""
    return " ".join(text.replace("**", "").translate(_DASHES).lower().split())


def fact_found(answer: str, alternatives: Iterable[str]) -> bool:
    """Whether ``answer`` says any of the phrasings of one fact (see ``normalize``)."""
    said = normalize(answer)
    return any(normalize(alt) in said for alt in alternatives if normalize(alt))


@dataclass(frozen=True)
class CitationCheck:
    """The citations of one answer: how many, how many point at a source, and whether
    every sentence (or step line) ends with one."""

    citations: int
    valid: int
    uncited: int  # sentences or step lines without a citation at their end

    @property
    def fully_valid(self) -> bool:
        return self.valid == self.citations and self.uncited == 0


def check_citations(answer: str, n_sources: int) -> CitationCheck:
    """Every ``[n]`` must name a source (1..``n_sources``), and every sentence of prose and
    every list line must end with a citation (closing punctuation may follow it).

    A line ending with ``:`` (a lead-in to steps) needs none; a list line is one unit
    however many sentences it holds.
    """
    numbers = [int(n) for n in _CITATION.findall(answer)]
    valid = sum(1 for n in numbers if 1 <= n <= n_sources)
    uncited = 0
    for raw in answer.splitlines():
        line = raw.strip()
        if not line or (line.endswith(":") and not _CITATION.search(line)):
            continue
        pieces = _CITATIONS.split(line)
        tail = pieces[-1]  # the text after the line's last citation
        if not _TAIL_OK.match(tail):
            uncited += 1
        if _LIST_LINE.match(line):
            continue
        for piece in pieces[:-1]:
            # Each piece ends at a citation; any earlier sentence inside it has none.
            sentences = [s for s in _SENTENCE_END.split(piece.strip()) if re.search(r"\w", s)]
            uncited += max(0, len(sentences) - 1)
        if not _TAIL_OK.match(tail):
            sentences = [s for s in _SENTENCE_END.split(tail.strip()) if re.search(r"\w", s)]
            uncited += max(0, len(sentences) - 1)
    return CitationCheck(len(numbers), valid, uncited)


def rank_of(ids: Sequence[str], expected: Iterable[str], depth: int = MRR_DEPTH) -> int | None:
    """The 1-based rank of the first source among ``ids[:depth]`` that is expected."""
    wanted = set(expected)
    for index, article_id in enumerate(ids[:depth], start=1):
        if article_id in wanted:
            return index
    return None


def hit(ids: Sequence[str], expected: Iterable[str], k: int) -> bool:
    """Whether any expected id is among the first ``k`` sources."""
    return rank_of(ids, expected, k) is not None


def reciprocal_rank(ids: Sequence[str], expected: Iterable[str],
                    depth: int = MRR_DEPTH) -> float:
    rank = rank_of(ids, expected, depth)
    return 1.0 / rank if rank else 0.0


def both_found(ids: Sequence[str], expected: Sequence[str], k: int = 3) -> bool:
    """Two-topic cases: the first two expected ids (one per topic) both in the top ``k``."""
    return len(expected) >= 2 and set(expected[:2]) <= set(ids[:k])


# -- one case's result ---------------------------------------------------------------------


@dataclass
class Record:
    """What the pipeline did with one case, and its scores."""

    id: str
    kind: str
    expected: list[str]
    ids: list[str]
    confident: bool
    outcome: str
    stop_reason: str = ""
    scores: list[float] = field(default_factory=list)  # the sources' fused scores
    answer: str = ""
    facts_found: int = 0
    facts_total: int = 0
    facts_missed: list[list[str]] = field(default_factory=list)
    citations: int = 0
    citations_valid: int = 0
    uncited: int = 0

    @property
    def answerable(self) -> bool:
        return bool(self.expected)

    @property
    def answered(self) -> bool:
        return self.confident and self.outcome in ANSWERED

    @property
    def abstained(self) -> bool:
        return self.outcome == "abstained"

    @property
    def right(self) -> bool:
        """What the agent would call right: a confident answer from the best source
        when the knowledge base answers, silence when it does not."""
        if self.answerable:
            return self.answered and hit(self.ids, self.expected, 1)
        return self.abstained

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["rank"] = rank_of(self.ids, self.expected) if self.answerable else None
        return out


def score(case: Case, ids: Sequence[str], confident: bool, outcome: str, answer: str,
          stop_reason: str = "", scores: Sequence[float] = ()) -> Record:
    """The record of one case from what its stream said."""
    found = [fact_found(answer, alternatives) for alternatives in case.facts]
    check = check_citations(answer, len(ids))
    return Record(
        id=case.id, kind=case.kind, expected=list(case.expected), ids=list(ids),
        confident=confident, outcome=outcome, stop_reason=stop_reason,
        scores=list(scores), answer=answer,
        facts_found=sum(found), facts_total=len(found),
        facts_missed=[list(alts) for alts, ok in zip(case.facts, found, strict=True) if not ok],
        citations=check.citations, citations_valid=check.valid, uncited=check.uncited,
    )


# -- the figures -----------------------------------------------------------------------------


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _retrieval(records: list[Record]) -> dict[str, Any]:
    scored = [r for r in records if r.answerable]
    n = len(scored)
    out: dict[str, Any] = {
        "n": len(records), "answerable": n,
        "top1": _share(sum(hit(r.ids, r.expected, 1) for r in scored), n),
        "top3": _share(sum(hit(r.ids, r.expected, 3) for r in scored), n),
        "mrr": sum(reciprocal_rank(r.ids, r.expected) for r in scored) / n if n else None,
        "answer_rate": _share(sum(r.answered for r in scored), n),
        "right": _share(sum(r.right for r in records), len(records)),
    }
    with_facts = [r for r in scored if r.facts_total]
    out["facts_found"] = sum(r.facts_found for r in with_facts)
    out["facts_total"] = sum(r.facts_total for r in with_facts)
    out["fact_coverage"] = _share(out["facts_found"], out["facts_total"])
    silent = [r for r in records if not r.answerable]
    out["silent"] = len(silent)
    out["abstain_rate"] = _share(sum(r.abstained for r in silent), len(silent))
    return out


def _abstention(records: list[Record]) -> dict[str, Any]:
    """Abstaining as a classifier: positive = abstained, truth = nothing answers."""
    tp = sum(1 for r in records if r.abstained and not r.answerable)
    fp = sum(1 for r in records if r.abstained and r.answerable)
    fn = sum(1 for r in records if not r.abstained and not r.answerable)
    return {"abstained": tp + fp, "true_positives": tp, "false_positives": fp,
            "false_negatives": fn, "precision": _share(tp, tp + fp),
            "recall": _share(tp, tp + fn)}


def _citations(records: list[Record]) -> dict[str, Any]:
    answers = [r for r in records if r.answer.strip()]
    cites = sum(r.citations for r in answers)
    valid = sum(r.citations_valid for r in answers)
    full = sum(1 for r in answers if r.citations_valid == r.citations and not r.uncited)
    return {"answers": len(answers), "answers_fully_valid": full,
            "answers_valid_share": _share(full, len(answers)),
            "citations": cites, "citations_valid": valid,
            "citations_valid_share": _share(valid, cites),
            "uncited_sentences": sum(r.uncited for r in answers)}


def metrics(records: list[Record], order: Sequence[str] = KINDS) -> dict[str, Any]:
    """Every figure of docs/quality.md from the per-case records, kinds in ``order``."""
    kinds = {kind: _retrieval([r for r in records if r.kind == kind])
             for kind in order if any(r.kind == kind for r in records)}
    two = [r for r in records if r.kind == "two_topics"]
    if "two_topics" in kinds:
        kinds["two_topics"]["both_top3"] = _share(
            sum(both_found(r.ids, r.expected) for r in two), len(two))
    abstention = _abstention(records)
    abstention["by_kind"] = {kind: _abstention([r for r in records if r.kind == kind])
                             for kind in SILENT_KINDS if kind in kinds}
    outcomes: dict[str, int] = {}
    for record in records:
        outcomes[record.outcome] = outcomes.get(record.outcome, 0) + 1
    return {"overall": _retrieval(records), "kinds": kinds, "abstention": abstention,
            "citations": _citations(records), "outcomes": dict(sorted(outcomes.items()))}


def misses(records: list[Record]) -> list[str]:
    """One line per case that went wrong, the worst first: the right article not in the
    top 3, then speaking or silent at the wrong time, then facts not said, then
    citations out of order."""
    graded: list[tuple[int, str]] = []
    for r in records:
        why: list[str] = []
        grade = 3
        if r.answerable:
            if not hit(r.ids, r.expected, 3):
                why.append(f"top-3 {r.ids} lacks {r.expected[0]}")
                grade = 0
            if not r.answered:
                why.append(f"not answered ({r.outcome}/{r.stop_reason})")
                grade = min(grade, 1)
            if r.facts_missed and r.answered:
                why.append("missed facts " + "; ".join(alts[0] for alts in r.facts_missed))
                grade = min(grade, 2)
        elif not r.abstained:
            why.append(f"answered ({r.outcome}) from {r.ids[:1]}")
            grade = 1
        if r.citations_valid != r.citations or r.uncited:
            why.append(f"citations {r.citations_valid}/{r.citations} valid, "
                       f"{r.uncited} uncited")
        if why:
            graded.append((grade, f"{r.id} [{r.kind}]: " + "; ".join(why)))
    return [line for _, line in sorted(graded, key=lambda pair: pair[0])]
