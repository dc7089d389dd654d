"""Accessibility of the panel in Chromium: axe-core finds nothing serious, in both themes,
and the keyboard reaches the ask box and its button with a visible focus ring.

axe-core comes bundled in axe-playwright-python (nothing is downloaded when it runs); it
is injected into the panel's own frame (the panel runs framed by the mock Agent Desktop,
on another origin, as in Genesys).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from playwright.sync_api import Browser, Frame, Page, Route, expect

from tests.dev_process import DevMode

BLOCKING = ("serious", "critical")
MAX_TABS = 80
#: A question the knowledge base has no confident answer to (its stream is scripted).
NO_ANSWER_QUESTION = "Can I pay my bill with seashells?"
NEAREST = [{"id": "kb-payments", "title": "Ways to pay your bill",
            "url": "https://help.example/payments", "snippet": "Card or AutoPay.", "score": 0.4}]


def _no_confident_answer(route: Route) -> None:
    """The server's stream for NO_ANSWER_QUESTION ("confident": false: no text, the
    nearest articles, done "abstained"); every other stream is the real one."""
    body = json.loads(route.request.post_data or "{}")
    if body.get("query") != NO_ANSWER_QUESTION:
        route.continue_()
        return
    head = {"id": "sg_a11y", "trigger": "manual", "query": NO_ANSWER_QUESTION,
            "sources": NEAREST, "confident": False}
    done = {"id": "sg_a11y", "complete": True, "outcome": "abstained",
            "stop_reason": "low_confidence", "metrics": {}}
    route.fulfill(status=200, headers={"Content-Type": "text/event-stream"},
                  body=f"id: sg_a11y.1\r\nevent: suggestion\r\ndata: {json.dumps(head)}\r\n\r\n"
                       f"id: sg_a11y.2\r\nevent: done\r\ndata: {json.dumps(done)}\r\n\r\n")


@pytest.fixture
def desktop(browser: Browser, dev_mode: DevMode) -> Iterator[Page]:
    """The mock Agent Desktop with a conversation started, one answered question and one
    the knowledge base has no confident answer to."""
    context = browser.new_context(viewport={"width": 1200, "height": 800},
                                  reduced_motion="reduce")
    page = context.new_page()
    page.route("**/api/assist/stream", _no_confident_answer)
    page.goto(dev_mode.desktop)
    page.locator("#md-start").click()
    panel = page.frame_locator("#md-panel")
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=30_000)
    panel.locator(".ap-ask__input").fill("How much is the restocking fee for a phone?")
    panel.locator(".ap-ask__button").click()
    card = panel.locator(".ap-card", has_text="restocking").first
    expect(card).to_have_attribute("data-state", "done", timeout=30_000)
    expect(card.locator(".ap-card__sources a").first).to_be_visible()
    panel.locator(".ap-ask__input").fill(NO_ANSWER_QUESTION)
    panel.locator(".ap-ask__button").click()
    abstained = panel.locator(".ap-card", has_text="seashells")
    expect(abstained).to_have_attribute("data-state", "abstained", timeout=30_000)
    expect(abstained.locator(".ap-card__sources-label")).to_be_visible()
    expect(abstained.locator(".ap-card__sources a")).to_be_visible()
    yield page
    context.close()


def panel_frame(page: Page) -> Frame:
    """The panel's frame (a Frame, which axe can be injected into)."""
    handle = page.locator("#md-panel").element_handle()
    assert handle is not None
    frame = handle.content_frame()
    assert frame is not None, "the panel iframe has no frame"
    return frame


def blocking_violations(frame: Frame) -> list[dict[str, Any]]:
    """axe violations of impact serious or critical in ``frame``, printed when any."""
    results = Axe().run(frame)
    violations: list[dict[str, Any]] = results.response["violations"]
    blocking = [v for v in violations if v.get("impact") in BLOCKING]
    if blocking:
        print(results.generate_report())
    return blocking


def _theme_of(frame: Frame) -> str:
    background: str = frame.evaluate(
        "getComputedStyle(document.getElementById('ap-root')).backgroundColor")
    channels = [int(c) for c in background[background.index("(") + 1:-1].split(",")[:3]]
    return "dark" if sum(channels) < 3 * 128 else "light"


def _summary(violations: list[dict[str, Any]]) -> list[str]:
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}" for v in violations]


def test_no_serious_violations_in_light_theme(desktop: Page) -> None:
    desktop.emulate_media(color_scheme="light")
    frame = panel_frame(desktop)
    assert _theme_of(frame) == "light"
    violations = blocking_violations(frame)
    assert violations == [], _summary(violations)


def test_no_serious_violations_in_dark_theme_from_the_system(desktop: Page) -> None:
    desktop.emulate_media(color_scheme="dark")
    frame = panel_frame(desktop)
    assert _theme_of(frame) == "dark"
    violations = blocking_violations(frame)
    assert violations == [], _summary(violations)


def test_dark_theme_can_be_forced_and_so_can_light(desktop: Page) -> None:
    desktop.emulate_media(color_scheme="light")
    frame = panel_frame(desktop)
    frame.evaluate("document.getElementById('ap-root').dataset.theme = 'dark'")
    assert _theme_of(frame) == "dark"
    violations = blocking_violations(frame)
    assert violations == [], _summary(violations)
    desktop.emulate_media(color_scheme="dark")
    frame.evaluate("document.getElementById('ap-root').dataset.theme = 'light'")
    assert _theme_of(frame) == "light"


def _focused(frame: Frame) -> dict[str, str]:
    info: dict[str, str] = frame.evaluate("""() => {
        const el = document.activeElement;
        const style = getComputedStyle(el);
        return {cls: el.className || "", tag: el.tagName,
                style: style.outlineStyle, width: style.outlineWidth,
                visible: String(el.matches(":focus-visible"))};
    }""")
    return info


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_keyboard_reaches_the_ask_box_and_button_with_a_visible_focus(
        desktop: Page, scheme: Literal["light", "dark"]) -> None:
    desktop.emulate_media(color_scheme=scheme)
    frame = panel_frame(desktop)
    desktop.locator("#md-start").focus()  # start from the desktop, as an agent would
    for _ in range(MAX_TABS):
        desktop.keyboard.press("Tab")
        if frame.evaluate("document.hasFocus() && document.activeElement.id") == "ap-ask-input":
            break
    else:
        pytest.fail("Tab never reached the ask box")
    box = _focused(frame)
    assert box["visible"] == "true" and box["style"] != "none" and box["width"] != "0px", box
    desktop.keyboard.type("reset my password")
    desktop.keyboard.press("Tab")
    button = _focused(frame)
    assert "ap-ask__button" in button["cls"], button
    assert button["visible"] == "true" and button["style"] != "none" \
        and button["width"] != "0px", button
    # Enter on the box asks, as the button does.
    desktop.keyboard.press("Shift+Tab")
    desktop.keyboard.press("Enter")
    card = desktop.frame_locator("#md-panel").locator(".ap-card", has_text="reset my password")
    expect(card.first).to_be_visible(timeout=30_000)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_violations_before_the_first_card(
        browser: Browser, dev_mode: DevMode, scheme: Literal["light", "dark"]) -> None:
    """Regression: the empty feed was a role="feed" holding no article (axe's
    aria-required-children, critical); the other tests only looked at feeds with cards.
    The feed becomes a feed with its first card."""
    context = browser.new_context(color_scheme=scheme, reduced_motion="reduce")
    page = context.new_page()
    page.goto(f"{dev_mode.panel}/panel")  # no conversation: the panel before any card
    expect(page.locator(".ap-status")).to_have_attribute("data-state", "idle", timeout=30_000)
    feed = page.locator(".ap-feed")
    expect(feed.locator(".ap-feed__empty")).to_be_visible()
    assert feed.get_attribute("role") is None
    violations = blocking_violations(page.main_frame)
    assert violations == [], _summary(violations)
    context.close()


def test_the_feed_is_a_feed_once_it_holds_a_card(desktop: Page) -> None:
    feed = desktop.frame_locator("#md-panel").locator(".ap-feed")
    expect(feed).to_have_attribute("role", "feed")
    expect(feed.locator("article.ap-card").first).to_be_attached()
