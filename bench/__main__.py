"""``bench/run [--quick] [--only NAME,...] [--verbose] [--against REV]``: every
benchmark, a table, JSON results, the docs.

Each benchmark starts its own processes on loopback (the panel's ``assist-panel
serve``, the mock model, the peer), pinned so that the server under test has a
core to itself. Results go to ``bench/results/{full,quick}.json`` (sections of a
partial ``--only`` run are merged into it) and a dated copy under
``bench/results/history/``. A full run also rewrites the table and the machine in
docs/performance.md and its figure, docs/images/performance.png.

``--only latency --against REV`` measures a change: this tree's panel and the panel of
git revision REV (its files from ``git archive``, run on this environment's packages)
take turns at each level, as the panel and the peer do. Its results go to
``bench/results/{full,quick}-against.json``; the results of record and the docs are
left alone.

``hostile`` holds slow and never-reading clients by the hundred against the server
and reports what it keeps open (bench/hostile.py).

``scale`` measures ``serve --workers`` 1, 2 and 4, straight and through nginx, in one
run and on the whole machine, nothing pinned (bench/scale.py).

``quality`` is the answer benchmark (docs/quality.md): the labelled cases of
``bench/quality/cases.jsonl`` through the real pipeline, in-process. Its per-case
records go to ``bench/results/quality.json``; ``--verbose`` also prints its misses.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import capacity, hostile, latency, scale, stall, throughput
from .machine import describe
from .procs import Cpus
from .report import Row, Section

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "performance.md"
FIGURE = ROOT / "docs" / "images" / "performance.png"
SECTIONS = ("retrieval", "quality", "latency", "capacity", "throughput", "stall", "hostile",
            "scale", "page")
# Sections whose rows are not performance figures: docs/quality.md reports them.
NOT_PERFORMANCE = frozenset({"quality"})


@contextlib.contextmanager
def affinity(cpus: frozenset[int]) -> Iterator[None]:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def checkout(rev: str, into: Path) -> Path:
    """The project's files at git revision ``rev``, written to ``into`` (``git archive``:
    the repository itself is left as it is); SystemExit when git cannot give them."""
    try:
        tar = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev],
                             capture_output=True, check=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or str(exc).encode()
        raise SystemExit(f"bench/run: --against {rev}: "
                         f"{detail.decode(errors='replace').strip()}") from exc
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    return into


def _runners(quick: bool, work: Path, kb: Path, cpus: Cpus, verbose: bool = False,
             against: tuple[Path, str] | None = None) -> dict[str, Callable[[], Section]]:
    """Each section's job; with ``against`` (a checkout and its name), latency compares
    this tree's panel with that one's."""
    def retrieval_() -> Section:
        from . import retrieval

        # In-process, on the server's core alone, as the server would search.
        with affinity(cpus.server):
            return retrieval.run(quick, work / "retrieval-work")

    def quality_() -> Section:
        from . import quality

        # The same cases whatever the mode: deterministic, and well under a minute.
        with affinity(cpus.server):
            return quality.run(work / "quality-work", RESULTS, verbose=verbose)

    def page_() -> Section:
        from . import page

        return page.run(quick, work / "page-work")

    with_server = {
        "latency": (lambda: latency.run(quick, work, kb, cpus)) if against is None else (
            lambda: latency.compare(quick, work, kb, cpus, *against)),
        "capacity": lambda: capacity.run(quick, work, kb, cpus),
        "throughput": lambda: throughput.run(quick, work, kb, cpus, RESULTS),
        "stall": lambda: stall.run(quick, work, kb, cpus),
        "hostile": lambda: hostile.run(quick, work, kb, cpus),
    }
    def scale_() -> Section:
        # Workers against workers on the whole machine: nothing pinned (bench/scale.py).
        return scale.run(quick, work, kb, cpus)

    runners: dict[str, Callable[[], Section]] = {"retrieval": retrieval_,
                                                 "quality": quality_, "page": page_,
                                                 "scale": scale_}
    for name, job in with_server.items():
        # The load client shares the harness core with the mock model, never the server's.
        def pinned(job: Callable[[], Section] = job) -> Section:
            with affinity(cpus.harness):
                return job()

        runners[name] = pinned
    return runners


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    if abs(value) >= 100 or float(value).is_integer():
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return text + (f" {unit}" if unit else "")


def table(rows: list[Row]) -> str:
    """The results as a Markdown table (it also reads well in a terminal)."""
    head = ["item", "case", "p50", "p99 (p95)", "value", "peer / panel", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in sorted(rows, key=lambda r: r.item):
        tail = _fmt(row.p_tail, row.unit)
        if tail and row.tail != "p99":
            tail += f" ({row.tail})"
        cells = [row.item, row.case, _fmt(row.p50, row.unit), tail, _fmt(row.value, row.unit),
                 f"{row.ratio:.2f}x" if row.ratio is not None else "", row.note]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def machine_text(machine: dict[str, Any]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
    chromium = machine["chromium"] or "no Chromium"
    return (f"- CPU: {machine['cpu']}, {machine['cores']} cores; "
            f"memory {machine['memory_gib']} GiB\n"
            f"- OS: {machine['os']}; Python {machine['python']}; {chromium}\n"
            f"- Packages: {packages}")


def _replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- bench:{name} -->\n).*?(\n<!-- /bench:{name} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{DOC} has no <!-- bench:{name} --> block")
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text)


def update_docs(results: dict[str, Any]) -> None:
    from .plot import draw

    rows = [Row.from_json(r) for name, s in results["sections"].items()
            if name not in NOT_PERFORMANCE for r in s["rows"]]
    text = DOC.read_text()
    # A partial run (--only) keeps the other sections' figures: say when each was taken.
    dates: dict[str, list[str]] = {}
    for name, section in results["sections"].items():
        if name not in NOT_PERFORMANCE:
            day = str(section.get("started") or results["started"])[:16].replace("T", " ")
            dates.setdefault(day, []).append(name)
    when = "; ".join(f"{', '.join(names)}: run of {day} UTC" for day, names in
                     sorted(dates.items())) + f" ({results['mode']})."
    text = _replace_block(text, "table", when + "\n\n" + table(rows))
    text = _replace_block(text, "machine", machine_text(results["machine"]))
    DOC.write_text(text)
    draw(results, FIGURE)


def run_section(runner: Callable[[], Section],
                now: Callable[[], datetime] = lambda: datetime.now(UTC),
                clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Run one section: its rows, its data, when it started and how long it took."""
    started, began = now(), clock()
    section = runner()
    return {"started": started.isoformat(timespec="seconds"),
            "rows": [r.to_json() for r in section.rows], "data": section.data,
            "seconds": round(clock() - began, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and shorter holds: within two minutes")
    parser.add_argument("--only", default="",
                        help=f"comma-separated sections to run ({', '.join(SECTIONS)})")
    parser.add_argument("--no-docs", action="store_true",
                        help="do not rewrite docs/performance.md and its figure")
    parser.add_argument("--verbose", action="store_true",
                        help="also list the cases the quality benchmark got wrong")
    parser.add_argument("--against", metavar="REV",
                        help="with --only latency: this tree's panel and git revision REV's "
                             "taking turns; results in bench/results/full-against.json "
                             "(quick-against.json with --quick), the docs untouched")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or list(SECTIONS)
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.against is not None and chosen != ["latency"]:
        parser.error("--against compares latency alone: use it with --only latency")

    mode = "quick" if args.quick else "full"
    # Sections measured in this process (retrieval, quality) are pinned to one core. On a
    # machine of one core OpenBLAS runs one thread; its pool of one thread per core, made
    # at import, would spin against itself on the pinned core (a matrix-vector product's
    # p99 went from 5 ms to 60 ms). So: one thread, set before numpy is first imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from server.kb.embedders import build_embedder
    from server.kb.importer import find_files, import_files
    from server.kb.store import KnowledgeBase
    from server.paths import sample_kb_dir
    from server.settings import Settings
    from server.web.open_files import lift_soft_limit

    cpus = Cpus.split()
    lift_soft_limit()  # this process's and the servers' it starts (they inherit it)
    started = datetime.now(UTC)
    latest = RESULTS / f"{mode}.json"
    results: dict[str, Any] = {"sections": {}}
    if args.against is not None:
        latest = RESULTS / f"{mode}-against.json"  # never merged into the runs of record
    elif set(chosen) != set(SECTIONS) and latest.exists():
        results = json.loads(latest.read_text())  # a partial run updates the last results
        for kept in results["sections"].values():
            kept.setdefault("started", results.get("started", ""))
    results.update(mode=mode, started=started.isoformat(timespec="seconds"),
                   machine=describe(), cpus={"server": sorted(cpus.server),
                                             "harness": sorted(cpus.harness)})
    RESULTS.mkdir(parents=True, exist_ok=True)
    begun = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="assist-bench-") as tmp:
        work = Path(tmp)
        kb = work / "sample-kb.db"
        # Indexed with the server's embedder, so `serve` finds it up to date.
        store = KnowledgeBase(kb, build_embedder(Settings()))
        store.reindex()
        import_files(store, find_files([sample_kb_dir()]))
        store.close()
        against = None if args.against is None else (
            checkout(args.against, work / "against"), f"panel@{args.against}")
        runners = _runners(args.quick, work, kb, cpus, args.verbose, against)
        for name in SECTIONS:
            if name not in chosen:
                continue
            print(f"[bench] {name}...", file=sys.stderr, flush=True)
            results["sections"][name] = record = run_section(runners[name])
            print(table([Row.from_json(r) for r in record["rows"]]), file=sys.stderr,
                  flush=True)
    results["duration_s"] = round(time.monotonic() - begun, 1)
    if args.against is not None:
        latest.write_text(json.dumps(results, indent=1))
        print(table([Row.from_json(r) for r in results["sections"]["latency"]["rows"]]))
        print(f"\n{results['duration_s']} s; results in {latest.relative_to(ROOT)}")
        return 0
    if set(chosen) <= NOT_PERFORMANCE:
        # The answer benchmark alone: its results are bench/results/quality.json and
        # docs/quality.md; the performance results and docs stay as they were.
        return 0
    text = json.dumps(results, indent=1)
    latest.write_text(text)
    history = RESULTS / "history"
    history.mkdir(exist_ok=True)
    (history / f"{mode}-{started.strftime('%Y%m%dT%H%M%SZ')}.json").write_text(text)
    rows = [Row.from_json(r) for s in results["sections"].values() for r in s["rows"]]
    print(table(rows))
    print(f"\n{results['duration_s']} s; results in {latest.relative_to(ROOT)}")
    if mode == "full" and not args.no_docs:
        update_docs(results)
        print(f"updated {DOC.relative_to(ROOT)} and {FIGURE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
