"""The answer benchmark (issue 14): are the right articles found, and do the answers say
what they should, cite what they quote, and stay silent when nothing answers?

Every labelled case of ``bench/quality/cases.jsonl`` goes through the real
``Pipeline`` in-process: the panel's hybrid retrieval (``KnowledgeBaseRetriever``
with ``tuning_from(settings)``), the ``extractive`` generator unpaced, the
settings' limits with the time limits pushed out of reach, over a fresh store of
the sample knowledge base (``kb/sample``) embedded by the settings' embedder. From
each stream's events it keeps the sources, ``confident``, the answer text and the
outcome, and scores them (docs/quality.md says how each figure is computed).

Deterministic: no clock enters a score, and the store, the embedder and the
generator give the same output for the same input. ``ASSIST_*`` variables are
honoured (``ASSIST_RELEVANCE_THRESHOLD=0.4 bench/run --only quality`` scores
another threshold); the tuning used is saved with the results.

Run: ``bench/run --only quality [--verbose]``; results in ``bench/results/quality.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.to_thread
import httpx

from server.app import tuning_from
from server.kb.embedders import build_embedder
from server.kb.importer import find_files, import_files
from server.kb.store import KnowledgeBase
from server.paths import sample_kb_dir
from server.pipeline.context import Utterance
from server.pipeline.generators.extractive import ExtractiveGenerator
from server.pipeline.retrieval import KnowledgeBaseRetriever
from server.pipeline.stream import AssistRequest, Limits, Pipeline
from server.settings import Settings

from .machine import describe
from .report import Row, Section

CASES = Path(__file__).resolve().parent / "quality" / "cases.jsonl"
ITEM = "quality"
#: Every kind of case, in the order the table lists them.
KINDS = ("agent", "customer", "multi_turn", "typo", "two_topics", "unanswerable", "small_talk")
#: Kinds whose cases have no answer in the knowledge base: the panel should abstain.
SILENT_KINDS = ("unanswerable", "small_talk")
#: Ranks scored: top-1, top-3; MRR looks at the first ``MRR_DEPTH`` sources.
MRR_DEPTH = 3
#: Outcomes that count as an answer (with ``confident``).
ANSWERED = frozenset({"completed", "truncated"})
#: Time limits far beyond any answer: the benchmark scores content, never a timeout.
_NO_TIMEOUT_S = 3600.0
#: Misses printed by ``--verbose``, at most (the JSON has them all).
MAX_MISSES = 40

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
    def from_json(cls, data: dict[str, Any]) -> Case:
        if data["kind"] not in KINDS:
            raise ValueError(f"case {data.get('id')}: unknown kind {data['kind']!r}")
        if data["trigger"] not in ("manual", "utterance"):
            raise ValueError(f"case {data['id']}: unknown trigger {data['trigger']!r}")
        return cls(
            id=data["id"], kind=data["kind"], trigger=data["trigger"], query=data.get("query"),
            utterances=tuple((u["speaker"], u["text"]) for u in data.get("utterances", [])),
            expected=tuple(data.get("expected", [])),
            facts=tuple(tuple(alternatives) for alternatives in data.get("facts", [])),
        )


def load_cases(path: Path = CASES) -> list[Case]:
    """The cases of a JSON-lines file (blank lines skipped); ids must be unique."""
    cases = [Case.from_json(json.loads(line))
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


def metrics(records: list[Record]) -> dict[str, Any]:
    """Every figure of docs/quality.md from the per-case records."""
    kinds = {kind: _retrieval([r for r in records if r.kind == kind])
             for kind in KINDS if any(r.kind == kind for r in records)}
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


# -- running the cases --------------------------------------------------------------------


def _pipeline(kb: KnowledgeBase, settings: Settings) -> Pipeline:
    limits = replace(Limits.from_settings(settings), first_token_s=_NO_TIMEOUT_S,
                     idle_s=_NO_TIMEOUT_S, hard_s=_NO_TIMEOUT_S)
    return Pipeline(
        retriever=KnowledgeBaseRetriever(kb, tuning_from(settings)),
        generator=ExtractiveGenerator(token_delay_s=0),
        limits=limits,
        static_article={"id": "static-fallback", "title": settings.fallback_article_title,
                        "url": settings.fallback_article_url,
                        "excerpt": settings.fallback_article_excerpt},
    )


def request_of(case: Case) -> AssistRequest:
    return AssistRequest(
        conversation_id=f"quality-{case.id}", trigger=case.trigger, query=case.query,
        utterances=tuple(Utterance(speaker, text) for speaker, text in case.utterances),
        request_id=case.id)


async def run_case(pipeline: Pipeline, case: Case) -> Record:
    """One case through ``pipeline.stream``; its events scored."""
    ids: list[str] = []
    scores: list[float] = []
    confident = False
    text: list[str] = []
    outcome, stop_reason = "missing", ""
    async for event in pipeline.stream(request_of(case)):
        if event.name == "suggestion":
            ids = [str(source["id"]) for source in event.data["sources"]]
            scores = [float(source["score"]) for source in event.data["sources"]]
            confident = bool(event.data["confident"])
        elif event.name == "delta":
            text.append(event.data["text"])
        elif event.name == "done":
            outcome, stop_reason = event.data["outcome"], event.data["stop_reason"]
    return score(case, ids, confident, outcome, "".join(text), stop_reason, scores)


async def aevaluate(cases: Sequence[Case], kb: KnowledgeBase, settings: Settings
                    ) -> dict[str, Any]:
    """Every case through the real pipeline, one after another: the figures and records."""
    pipeline = _pipeline(kb, settings)
    records = [await run_case(pipeline, case) for case in cases]
    tuning = tuning_from(settings)
    return {
        "cases": len(records), "top_k": pipeline.limits.top_k,
        "embedder": kb.embedder.name if kb.embedder is not None else "none",
        "tuning": asdict(tuning),
        "metrics": metrics(records), "misses": misses(records),
        "records": [r.to_json() for r in records],
    }


def evaluate(cases: Sequence[Case], kb: KnowledgeBase, settings: Settings) -> dict[str, Any]:
    """``aevaluate`` from sync code (its own event loop)."""
    async def main() -> dict[str, Any]:
        return await aevaluate(cases, kb, settings)

    return anyio.run(main)


def build_store(db: Path, settings: Settings, client: httpx.AsyncClient | None = None
                ) -> KnowledgeBase:
    """A fresh store of the sample knowledge base, embedded by the settings' embedder."""
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        path.unlink(missing_ok=True)
    kb = KnowledgeBase(db, build_embedder(settings, client))
    kb.reindex()  # marks the empty store as cut and embedded by this version and model
    summary = import_files(kb, find_files([sample_kb_dir()]))
    if summary.errors:
        raise RuntimeError(f"sample knowledge base failed to import: {summary.errors}")
    return kb


# -- the section ----------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def markdown(result: dict[str, Any]) -> str:
    """The figures as Markdown: a row per kind, then the overall lines."""
    figures = result["metrics"]
    head = ["kind", "n", "top-1", "top-3", "MRR", "fact coverage", "answered / abstained"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind, k in figures["kinds"].items():
        rate = (f"{_pct(k['abstain_rate'])} abstained" if kind in SILENT_KINDS
                else f"{_pct(k['answer_rate'])} answered")
        mrr = "" if k["mrr"] is None else f"{k['mrr']:.3f}"
        cover = (f"{_pct(k['fact_coverage'])} ({k['facts_found']}/{k['facts_total']})"
                 if k["facts_total"] else "")
        lines.append(f"| {kind} | {k['n']} | {_pct(k['top1'])} | {_pct(k['top3'])} | {mrr} "
                     f"| {cover} | {rate} |")
    o = figures["overall"]
    lines.append(f"| **all** | {o['n']} | {_pct(o['top1'])} | {_pct(o['top3'])} "
                 f"| {o['mrr']:.3f} | {_pct(o['fact_coverage'])} "
                 f"({o['facts_found']}/{o['facts_total']}) "
                 f"| {_pct(o['answer_rate'])} answered, {_pct(o['abstain_rate'])} abstained |")
    a, c = figures["abstention"], figures["citations"]
    by_kind = ", ".join(f"{kind} {_pct(v['recall'])}" for kind, v in a["by_kind"].items())
    two = figures["kinds"].get("two_topics", {}).get("both_top3")
    lines += [
        "",
        f"- Answered: {_pct(o['answer_rate'])} of {o['answerable']} answerable cases "
        "(confident, completed or truncated).",
        f"- Abstention: precision {_pct(a['precision'])}, recall {_pct(a['recall'])} "
        f"({a['true_positives']} of {o['silent']} with no answer; {a['false_positives']} "
        f"answerable cases abstained); recall by kind: {by_kind}.",
        f"- Two topics, both in the top 3: {_pct(two)}.",
        f"- Citations: {_pct(c['answers_valid_share'])} of {c['answers']} answers fully valid; "
        f"{_pct(c['citations_valid_share'])} of {c['citations']} citations name a source; "
        f"{c['uncited_sentences']} sentences without a citation.",
        f"- Outcomes: {', '.join(f'{k} {v}' for k, v in figures['outcomes'].items())}.",
    ]
    return "\n".join(lines)


def rows(result: dict[str, Any]) -> list[Row]:
    """The headline figures for the shared results table (units: percent)."""
    figures = result["metrics"]
    o, a, c = figures["overall"], figures["abstention"], figures["citations"]

    def pct(value: float | None) -> float | None:
        return None if value is None else round(value * 100, 1)

    cases = f"{result['cases']} cases"
    out = [Row(item=ITEM, case=f"top-3, {kind}", unit="%", value=pct(k["top3"]),
               note=f"{k['answerable']} cases; top-1 {_pct(k['top1'])}, MRR {k['mrr']:.3f}")
           for kind, k in figures["kinds"].items() if k["answerable"]]
    out += [
        Row(item=ITEM, case="top-3, all answerable", unit="%", value=pct(o["top3"]),
            note=f"{o['answerable']} cases; top-1 {_pct(o['top1'])}, MRR {o['mrr']:.3f}"),
        Row(item=ITEM, case="answered, answerable", unit="%", value=pct(o["answer_rate"]),
            note=f"{o['answerable']} cases"),
        Row(item=ITEM, case="abstained, no answer in the KB", unit="%",
            value=pct(a["recall"]), note=f"{o['silent']} cases; precision {_pct(a['precision'])}"),
        Row(item=ITEM, case="fact coverage", unit="%", value=pct(o["fact_coverage"]),
            note=f"{o['facts_found']}/{o['facts_total']} facts"),
        Row(item=ITEM, case="answers with valid citations", unit="%",
            value=pct(c["answers_valid_share"]), note=f"{c['answers']} answers; {cases}"),
    ]
    return out


def measure(workdir: Path, settings: Settings | None = None,
            cases: Sequence[Case] | None = None) -> dict[str, Any]:
    """A fresh store of the sample knowledge base under ``workdir``, every case run on it."""
    settings = settings or Settings()
    chosen = list(cases) if cases is not None else load_cases()
    workdir.mkdir(parents=True, exist_ok=True)

    async def main() -> dict[str, Any]:
        async with contextlib.AsyncExitStack() as stack:
            client = None
            if settings.embedder == "openai":  # its query path needs the shared client
                client = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
            started = time.perf_counter()
            kb = await anyio.to_thread.run_sync(build_store, workdir / "quality.sqlite3",
                                                settings, client)
            import_s = time.perf_counter() - started
            try:
                started = time.perf_counter()
                result = await aevaluate(chosen, kb, settings)
                result["run_s"] = round(time.perf_counter() - started, 2)
                result["import_s"] = round(import_s, 2)
                result["articles"] = kb.count()
                result["passages"] = kb.passage_count()
            finally:
                await anyio.to_thread.run_sync(kb.close)
            return result

    return anyio.run(main)


def run(workdir: Path, results_dir: Path, *, verbose: bool = False) -> Section:
    """The section: the table printed, ``results_dir/quality.json`` written."""
    result = measure(workdir)
    result["generated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    machine = describe()
    # describe() counts the cores this process may use: bench/run pins the section to one.
    machine["pinned_cores"] = machine["cores"]
    machine["cores"] = os.cpu_count() or machine["cores"]
    result["machine"] = machine
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "quality.json").write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result), file=sys.stderr, flush=True)
    if verbose and result["misses"]:
        shown = result["misses"][:MAX_MISSES]
        more = len(result["misses"]) - len(shown)
        print("\nmisses, worst first:\n" + "\n".join(f"- {m}" for m in shown)
              + (f"\n... and {more} more in {results_dir / 'quality.json'}" if more else ""),
              file=sys.stderr, flush=True)
    # The shared results keep the figures; the per-case records stay in quality.json.
    data = {k: v for k, v in result.items() if k not in ("records", "misses")}
    return Section(name="quality", rows=rows(result), data=data)
