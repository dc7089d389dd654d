"""The answer benchmark (issue 14): are the right articles found, and do the answers say
what they should, cite what they quote, and stay silent when nothing answers?

Every labelled case of ``bench/quality/cases.jsonl`` (questions and utterances) and
of ``bench/quality/conversations.jsonl`` (live-conversation shapes: answers to the
agent, changes of subject, details read out...) goes through the real
``Pipeline`` in-process: the panel's hybrid retrieval (``KnowledgeBaseRetriever``
with ``tuning_from(settings)``), the ``extractive`` generator unpaced, the
settings' limits with the time limits pushed out of reach, over a fresh store of
the sample knowledge base (``kb/sample``) embedded by the settings' embedder. From
each stream's events it keeps the sources, ``confident``, the answer text and the
outcome, and scores them (``bench/quality_scores.py``; docs/quality.md says how each
figure is computed).

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
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

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
from .quality_scores import (
    CONVERSATION_KINDS,
    CONVERSATIONS,
    SILENT_KINDS,
    Case,
    Record,
    load_cases,
    metrics,
    misses,
    score,
)
from .report import Row, Section

ITEM = "quality"
#: Time limits far beyond any answer: the benchmark scores content, never a timeout.
_NO_TIMEOUT_S = 3600.0
#: Misses printed by ``--verbose``, at most (the JSON has them all).
MAX_MISSES = 40


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


async def aevaluate(cases: Sequence[Case], kb: KnowledgeBase, settings: Settings,
                    conversations: Sequence[Case] = ()) -> dict[str, Any]:
    """Every case through the real pipeline, one after another: the figures and records
    (the live-conversation cases' apart, under ``conversations``)."""
    pipeline = _pipeline(kb, settings)
    records = [await run_case(pipeline, case) for case in cases]
    talks = [await run_case(pipeline, case) for case in conversations]
    tuning = tuning_from(settings)
    return {
        "cases": len(records), "top_k": pipeline.limits.top_k,
        "embedder": kb.embedder.name if kb.embedder is not None else "none",
        "tuning": asdict(tuning),
        "metrics": metrics(records), "misses": misses(records),
        "records": [r.to_json() for r in records],
        "conversations": _figures(talks),
    }


def _figures(records: list[Record]) -> dict[str, Any]:
    return {"cases": len(records), "metrics": metrics(records, CONVERSATION_KINDS),
            "misses": misses(records), "records": [r.to_json() for r in records]}


def evaluate(cases: Sequence[Case], kb: KnowledgeBase, settings: Settings,
             conversations: Sequence[Case] = ()) -> dict[str, Any]:
    """``aevaluate`` from sync code (its own event loop)."""
    async def main() -> dict[str, Any]:
        return await aevaluate(cases, kb, settings, conversations)

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
    talks = result.get("conversations")
    if talks and talks["cases"]:
        lines += ["", conversations_markdown(talks["metrics"])]
    return "\n".join(lines)


def conversations_markdown(figures: dict[str, Any]) -> str:
    """The live-conversation cases: a row per shape, "right" first (the best source
    answered when the knowledge base answers, silence when it does not)."""
    head = ["shape", "n", "right", "top-1", "top-3", "answered", "abstained"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind, k in [*figures["kinds"].items(), ("**all**", figures["overall"])]:
        answered = (f"{_pct(k['answer_rate'])} of {k['answerable']}" if k["answerable"]
                    else "")
        silent = f"{_pct(k['abstain_rate'])} of {k['silent']}" if k["silent"] else ""
        lines.append(f"| {kind} | {k['n']} | {_pct(k['right'])} | {_pct(k['top1'])} "
                     f"| {_pct(k['top3'])} | {answered} | {silent} |")
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
    talks = result.get("conversations")
    if talks and talks["cases"]:
        t = talks["metrics"]
        worst = sorted(t["kinds"].items(), key=lambda item: item[1]["right"] or 0.0)[:3]
        out.append(Row(
            item=ITEM, case="right, live-conversation shapes", unit="%",
            value=pct(t["overall"]["right"]),
            note=f"{talks['cases']} cases; weakest " + ", ".join(
                f"{kind} {_pct(k['right'])}" for kind, k in worst)))
    return out


def measure(workdir: Path, settings: Settings | None = None,
            cases: Sequence[Case] | None = None,
            conversations: Sequence[Case] | None = None) -> dict[str, Any]:
    """A fresh store of the sample knowledge base under ``workdir``, every case run on it:
    by default all of both files; given ``cases`` alone, those alone."""
    settings = settings or Settings()
    chosen = list(cases) if cases is not None else load_cases()
    if conversations is None:
        conversations = (load_cases(CONVERSATIONS, CONVERSATION_KINDS) if cases is None
                         else [])
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
                result = await aevaluate(chosen, kb, settings, conversations)
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
    wrong = [*result["misses"], *result["conversations"]["misses"]]
    if verbose and wrong:
        shown = wrong[:MAX_MISSES]
        more = len(wrong) - len(shown)
        print("\nmisses, worst first:\n" + "\n".join(f"- {m}" for m in shown)
              + (f"\n... and {more} more in {results_dir / 'quality.json'}" if more else ""),
              file=sys.stderr, flush=True)
    # The shared results keep the figures; the per-case records stay in quality.json.
    data = {k: v for k, v in result.items() if k not in ("records", "misses")}
    data["conversations"] = {k: v for k, v in result["conversations"].items()
                             if k not in ("records", "misses")}
    return Section(name="quality", rows=rows(result), data=data)
