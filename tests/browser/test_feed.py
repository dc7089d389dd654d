"""The suggestion feed in Chromium: virtualization, pinning and anchoring, stall
handling, safe formatting, card actions, keyboard and the live region.

Two setups: the real dev mode (the panel framed by the mock Agent Desktop, real
streams) and a test-only harness page (tests/browser/harness/feed.html) that runs
the feed's modules without sign-in, served with the product's static files and a
few scripted event streams from one loopback origin. No test sleeps or measures
time: each waits on the page's state with Playwright's waiting assertions.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Dialog,
    Frame,
    FrameLocator,
    Page,
    Request,
    Route,
    expect,
)
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response, StreamingResponse
from starlette.routing import Mount
from starlette.routing import Route as StarletteRoute
from starlette.staticfiles import StaticFiles

from tests.dev_process import DevMode, run_dev_mode
from tests.servers import serve

ROOT = Path(__file__).resolve().parents[2]
HARNESS_DIR = Path(__file__).resolve().parent / "harness"
WAIT = 30_000
#: The bound on mounted cards the tests hold the feed to, however many there are.
MAX_MOUNTED = 20

SOURCES: list[dict[str, Any]] = [
    {"id": "kb-returns", "title": "Returning a damaged phone",
     "url": "https://help.example/returns", "snippet": "Return it within 30 days.", "score": 3.1},
    {"id": "kb-fees", "title": "Restocking fees", "url": "https://help.example/fees",
     "snippet": "No fee for faulty devices.", "score": 2.2},
]


# The harness --------------------------------------------------------------------


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\r\nid: 1\r\ndata: {json.dumps(data)}\r\n\r\n".encode()


def _suggestion(query: str) -> bytes:
    return _sse("suggestion", {"id": "sg-1", "trigger": "manual", "query": query,
                               "sources": SOURCES})


async def _read_query(request: StarletteRequest) -> str:
    body = await request.json()
    return str(body.get("query", ""))


async def stream_then_silence(request: StarletteRequest) -> StreamingResponse:
    """A suggestion and some text, then not one byte more (a dead connection)."""
    query = await _read_query(request)

    async def body() -> AsyncIterator[bytes]:
        yield _suggestion(query)
        yield _sse("delta", {"id": "sg-1", "text": "The first part of an answer"})
        for _ in range(600):  # until the page gives up on it (or a minute has passed)
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.1)

    return StreamingResponse(body(), media_type="text/event-stream")


class Driven:
    """A stream the test writes: after the suggestion, each body POSTed to
    /stream/driven/send goes out as it is, until one carrying a "done" event. One at a
    time (the queue lives on the harness server's event loop)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes] | None = None

    def queue(self) -> asyncio.Queue[bytes]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        return self._queue


DRIVEN = Driven()


async def stream_driven(request: StarletteRequest) -> StreamingResponse:
    query = await _read_query(request)
    queue = DRIVEN.queue()

    async def body() -> AsyncIterator[bytes]:
        yield _suggestion(query)
        while True:
            chunk = await queue.get()
            yield chunk
            if b"event: done" in chunk:
                return

    return StreamingResponse(body(), media_type="text/event-stream")


async def driven_send(request: StarletteRequest) -> Response:
    DRIVEN.queue().put_nowait(await request.body())
    return Response(status_code=204)


async def busy(request: StarletteRequest) -> Response:
    """The request refused before any stream: a JSON error, as the server answers one."""
    return Response(json.dumps({"error": "busy", "message": "The panel is busy: ask again"}),
                    status_code=503, media_type="application/json")


async def stream_cut(request: StarletteRequest) -> StreamingResponse:
    """The connection closes before "done"."""
    query = await _read_query(request)

    async def body() -> AsyncIterator[bytes]:
        yield _suggestion(query)
        yield _sse("delta", {"id": "sg-1", "text": "Half an"})

    return StreamingResponse(body(), media_type="text/event-stream")


async def no_content(request: StarletteRequest) -> Response:
    return Response(status_code=204)


@pytest.fixture(scope="module")
def harness_origin() -> Iterator[str]:
    app = Starlette(routes=[
        Mount("/static", StaticFiles(directory=ROOT / "frontend" / "static")),
        Mount("/harness", StaticFiles(directory=HARNESS_DIR)),
        StarletteRoute("/stream/stall", stream_then_silence, methods=["POST"]),
        StarletteRoute("/stream/driven", stream_driven, methods=["POST"]),
        StarletteRoute("/stream/driven/send", driven_send, methods=["POST"]),
        StarletteRoute("/stream/busy", busy, methods=["POST"]),
        StarletteRoute("/stream/cut", stream_cut, methods=["POST"]),
        StarletteRoute("/api/feedback", no_content, methods=["POST"]),
    ])
    with serve(app) as origin:
        yield origin


def _context(browser: Browser, width: int, height: int) -> BrowserContext:
    return browser.new_context(viewport={"width": width, "height": height},
                               permissions=["clipboard-read", "clipboard-write"])


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """For the harness: a panel-sized window."""
    context = _context(browser, 420, 640)
    yield context
    context.close()


@pytest.fixture
def desktop(browser: Browser) -> Iterator[BrowserContext]:
    """For dev mode: a window the mock Agent Desktop (and its framed panel) fits in."""
    context = _context(browser, 1280, 800)
    yield context
    context.close()


class Harness:
    """The harness page, with the dialogs it opened (there must never be any)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._on_dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def add(self, query: str, events: Sequence[tuple[str, dict[str, Any]]] = (),
            trigger: str = "manual") -> str:
        key: str = self.page.evaluate("(init) => harness.add(init)",
                                      {"trigger": trigger, "query": query})
        if events:
            self.send(key, events)
        return key

    def send(self, key: str, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
        self.page.evaluate("([key, events]) => harness.send(key, events)",
                           [key, [list(e) for e in events]])

    def card(self, key: str) -> Any:
        return self.page.locator(f".ap-card[data-key='{key}']")

    def frames(self, count: int = 3) -> None:
        """Wait for the page to render `count` more frames (an event, not a sleep)."""
        self.page.evaluate("(n) => new Promise((done) => { const step = (left) => left ? "
                           "requestAnimationFrame(() => step(left - 1)) : done(); step(n); })",
                           count)

    def settled(self) -> None:
        expect(self.page.locator(".ap-feed")).to_have_attribute("data-streaming", "0")
        self.frames()


LIST_MARKER = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+", re.MULTILINE)


def as_shown(plain: str) -> str:
    """Copied or inserted text as a card shows it (its ``inner_text``), for answers from
    the real server whose raw text the test does not see: the list markers Copy keeps are
    list items on the card."""
    return LIST_MARKER.sub("", plain)


def without_citations(shown: str) -> str:
    return re.sub(r"\s*\[\d+\]", "", shown).strip()


def answered(query: str, text: str, sources: list[dict[str, Any]] = SOURCES
             ) -> list[tuple[str, dict[str, Any]]]:
    return [("suggestion", {"id": f"sg-{abs(hash(query))}", "trigger": "manual",
                            "query": query, "sources": sources}),
            ("delta", {"id": "x", "text": text}),
            ("done", {"id": "x", "complete": True, "outcome": "completed", "stop_reason": "stop",
                      "metrics": {}})]


def long_answer(n: int) -> str:
    lines = "\n".join(f"- step {i} of answer {n}" for i in range(1, 2 + n % 4))
    return f"Answer **{n}** for you [1].\n\n{lines}\n\nSee [the guide](https://help.example/g{n})."


@pytest.fixture
def harness(context: BrowserContext, harness_origin: str) -> Iterator[Harness]:
    yield open_harness(context, harness_origin)


def open_harness(context: BrowserContext, origin: str, clock: bool = False,
                 **params: str) -> Harness:
    """The harness page; with ``clock``, on Playwright's clock (which the test moves)."""
    page = context.new_page()
    if clock:
        page.clock.install()
    h = Harness(page)
    query = "&".join(f"{k}={v}" for k, v in params.items())
    page.goto(f"{origin}/harness/feed.html?{query}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return h


FIRST_VISIBLE = """() => {
  const feed = document.querySelector('.ap-feed');
  const top = feed.getBoundingClientRect().top;
  for (const card of feed.querySelectorAll('.ap-card')) {
    const box = card.getBoundingClientRect();
    if (box.bottom > top + 1) return {key: card.dataset.key, offset: box.top - top};
  }
  return null;
}"""
AT_BOTTOM = """() => { const f = document.querySelector('.ap-feed');
  return f.scrollHeight - f.scrollTop - f.clientHeight <= 4; }"""
NEWEST_IN_VIEW = """() => { const f = document.querySelector('.ap-feed');
  const cards = f.querySelectorAll('.ap-card'); const last = cards[cards.length - 1];
  if (!last || last.getAttribute('aria-posinset') !== f.dataset.count) return false;
  const a = f.getBoundingClientRect(), b = last.getBoundingClientRect();
  return b.bottom <= a.bottom + 1 && b.bottom > a.top; }"""


# Virtualization, pinning, anchoring (harness) ----------------------------------


def test_pinned_feed_follows_the_newest_card_as_it_streams(harness: Harness) -> None:
    for n in range(12):
        harness.add(f"question {n}", answered(f"question {n}", long_answer(n)))
    harness.settled()
    assert harness.page.evaluate(AT_BOTTOM)
    key = harness.add("streaming question", answered("streaming question", "")[:1])
    for part in range(12):  # the card grows while it streams: the view stays on it
        harness.send(key, [("delta", {"id": "x", "text": f"Part {part} of a long answer.\n"})])
        harness.frames(1)
        harness.page.wait_for_function(AT_BOTTOM)
    harness.send(key, answered("x", "")[2:])
    harness.settled()
    assert harness.page.evaluate(AT_BOTTOM)
    assert harness.page.evaluate(NEWEST_IN_VIEW)
    expect(harness.page.locator(".ap-feed__new")).to_be_hidden()


def test_scrolled_up_view_stays_put_and_the_marker_jumps_to_the_newest(
        harness: Harness) -> None:
    page = harness.page
    # Thirty answers, still streaming.
    keys = [harness.add(f"question {n}", answered(f"question {n}", long_answer(n))[:2])
            for n in range(30)]
    harness.frames()
    # The agent scrolls up, to about the middle of the feed.
    page.evaluate("() => { const f = document.querySelector('.ap-feed');"
                  " f.scrollTop = f.scrollHeight / 2; }")
    harness.frames()
    before = page.evaluate(FIRST_VISIBLE)
    assert before is not None
    index = keys.index(before["key"])

    # A card above the view grows (mounted, just above), another far above grows while
    # unmounted, and new cards arrive below: the first visible card does not move.
    harness.send(keys[index - 1], [("delta", {"id": "x", "text": "late text\n" * 8})])
    harness.send(keys[0], [("delta", {"id": "x", "text": "more text\n" * 20})])
    harness.add("newest question", answered("newest question", long_answer(99)))
    harness.frames()
    after = page.evaluate(FIRST_VISIBLE)
    assert after["key"] == before["key"] and abs(after["offset"] - before["offset"]) < 1, \
        (before, after)
    marker = page.locator(".ap-feed__new")
    expect(marker).to_be_visible()
    assert page.locator(".ap-card").count() <= MAX_MOUNTED

    # Scrolling back to the top mounts the oldest card, with what it had grown by.
    page.evaluate("() => { document.querySelector('.ap-feed').scrollTop = 0; }")
    expect(harness.card(keys[0])).to_contain_text("more text")
    assert page.locator(".ap-card").count() <= MAX_MOUNTED

    marker.click()
    expect(marker).to_be_hidden()
    page.wait_for_function(AT_BOTTOM)
    assert page.evaluate(NEWEST_IN_VIEW)
    expect(page.locator(".ap-card[aria-posinset='31']")).to_be_focused()


def test_an_unmounted_streaming_card_re_renders_exactly(harness: Harness) -> None:
    page = harness.page
    text = ("Intro with **bold** and a [link](https://help.example/a) [2].\n\n- one\n"
            "- two **still open")
    rest = " bold**\n\n1. first\n2. second [1]\n\nEnd [x](javascript:alert(1))."
    streaming = harness.add("kept streaming", answered("kept streaming", "")[:1])
    for i in range(0, len(text), 3):  # in small chunks, as a stream delivers it
        harness.send(streaming, [("delta", {"id": "x", "text": text[i:i + 3]})])
    for n in range(25):  # pushes it out of the DOM
        harness.add(f"q{n}", answered(f"q{n}", long_answer(n)))
    harness.frames()
    expect(harness.card(streaming)).to_have_count(0)
    harness.send(streaming, [("delta", {"id": "x", "text": rest})])  # while unmounted
    control = harness.add("control", answered("control", "")[:1])
    harness.send(control, [("delta", {"id": "x", "text": text + rest})])
    page.evaluate("() => { document.querySelector('.ap-feed').scrollTop = 0; }")
    expect(harness.card(streaming)).to_have_attribute("data-state", "generating")
    html = "(el) => el.querySelector('.ap-card__answer').innerHTML"
    page.evaluate("() => { const f = document.querySelector('.ap-feed');"
                  " f.scrollTop = f.scrollHeight; }")
    expect(harness.card(control)).to_be_attached()
    control_html = harness.card(control).evaluate(html)
    page.evaluate("() => { document.querySelector('.ap-feed').scrollTop = 0; }")
    expect(harness.card(streaming)).to_be_attached()
    assert harness.card(streaming).evaluate(html) == control_html
    assert "<strong>bold</strong>" in control_html and "<ol" in control_html


def test_a_customers_yes_shows_the_question_it_answers(harness: Harness) -> None:
    # A "yes" is searched by the agent's question (server/pipeline/turns.py), and the
    # suggestion's query says so: the card shows it under the customer's words.
    asked = f"Are you asking about getting it unlocked? {XSS}"
    yes = harness.add("yes", [("suggestion", {"id": "s1", "trigger": "utterance",
                                              "query": asked, "sources": SOURCES}),
                              *answered("yes", "Unlock after 60 days [1].")[1:]],
                      trigger="utterance")
    own = harness.add("My  phone won't CHARGE!", [
        ("suggestion", {"id": "s2", "trigger": "utterance", "query": "My phone won't charge!",
                        "sources": SOURCES}),
        *answered("x", "Try another cable [1].")[1:]], trigger="utterance")
    harness.settled()
    about = harness.card(yes).locator(".ap-card__about")
    expect(about).to_be_visible()
    expect(about).to_have_text(f"About: {asked}")  # text, never markup
    assert harness.card(yes).locator("img, script").count() == 0
    expect(harness.card(own).locator(".ap-card__about")).to_be_hidden()


# Safety (harness) ---------------------------------------------------------------

XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def test_hostile_text_from_model_kb_and_transcript_stays_inert(harness: Harness) -> None:
    page = harness.page
    sources = [
        {"id": "a", "title": XSS, "url": "javascript:alert(3)", "snippet": XSS},
        {"id": "b", "title": f"Fees {XSS}", "url": "https://help.example/fees", "snippet": XSS},
        {"id": "c", "title": "data", "url": "data:text/html,<script>alert(4)</script>"},
    ]
    answer = (f"Hello {XSS} **bold {XSS}** [1] [2] [3]\n\n"
              "- [click](javascript:alert(5)) and [ok](https://help.example/ok)\n"
              "- <svg onload=alert(6)> [x](JaVaScRiPt:alert(7)) [y](//evil.example/)\n\n"
              "<iframe src=javascript:alert(8)></iframe>")
    chunked = harness.add(XSS, answered(XSS, "", sources)[:1], trigger="utterance")
    for i in range(0, len(answer), 5):
        harness.send(chunked, [("delta", {"id": "x", "text": answer[i:i + 5]})])
    harness.send(chunked, answered("", "")[2:])
    lost = harness.add(XSS, answered(XSS, answer, sources)[:2])
    page.evaluate("(key) => harness.lost(key, 'stalled')", lost)  # fallback: sources[0]
    server_fallback = harness.add("q", answered("q", "", sources)[:1])
    harness.send(server_fallback, [("fallback", {"id": "x", "reason": "stalled", "article": {
        "id": "a", "title": XSS, "url": "javascript:alert(9)", "excerpt": XSS}}),
        ("done", {"id": "x", "complete": True, "outcome": "fallback", "stop_reason": "stalled"})])
    harness.settled()

    feed = page.locator(".ap-feed")
    expect(feed.locator(".ap-card")).to_have_count(3)
    assert feed.locator("img, script, svg, iframe, object, embed").count() == 0
    hrefs = feed.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs and all(h.startswith("https://help.example/") for h in hrefs), hrefs
    card = harness.card(chunked)
    expect(card.locator(".ap-card__query")).to_have_text(XSS)
    expect(card.locator(".ap-card__answer")).to_contain_text("<script>alert(2)</script>")
    expect(card.locator(".ap-card__answer")).to_contain_text("click and ok")
    expect(card.locator(".ap-card__answer strong")).to_contain_text("bold <img")
    # [2] cites a real source; [1] (javascript:) and [3] (data:) are text, not links.
    expect(card.locator(".ap-cite")).to_have_count(1)
    expect(card.locator(".ap-card__sources li")).to_have_count(3)
    expect(card.locator(".ap-card__sources a")).to_have_count(1)
    expect(harness.card(lost).locator(".ap-card__fallback")).to_contain_text(XSS)
    expect(harness.card(server_fallback).locator(".ap-card__fallback a")).to_have_count(0)
    assert harness.dialogs == [] and harness.errors == []


# Stalls -------------------------------------------------------------------------


def ask(page: Page | Frame, query: str) -> None:
    page.locator(".ap-ask__input").fill(query)
    page.locator(".ap-ask__button").click()


def test_page_watchdog_shows_the_top_source_when_the_connection_goes_silent(
        context: BrowserContext, harness_origin: str) -> None:
    h = open_harness(context, harness_origin, stallMs="500", stream="/stream/stall")
    ask(h.page, "why is my phone broken")
    card = h.page.locator(".ap-card").first
    expect(card).to_have_attribute("data-state", "fallback", timeout=WAIT)
    expect(card).to_have_attribute("data-partial", "true")
    expect(card.locator(".ap-card__incomplete")).to_be_visible()
    expect(card.locator(".ap-card__answer")).to_have_text("The first part of an answer")
    article = card.locator(".ap-card__fallback a")
    expect(article).to_have_text(SOURCES[0]["title"])
    expect(article).to_have_attribute("href", SOURCES[0]["url"])
    expect(card.locator(".ap-card__fallback")).to_contain_text(SOURCES[0]["snippet"])
    expect(h.page.locator(".ap-announcer")).to_contain_text(SOURCES[0]["title"])


def test_keep_alive_comments_feed_the_page_watchdog(
        context: BrowserContext, harness_origin: str) -> None:
    """Only keep-alive comments come, for longer than the page's stall time: the card
    keeps waiting. The test sends each ping once the page's clock has moved on by most
    of the stall time, and waits for the page to have read it: no real time counts."""
    h = open_harness(context, harness_origin, clock=True, stream="/stream/driven",
                     countChunks="1")
    page = h.page
    ask(page, "are you there")
    card = page.locator(".ap-card").first
    expect(card).to_have_attribute("data-suggestion-id", "sg-1", timeout=WAIT)
    stall_ms = page.evaluate("harness.config.stallMs")
    read = page.locator("body")
    for _ in range(3):  # 1.8 stall times in all: the watchdog would have fired without them
        page.clock.fast_forward(int(stall_ms * 0.6))
        chunks = int(read.get_attribute("data-chunks") or "0")
        assert httpx.post(f"{harness_origin}/stream/driven/send",
                          content=b": ping\r\n\r\n").status_code == 204
        expect(read).to_have_attribute("data-chunks", str(chunks + 1), timeout=WAIT)
    expect(card).to_have_attribute("data-state", "generating")
    httpx.post(f"{harness_origin}/stream/driven/send", content=b"".join([
        _sse("delta", {"id": "sg-1", "text": "Kept alive by pings."}),
        _sse("done", {"id": "sg-1", "complete": True, "outcome": "completed",
                      "stop_reason": "stop", "metrics": {}})]))
    expect(card).to_have_attribute("data-state", "done", timeout=WAIT)
    expect(card.locator(".ap-card__answer")).to_have_text("Kept alive by pings.")
    expect(card.locator(".ap-card__fallback")).to_be_hidden()


def test_a_failed_request_says_why_on_its_card(
        context: BrowserContext, harness_origin: str) -> None:
    h = open_harness(context, harness_origin, stream="/stream/busy")
    ask(h.page, "is anyone there")
    card = h.page.locator(".ap-card").first
    expect(card).to_have_attribute("data-state", "error", timeout=WAIT)
    expect(card.locator(".ap-card__status")).to_have_text("Could not get a suggestion")
    reason = card.locator(".ap-card__error")
    expect(reason).to_be_visible()
    expect(reason).to_have_text("The panel is busy: ask again")


def test_a_stream_cut_before_done_falls_back_too(
        context: BrowserContext, harness_origin: str) -> None:
    h = open_harness(context, harness_origin, stream="/stream/cut")
    ask(h.page, "cut me off")
    card = h.page.locator(".ap-card").first
    expect(card).to_have_attribute("data-state", "fallback", timeout=WAIT)
    expect(card).to_have_attribute("data-partial", "true")
    expect(card.locator(".ap-card__fallback a")).to_have_text(SOURCES[0]["title"])


@pytest.fixture(scope="module")
def stalling_dev_mode() -> Iterator[DevMode]:
    """Dev mode with the mock model going silent after a few tokens, every time."""
    with run_dev_mode("--llm", "mock", "--llm-fault", "stall_mid", "--llm-port", "0") as dev:
        yield dev


def panel_frame(page: Page) -> Frame:
    handle = page.locator("#md-panel").element_handle()
    assert handle is not None
    frame = handle.content_frame()
    assert frame is not None
    return frame


def open_panel(page: Page, dev: DevMode) -> Frame:
    page.goto(dev.desktop)
    page.locator("#md-start").click()
    panel = page.frame_locator("#md-panel")
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=WAIT)
    return panel_frame(page)


def test_a_model_that_stalls_leaves_the_partial_answer_and_the_article(
        desktop: BrowserContext, stalling_dev_mode: DevMode) -> None:
    page = desktop.new_page()
    panel = open_panel(page, stalling_dev_mode)
    ask(panel, "How much is the restocking fee for a phone?")
    card = panel.locator(".ap-card", has_text="You asked").first
    expect(card).to_have_attribute("data-state", "fallback", timeout=WAIT)
    expect(card).to_have_attribute("data-partial", "true")
    expect(card.locator(".ap-card__incomplete")).to_be_visible()
    expect(card.locator(".ap-card__answer")).not_to_be_empty()
    link = card.locator(".ap-card__fallback a")
    expect(link).to_be_visible()
    assert (link.get_attribute("href") or "").startswith("https://help.brightwave.example/")


# Dev mode: many questions, copy and feedback -----------------------------------


def test_sixty_questions_keep_the_dom_bounded_and_the_oldest_come_back(
        desktop: BrowserContext, dev_mode: DevMode) -> None:
    page = desktop.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    panel = open_panel(page, dev_mode)
    for n in range(1, 61):
        ask(panel, f"Q{n:02d} how much is the restocking fee for a phone")
    feed = panel.locator(".ap-feed")
    panel.wait_for_function("document.querySelector('.ap-feed').dataset.count >= 60",
                            timeout=WAIT)
    expect(feed).to_have_attribute("data-streaming", "0", timeout=60_000)
    assert 1 <= panel.locator(".ap-card").count() <= MAX_MOUNTED
    expect(panel.locator(".ap-card", has_text="Q60 ")).to_have_attribute("data-state", "done")

    panel.evaluate("() => { document.querySelector('.ap-feed').scrollTop = 0; }")
    first = panel.locator(".ap-card", has_text="Q01 ")
    expect(first).to_have_attribute("data-state", "done")
    expect(first.locator(".ap-card__query")).to_have_text(
        "Q01 how much is the restocking fee for a phone")
    expect(first.locator(".ap-card__answer")).to_contain_text("restocking")
    assert panel.locator(".ap-card").count() <= MAX_MOUNTED
    total = panel.locator(".ap-card").first.get_attribute("aria-setsize")
    assert total is not None and int(total) >= 60
    assert errors == []


def test_copy_and_thumbs_send_the_answer_and_the_feedback(
        desktop: BrowserContext, dev_mode: DevMode) -> None:
    page = desktop.new_page()
    panel = open_panel(page, dev_mode)
    feedback: list[Request] = []

    def on_feedback(route: Route) -> None:
        feedback.append(route.request)
        route.fulfill(status=204)

    page.route("**/api/feedback", on_feedback)
    ask(panel, "How much is the restocking fee for a phone?")
    card = panel.locator(".ap-card", has_text="You asked").first
    expect(card).to_have_attribute("data-state", "done", timeout=WAIT)
    expect(card.locator("[data-action='insert']")).to_be_hidden()  # no Client App SDK here

    card.locator("[data-action='copy']").click()
    expect(card.locator("[data-action='copy']")).to_have_text("Copied")
    answer = card.locator(".ap-card__answer").inner_text()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert as_shown(copied) == without_citations(answer), copied

    with page.expect_request("**/api/feedback"):
        card.locator("[data-action='rate-up']").click()
    expect(card.locator("[data-action='rate-up']")).to_have_attribute("aria-pressed", "true")
    assert len(feedback) == 1
    body = json.loads(feedback[0].post_data or "{}")
    assert body == {"suggestionId": card.get_attribute("data-suggestion-id"),
                    "rating": "up", "copied": True}
    assert feedback[0].headers["authorization"].startswith("Bearer ")
    assert len(feedback[0].headers["authorization"]) > len("Bearer ") + 10


def test_insert_puts_the_plain_answer_into_the_reply(
        context: BrowserContext, harness_origin: str) -> None:
    h = open_harness(context, harness_origin, insert="1")
    feedback: list[dict[str, Any]] = []

    def on_feedback(route: Route) -> None:
        feedback.append(json.loads(route.request.post_data or "{}"))
        route.fulfill(status=204)

    h.page.route("**/api/feedback", on_feedback)
    key = h.add("fee", answered("fee", "No fee for a **faulty** phone [2].\n\n- Keep the box\n"
                                       "- See [returns](https://help.example/returns)"))
    card = h.card(key)
    card.locator("[data-action='insert']").click()
    expect(card.locator("[data-action='insert']")).to_have_text("Inserted")
    plain = "No fee for a faulty phone.\n\n- Keep the box\n- See returns (https://help.example/returns)"
    assert h.page.evaluate("harness.inserted") == [plain]
    card.locator("[data-action='copy']").click()
    expect(card.locator("[data-action='copy']")).to_have_text("Copied")
    assert h.page.evaluate("navigator.clipboard.readText()") == plain
    with h.page.expect_request("**/api/feedback"):
        card.locator("[data-action='rate-down']").click()
    assert feedback == [{"suggestionId": h.page.evaluate(f"harness.state('{key}').suggestionId"),
                         "rating": "down", "copied": True, "inserted": True}]


def test_feedback_the_server_refused_is_not_thanked_and_can_be_sent_again(
        context: BrowserContext, harness_origin: str) -> None:
    """Regression: the card said thanks for feedback that never reached the server."""
    h = open_harness(context, harness_origin)
    answers = [503, 204]

    def on_feedback(route: Route) -> None:
        route.fulfill(status=answers.pop(0))

    h.page.route("**/api/feedback", on_feedback)
    key = h.add("fee", answered("fee", "No fee for a faulty phone [2]."))
    card = h.card(key)
    up = card.locator("[data-action='rate-up']")
    with h.page.expect_console_message(lambda m: "feedback not sent" in m.text):
        up.click()
    expect(up).to_have_attribute("aria-pressed", "false")
    expect(card.locator(".ap-card__thanks")).to_be_hidden()
    with h.page.expect_response("**/api/feedback"):
        up.click()
    expect(up).to_have_attribute("aria-pressed", "true")
    assert answers == []


# Keyboard and live region (harness) ---------------------------------------------


def test_arrow_keys_home_and_end_move_between_cards_through_the_virtual_list(
        harness: Harness) -> None:
    page = harness.page
    for n in range(30):
        harness.add(f"question {n}", answered(f"question {n}", long_answer(n)))
    harness.settled()
    focused = "() => document.activeElement.getAttribute('aria-posinset')"
    page.locator(".ap-card[aria-posinset='30']").focus()
    page.keyboard.press("ArrowUp")
    assert page.evaluate(focused) == "29"
    page.keyboard.press("ArrowDown")
    assert page.evaluate(focused) == "30"
    page.keyboard.press("Home")  # far away: mounted, scrolled to and focused
    assert page.evaluate(focused) == "1"
    expect(page.locator(".ap-card[aria-posinset='1']")).to_be_in_viewport()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert page.evaluate(focused) == "3"
    assert page.locator(".ap-card").count() <= MAX_MOUNTED

    # Scrolled away with the mouse, the focused card stays in the DOM and focused.
    page.evaluate("() => { const f = document.querySelector('.ap-feed');"
                  " f.scrollTop = f.scrollHeight; }")
    harness.frames()
    assert page.evaluate(focused) == "3"
    assert page.locator(".ap-card").count() <= MAX_MOUNTED + 1
    page.keyboard.press("End")
    assert page.evaluate(focused) == "30"
    # Tab goes from the card into it: its links, then its buttons.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.action") == "copy":
            break
    else:
        pytest.fail("Tab never reached the card's Copy button")
    assert page.evaluate("document.activeElement.closest('.ap-card')"
                         ".getAttribute('aria-posinset')") == "30"


def test_live_region_announces_each_suggestion_once_and_fallbacks(harness: Harness) -> None:
    page = harness.page
    announcer = page.locator(".ap-announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")
    page.evaluate("""() => {
      window.heard = [];
      new MutationObserver((records) => {
        for (const r of records) for (const n of r.addedNodes) window.heard.push(n.textContent);
      }).observe(document.querySelector('.ap-announcer'), {childList: true, subtree: true});
    }""")
    for n in range(4):
        key = harness.add(f"question {n}", answered(f"question {n}", "")[:1])
        for part in range(10):
            harness.send(key, [("delta", {"id": "x", "text": f"token{part} "})])
        harness.send(key, answered("", "")[1:])
        harness.send(key, answered(f"question {n}", "")[:1])  # a repeated event: no repeat
    stalled = harness.add("stalled one", answered("stalled one", "some")[:2])
    page.evaluate("(key) => harness.lost(key, 'stalled')", stalled)
    harness.settled()
    heard = page.evaluate("window.heard")
    assert heard == [*(f"New suggestion: question {n}" for n in range(4)),
                     "New suggestion: stalled one",
                     f"Suggested article: {SOURCES[0]['title']}"]
    cards = page.locator(".ap-card")
    expect(cards.first).to_have_attribute("tabindex", "0")
    assert cards.first.evaluate("el => el.tagName") == "ARTICLE"
    label_id = cards.first.get_attribute("aria-labelledby")
    expect(page.locator(f"#{label_id}")).to_contain_text("question 0")


# Insert through the Client App SDK, inside a Genesys desktop stand-in -----------

HOST = "https://apps.mypurecloud.com"
HOST_PAGE = """<!doctype html><html><body>
<ol id="log"></ol>
<iframe id="panel" src="%(src)s" width="400" height="700"
  sandbox="allow-forms allow-modals allow-popups allow-same-origin allow-scripts"></iframe>
<script>
  window.addEventListener("message", (event) => {
    if (event.origin !== %(origin)s || !event.data || !event.data.action) return;
    const item = document.createElement("li");
    item.dataset.action = event.data.action;
    item.textContent = JSON.stringify(event.data);
    document.getElementById("log").append(item);
  });
</script></body></html>"""


def _framed_by_genesys(desktop: BrowserContext, dev: DevMode, script: str) -> tuple[Page,
                                                                                  FrameLocator]:
    created = httpx.post(f"{dev.genesys}/mock/conversations", json={"script": script})
    assert created.status_code == 201
    conversation = created.json()["conversationId"]
    src = (f"{dev.panel}/panel?conversationId={conversation}&gcHostOrigin={HOST}"
           "&gcTargetEnv=prod&langTag=en-US")
    page = desktop.new_page()
    page.route(f"{HOST}/**", lambda route: route.fulfill(
        status=200, content_type="text/html",
        body=HOST_PAGE % {"src": src, "origin": json.dumps(dev.panel)}))
    page.goto(f"{HOST}/desktop")
    return page, page.frame_locator("#panel")


def test_insert_proposes_the_answer_to_the_genesys_reply_box(
        desktop: BrowserContext, dev_mode: DevMode) -> None:
    """Framed by a stand-in for apps.mypurecloud.com (served by Playwright), the panel
    loads the vendored Client App SDK, shows Insert on a messaging conversation, and
    proposes the plain answer."""
    page, panel = _framed_by_genesys(desktop, dev_mode, "roaming-abroad-messaging")
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=WAIT)
    panel.locator(".ap-ask__input").fill("How much is the restocking fee for a phone?")
    panel.locator(".ap-ask__button").click()
    card = panel.locator(".ap-card", has_text="You asked").first
    expect(card).to_have_attribute("data-state", "done", timeout=WAIT)
    insert = card.locator("[data-action='insert']")
    expect(insert).to_be_visible()
    # The scripted customer's messages keep adding cards, and the feed follows the
    # newest: a click at the button's coordinates could land on a neighbour's (seen in
    # CI under load). The event goes to this button, through the feed's delegation.
    insert.dispatch_event("click")
    expect(insert).to_have_text("Inserted")
    proposed = page.locator("#log li[data-action='proposeInteractionMessage']")
    expect(proposed).to_have_count(1, timeout=WAIT)
    message = json.loads(proposed.inner_text())
    answer = card.locator(".ap-card__answer").inner_text()
    assert message["mode"] == "insert"
    assert as_shown(message["message"]) == without_citations(answer), message


def test_insert_is_not_offered_on_a_call(desktop: BrowserContext, dev_mode: DevMode) -> None:
    """proposeInteractionMessage does nothing on a voice interaction: no Insert there,
    Copy as ever."""
    page, panel = _framed_by_genesys(desktop, dev_mode, "damaged-phone-return")
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=WAIT)
    card = panel.locator(".ap-card[data-suggestion-id]").first  # the customer's first words
    expect(card).to_have_attribute("data-state", re.compile("done|abstained"), timeout=WAIT)
    panel.locator(".ap-ask__input").fill("How much is the restocking fee for a phone?")
    panel.locator(".ap-ask__button").click()
    asked = panel.locator(".ap-card", has_text="You asked").first
    expect(asked).to_have_attribute("data-state", "done", timeout=WAIT)
    expect(asked.locator("[data-action='copy']")).to_be_visible()
    expect(asked.locator("[data-action='insert']")).to_be_hidden()
    assert page.locator("#log li[data-action='proposeInteractionMessage']").count() == 0
    page.close()
