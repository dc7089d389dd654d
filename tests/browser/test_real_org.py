"""The panel in the mock desktop, held to what a real Genesys org does, in Chromium: a
role without ``conversation:transcription:view``, one without the message permissions,
the lifecycle handshake on the
redirect and popup sign-in paths, ``stop`` when the conversation ends, and a direct
call. The real dev mode (panel, mock Genesys, mock model) on loopback ports."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, FrameLocator, Page, expect

from tests.browser.popups import wait_until_closed
from tests.dev_process import DevMode

WAIT = 30_000
TRANSCRIPTION_VIEW = "conversation:transcription:view"


def mock_settings(dev: DevMode, **values: Any) -> None:
    response = httpx.put(f"{dev.genesys}/mock/settings", json=values)
    assert response.status_code == 200, response.text


@pytest.fixture
def dev(dev_mode: DevMode) -> Iterator[DevMode]:
    """The shared dev mode, with the mock's platform settings put back afterwards."""
    yield dev_mode
    mock_settings(dev_mode, agentRole="agent", signInMode="auto", loginFrameable=True)


def start(page: Page, dev: DevMode, script: str, *, direct: bool = False) -> FrameLocator:
    page.goto(dev.desktop)
    page.locator("#md-script").select_option(script)
    if direct:
        page.locator("#md-direct").check()
    page.locator("#md-start").click()
    return page.frame_locator("#md-panel")


def ask(panel: FrameLocator, question: str) -> None:
    panel.locator(".ap-ask__input").fill(question)
    panel.locator(".ap-ask__button").click()
    card = panel.locator(".ap-card", has_text="You asked").first
    expect(card).to_have_attribute("data-state", "done", timeout=WAIT)


def test_messaging_keeps_streaming_when_the_role_lacks_transcription(
        browser: Browser, dev: DevMode) -> None:
    """Messaging needs no transcript: the panel subscribes only the agent's
    conversations topic, so the missing permission costs it nothing."""
    mock_settings(dev, agentRole="agent-without-transcription")
    page = browser.new_page()
    panel = start(page, dev, "roaming-abroad-messaging")
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=WAIT)
    cards = panel.locator(".ap-card[data-suggestion-id]")
    expect(cards.first).to_have_attribute("data-state", re.compile("done|abstained"),
                                          timeout=WAIT)
    expect(panel.locator(".ap-notice")).to_be_hidden()
    page.close()


def test_a_call_without_the_permission_says_which_and_the_ask_box_works(
        browser: Browser, dev: DevMode) -> None:
    mock_settings(dev, agentRole="agent-without-transcription")
    page = browser.new_page()
    panel = start(page, dev, "damaged-phone-return")
    status = panel.locator(".ap-status")
    expect(status).to_have_attribute("data-state", "restricted", timeout=WAIT)
    expect(status).to_contain_text("No live transcript")
    notice = panel.locator(".ap-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text(TRANSCRIPTION_VIEW)
    expect(notice).to_contain_text("admin")
    ask(panel, "How do I return a damaged phone?")
    # No automatic card: the only one is the agent's question (cards carry no trigger
    # attribute, so a selector on one matched nothing, whatever the page did).
    expect(panel.locator(".ap-card")).to_have_count(1)
    # The call's end still reaches the panel (the agent's conversations topic).
    page.locator("#md-end").click()
    expect(page.locator("#md-widget")).to_have_attribute("data-lifecycle", "stopped",
                                                         timeout=WAIT)
    page.close()


def test_the_missing_permission_is_told_in_the_agents_language(
        browser: Browser, dev: DevMode) -> None:
    mock_settings(dev, agentRole="agent-without-transcription")
    created = httpx.post(f"{dev.genesys}/mock/conversations",
                         json={"script": "damaged-phone-return"})
    assert created.status_code == 201
    url = created.json()["panelUrl"].replace("langTag=en-US", "langTag=de-DE")
    page = browser.new_page()
    page.goto(url)  # on its own, not framed: the same panel in German
    expect(page.locator(".ap-status")).to_have_attribute("data-state", "restricted",
                                                         timeout=WAIT)
    expect(page.locator(".ap-status")).to_have_text("Kein Live-Transkript")
    notice = page.locator(".ap-notice")
    expect(notice).to_contain_text(f"Ihrer Genesys-Cloud-Rolle fehlt {TRANSCRIPTION_VIEW}")
    page.close()


MESSAGE_READ = re.compile(r"/api/v2/conversations/messages/[^/]+/messages/")


def test_messaging_without_a_message_permission_says_which_and_stops_asking(
        browser: Browser, dev: DevMode) -> None:
    """A role with neither conversation:message:view nor conversation:webmessaging:view:
    Genesys refuses the messages' text (403 missing.any.permissions). The panel says
    which permissions, as it does for a call's transcript, asks no more (regression: it
    asked again six times, then on every new message, and told the agent nothing), and
    the ask box keeps working."""
    mock_settings(dev, agentRole="agent-without-messages")
    page = browser.new_page()
    page.clock.install()  # the page's timers: moved below, past every retry's pause
    reads: list[str] = []
    page.on("request", lambda r: reads.append(r.url)
            if r.method != "OPTIONS" and MESSAGE_READ.search(r.url) else None)
    panel = start(page, dev, "roaming-abroad-messaging")
    status = panel.locator(".ap-status")
    expect(status).to_have_attribute("data-state", "restricted", timeout=WAIT)
    notice = panel.locator(".ap-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("conversation:message:view")
    expect(notice).to_contain_text("conversation:webmessaging:view")
    expect(notice).to_contain_text("admin")
    page.clock.fast_forward("02:00")  # the longest retry pause is 30 s
    # The script's later messages arrive meanwhile, each a conversation event.
    expect(page.locator("#md-transcript .md-line")).to_have_count(8, timeout=WAIT)
    ask(panel, "How do I return a damaged phone?")
    assert len(reads) == 1, reads  # the one refused read, never asked again
    expect(status).to_have_attribute("data-state", "restricted")
    expect(panel.locator(".ap-card")).to_have_count(1)  # the question asked, nothing else
    page.close()


def test_the_widget_is_ready_on_the_redirect_sign_in_path(
        browser: Browser, dev: DevMode) -> None:
    """Dev mode signs in by sending the panel's frame to the login host and back: the
    page answers the desktop's bootstrap before it leaves, so the desktop's loading
    state ends with the handshake, not with its timeout."""
    page = browser.new_page()
    panel = start(page, dev, "damaged-phone-return")
    widget = page.locator("#md-widget")
    expect(widget).to_have_attribute("data-lifecycle", "ready", timeout=WAIT)
    expect(page.locator("#md-panel-loading")).to_be_hidden()
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=WAIT)
    answered = page.locator("#md-app-log li[data-action='bootstrapped']")
    expect(answered.first).to_be_attached()
    expect(widget).to_have_attribute("data-lifecycle", "ready")
    page.close()


def test_the_widget_is_ready_on_the_popup_sign_in_path(
        browser: Browser, dev: DevMode) -> None:
    """With popup sign-in the panel waits for the agent's click: the handshake is
    answered at page load all the same."""
    mock_settings(dev, loginFrameable=False)
    page = browser.new_page()
    panel = start(page, dev, "damaged-phone-return")
    expect(page.locator("#md-widget")).to_have_attribute("data-lifecycle", "ready",
                                                         timeout=WAIT)
    button = panel.locator(".ap-signin__button")
    expect(button).to_be_visible()  # still waiting for the agent: ready before sign-in
    with page.expect_popup(timeout=WAIT) as popup_info:
        button.click()
    wait_until_closed(popup_info.value, WAIT)  # it hands the answer over and closes
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=WAIT)
    page.close()


def test_end_conversation_stops_the_panel(browser: Browser, dev: DevMode) -> None:
    """The desktop sends stop: the panel closes its channel, ends its streams and
    answers stopped."""
    page = browser.new_page()
    panel = start(page, dev, "damaged-phone-return")
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=WAIT)
    page.locator("#md-end").click()
    expect(page.locator("#md-widget")).to_have_attribute("data-lifecycle", "stopped",
                                                         timeout=WAIT)
    expect(page.locator("#md-app-log li[data-action='stopped']")).to_have_count(1)
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "idle")
    page.close()


def test_a_direct_call_gets_suggestions(browser: Browser, dev: DevMode) -> None:
    """A call dialled straight to the agent (a 'user' participant, no queue)."""
    page = browser.new_page()
    panel = start(page, dev, "damaged-phone-return", direct=True)
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=WAIT)
    cards = panel.locator(".ap-card[data-suggestion-id]")
    expect(cards.first).to_have_attribute("data-state", re.compile("done|abstained"),
                                          timeout=WAIT)
    page.close()
