"""Benchmark item 5 (issue 7): the panel page in Debian's Chromium, a 1,000-card
conversation while the last card streams at 100 tokens/s: frame times (p50, p95)
and the number of card elements mounted in the DOM.

The stack is dev mode's (``assist-panel dev --llm mock``, server/devmode/run.py): the panel
server with the sample knowledge base, the mock Genesys Cloud with its mock Agent
Desktop, and the mock OpenAI-compatible model, wired the same way on loopback.
It is built here rather than by ``run_dev`` because dev mode has no setting for
two things this needs: the mock model's pace (dev mode streams at the default 40
tokens/s) and the script playback speed (a scripted conversation plays for about
35 s). The model behind the panel is unpaced until the last question, so the
first N-1 cards finish at once; the last question gets the mock's ``endless``
fault at 100 tokens/s, which the panel ends only at its hard stream limit.

The page is driven as tests/browser do: Chromium opens the mock Agent Desktop,
starts the default scripted conversation and the framed panel signs in through
the mock. Once the script has played (its customer lines add a few automatic
cards), the rest of the cards are asked through the panel's own ask form
(bench/page_probe.js, injected with Playwright, submits it), then the last one;
while it streams, a requestAnimationFrame loop in the panel's frame records frame
deltas and the DOM is sampled for mounted cards.

Run: ``bench/run --only page [--quick]``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Frame, Page, expect, sync_playwright
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from bench.report import Row, Section
from bench.stats import summary
from server.app import create_app
from server.devmode.mocks.genesys import MockGenesysConfig, create_mock_genesys_app
from server.devmode.mocks.llm import DEFAULT_MODEL, MockLLMConfig, create_mock_llm_app
from server.devmode.run import DEV_CLIENT_ID, DEV_MODEL_KEY, _free_port, _server, _start
from server.kb.importer import find_files, import_files
from server.kb.store import KnowledgeBase
from server.paths import sample_kb_dir
from server.settings import Settings

ITEM = "5 page"
FULL = (1000, 8.0)  # cards, seconds of streaming measured
QUICK = (200, 3.0)
TOKENS_PER_SECOND = 100.0
LONG_FRAME_MS = 50.0
#: Script timing divisor: the default script's ~36 s play in under 2 s, each customer
#: line still answered before the next one comes.
PLAYBACK_SPEED = 20.0
#: Streams the page keeps open while filling the feed (Chromium queues beyond 6).
IN_FLIGHT = 12
PROBE = Path(__file__).with_name("page_probe.js")
WAIT_MS = 30_000

CHROMIUM = os.environ.get("ASSIST_TEST_CHROMIUM", "/usr/bin/chromium")
# The launch arguments of tests/browser/conftest.py: without them Chromium reaches for
# Google's hosts at start (and is refused), and Local Network Access gets in the way.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage",
                 "--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessForNavigations"]
#: The window of tests/browser/test_feed.py's dev-mode tests: the mock desktop and its
#: framed panel fit in it.
VIEWPORT = {"width": 1280, "height": 800}

#: What the agent asks, in turn (all answered by the sample knowledge base).
QUESTIONS = (
    "How much is the restocking fee for a phone?",
    "How long do I have to return a phone that arrived damaged?",
    "When will the customer get the refund for a returned device?",
    "How do I reset the password of an account?",
    "Why is there a late fee on the bill and can we extend the payment?",
    "What does roaming cost when travelling abroad?",
    "How do I activate an eSIM on a new phone?",
    "The customer has no signal at home, what should they try?",
    "Can the customer change plans in the middle of the billing cycle?",
    "How do I track an order that has not arrived?",
    "What does the warranty cover for repairs?",
    "How does autopay work and when is the card charged?",
)
LAST_QUESTION = "What does the international travel pass include and how much is it per day?"


@dataclass
class _Stack:
    """The running dev-mode stack: where the desktop is, and the model's switch."""

    desktop: str
    genesys: str
    panel: str
    model: _ModelSwitch
    settings: Settings


class _ModelSwitch:
    """The mock model the panel talks to (one OpenAI-compatible origin): unpaced until
    :meth:`pace`, then the ``endless`` fault at ``tokens_per_second`` for every request."""

    def __init__(self, tokens_per_second: float) -> None:
        self.fast = create_mock_llm_app(MockLLMConfig(api_key=DEV_MODEL_KEY,
                                                      tokens_per_second=0))
        self.paced = create_mock_llm_app(MockLLMConfig(
            api_key=DEV_MODEL_KEY, tokens_per_second=tokens_per_second, fault="endless"))
        self.paced_on = False

    def pace(self) -> None:
        self.paced_on = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app: Starlette = self.paced if self.paced_on and scope["type"] == "http" else self.fast
        await app(scope, receive, send)


@contextlib.contextmanager
def _dev_stack(tmp: Path, *, tokens_per_second: float, stream_limit_s: float) -> Iterator[_Stack]:
    """Dev mode's three servers in a thread of this process (see the module docstring)."""
    host = "127.0.0.1"
    panel_port, genesys_port, llm_port = (_free_port(host) for _ in range(3))
    # As dev mode: the panel on localhost, the mock on 127.0.0.1 (two origins).
    panel_origin = f"http://localhost:{panel_port}"
    genesys_origin = f"http://{host}:{genesys_port}"
    mock_config = MockGenesysConfig(public_origin=genesys_origin,
                                    panel_url=f"{panel_origin}/panel", client_id=DEV_CLIENT_ID,
                                    playback_speed=PLAYBACK_SPEED)
    model = _ModelSwitch(tokens_per_second)
    # The overrides of server.devmode.run.run_dev with --llm mock, plus the bench's own limits.
    settings = Settings.from_env(
        host=host, port=panel_port, public_url=panel_origin, kb_path=tmp / "dev.db",
        genesys_api_base=genesys_origin, genesys_login_base=genesys_origin,
        oauth_client_id=DEV_CLIENT_ID, extra_frame_ancestors=(genesys_origin,),
        session_secret=secrets.token_urlsafe(32), allowed_orgs=(mock_config.org_id,),
        generator="openai", openai_model=DEFAULT_MODEL,
        openai_base_url=f"http://{host}:{llm_port}/v1", openai_api_key=DEV_MODEL_KEY,
        rate_limit_per_minute=0, stream_limit_s=stream_limit_s,
        audit_log=str(tmp / "audit.jsonl"))
    kb = KnowledgeBase(settings.kb_path)
    try:
        imported = import_files(kb, find_files([sample_kb_dir()]))
    finally:
        kb.close()
    if imported.errors:
        raise RuntimeError("sample knowledge base failed to import: " + imported.errors[0])
    servers = [_server(create_app(settings), host, panel_port),
               _server(create_mock_genesys_app(mock_config), host, genesys_port),
               _server(model, host, llm_port)]  # type: ignore[arg-type]  # any ASGI app

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bench-page-servers", daemon=True)
    thread.start()

    async def start() -> list[asyncio.Task[None]]:
        return [await _start(server) for server in servers]

    async def stop(tasks: list[asyncio.Task[None]]) -> None:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        # What the apps left on the loop (sse-starlette's shutdown watcher): end it here,
        # not when the loop is closed.
        left = asyncio.all_tasks() - {asyncio.current_task()}
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)

    tasks: list[asyncio.Task[None]] = []
    try:
        tasks = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=60)
        yield _Stack(desktop=f"{genesys_origin}/", genesys=genesys_origin, panel=panel_origin,
                     model=model, settings=settings)
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(tasks), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def _panel_frame(page: Page) -> Frame:
    handle = page.locator("#md-panel").element_handle()
    frame = handle.content_frame() if handle is not None else None
    if frame is None:
        raise RuntimeError("the mock desktop has no panel frame")
    return frame


def _audit_outcomes(path: Path) -> dict[str, int]:
    """Outcomes of the suggestions the server finished (its audit log)."""
    if not path.exists():
        return {}
    counts: collections.Counter[str] = collections.Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            counts[f"{entry.get('trigger')}:{entry.get('outcome')}"] += 1
    return dict(sorted(counts.items()))


def _r(value: float | int | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def _rounded(stats: dict[str, float | int | None]) -> dict[str, float | int | None]:
    return {key: value if key == "n" else _r(value) for key, value in stats.items()}


def _drive(page: Page, stack: _Stack, cards: int, stream_seconds: float) -> dict[str, Any]:
    """Open the desktop, fill the feed to ``cards`` cards, measure while the last streams."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    page.goto(stack.desktop)
    page.locator("#md-start").click()
    status = page.frame_locator("#md-panel").locator(".ap-status")
    expect(status).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    frame = _panel_frame(page)
    timings["sign_in_s"] = time.perf_counter() - started

    # The script plays once the panel listens; its customer lines make automatic cards.
    expect(page.locator("#md-status")).to_have_text("Transcript ended", timeout=WAIT_MS)
    frame.wait_for_function("() => document.querySelector('.ap-feed').dataset.streaming === '0'",
                            timeout=WAIT_MS)
    from_script = int(frame.evaluate("() => assistPageBench.sample().count"))
    missing = cards - 1 - from_script
    if missing < 0:
        raise ValueError(f"the script alone made {from_script} cards; ask for more than that")
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(missing)]
    fill_started = time.perf_counter()
    filled = int(frame.evaluate("(o) => assistPageBench.ask(o)",
                                {"questions": questions, "inFlight": IN_FLIGHT}))
    timings["fill_s"] = time.perf_counter() - fill_started

    # The last question: the model now streams it endlessly at the set pace.
    stack.model.pace()
    frame.evaluate("(q) => assistPageBench.submit(q)", LAST_QUESTION)
    frame.wait_for_function("() => { const t = assistPageBench.lastText(); "
                            "return t.state === 'generating' && t.chars > 0; }",
                            timeout=WAIT_MS)
    measured: dict[str, Any] = frame.evaluate(
        "(o) => assistPageBench.measure(o)",
        {"durationMs": stream_seconds * 1000, "sampleMs": 250})
    timings["total_s"] = time.perf_counter() - started
    panel_size = frame.evaluate("() => [innerWidth, innerHeight]")
    return {"from_script": from_script, "asked": missing + 1, "filled": filled,
            "measured": measured, "timings": timings, "panel_size": panel_size}


def measure(cards: int, stream_seconds: float, workdir: Path, *,
            tokens_per_second: float = TOKENS_PER_SECOND) -> Section:
    """Frame times and mounted cards of a ``cards``-card conversation while its last
    card streams at ``tokens_per_second`` for ``stream_seconds`` (see the docstring)."""
    workdir.mkdir(parents=True, exist_ok=True)
    page_errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="page-", dir=workdir) as tmp_name:
        tmp = Path(tmp_name)
        # Long enough that the panel does not end the last stream while it is measured.
        stream_limit_s = stream_seconds + 30
        with _dev_stack(tmp, tokens_per_second=tokens_per_second,
                        stream_limit_s=stream_limit_s) as stack, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                version = browser.version
                context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
                context.add_init_script(path=PROBE)
                page = context.new_page()
                page.on("pageerror", lambda error: page_errors.append(str(error)))
                run = _drive(page, stack, cards, stream_seconds)
                context.close()
            finally:
                browser.close()
            flush_ms = stack.settings.flush_interval_ms
        outcomes = _audit_outcomes(tmp / "audit.jsonl")
    return _section(cards, stream_seconds, tokens_per_second, run, version=version,
                    outcomes=outcomes, page_errors=page_errors, flush_ms=flush_ms)


def _section(cards: int, stream_seconds: float, tokens_per_second: float, run: dict[str, Any],
             *, version: str, outcomes: dict[str, int], page_errors: list[str],
             flush_ms: int) -> Section:
    measured = run["measured"]
    deltas = [float(d) for d in measured["deltas"]]
    frames = summary(deltas, (50, 95, 99))
    long_frames = sum(1 for d in deltas if d > LONG_FRAME_MS)
    samples = measured["samples"]
    mounted = [int(s["mounted"]) for s in samples]
    total = int(samples[-1]["count"])
    before, after = measured["before"], measured["after"]
    seconds = (float(after["t"]) - float(before["t"])) / 1000
    tokens = int(after["tokens"]) - int(before["tokens"])
    chars = int(after["chars"]) - int(before["chars"])
    rate = tokens / seconds if seconds > 0 else math.nan
    long_tasks = [float(d) for d in measured["longTasks"]]
    work = [float(w) for w in measured["work"]]
    window_s = sum(deltas) / 1000
    p50, p95 = frames["p50"], frames["p95"]
    rows = [
        Row(item=ITEM, case=f"frame time, {cards:,} cards, last streaming "
                            f"{tokens_per_second:g} tok/s",
            unit="ms", p50=_r(p50), p_tail=_r(p95), tail="p95",
            note=f"{len(deltas)} frames in {window_s:.1f} s, max {_r(frames['max'])} ms, "
                 f"{long_frames} > {LONG_FRAME_MS:g} ms; last card got {rate:.0f} tok/s"),
        Row(item=ITEM, case=f"mounted cards of {cards:,}", unit="cards", value=max(mounted),
            note=f"most card elements in the DOM over {len(mounted)} samples; "
                 f"the feed holds {total:,}"),
    ]
    data: dict[str, Any] = {
        "cards_requested": cards,
        "cards_total": total,
        "cards_from_script": run["from_script"],
        "cards_asked": run["asked"],
        "cards_before_last": run["filled"],
        "aria_setsize": samples[-1]["setsize"],
        "stream_seconds": stream_seconds,
        "tokens_per_second_target": tokens_per_second,
        "frame_ms": _rounded(frames),
        "frame_deltas_ms": [round(d, 2) for d in deltas],
        "long_frames": long_frames,
        "frame_work_ms": _rounded(summary(work, (50, 95, 99))),
        "long_frame_ms": LONG_FRAME_MS,
        "fps": _r(len(deltas) / window_s if window_s else None),
        "mounted_cards": {"max": max(mounted), "min": min(mounted), "samples": mounted},
        "dom_elements_max": max(int(s["nodes"]) for s in samples),
        "streaming_card": {
            "tokens_before": before["tokens"], "tokens_after": after["tokens"],
            "chars_before": before["chars"], "chars_after": after["chars"],
            "seconds": _r(seconds, 3), "tokens_per_second": _r(rate),
            "chars_per_second": _r(chars / seconds if seconds > 0 else None),
            "state_after": after["state"],
        },
        "long_tasks": {"count": len(long_tasks), "total_ms": _r(sum(long_tasks)),
                       "max_ms": _r(max(long_tasks, default=None))},
        "audit_outcomes": outcomes,
        "page_errors": page_errors,
        "timings_s": {key: _r(value) for key, value in run["timings"].items()},
        "chromium": version,
        "chromium_path": CHROMIUM,
        "viewport": VIEWPORT,
        "panel_frame_size": run["panel_size"],
        "server_flush_interval_ms": flush_ms,
        "playback_speed": PLAYBACK_SPEED,
    }
    return Section(name="page", rows=rows, data=data)


def run(quick: bool, workdir: Path) -> Section:
    """Benchmark item 5: 1,000 cards and 8 s of streaming (quick: 200 cards, 3 s)."""
    cards, seconds = QUICK if quick else FULL
    return measure(cards, seconds, workdir)
