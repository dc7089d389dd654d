"""End to end in Chromium: the mock desktop plays a script and the panel streams answers."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Request, Route, expect

from tests.dev_process import DevMode, run_dev_mode


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page of its own, closed after the test: a panel left open would go on following
    its conversation and signing in again beside the next tests on the shared dev mode."""
    opened = browser.new_page()
    yield opened
    opened.close()


def test_scripted_conversation_streams_grounded_answers_into_the_panel(
        page: Page, dev_mode: DevMode) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(dev_mode.desktop)
    page.locator("#md-script").select_option(index=0)
    page.locator("#md-start").click()

    # The desktop shows the conversation as it plays...
    expect(page.locator("#md-transcript .md-line[data-speaker='customer']").first).to_be_visible(
        timeout=30_000)
    # ...and the panel, framed from another origin, signs in, follows the transcript and
    # streams a grounded suggestion for the customer's words.
    panel = page.frame_locator("#md-panel")
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=30_000)
    card = panel.locator(".ap-card[data-suggestion-id]").first
    expect(card).to_be_visible(timeout=30_000)
    expect(card).to_have_attribute("data-state", "done", timeout=30_000)
    expect(card.locator(".ap-card__answer")).not_to_be_empty()
    expect(card.locator(".ap-cite").first).to_be_visible()
    sources = card.locator(".ap-card__sources a")
    assert sources.count() >= 1
    href = sources.first.get_attribute("href") or ""
    assert href.startswith("https://help.brightwave.example/")
    # The card's trigger is the customer's words, as the desktop showed them.
    first_customer = page.locator("#md-transcript .md-line[data-speaker='customer']").first
    assert card.locator(".ap-card__query").inner_text() in first_customer.inner_text()
    assert errors == []


def test_agent_question_streams_an_answer(page: Page, dev_mode: DevMode) -> None:
    page.goto(dev_mode.desktop)
    page.locator("#md-start").click()
    panel = page.frame_locator("#md-panel")
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=30_000)
    panel.locator(".ap-ask__input").fill("How much is the restocking fee for a phone?")
    panel.locator(".ap-ask__button").click()
    card = panel.locator(".ap-card", has_text="You asked").first
    expect(card).to_have_attribute("data-state", "done", timeout=30_000)
    expect(card.locator(".ap-card__answer")).to_contain_text("restocking")


def test_messaging_conversation_suggests_for_customer_messages(
        page: Page, dev_mode: DevMode) -> None:
    page.goto(dev_mode.desktop)
    page.locator("#md-script").select_option("roaming-abroad-messaging")
    page.locator("#md-start").click()
    panel = page.frame_locator("#md-panel")
    card = panel.locator(".ap-card[data-suggestion-id]").first
    expect(card).to_have_attribute("data-state", "done", timeout=30_000)
    # The first customer message, fetched from the messaging API, is the card's trigger.
    first_customer = page.locator("#md-transcript .md-line[data-speaker='customer']").first
    assert card.locator(".ap-card__query").inner_text() in first_customer.inner_text()
    expect(card.locator(".ap-card__sources a").first).to_be_visible()


def test_a_newer_customer_utterance_ends_the_older_suggestion_on_the_page(
        page: Page) -> None:
    """The server supersedes an older automatic stream too, but across replicas only with
    Redis: the page ends it itself. The test holds the first automatic request unanswered
    (the server never sees it, so only the page can end it): the next customer utterance
    aborts it, and its card, never shown, stays out of the feed. The server's keep-alive
    interval is an hour here, and the page's stall watchdog follows it (data-stall-ms),
    so nothing else ends the held request while the conversation plays."""
    held: list[Route] = []

    def stream(route: Route) -> None:
        if not held and json.loads(route.request.post_data or "{}").get("trigger") == "utterance":
            held.append(route)  # never answered
            return
        route.continue_()

    def is_held(request: Request) -> bool:
        # (A stream read to its "done" can fail too: the page stops reading there.)
        return bool(held) and request.post_data == held[0].request.post_data

    with run_dev_mode("--playback-speed", "4", env={"ASSIST_SSE_PING_S": "3600"}) as dev:
        page.route("**/api/assist/stream", stream)
        page.goto(dev.desktop)
        page.locator("#md-script").select_option(index=0)
        with page.expect_event("requestfailed", predicate=is_held, timeout=30_000):
            page.locator("#md-start").click()
        panel = page.frame_locator("#md-panel")
        expect(panel.locator("#ap-root")).to_have_attribute("data-stall-ms", "3605000")
        first = json.loads(held[0].request.post_data or "{}")

        # The newer suggestion streams as ever, and is the first card in the feed.
        card = panel.locator(".ap-card[data-suggestion-id]").first
        expect(card).to_have_attribute("data-state", "done", timeout=30_000)
        assert card.locator(".ap-card__query").inner_text() != first["utterances"][-1]["text"]
