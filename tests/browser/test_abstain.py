"""Confident silence in the panel: a ``suggestion`` event with ``"confident": false``.

The server found nothing in the knowledge base relevant enough to answer: no ``delta``
follows, and the stream ends with one ``done`` whose outcome is ``abstained``. A
question the agent asked then says so, with the nearest articles under "Might help";
an automatic suggestion (from the customer's words) shows nothing at all.

The streams are written by the tests themselves, as sse-starlette writes them:
Playwright answers the page's stream request (``page.route``), so the tests do not
depend on what the server's retrieval decides. Sign-in, the transcript and the page are
the real dev mode; a few tests use the feed's test-only harness page. No test sleeps:
each waits on the page's state (``data-pending``/``data-streaming`` on the feed, a
card's ``data-state``) or on the stream request having finished.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Request, Route, expect
from sse_starlette import ServerSentEvent
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from tests.browser.test_feed import WAIT, ask, open_harness, open_panel
from tests.dev_process import DevMode
from tests.servers import serve

ROOT = Path(__file__).resolve().parents[2]
HARNESS_DIR = Path(__file__).resolve().parent / "harness"
STREAM = "**/api/assist/stream"

#: The nearest articles of a question the knowledge base cannot answer.
NEAREST: list[dict[str, Any]] = [
    {"id": "kb-payments", "title": "Ways to pay your bill",
     "url": "https://help.example/payments", "snippet": "Card, bank transfer or AutoPay.",
     "score": 0.41},
    {"id": "kb-autopay", "title": "Setting up AutoPay", "url": "https://help.example/autopay",
     "snippet": "Pay automatically each month.", "score": 0.33},
]
SOURCES: list[dict[str, Any]] = [
    {"id": "kb-fees", "title": "Restocking fees", "url": "https://help.example/fees",
     "snippet": "No fee for faulty devices.", "score": 3.2},
]
ANSWER = "A **15%** restocking fee applies to opened phones [1].\n\n- No fee for faulty devices"
NO_CONFIDENT_ANSWER = "No confident answer in the knowledge base."


# Scripted streams ---------------------------------------------------------------


def encode(sid: str, events: list[tuple[str, dict[str, Any]]]) -> bytes:
    """The events of one stream, as sse-starlette sends them (``id: <sid>.<n>``)."""
    return b"".join(
        ServerSentEvent(data=json.dumps({"id": sid, **data}), event=name,
                        id=f"{sid}.{n}").encode()
        for n, (name, data) in enumerate(events, start=1))


def suggestion(trigger: str, query: str, sources: list[dict[str, Any]],
               confident: bool | None) -> tuple[str, dict[str, Any]]:
    """A ``suggestion`` event; ``confident=None`` leaves the field out (an older server)."""
    data: dict[str, Any] = {"trigger": trigger, "query": query, "sources": sources}
    if confident is not None:
        data["confident"] = confident
    return ("suggestion", data)


def done(outcome: str, stop_reason: str) -> tuple[str, dict[str, Any]]:
    return ("done", {"complete": True, "outcome": outcome, "stop_reason": stop_reason,
                     "metrics": {}})


def abstained(trigger: str, query: str, sources: list[dict[str, Any]],
              stop_reason: str = "low_confidence") -> list[tuple[str, dict[str, Any]]]:
    return [suggestion(trigger, query, sources, False), done("abstained", stop_reason)]


def answered(trigger: str, query: str, text: str = ANSWER, sources: list[dict[str, Any]] = SOURCES,
             confident: bool | None = True) -> list[tuple[str, dict[str, Any]]]:
    half = len(text) // 2
    return [suggestion(trigger, query, sources, confident), ("delta", {"text": text[:half]}),
            ("delta", {"text": text[half:]}), done("completed", "stop")]


class ScriptedStreams:
    """Answers the panel's ``POST /api/assist/stream`` from ``script(trigger, query)``,
    which returns the stream's events; keeps every request body it answered."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, route: Route) -> None:
        body: dict[str, Any] = json.loads(route.request.post_data or "{}")
        self.bodies.append(body)
        trigger = str(body.get("trigger"))
        query = str(body.get("query") or "")
        if trigger == "utterance":  # the server asks the newest customer utterance
            said = [u["text"] for u in body.get("utterances", []) if u["speaker"] == "customer"]
            query = said[-1] if said else ""
        sid = f"sg_test{len(self.bodies)}"
        route.fulfill(status=200, body=encode(sid, self.script(trigger, query)),
                      headers={"Content-Type": "text/event-stream; charset=utf-8",
                               "Cache-Control": "no-store"})


def is_utterance_stream(request: Request) -> bool:
    if not request.url.endswith("/api/assist/stream"):
        return False
    return bool(json.loads(request.post_data or "{}").get("trigger") == "utterance")


# Dev mode -----------------------------------------------------------------------


@pytest.fixture
def desktop(browser: Browser) -> Iterator[BrowserContext]:
    """A window the mock Agent Desktop (and its framed panel) fits in."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context
    context.close()


def card_texts(card: Any) -> dict[str, Any]:
    """What an agent can see of a card, by part."""
    info: dict[str, Any] = card.evaluate("""(card) => {
      const shown = (sel) => { const el = card.querySelector(sel);
        return Boolean(el) && el.getClientRects().length > 0; };
      return {
        answerShown: shown('.ap-card__answer'),
        answer: card.querySelector('.ap-card__answer').textContent,
        copy: shown("[data-action='copy']"), insert: shown("[data-action='insert']"),
        up: shown("[data-action='rate-up']"), down: shown("[data-action='rate-down']"),
        status: shown('.ap-card__status'), incomplete: shown('.ap-card__incomplete'),
        fallback: shown('.ap-card__fallback'), label: shown('.ap-card__sources-label'),
        sourcesName: card.querySelector('.ap-card__sources').getAttribute('aria-label'),
        partial: card.dataset.partial || '',
      };
    }""")
    return info


def test_a_question_without_a_confident_answer_lists_the_nearest_articles(
        desktop: BrowserContext, dev_mode: DevMode) -> None:
    page = desktop.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def script(trigger: str, query: str) -> list[tuple[str, dict[str, Any]]]:
        if query == "okay, thanks":
            return abstained(trigger, query, [], "small_talk")
        return abstained(trigger, query, NEAREST)  # the customer's words too: no noise

    page.route(STREAM, ScriptedStreams(script))
    feedback: list[dict[str, Any]] = []

    def on_feedback(route: Route) -> None:
        feedback.append(json.loads(route.request.post_data or "{}"))
        route.fulfill(status=204)

    page.route("**/api/feedback", on_feedback)
    panel = open_panel(page, dev_mode)
    ask(panel, "Can I pay my bill with seashells?")
    card = panel.locator(".ap-card", has_text="seashells")
    expect(card).to_have_attribute("data-state", "abstained", timeout=WAIT)
    expect(card.locator(".ap-card__abstain-title")).to_have_text(NO_CONFIDENT_ANSWER)
    expect(card.locator(".ap-card__abstain-hint")).to_have_text("The articles below might help.")
    expect(card.locator(".ap-card__sources-label")).to_have_text("Might help")
    links = card.locator(".ap-card__sources a")
    expect(links).to_have_text([a["title"] for a in NEAREST])
    assert links.evaluate_all("(links) => links.map((a) => a.href)") == \
        [a["url"] for a in NEAREST]
    seen = card_texts(card)
    assert seen == {"answerShown": False, "answer": "", "copy": False, "insert": False,
                    "up": True, "down": True, "status": False, "incomplete": False,
                    "fallback": False, "label": True, "sourcesName": "Might help",
                    "partial": ""}, seen
    expect(card).not_to_contain_text("Sources")
    expect(panel.locator(".ap-announcer")).to_have_text(
        "No confident answer: Can I pay my bill with seashells?")

    # Feedback still works: the agent can say the articles did not help.
    with page.expect_request("**/api/feedback"):
        card.locator("[data-action='rate-down']").click()
    expect(card.locator("[data-action='rate-down']")).to_have_attribute("aria-pressed", "true")
    assert feedback == [{"suggestionId": card.get_attribute("data-suggestion-id"),
                         "rating": "down"}]

    # Nothing to search, and so no articles: the message alone.
    ask(panel, "okay, thanks")
    small_talk = panel.locator(".ap-card", has_text="okay, thanks")
    expect(small_talk).to_have_attribute("data-state", "abstained", timeout=WAIT)
    expect(small_talk.locator(".ap-card__abstain")).to_have_text(NO_CONFIDENT_ANSWER)
    seen = card_texts(small_talk)
    assert not seen["label"] and not seen["copy"] and not seen["answerShown"], seen
    expect(small_talk.locator(".ap-card__sources")).to_be_hidden()
    assert errors == []



def test_an_automatic_suggestion_without_a_confident_answer_shows_no_card(
        desktop: BrowserContext, dev_mode: DevMode) -> None:
    page = desktop.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def script(trigger: str, query: str) -> list[tuple[str, dict[str, Any]]]:
        if trigger == "utterance":
            return abstained(trigger, query, NEAREST)
        return answered(trigger, query, confident=None)  # as an older server answers

    streams = ScriptedStreams(script)
    page.route(STREAM, streams)
    # The mock plays its script once the panel follows the conversation: the customer's
    # first words ask for a suggestion on their own. The page counts it in data-pending
    # before it sends the request, until the stream has decided.
    with page.expect_request(is_utterance_stream, timeout=2 * WAIT):
        panel = open_panel(page, dev_mode)
    feed = panel.locator(".ap-feed")
    expect(feed).to_have_attribute("data-pending", "0", timeout=WAIT)
    expect(feed).to_have_attribute("data-streaming", "0")
    expect(feed).to_have_attribute("data-count", "0")
    expect(panel.locator(".ap-card")).to_have_count(0)
    expect(panel.locator(".ap-feed__empty")).to_be_visible()
    expect(panel.locator(".ap-feed__new")).to_be_hidden()
    expect(panel.locator(".ap-announcer")).to_be_empty()
    assert [b["trigger"] for b in streams.bodies][:1] == ["utterance"]

    # A confident answer still renders as it always did.
    ask(panel, "How much is the restocking fee for a phone?")
    card = panel.locator(".ap-card", has_text="You asked")
    expect(card).to_have_attribute("data-state", "done", timeout=WAIT)
    expect(card.locator(".ap-card__answer")).to_contain_text("restocking fee applies")
    expect(card.locator(".ap-card__answer strong")).to_have_text("15%")
    expect(card.locator(".ap-cite")).to_have_attribute("href", SOURCES[0]["url"])
    expect(card.locator(".ap-card__status")).to_have_text("Answer complete")
    expect(card.locator(".ap-card__sources")).to_have_attribute("aria-label", "Sources")
    expect(card.locator(".ap-card__sources a")).to_have_text([SOURCES[0]["title"]])
    seen = card_texts(card)
    assert seen["answerShown"] and seen["copy"] and seen["up"] and not seen["label"], seen
    expect(card.locator(".ap-card__abstain")).to_be_hidden()
    expect(panel.locator(".ap-announcer")).to_have_text(
        "New suggestion: How much is the restocking fee for a phone?")
    expect(feed).to_have_attribute("data-count", "1")
    assert errors == []


# The feed, on the harness page --------------------------------------------------


@pytest.fixture(scope="module")
def harness_origin() -> Iterator[str]:
    app = Starlette(routes=[
        Mount("/static", StaticFiles(directory=ROOT / "frontend" / "static")),
        Mount("/harness", StaticFiles(directory=HARNESS_DIR)),
    ])
    with serve(app) as origin:
        yield origin


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A panel-sized window."""
    context = browser.new_context(viewport={"width": 420, "height": 640})
    yield context
    context.close()


def events(stream: list[tuple[str, dict[str, Any]]], sid: str) -> list[tuple[str, dict[str, Any]]]:
    return [(name, {"id": sid, **data}) for name, data in stream]


HEARD = """() => {
  window.heard = [];
  new MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes) window.heard.push(n.textContent);
  }).observe(document.querySelector('.ap-announcer'), {childList: true, subtree: true});
}"""


def test_only_automatic_suggestions_with_an_answer_join_the_feed(
        context: BrowserContext, harness_origin: str) -> None:
    h = open_harness(context, harness_origin)
    page = h.page
    feed = page.locator(".ap-feed")
    for n in range(12):
        h.add(f"question {n}", events(answered("manual", f"question {n}"), f"sg_q{n}"))
    h.settled()
    # The agent has scrolled up and is reading a card, keyboard focus on it.
    page.evaluate("() => { document.querySelector('.ap-feed').scrollTop = 0; }")
    h.frames()
    page.locator(".ap-card[aria-posinset='2']").focus()
    page.evaluate(HEARD)

    # The customer's words, and nothing relevant enough: no card, nothing announced,
    # no "New suggestions", the focus where it was.
    quiet = h.add("okay, let me check", trigger="utterance")
    expect(feed).to_have_attribute("data-pending", "1")
    assert page.evaluate("(key) => harness.state(key)", quiet) is None
    h.send(quiet, events(abstained("utterance", "okay, let me check", NEAREST), "sg_quiet"))
    expect(feed).to_have_attribute("data-pending", "0")
    h.settled()
    expect(feed).to_have_attribute("data-count", "12")
    expect(h.card(quiet)).to_have_count(0)
    expect(page.locator(".ap-feed__new")).to_be_hidden()
    assert page.evaluate("document.activeElement.getAttribute('aria-posinset')") == "2"
    assert page.evaluate("window.heard") == []
    # Nothing comes of events after it, either.
    h.send(quiet, [("delta", {"id": "sg_quiet", "text": "stray"})])
    h.settled()
    expect(feed).to_have_attribute("data-count", "12")

    # Ended before its suggestion (superseded by newer words): nothing either.
    superseded = h.add("hold on", trigger="utterance")
    h.send(superseded, events([done("cancelled", "superseded")], "sg_gone"))
    expect(feed).to_have_attribute("data-pending", "0")
    expect(feed).to_have_attribute("data-count", "12")

    # With an answer on the way ("confident": true, or no field from an older server),
    # the card joins the feed at its suggestion event, as before.
    state = "(key) => harness.state(key) && harness.state(key).state"
    for confident, query in ((True, "my phone is cracked"), (None, "can I return it")):
        key = h.add(query, trigger="utterance")
        stream = events(answered("utterance", query, confident=confident), f"sg_{len(query)}")
        h.send(key, stream[:1])
        assert page.evaluate(state, key) == "generating"
        h.send(key, stream[1:])
        assert page.evaluate(state, key) == "done"
    expect(feed).to_have_attribute("data-count", "14")
    expect(page.locator(".ap-feed__new")).to_be_visible()  # unpinned: new cards below
    assert page.evaluate("document.activeElement.getAttribute('aria-posinset')") == "2"
    assert page.evaluate("window.heard") == ["New suggestion: my phone is cracked",
                                             "New suggestion: can I return it"]
    page.locator(".ap-feed__new").click()
    newest = page.locator(".ap-card[aria-posinset='14']")
    expect(newest).to_be_focused()
    expect(newest.locator(".ap-card__who")).to_have_text("Customer:")
    expect(newest.locator(".ap-card__answer strong")).to_have_text("15%")

    # A failure before its suggestion is still shown: the agent should know.
    failed = h.add("it does not work", trigger="utterance")
    page.evaluate("(key) => harness.lost(key, 'disconnected')", failed)
    expect(h.card(failed)).to_have_attribute("data-state", "error")
    h.settled()
    expect(feed).to_have_attribute("data-count", "15")
    expect(feed).to_have_attribute("data-pending", "0")
    assert h.dialogs == [] and h.errors == []


def test_an_abstained_card_comes_back_the_same_when_scrolled_to(
        context: BrowserContext, harness_origin: str) -> None:
    h = open_harness(context, harness_origin)
    page = h.page
    key = h.add("seashells", events(abstained("manual", "seashells", NEAREST), "sg_shells"))
    expect(h.card(key)).to_have_attribute("data-state", "abstained")
    html = h.card(key).evaluate("(card) => card.innerHTML")
    for n in range(25):  # pushes it out of the DOM
        h.add(f"q{n}", events(answered("manual", f"q{n}"), f"sg_{n}"))
    h.settled()
    expect(h.card(key)).to_have_count(0)
    page.evaluate("() => { document.querySelector('.ap-feed').scrollTop = 0; }")
    expect(h.card(key)).to_be_attached()
    h.frames()
    assert h.card(key).evaluate("(card) => card.innerHTML") == html
    assert h.page.evaluate(f"harness.state('{key}')")["text"] == ""


def test_an_abstained_stream_is_not_a_stall_or_a_fallback(
        context: BrowserContext, harness_origin: str) -> None:
    """The page's watchdog and its "closed before done" fallback leave it alone."""
    h = open_harness(context, harness_origin, stallMs="500", stream="/stream/scripted")
    scripts = {
        # The whole contract: the suggestion, then "done" at once.
        "seashells": abstained("manual", "seashells", NEAREST),
        # The connection closes before "done": the articles are shown already.
        "cut short": abstained("manual", "cut short", NEAREST)[:1],
    }

    def on_stream(route: Route) -> None:
        query = json.loads(route.request.post_data or "{}")["query"]
        route.fulfill(status=200, body=encode(f"sg_{len(query)}", scripts[query]),
                      headers={"Content-Type": "text/event-stream"})

    h.page.route("**/stream/scripted", on_stream)
    for query in scripts:
        ask(h.page, query)
        card = h.page.locator(".ap-card", has_text=query)
        expect(card).to_have_attribute("data-state", "abstained", timeout=WAIT)
        expect(card.locator(".ap-card__abstain-title")).to_have_text(NO_CONFIDENT_ANSWER)
        expect(card.locator(".ap-card__sources a")).to_have_count(len(NEAREST))
        expect(card.locator(".ap-card__fallback")).to_be_hidden()
        expect(card.locator(".ap-card__incomplete")).to_be_hidden()
        expect(card.locator(".ap-card__status")).to_be_hidden()
    h.settled()
    expect(h.page.locator(".ap-announcer")).not_to_contain_text("Suggested article")
    assert h.dialogs == [] and h.errors == []
