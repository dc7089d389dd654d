"""Sign-in in Chromium, against the real dev mode: framing refused by the panel's CSP,
popup sign-in, silent re-sign-in without losing the feed, session renewal, and the
Genesys Client App SDK talking to its host."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, FrameLocator, Page, Route, expect
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route as StarletteRoute

from tests.browser.popups import wait_until_closed
from tests.dev_process import DevMode, run_dev_mode
from tests.servers import serve

WAIT = 30_000


def mock_settings(dev: DevMode, **values: Any) -> None:
    response = httpx.put(f"{dev.genesys}/mock/settings", json=values)
    assert response.status_code == 200, response.text


@pytest.fixture
def restore_mock(dev_mode: DevMode) -> Iterator[DevMode]:
    """The shared dev mode, with the mock's sign-in settings put back afterwards."""
    yield dev_mode
    mock_settings(dev_mode, signInMode="auto", loginFrameable=True, tokenExpiry="silent")


def closing_on_token_expiry(dev: DevMode) -> None:
    """Revoked tokens' channel sockets close (the mock's channels fall silent by
    default): the tests below watch the page react to that close."""
    mock_settings(dev, tokenExpiry="close")


def open_desktop(page: Page, dev: DevMode, script_index: int = 0) -> FrameLocator:
    page.goto(dev.desktop)
    page.locator("#md-script").select_option(index=script_index)
    page.locator("#md-start").click()
    return page.frame_locator("#md-panel")


def new_conversation(dev: DevMode) -> dict[str, str]:
    response = httpx.post(f"{dev.genesys}/mock/conversations", json={})
    assert response.status_code == 201
    body: dict[str, str] = response.json()
    return body


def test_panel_refuses_to_be_framed_by_a_foreign_origin(browser: Browser,
                                                        dev_mode: DevMode) -> None:
    panel_url = new_conversation(dev_mode)["panelUrl"]

    async def page_(request: Any) -> HTMLResponse:
        return HTMLResponse(f'<!doctype html><iframe id="f" src="{panel_url}"></iframe>')

    # Another loopback origin (another port): not an Agent Desktop the panel allows.
    with serve(Starlette(routes=[StarletteRoute("/", page_)])) as foreign:
        page = browser.new_page()
        with page.expect_console_message(
                lambda m: "frame-ancestors" in m.text, timeout=WAIT) as refused:
            page.goto(foreign)
        assert "Content Security Policy" in refused.value.text
        expect(page.frame_locator("#f").locator("#ap-root")).to_have_count(0)
        page.close()


def test_popup_sign_in_when_the_login_host_refuses_frames(browser: Browser,
                                                          restore_mock: DevMode) -> None:
    dev = restore_mock
    mock_settings(dev, loginFrameable=False)
    page = browser.new_page()
    page.goto(dev.desktop)
    page.locator("#md-start").click()
    # The desktop asks for popup sign-in with {{gcUsePopupAuth}}, as Genesys does for an
    # org whose identity provider refuses frames.
    expect(page.locator("#md-panel")).to_have_attribute("src", re.compile("gcUsePopupAuth=true"))
    panel = page.frame_locator("#md-panel")
    button = panel.locator(".ap-signin__button")
    expect(button).to_be_visible(timeout=WAIT)
    with page.expect_popup(timeout=WAIT) as popup_info:
        button.click()
    popup = popup_info.value
    wait_until_closed(popup, WAIT)  # it hands the answer over and closes
    expect(panel.locator(".ap-signin")).to_be_hidden(timeout=WAIT)
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=WAIT)
    expect(panel.locator(".ap-card[data-suggestion-id]").first).to_be_visible(timeout=WAIT)
    page.close()


def test_silent_re_sign_in_after_the_token_expires_keeps_the_feed(
        browser: Browser, restore_mock: DevMode) -> None:
    dev = restore_mock
    closing_on_token_expiry(dev)
    page = browser.new_page()
    panel = open_desktop(page, dev)
    cards = panel.locator(".ap-card[data-suggestion-id]")
    expect(cards.first).to_have_attribute("data-state", "done", timeout=WAIT)
    first_query = cards.first.locator(".ap-card__query").inner_text()

    # Genesys revokes the agent's tokens mid-call: the channel closes, the panel signs in
    # again in a hidden frame and hands the new token over, without reloading.
    with page.expect_request(lambda r: r.url.endswith("/api/session"), timeout=WAIT) as handoff:
        assert httpx.post(f"{dev.genesys}/mock/tokens/expire", json={}).status_code == 200
    body = json.loads(handoff.value.post_data or "{}")
    assert "code" in body  # a real sign-in (dev mode's PKCE), not a renewal with the old token
    handoff.value.response()  # the answer has come
    try:
        expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live",
                                                               timeout=WAIT)
    except AssertionError as exc:
        # What the panel told the agent, and what the servers logged, say why.
        raise AssertionError(
            f"{exc}\nhandoff answered {handoff.value.response().status}; "  # type: ignore[union-attr]
            f"panel notice: {panel.locator('.ap-notice').all_inner_texts()}\n"
            f"dev mode said:\n{''.join(dev.output[-60:])}") from None

    # The call goes on: later customer lines still become cards, under the earlier ones.
    after = cards.count()
    expect(cards).to_have_count(after + 1, timeout=WAIT)
    assert cards.first.locator(".ap-card__query").inner_text() == first_query
    page.close()


def test_session_is_renewed_with_the_token_it_already_has(browser: Browser) -> None:
    # A 60 s session: the page renews it well before it ends, with the token it holds,
    # on the renewal route bound to its current session (dev mode signs in with PKCE,
    # whose handoff takes a code only). The page's clock is Playwright's: the test moves
    # it past the halfway mark instead of waiting 30 s.
    with run_dev_mode(env={"ASSIST_SESSION_TTL_S": "60"}) as dev:
        page = browser.new_page()
        page.clock.install()
        panel = open_desktop(page, dev)
        expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live",
                                                               timeout=WAIT)
        with page.expect_request(lambda r: r.url.endswith("/api/session/renew"),
                                 timeout=WAIT) as renewal:
            page.clock.fast_forward("00:31")
        request = renewal.value
        assert set(json.loads(request.post_data or "{}")) == {
            "accessToken", "gcHostOrigin", "gcTargetEnv", "langTag"}
        assert (request.header_value("authorization") or "").startswith("Bearer ")
        assert request.response() is not None
        assert request.response().status == 200  # type: ignore[union-attr]
        page.close()


def sign_in_with_the_button(page: Page, panel: FrameLocator) -> None:
    with page.expect_popup(timeout=WAIT) as popup_info:
        panel.locator(".ap-signin__button").click()
    wait_until_closed(popup_info.value, WAIT)  # it hands the answer over and closes
    expect(panel.locator(".ap-signin")).to_be_hidden(timeout=WAIT)
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=WAIT)


def test_a_renewal_that_gets_no_answer_is_retried_then_offers_the_sign_in(
        browser: Browser, restore_mock: DevMode) -> None:
    """The token ends while the network to the panel's server is down: the sign-in is
    tried again a few times (the page's clock is moved through its pauses), then the
    Sign in button is offered, and its click brings the live transcript back."""
    dev = restore_mock
    closing_on_token_expiry(dev)
    page = browser.new_page()
    page.clock.install()
    panel = open_desktop(page, dev)
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=WAIT)
    page.route("**/auth/state", lambda route: route.abort("internetdisconnected"))
    with page.expect_request("**/auth/state", timeout=WAIT):
        assert httpx.post(f"{dev.genesys}/mock/tokens/expire", json={}).status_code == 200
    for _ in range(3):  # each retry, after its pause
        with page.expect_request("**/auth/state", timeout=WAIT):
            page.clock.fast_forward("00:31")
    expect(panel.locator(".ap-signin__button")).to_be_visible(timeout=WAIT)
    expect(panel.locator(".ap-signin__text")).to_contain_text("did not answer")
    page.unroute("**/auth/state")
    sign_in_with_the_button(page, panel)
    page.close()


def test_a_transcript_stopped_by_a_refused_renewal_starts_again_after_sign_in(
        browser: Browser, restore_mock: DevMode) -> None:
    """A renewal the server refuses outright stops the live transcript ("unauthorized"):
    the Sign in button is offered, and a good session starts the transcript again."""
    dev = restore_mock
    closing_on_token_expiry(dev)
    page = browser.new_page()
    panel = open_desktop(page, dev)
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=WAIT)
    page.route("**/auth/state", lambda route: route.fulfill(
        status=400, content_type="application/json",
        body=json.dumps({"error": "invalid_request", "message": "Refused by the test"})))
    assert httpx.post(f"{dev.genesys}/mock/tokens/expire", json={}).status_code == 200
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "unauthorized",
                                                           timeout=WAIT)
    expect(panel.locator(".ap-signin__button")).to_be_visible()
    expect(panel.locator(".ap-notice")).to_contain_text("Refused by the test")
    page.unroute("**/auth/state")
    sign_in_with_the_button(page, panel)
    page.close()


HOST = "https://apps.mypurecloud.com"
HOST_PAGE = """<!doctype html><html><body>
<ol id="log"></ol>
<iframe id="panel" src="%(src)s" width="400" height="600"
  sandbox="allow-forms allow-modals allow-popups allow-same-origin allow-scripts"></iframe>
<script>
  const panelOrigin = %(origin)s;
  window.addEventListener("message", (event) => {
    if (event.origin !== panelOrigin || !event.data || !event.data.action) return;
    const item = document.createElement("li");
    item.dataset.action = event.data.action;
    item.textContent = JSON.stringify(event.data);
    document.getElementById("log").append(item);
  });
  window.sendHook = (hook) => document.getElementById("panel").contentWindow.postMessage(
    { purecloudEventType: "appLifecycleHook", hook }, panelOrigin);
</script></body></html>"""


def test_client_app_sdk_lifecycle_and_toast_inside_a_genesys_desktop(
        browser: Browser, restore_mock: DevMode) -> None:
    """A stand-in for apps.mypurecloud.com (served by Playwright) frames the panel, which
    loads the vendored Client App SDK and speaks its postMessage protocol."""
    dev = restore_mock
    closing_on_token_expiry(dev)
    conversation = new_conversation(dev)["conversationId"]
    src = (f"{dev.panel}/panel?conversationId={conversation}&gcHostOrigin={HOST}"
           "&gcTargetEnv=prod&langTag=en-US")
    context = browser.new_context()
    page = context.new_page()

    def host(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html",
                      body=HOST_PAGE % {"src": src, "origin": json.dumps(dev.panel)})

    page.route(f"{HOST}/**", host)
    page.goto(f"{HOST}/desktop")
    panel = page.frame_locator("#panel")
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=WAIT)
    page.evaluate("sendHook('bootstrap')")
    expect(page.locator("#log li[data-action='bootstrapped']")).to_have_count(1, timeout=WAIT)

    # Something the agent must act on becomes a desktop toast: tokens revoked, and the
    # identity provider now refuses a silent sign-in.
    mock_settings(dev, signInMode="deny")
    httpx.post(f"{dev.genesys}/mock/tokens/expire", json={})
    toast = page.locator("#log li[data-action='showToast']").first
    expect(toast).to_contain_text("Sign in again", timeout=WAIT)
    expect(panel.locator(".ap-signin__button")).to_be_visible()

    page.evaluate("sendHook('stop')")
    expect(page.locator("#log li[data-action='stopped']")).to_have_count(1, timeout=WAIT)
    expect(panel.locator(".ap-status")).to_have_attribute("data-state", "idle", timeout=WAIT)
    context.close()


def test_outside_a_desktop_the_panel_works_without_the_sdk(
        browser: Browser, dev_mode: DevMode) -> None:
    """Opened on its own (no gcHostOrigin: not framed by a desktop) the page loads no
    Client App SDK, and signs in and follows the conversation all the same."""
    conversation = new_conversation(dev_mode)["conversationId"]
    page = browser.new_page()
    scripts: list[str] = []
    page.on("request", lambda r: scripts.append(r.url) if r.resource_type == "script" else None)
    page.goto(f"{dev_mode.panel}/panel?conversationId={conversation}&langTag=en-US")
    expect(page.locator(".ap-status")).to_have_attribute("data-state", "live", timeout=WAIT)
    assert scripts and not [s for s in scripts if "client-app-sdk" in s]
    page.close()
