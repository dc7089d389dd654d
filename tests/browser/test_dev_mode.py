"""End to end in Chromium: the mock desktop plays a script and the panel streams answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dev_process import DevMode


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
