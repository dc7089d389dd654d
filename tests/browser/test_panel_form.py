"""The panel page as the server renders it (server/web/panel.py), in Chromium, before its
script has run (the test refuses main.js): the ask box submitted that early sends the
agent's words nowhere, and the page's stall watchdog is set from the server's keep-alive
interval."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Request, expect

from server.app import create_app
from server.web.panel import stall_ms
from tests.factories import make_settings
from tests.servers import serve

WAIT = 30_000
CONVERSATION = "5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"


@pytest.fixture(scope="module")
def panel_origin(sample_kb_path: Path) -> Iterator[str]:
    """The panel's server, with keep-alive comments every 40 s."""
    with serve(create_app(make_settings(kb_path=sample_kb_path, sse_ping_s=40.0))) as origin:
        yield origin


@pytest.fixture
def page(browser: Browser, panel_origin: str) -> Iterator[Page]:
    """The panel page with its script refused: as it is before main.js has loaded (and
    it never signs in, which would send it to Genesys's login host)."""
    opened = browser.new_page()
    opened.route("**/static/panel/main.js", lambda route: route.abort())
    opened.goto(f"{panel_origin}/panel?conversationId={CONVERSATION}")
    yield opened
    opened.close()


def test_an_ask_box_submitted_before_the_script_sends_the_words_nowhere(
        page: Page, panel_origin: str) -> None:
    sent: list[Request] = []
    page.on("request", lambda request: sent.append(request))
    box = page.locator(".ap-ask__input")
    box.fill("my card number is 4111 1111 1111 1111")
    # The browser refuses the form's submission (the CSP's form-action 'none'), and says so.
    with page.expect_console_message(lambda m: "form-action" in m.text,
                                     timeout=WAIT) as refused:
        box.press("Enter", no_wait_after=True)  # no navigation is coming
    assert "Content Security Policy" in refused.value.text
    assert page.url == f"{panel_origin}/panel?conversationId={CONVERSATION}"
    assert [r.url for r in sent if "4111" in r.url or "4111" in (r.post_data or "")] == []


def test_the_stall_watchdog_waits_longer_than_the_server_keep_alive(page: Page) -> None:
    root = page.locator("#ap-root")
    expect(root).to_have_attribute("data-stall-ms", "45000")  # 40 s pings, and a margin
    expect(root).to_have_attribute("data-feedback-url", "/api/feedback")
    # Never below the page's own default (20 s), the default pings (15 s) included.
    assert stall_ms(make_settings()) == 20_000
    assert stall_ms(make_settings(sse_ping_s=0.5)) == 20_000
