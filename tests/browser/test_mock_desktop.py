"""The mock Agent Desktop alone, in Chromium: the Client App SDK lifecycle it speaks to the
app it frames (bootstrap with its loading state and timeout, stop on End conversation and
before the next conversation), and what it does for the app (toasts, proposed messages).

The panel is replaced by a stand-in app that Playwright serves at the panel's URL: it
records the hooks it receives and answers them as each test tells it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Frame, Locator, Page, Route, expect

from tests.dev_process import DevMode
from tests.devmode.test_mock_genesys import PANEL_URL, run_mock

WAIT = 10_000
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: What the stand-in answers to each hook by itself (a hook left out waits for the test).
ANSWER_ALL = {"bootstrap": "bootstrapped", "stop": "stopped"}

STAND_IN = """<!doctype html><html lang="en"><head><title>Stand-in app</title></head><body>
<ol id="hooks"></ol>
<script>
  const host = %(host)s;
  const answers = %(answers)s;
  const send = (message) => window.parent.postMessage(message, host);
  window.sendRaw = send;
  window.answer = (action, payload = {}) => send({
    ...payload, action, protocol: "purecloud-client-apps",
    protocolAgentName: "stand-in", protocolAgentVersion: "1.0.0"});
  window.addEventListener("message", (event) => {
    const data = event.data;
    if (event.source !== window.parent || event.origin !== host || !data ||
        data.purecloudEventType !== "appLifecycleHook") return;
    const item = document.createElement("li");
    item.dataset.hook = data.hook;
    item.dataset.protocol = data.protocol;
    item.textContent = data.hook;
    document.getElementById("hooks").append(item);
    if (answers[data.hook]) window.answer(answers[data.hook]);
  });
</script></body></html>"""


@dataclass
class Desktop:
    """The mock desktop's page, and the stand-in app in its frame."""

    page: Page
    origin: str
    started: list[str]

    @property
    def widget(self) -> Locator:
        return self.page.locator("#md-widget")

    def hooks(self, hook: str) -> Locator:
        """The hooks of this kind the app's current page received."""
        return self.page.frame_locator("#md-panel").locator(f"#hooks li[data-hook='{hook}']")

    def log(self, action: str | None = None) -> Locator:
        """The desktop's log of the app's messages (of one action)."""
        if action is None:
            return self.page.locator("#md-app-log li")
        return self.page.locator(f"#md-app-log li[data-action='{action}']")

    def app(self) -> Frame:
        handle = self.page.locator("#md-panel").element_handle()
        frame = handle.content_frame() if handle else None
        assert frame is not None
        return frame

    def answer(self, action: str, **payload: Any) -> None:
        """The app posts ``action`` (with ``payload``) to the desktop."""
        self.app().evaluate("([a, p]) => window.answer(a, p)", [action, payload])

    def start(self, script: str | None = None) -> str:
        """Start a conversation; its id, once the desktop shows it."""
        shown = self.page.locator("#md-conversation-id")
        before = shown.text_content() or ""
        if script:
            self.page.locator("#md-script").select_option(script)
        self.page.locator("#md-start").click()
        if before:
            expect(shown).not_to_have_text(before, timeout=WAIT)
        expect(shown).to_have_text(UUID, timeout=WAIT)
        conversation_id = shown.text_content() or ""
        self.started.append(conversation_id)
        return conversation_id


@contextmanager
def desktop(browser: Browser, origin: str, panel_origin: str,
            answers: dict[str, str], clock: bool = False) -> Iterator[Desktop]:
    """The desktop at ``origin``, its panel replaced by the stand-in answering ``answers``;
    with ``clock``, on Playwright's clock (which the test moves)."""
    context = browser.new_context()
    page = context.new_page()
    if clock:
        page.clock.install()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    body = STAND_IN % {"host": json.dumps(origin), "answers": json.dumps(answers)}

    def stand_in(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html", body=body)

    page.route(f"{panel_origin}/panel**", stand_in)
    page.goto(origin + "/")
    opened = Desktop(page, origin, [])
    try:
        yield opened
        assert errors == []
    finally:
        context.close()
        # Ended, they never play: a panel of another test following the agent's
        # conversations does not start them.
        for conversation_id in opened.started:
            httpx.post(f"{origin}/mock/conversations/{conversation_id}/end")


def panel_origin_of(dev: DevMode) -> str:
    parts = urlsplit(dev.panel)
    return f"{parts.scheme}://{parts.netloc}"


def mock_settings(dev: DevMode, **values: Any) -> None:
    response = httpx.put(f"{dev.genesys}/mock/settings", json=values)
    assert response.status_code == 200, response.text


# Bootstrap ------------------------------------------------------------------------------


def test_loading_until_the_app_is_bootstrapped(browser: Browser, dev_mode: DevMode) -> None:
    with desktop(browser, dev_mode.genesys, panel_origin_of(dev_mode), {"stop": "stopped"}) as d:
        expect(d.widget).to_have_attribute("data-lifecycle", "idle")
        d.start()
        expect(d.widget).to_have_attribute("data-lifecycle", "loading")
        expect(d.page.locator("#md-panel-loading")).to_be_visible()
        expect(d.page.locator("#md-panel-loading")).to_have_text("Loading Assist Panel…")
        # The app's page got the hook, in the protocol's envelope, once.
        expect(d.hooks("bootstrap")).to_have_count(1, timeout=WAIT)
        expect(d.hooks("bootstrap")).to_have_attribute("data-protocol", "purecloud-client-apps")
        assert d.widget.get_attribute("data-lifecycle") == "loading"

        d.answer("bootstrapped")
        expect(d.widget).to_have_attribute("data-lifecycle", "ready", timeout=WAIT)
        expect(d.page.locator("#md-panel-loading")).to_be_hidden()
        expect(d.page.locator("#md-lifecycle-note")).to_be_hidden()
        logged = json.loads(d.log("bootstrapped").text_content() or "{}")
        assert logged["protocol"] == "purecloud-client-apps"
        assert logged["protocolAgentName"] == "stand-in"


def test_messages_from_elsewhere_are_ignored(browser: Browser, dev_mode: DevMode) -> None:
    with desktop(browser, dev_mode.genesys, panel_origin_of(dev_mode), {}) as d:
        d.start()
        expect(d.hooks("bootstrap")).to_have_count(1, timeout=WAIT)
        # Not from the frame (the desktop's own window), and not in the protocol: both
        # come before a real message, which the desktop logs; they leave no trace.
        d.page.evaluate("""window.postMessage({action: 'bootstrapped',
                           protocol: 'purecloud-client-apps'}, '*')""")
        d.app().evaluate("window.sendRaw({action: 'bootstrapped'})")
        d.answer("showToast", title="First", message="real")
        expect(d.log()).to_have_count(1, timeout=WAIT)
        expect(d.log("showToast")).to_have_count(1)
        expect(d.widget).to_have_attribute("data-lifecycle", "loading")


@pytest.fixture(scope="module")
def impatient() -> Iterator[str]:
    """The mock Genesys alone, whose desktop waits one second for bootstrapped."""
    with run_mock(bootstrap_timeout_s=1.0) as server:
        yield server.origin


def test_timed_out_when_the_app_never_answers(browser: Browser, impatient: str) -> None:
    panel = urlsplit(PANEL_URL)
    with desktop(browser, impatient, f"{panel.scheme}://{panel.netloc}", {}) as d:
        assert d.page.locator("#md-root").get_attribute("data-bootstrap-timeout-s") == "1.0"
        d.start()
        expect(d.hooks("bootstrap")).to_have_count(1, timeout=WAIT)
        expect(d.widget).to_have_attribute("data-lifecycle", "timed-out", timeout=WAIT)
        expect(d.page.locator("#md-panel-loading")).to_be_hidden()
        expect(d.page.locator("#md-lifecycle-note")).to_be_visible()
        expect(d.page.locator("#md-lifecycle-note")).to_contain_text("did not answer")
        # An answer after the desktop stopped waiting is logged, and changes nothing.
        d.answer("bootstrapped")
        expect(d.log("bootstrapped")).to_have_count(1, timeout=WAIT)
        expect(d.widget).to_have_attribute("data-lifecycle", "timed-out")


def test_a_sign_in_round_trip_keeps_the_app_ready(browser: Browser, dev_mode: DevMode) -> None:
    """The panel's sign-in takes its frame to the mock login host and back: a load elsewhere
    gets no hook, and the page back on the panel's origin gets a new bootstrap.

    (Playwright does not route a redirect's target, so the way back is a navigation the
    test makes from the sign-in page, to the URL the login host would redirect to.)"""
    panel_origin = panel_origin_of(dev_mode)
    with desktop(browser, dev_mode.genesys, panel_origin, ANSWER_ALL) as d:
        d.start()
        expect(d.widget).to_have_attribute("data-lifecycle", "ready", timeout=WAIT)
        mock_settings(dev_mode, signInMode="prompt")
        try:
            query = urlencode({"response_type": "token", "client_id": "assist-panel-dev",
                               "redirect_uri": f"{panel_origin}/panel", "state": "s"})
            d.app().evaluate("(url) => { window.location.href = url; }",
                             f"{dev_mode.genesys}/oauth/authorize?{query}")
            sign_in = d.page.frame_locator("#md-panel").locator("#si-signin")
            expect(sign_in).to_be_visible(timeout=WAIT)
        finally:
            mock_settings(dev_mode, signInMode="auto")
        # The login page loaded in the frame (a hook posted to the panel's origin could
        # not reach it), and the widget stays ready.
        expect(d.widget).to_have_attribute("data-lifecycle", "ready")
        d.app().evaluate("(url) => { window.location.href = url; }",
                         f"{panel_origin}/panel#access_token=t&token_type=bearer&state=s")
        # Back on the panel: a new page, bootstrapped again, and the widget stayed ready.
        expect(d.hooks("bootstrap")).to_have_count(1, timeout=WAIT)
        expect(d.log("bootstrapped")).to_have_count(2, timeout=WAIT)
        expect(d.widget).to_have_attribute("data-lifecycle", "ready")
        assert "#access_token=" in d.app().url


# Stop -------------------------------------------------------------------------------------


def test_end_conversation_ends_it_and_stops_the_app(browser: Browser,
                                                    dev_mode: DevMode) -> None:
    answers = {"bootstrap": "bootstrapped"}
    with desktop(browser, dev_mode.genesys, panel_origin_of(dev_mode), answers) as d:
        conversation_id = d.start()
        expect(d.widget).to_have_attribute("data-lifecycle", "ready", timeout=WAIT)
        end = d.page.locator("#md-end")
        expect(end).to_be_enabled()
        end.click()
        expect(d.hooks("stop")).to_have_count(1, timeout=WAIT)
        expect(d.widget).to_have_attribute("data-lifecycle", "stopping")
        expect(d.page.locator("#md-status")).to_have_text("Conversation ended")
        mocked = httpx.get(f"{dev_mode.genesys}/mock/conversations/{conversation_id}")
        assert mocked.json()["status"] == "disconnected"

        d.answer("stopped")
        expect(d.widget).to_have_attribute("data-lifecycle", "stopped", timeout=WAIT)
        expect(end).to_be_disabled()
        expect(d.page.locator("#md-replay")).to_be_disabled()
        # The stop hook went out once: no second one for the stopped app.
        expect(d.hooks("stop")).to_have_count(1)


def test_a_new_conversation_stops_the_open_one_first(browser: Browser,
                                                     dev_mode: DevMode) -> None:
    with desktop(browser, dev_mode.genesys, panel_origin_of(dev_mode), ANSWER_ALL) as d:
        first = d.start()
        expect(d.widget).to_have_attribute("data-lifecycle", "ready", timeout=WAIT)
        second = d.start()
        assert second != first
        expect(d.widget).to_have_attribute("data-lifecycle", "ready", timeout=WAIT)
        expect(d.log()).to_have_count(3, timeout=WAIT)
        actions = [item.get_attribute("data-action") for item in d.log().all()]
        assert actions == ["bootstrapped", "stopped", "bootstrapped"]
        assert second in (d.page.locator("#md-panel").get_attribute("src") or "")


# What the app asks of the desktop -----------------------------------------------------------


def test_toasts(browser: Browser, dev_mode: DevMode) -> None:
    with desktop(browser, dev_mode.genesys, panel_origin_of(dev_mode), ANSWER_ALL,
                 clock=True) as d:
        d.start()
        expect(d.widget).to_have_attribute("data-lifecycle", "ready", timeout=WAIT)
        toasts = d.page.locator("#md-toasts .md-toast")
        # Without a timeout: it stays while its content is checked, until closed.
        d.answer("showToast", title="Sign in again", message="<b>Session</b> ended",
                 type="error", showCloseButton=True)
        toast = toasts.first
        expect(toast).to_be_visible(timeout=WAIT)
        expect(toast).to_have_attribute("data-type", "error")
        expect(toast.locator(".md-toast__title")).to_have_text("Sign in again")
        # Text, never markup.
        expect(toast.locator(".md-toast__message")).to_have_text("<b>Session</b> ended")
        expect(toast.locator("b")).to_have_count(0)
        toast.locator(".md-toast__close").click()
        expect(toasts).to_have_count(0)

        # With one (in seconds): gone once the page's clock has passed it.
        d.answer("showToast", title="Saved", message="Gone in a minute", type="success",
                 timeout=60)
        expect(toasts).to_have_count(1, timeout=WAIT)
        expect(toasts.first).to_have_attribute("data-type", "success")
        d.page.clock.fast_forward("01:01")
        expect(toasts).to_have_count(0)


def test_a_proposed_message_goes_into_the_reply_box_of_a_chat_only(
        browser: Browser, dev_mode: DevMode) -> None:
    with desktop(browser, dev_mode.genesys, panel_origin_of(dev_mode), ANSWER_ALL) as d:
        reply = d.page.locator("#md-reply")
        d.start("roaming-abroad-messaging")
        expect(d.widget).to_have_attribute("data-lifecycle", "ready", timeout=WAIT)
        expect(reply).to_be_visible()
        reply.fill("Hello world")
        reply.evaluate("(box) => box.setSelectionRange(6, 6)")
        d.answer("proposeInteractionMessage", mode="insert", message="dear ")
        expect(reply).to_have_value("Hello dear world", timeout=WAIT)

        d.start("no-signal-outage")
        expect(d.widget).to_have_attribute("data-lifecycle", "ready", timeout=WAIT)
        expect(reply).to_be_hidden()
        d.answer("proposeInteractionMessage", mode="insert", message="Try a restart")
        # A call has no reply box: the proposal is only logged.
        expect(d.log("proposeInteractionMessage")).to_have_count(2, timeout=WAIT)
        logged = json.loads(d.log("proposeInteractionMessage").last.text_content() or "{}")
        assert logged["mode"] == "insert" and logged["message"] == "Try a restart"
        expect(reply).to_have_value("")
