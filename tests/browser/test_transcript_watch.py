"""watchConversation() (frontend/static/panel/transcript.js) in Chromium against the real
mock Genesys: voice transcripts, messaging, dropped and silent sockets, channel renewal,
token expiry, and the platform refusing.

A test-only harness page (tests/browser/harness/) runs the module and writes what it
reports into lists; the tests read them with Playwright's waiting assertions. The mock
and the harness are real uvicorn servers on loopback ports; the mock's state is changed
on its own event loop.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Route,
    WebSocketRoute,
    expect,
)
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.sync.client import connect

from server.devmode.mocks.genesys import MockGenesysConfig, create_mock_genesys_app
from server.devmode.mocks.genesys.state import MockGenesysState
from tests.checks import wait_until
from tests.servers import listening_socket, serve

ROOT = Path(__file__).resolve().parents[2]
HARNESS_DIR = Path(__file__).resolve().parent / "harness"
HARNESS_PAGE = "/harness/transcript.html"
WAIT_MS = 20_000
HEARTBEAT_S = 0.2
#: The module's timings, scaled to the mock's fast heartbeats.
TIMING = {
    "heartbeatTimeoutMs": 2_000,
    "pingAfterMs": 1_000,
    "watchdogEveryMs": 100,
    "stableAfterMs": 1_000,
    "firstRetryMaxMs": 100,
    "backoffBaseMs": 200,
    "backoffMaxMs": 1_000,
}

T = TypeVar("T")


def _line(speaker: str, text: str, delay_ms: int) -> dict[str, Any]:
    return {"delay_ms": delay_ms, "speaker": speaker, "text": text}


SHORT_CALL: dict[str, Any] = {
    "title": "Short test call",
    "description": "A few lines, played fast.",
    "media": "voice",
    "customer_name": "Casey Customer",
    "lines": [
        _line("customer", "Hello my internet has been down since this morning", 500),
        _line("agent", "I am sorry to hear that let me check your line", 500),
        _line("customer", "The router shows a red light on the front", 500),
        _line("agent", "Thanks that tells me the fibre link is down", 500),
        _line("customer", "Can you send an engineer today", 500),
    ],
}
#: Long enough (about four seconds at playback speed 50) to break things while it plays.
LONG_CALL: dict[str, Any] = {
    "title": "Long test call",
    "description": "Many lines, for dropping sockets and expiring tokens mid-call.",
    "media": "voice",
    "customer_name": "Lee Longcall",
    "lines": [
        _line("customer" if i % 2 == 0 else "agent",
              f"Line {i} of the long call about the {word} on my account", 5_000)
        for i, word in enumerate(
            "bill router phone signal contract refund upgrade modem outage credit "
            "roaming voicemail sim porting data plan charger screen battery invoice "
            "discount address payment password".split())
    ],
}
SHORT_CHAT: dict[str, Any] = {
    "title": "Short test chat",
    "description": "A few web messages, played fast.",
    "media": "message",
    "customer_name": "Mia Messenger",
    "lines": [
        _line("customer", "Hi, my parcel tracking has not moved for three days", 500),
        _line("agent", "Sorry about that, can you give me the order number?", 500),
        _line("customer", "It is BW-20417", 500),
        _line("customer", "I need the phone before Friday", 300),
        _line("agent", "Thanks, I can see it is held at the depot", 500),
    ],
}
LONG_CHAT: dict[str, Any] = {
    "title": "Long test chat",
    "description": "Many web messages, for breaking the channel mid-conversation.",
    "media": "message",
    "customer_name": "Noor Longchat",
    "lines": [
        _line("customer" if i % 3 else "agent", f"Message {i} in the chat about the {word}", 5_000)
        for i, word in enumerate(
            "bill router phone signal contract refund upgrade modem outage credit "
            "roaming voicemail sim porting data plan charger screen battery invoice".split())
    ],
}
SCRIPTS = {"short-call": SHORT_CALL, "long-call": LONG_CALL, "short-chat": SHORT_CHAT,
           "long-chat": LONG_CHAT}


# Servers ------------------------------------------------------------------


class LoopRecorder:
    """Passes everything to an ASGI app and remembers the event loop it runs on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)


@dataclass
class MockGenesys:
    origin: str
    config: MockGenesysConfig
    state: MockGenesysState
    recorder: LoopRecorder
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.origin, timeout=10)

    def on_loop(self, action: Callable[[MockGenesysState], T]) -> T:
        """Run ``action(state)`` on the mock's event loop (the state is not thread-safe)."""
        assert self.recorder.loop is not None, "the mock has served nothing yet"

        async def run() -> T:
            return action(self.state)

        return asyncio.run_coroutine_threadsafe(run(), self.recorder.loop).result(10)

    def sign_in(self) -> str:
        """A token from the mock's real implicit grant (the redirect is read, not followed)."""
        response = self.http.get("/oauth/authorize", params={
            "response_type": "token", "client_id": self.config.client_id,
            "redirect_uri": self.config.panel_url, "state": "test"})
        assert response.status_code == 302, response.text
        fragment = urlsplit(response.headers["location"]).fragment
        return parse_qs(fragment)["access_token"][0]

    def start_conversation(self, script: str) -> str:
        response = self.http.post("/mock/conversations", json={"script": script})
        assert response.status_code == 201, response.text
        conversation_id: str = response.json()["conversationId"]
        return conversation_id

    def wait_for_lines(self, conversation_id: str, count: int) -> None:
        """Block until the conversation has ``count`` final lines (the mock desktop's feed)."""
        url = f"{self.config.ws_origin}/mock/conversations/{conversation_id}/feed"
        lines = 0
        with connect(url, open_timeout=10) as feed:
            while lines < count:
                message = json.loads(feed.recv(timeout=WAIT_MS / 1000))
                lines = 0 if message["type"] == "reset" else lines + (message["type"] == "line")

    def channels_with(self, topic: str) -> list[tuple[str, str]]:
        """(channel id, token) of every channel subscribed to ``topic``."""
        return self.on_loop(
            lambda state: [(c.id, c.token) for c in state.channels.values() if topic in c.topics])


@pytest.fixture(scope="module")
def harness_origin() -> Iterator[str]:
    """The product's static files and the test harness, from one loopback origin."""
    app = Starlette(routes=[
        Mount("/static", StaticFiles(directory=ROOT / "frontend" / "static")),
        Mount("/harness", StaticFiles(directory=HARNESS_DIR)),
    ])
    with serve(app) as origin:
        yield origin


@pytest.fixture(scope="module")
def scripts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("scripts")
    for name, script in SCRIPTS.items():
        (directory / f"{name}.json").write_text(json.dumps(script), encoding="utf-8")
    return directory


@contextmanager
def running_mock(harness_origin: str, scripts_dir: Path,
                 **overrides: Any) -> Iterator[MockGenesys]:
    sock = listening_socket()
    origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = MockGenesysConfig(public_origin=origin, panel_url=harness_origin + HARNESS_PAGE,
                               scripts_dir=scripts_dir, playback_speed=50,
                               heartbeat_s=HEARTBEAT_S, **overrides)
    app = create_mock_genesys_app(config)
    recorder = LoopRecorder(app)
    with serve(recorder, sock=sock) as url:
        mock = MockGenesys(url, config, app.state.mock_genesys, recorder)
        try:
            yield mock
        finally:
            mock.http.close()


@pytest.fixture(scope="module")
def mock(harness_origin: str, scripts_dir: Path) -> Iterator[MockGenesys]:
    # An expired token's channel socket closes (by default it falls silent): the token
    # tests here watch the watcher react to that close.
    with running_mock(harness_origin, scripts_dir, token_expiry="close") as running:
        yield running


# The harness page -----------------------------------------------------------


@dataclass
class Harness:
    page: Page
    console: list[str]

    @property
    def status(self) -> Locator:
        return self.page.locator("#status")

    @property
    def items(self) -> Locator:
        return self.page.locator("#utterances li")

    @property
    def auth_requests(self) -> Locator:
        return self.page.locator("#auth-requests li")

    def utterances(self) -> list[dict[str, str]]:
        found: list[dict[str, str]] = self.items.evaluate_all(
            "items => items.map(i => ({id: i.dataset.id, speaker: i.dataset.speaker,"
            " media: i.dataset.media, live: i.dataset.live, text: i.textContent}))")
        return found

    def statuses(self) -> list[str]:
        return self.page.locator("#statuses li").all_inner_texts()

    def media(self) -> list[str]:
        return self.page.locator("#media li").all_inner_texts()

    def refusals(self) -> list[list[dict[str, Any]]]:
        return [json.loads(text) for text in self.page.locator("#refusals li").all_inner_texts()]

    def give_token(self, token: str) -> None:
        self.page.locator("#token-input").fill(token)
        self.page.locator("#token-give").click()

    def assert_nothing_leaked(self, secrets: list[str]) -> None:
        """No console message carries a token or any transcript text."""
        for message in self.console:
            for secret in secrets:
                assert secret not in message, f"leaked into the console: {message!r}"


@pytest.fixture
def new_harness(browser: Browser, harness_origin: str) -> Iterator[Callable[..., Harness]]:
    contexts = []

    def open_page(mock: MockGenesys, conversation_id: str, token: str, *,
                  timing: dict[str, int] | None = None,
                  before: Callable[[Page], None] | None = None) -> Harness:
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        console: list[str] = []
        page.on("console", lambda message: console.append(_console_text(message)))
        page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
        if before is not None:
            before(page)
        query = urlencode({"api": mock.origin, "conversation": conversation_id,
                           "user": mock.config.agent_user_id,
                           "timing": json.dumps(timing or TIMING)})
        page.goto(f"{harness_origin}{HARNESS_PAGE}?{query}#token={token}")
        return Harness(page, console)

    yield open_page
    for context in contexts:
        context.close()


def _console_text(message: ConsoleMessage) -> str:
    return f"{message.type}: {message.text}"


def assert_in_script_order(got: list[dict[str, str]], script: dict[str, Any]) -> None:
    """Each utterance is a line of the script, once, in the script's order, rightly attributed."""
    lines = script["lines"]
    texts = [line["text"] for line in lines]
    assert len({u["id"] for u in got}) == len(got), "an utterance id came twice"
    position = -1
    for utterance in got:
        assert utterance["text"] in texts[position + 1:], f"out of order or twice: {utterance}"
        position = texts.index(utterance["text"], position + 1)
        assert utterance["speaker"] == lines[position]["speaker"]


def secrets_of(script: dict[str, Any], *tokens: str) -> list[str]:
    return [*tokens, *(line["text"] for line in script["lines"])]


# Voice ----------------------------------------------------------------------


def test_voice_final_utterances_arrive_once_each_in_order(
        mock: MockGenesys, new_harness: Callable[..., Harness]) -> None:
    conversation_id = mock.start_conversation("short-call")
    token = mock.sign_in()
    harness = new_harness(mock, conversation_id, token)

    expect(harness.status).to_have_attribute("data-state", "ended", timeout=WAIT_MS)
    got = harness.utterances()
    # Interim transcripts are not utterances: exactly the final lines, once each.
    assert [(u["speaker"], u["text"]) for u in got] == [
        (line["speaker"], line["text"]) for line in SHORT_CALL["lines"]]
    assert {u["media"] for u in got} == {"voice"}
    assert len({u["id"] for u in got}) == len(got)
    assert harness.statuses() == ["connecting", "live", "ended"]
    harness.assert_nothing_leaked(secrets_of(SHORT_CALL, token))


def test_ended_is_not_final_when_the_conversation_carries_on(
        mock: MockGenesys, new_harness: Callable[..., Harness]) -> None:
    """After SESSION_ENDED the watcher keeps its channel: a new session goes live again."""
    conversation_id = mock.start_conversation("short-call")
    token = mock.sign_in()
    harness = new_harness(mock, conversation_id, token)
    expect(harness.status).to_have_attribute("data-state", "ended", timeout=WAIT_MS)

    # The mock replays the script: a new transcription session, new utterance ids.
    assert mock.http.post(f"/mock/conversations/{conversation_id}/play").status_code == 202
    lines = SHORT_CALL["lines"]
    expect(harness.items).to_have_count(2 * len(lines), timeout=WAIT_MS)
    expect(harness.page.locator("#statuses li")).to_have_count(5, timeout=WAIT_MS)
    assert harness.statuses() == ["connecting", "live", "ended", "live", "ended"]
    assert [u["text"] for u in harness.utterances()] == [line["text"] for line in lines] * 2


def test_dropped_socket_opens_a_new_channel_and_lines_keep_coming(
        mock: MockGenesys, new_harness: Callable[..., Harness]) -> None:
    conversation_id = mock.start_conversation("long-call")
    topic = f"v2.conversations.{conversation_id}.transcription"
    token = mock.sign_in()
    harness = new_harness(mock, conversation_id, token)
    expect(harness.items.nth(1)).to_be_attached(timeout=WAIT_MS)

    dropped = [channel_id for channel_id, _ in mock.channels_with(topic)]
    assert len(dropped) == 1
    mock.on_loop(lambda state: state.remove_channel(dropped[0], 1001, "Dropped by the test"))

    # Lines arrive on the second live channel, until the end.
    expect(harness.items.and_(harness.page.locator("[data-live='2']")).first).to_be_attached(
        timeout=WAIT_MS)
    expect(harness.status).to_have_attribute("data-state", "ended", timeout=WAIT_MS)
    assert harness.statuses() == ["connecting", "live", "reconnecting", "live", "ended"]
    assert_in_script_order(harness.utterances(), LONG_CALL)
    assert [c for c, _ in mock.channels_with(topic) if c not in dropped], "no new channel"
    harness.assert_nothing_leaked(secrets_of(LONG_CALL, token))


def test_a_dropped_socket_connects_again_to_its_channel_while_it_lasts(
        mock: MockGenesys, new_harness: Callable[..., Harness]) -> None:
    """Regression: every drop made a new channel, and Genesys keeps 20 a user and app,
    dropping the oldest for a 21st: the live channel of another interaction."""
    conversation_id = mock.start_conversation("long-call")
    topic = f"v2.conversations.{conversation_id}.transcription"
    token = mock.sign_in()
    harness = new_harness(mock, conversation_id, token)
    expect(harness.items.nth(1)).to_be_attached(timeout=WAIT_MS)

    (channel_id, _), = mock.channels_with(topic)
    mock.on_loop(lambda state: state.channels[channel_id].close(1001, "Dropped by the test"))

    expect(harness.items.and_(harness.page.locator("[data-live='2']")).first).to_be_attached(
        timeout=WAIT_MS)
    expect(harness.status).to_have_attribute("data-state", "ended", timeout=WAIT_MS)
    assert harness.statuses() == ["connecting", "live", "reconnecting", "live", "ended"]
    assert_in_script_order(harness.utterances(), LONG_CALL)
    assert [c for c, _ in mock.channels_with(topic)] == [channel_id], "a channel was spent"
    harness.assert_nothing_leaked(secrets_of(LONG_CALL, token))


def test_silent_socket_is_treated_as_dead(
        mock: MockGenesys, new_harness: Callable[..., Harness]) -> None:
    """A socket that stays open but stops delivering (no heartbeats) is replaced."""
    conversation_id = mock.start_conversation("long-call")
    token = mock.sign_in()
    silenced: list[bool] = []
    sockets: list[WebSocketRoute] = []

    def relay(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        first = not sockets
        sockets.append(ws)
        server.on_message(lambda message: None if first and silenced else ws.send(message))

    harness = new_harness(
        mock, conversation_id, token,
        timing={**TIMING, "heartbeatTimeoutMs": 1_000, "pingAfterMs": 500},
        before=lambda page: page.route_web_socket(re.compile(r"/channels/"), relay))
    expect(harness.items.nth(1)).to_be_attached(timeout=WAIT_MS)
    silenced.append(True)

    expect(harness.items.and_(harness.page.locator("[data-live='2']")).first).to_be_attached(
        timeout=WAIT_MS)
    expect(harness.status).to_have_attribute("data-state", "ended", timeout=WAIT_MS)
    assert len(sockets) == 2
    assert harness.statuses() == ["connecting", "live", "reconnecting", "live", "ended"]
    assert_in_script_order(harness.utterances(), LONG_CALL)


def test_channel_is_renewed_before_it_expires_without_gaps_or_duplicates(
        harness_origin: str, scripts_dir: Path, new_harness: Callable[..., Harness]) -> None:
    with running_mock(harness_origin, scripts_dir, channel_lifetime_s=2) as short_lived:
        conversation_id = short_lived.start_conversation("long-call")
        token = short_lived.sign_in()
        created: list[str] = []

        def count_channels(page: Page) -> None:
            page.on("request", lambda r: created.append(r.url) if r.method == "POST"
                    and r.url.endswith("/api/v2/notifications/channels") else None)

        harness = new_harness(short_lived, conversation_id, token,
                              timing={**TIMING, "renewBeforeExpiryMs": 1_000,
                                      "minChannelLifeMs": 300},
                              before=count_channels)
        expect(harness.status).to_have_attribute("data-state", "ended", timeout=WAIT_MS)
        # A new channel was live before the old one was let go: nothing lost, nothing twice.
        got = harness.utterances()
        assert [u["text"] for u in got] == [line["text"] for line in LONG_CALL["lines"]]
        assert len({u["id"] for u in got}) == len(got)
        assert harness.statuses() == ["connecting", "live", "ended"]
        assert len(created) >= 3


def test_network_errors_are_retried_with_backoff(
        mock: MockGenesys, new_harness: Callable[..., Harness]) -> None:
    conversation_id = mock.start_conversation("short-call")
    token = mock.sign_in()
    attempts: list[str] = []

    def flaky(route: Route) -> None:
        if route.request.method != "POST":
            route.fallback()
            return
        attempts.append(route.request.url)
        if len(attempts) <= 2:
            route.abort("connectionrefused")
        else:
            route.fallback()

    harness = new_harness(mock, conversation_id, token,
                          before=lambda page: page.route("**/api/v2/notifications/channels",
                                                         flaky))
    expect(harness.status).to_have_attribute("data-state", "ended", timeout=WAIT_MS)
    assert len(attempts) == 3
    assert harness.statuses() == ["connecting", "reconnecting", "live", "ended"]
    assert [u["text"] for u in harness.utterances()] == [
        line["text"] for line in SHORT_CALL["lines"]]
    harness.assert_nothing_leaked(secrets_of(SHORT_CALL, token))


def test_every_topic_refused_goes_offline_without_retrying(
        mock: MockGenesys, new_harness: Callable[..., Harness], harness_origin: str) -> None:
    """A platform that refuses the whole subscription, ignoreErrors or not, is asked
    again one topic at a time; when it refuses each, retrying cannot help."""
    conversation_id = mock.start_conversation("short-call")
    token = mock.sign_in()
    asked: list[tuple[str, str]] = []
    cors = {"Access-Control-Allow-Origin": harness_origin,
            "Access-Control-Allow-Methods": "PUT, POST", "Access-Control-Allow-Headers":
            "Authorization, Content-Type, Accept"}

    def refuse(route: Route) -> None:
        if route.request.method == "OPTIONS":
            route.fulfill(status=204, headers=cors)
            return
        topics = [t["id"] for t in json.loads(route.request.post_data or "[]")]
        asked.append((route.request.method, " ".join(topics)))
        route.fulfill(status=403, headers=cors, content_type="application/json",
                      body=json.dumps({"status": 403, "code": "missing.permissions",
                                       "message": "Missing permission"}))

    def before(page: Page) -> None:
        page.clock.install()
        page.route(re.compile(r".*/subscriptions(\?.*)?$"), refuse)

    harness = new_harness(mock, conversation_id, token, before=before)
    expect(harness.status).to_have_attribute("data-state", "offline", timeout=WAIT_MS)
    voice = f"v2.conversations.{conversation_id}.transcription"
    user = f"v2.users.{mock.config.agent_user_id}.conversations"
    subscriptions = [("PUT", f"{voice} {user}"), ("POST", voice), ("POST", user)]
    assert asked == subscriptions
    assert harness.statuses() == ["connecting", "offline"]
    # "offline" is final: the watcher stopped. Past the longest backoff, nothing more was
    # asked (a retry shows "reconnecting" the moment its timer fires).
    harness.page.clock.fast_forward(TIMING["backoffMaxMs"] * 5)
    assert harness.statuses() == ["connecting", "offline"]
    assert asked == subscriptions
    assert harness.media() == ["voice"]  # read from the conversation before subscribing
    assert harness.refusals() == [[
        {"id": voice, "reason": "", "missingPermissions": ["conversation:transcription:view"]},
        {"id": user, "reason": "", "missingPermissions": []}]]
    assert any("refused every topic" in line for line in harness.console
               if line.startswith("warning"))
    harness.assert_nothing_leaked([token])


# Messaging ------------------------------------------------------------------


def test_messaging_messages_arrive_once_each_in_order(
        mock: MockGenesys, new_harness: Callable[..., Harness]) -> None:
    conversation_id = mock.start_conversation("short-chat")
    token = mock.sign_in()
    harness = new_harness(mock, conversation_id, token)

    # Every event lists all the messages so far: each one still comes out once.
    expect(harness.items).to_have_count(len(SHORT_CHAT["lines"]), timeout=WAIT_MS)
    expect(harness.items.last).to_have_text(SHORT_CHAT["lines"][-1]["text"])
    got = harness.utterances()
    assert [(u["speaker"], u["text"]) for u in got] == [
        (line["speaker"], line["text"]) for line in SHORT_CHAT["lines"]]
    assert {u["media"] for u in got} == {"message"}
    assert len({u["id"] for u in got}) == len(got)
    assert harness.statuses() == ["connecting", "live"]
    harness.assert_nothing_leaked(secrets_of(SHORT_CHAT, token))


def test_messages_written_before_the_watch_started_come_first(
        mock: MockGenesys, new_harness: Callable[..., Harness]) -> None:
    conversation_id = mock.start_conversation("short-chat")
    assert mock.http.post(f"/mock/conversations/{conversation_id}/play").status_code == 202
    lines = SHORT_CHAT["lines"]
    mock.wait_for_lines(conversation_id, len(lines))
    token = mock.sign_in()
    bulk: list[str] = []

    def count_bulk(page: Page) -> None:
        page.on("request", lambda r: bulk.append(r.url) if r.url.endswith("/bulk") else None)

    harness = new_harness(mock, conversation_id, token, before=count_bulk)
    expect(harness.items).to_have_count(len(lines), timeout=WAIT_MS)
    assert [(u["speaker"], u["text"]) for u in harness.utterances()] == [
        (line["speaker"], line["text"]) for line in lines]
    assert len(bulk) == 1  # the conversation's messages so far, fetched at once


def test_failed_message_fetches_are_retried_and_order_is_kept(
        mock: MockGenesys, new_harness: Callable[..., Harness], harness_origin: str) -> None:
    conversation_id = mock.start_conversation("short-chat")
    token = mock.sign_in()
    failed: list[str] = []

    def flaky(route: Route) -> None:
        # Single fetches fail until a bulk one has been tried, and the first bulk one
        # fails too. Failing only the first single fetch left a bulk fetch to chance:
        # a retry that came before the next message fetched one text alone again.
        method = route.request.method
        if (method == "GET" and "POST" not in failed) or (method == "POST"
                                                          and "POST" not in failed):
            failed.append(method)
            route.fulfill(status=503, headers={"Access-Control-Allow-Origin": harness_origin},
                          content_type="application/json", body='{"status": 503}')
        else:
            route.fallback()

    harness = new_harness(mock, conversation_id, token, before=lambda p: p.route(
        re.compile(r"/api/v2/conversations/messages/[^/]+/messages/"), flaky))
    expect(harness.items).to_have_count(len(SHORT_CHAT["lines"]), timeout=WAIT_MS)
    assert [u["text"] for u in harness.utterances()] == [
        line["text"] for line in SHORT_CHAT["lines"]]
    assert failed[0] == "GET" and failed[-1] == "POST" and failed.count("POST") == 1
    assert harness.statuses() == ["connecting", "live"]


@pytest.mark.parametrize("breakage", ["dropped socket", "expired token"])
def test_messaging_catches_up_on_messages_written_while_away(
        breakage: str, mock: MockGenesys, new_harness: Callable[..., Harness]) -> None:
    conversation_id = mock.start_conversation("long-chat")
    topic = f"v2.users.{mock.config.agent_user_id}.conversations"
    token = mock.sign_in()
    bulk: list[str] = []

    def count_bulk(page: Page) -> None:
        page.on("request", lambda r: bulk.append(r.url) if r.url.endswith("/bulk") else None)

    harness = new_harness(mock, conversation_id, token, before=count_bulk)
    expect(harness.items.nth(1)).to_be_attached(timeout=WAIT_MS)

    fresh = ""
    if breakage == "dropped socket":
        for channel_id, channel_token in mock.channels_with(topic):
            if channel_token == token:
                mock.on_loop(functools.partial(MockGenesysState.remove_channel,
                                               channel_id=channel_id, code=1001,
                                               reason="Dropped"))
    else:
        mock.on_loop(lambda state: state.expire_token(token))
        expect(harness.auth_requests).to_have_count(1, timeout=WAIT_MS)
        # The chat goes on while the panel waits for a token: two more messages are
        # written that no channel delivers; they must come from the catch-up.
        seen = harness.items.count()
        mock.wait_for_lines(conversation_id, seen + 2)
        expect(harness.items).to_have_count(seen)
        fresh = mock.sign_in()
        harness.give_token(fresh)

    # Everything the platform has is there in the end: nothing lost, nothing twice.
    expect(harness.items).to_have_count(len(LONG_CHAT["lines"]), timeout=WAIT_MS)
    got = harness.utterances()
    assert [(u["speaker"], u["text"]) for u in got] == [
        (line["speaker"], line["text"]) for line in LONG_CHAT["lines"]]
    assert len({u["id"] for u in got}) == len(got)
    assert harness.statuses() == ["connecting", "live", "reconnecting", "live"]
    assert [u for u in got if u["live"] == "2"], "nothing came after the channel was replaced"
    if fresh:
        assert bulk, "the missed messages were not fetched in bulk"
    harness.assert_nothing_leaked(secrets_of(LONG_CHAT, token, *([fresh] if fresh else [])))


# Tokens ---------------------------------------------------------------------


def test_token_expiry_asks_for_a_fresh_token_and_the_feed_resumes(
        mock: MockGenesys, new_harness: Callable[..., Harness]) -> None:
    conversation_id = mock.start_conversation("long-call")
    topic = f"v2.conversations.{conversation_id}.transcription"
    token = mock.sign_in()
    harness = new_harness(mock, conversation_id, token)
    expect(harness.items.nth(1)).to_be_attached(timeout=WAIT_MS)

    mock.on_loop(lambda state: state.expire_token(token))
    expect(harness.auth_requests).to_have_count(1, timeout=WAIT_MS)
    expect(harness.status).to_have_attribute("data-state", "reconnecting")

    fresh = mock.sign_in()
    harness.give_token(fresh)
    expect(harness.items.and_(harness.page.locator("[data-live='2']")).first).to_be_attached(
        timeout=WAIT_MS)
    expect(harness.status).to_have_attribute("data-state", "ended", timeout=WAIT_MS)
    assert harness.statuses() == ["connecting", "live", "reconnecting", "live", "ended"]
    assert_in_script_order(harness.utterances(), LONG_CALL)
    expect(harness.auth_requests).to_have_count(1)
    assert fresh in [t for _, t in mock.channels_with(topic)], "no channel with the fresh token"
    harness.assert_nothing_leaked(secrets_of(LONG_CALL, token, fresh))


def test_a_new_token_moves_the_live_channel_to_it_before_the_old_one_ends(
        mock: MockGenesys, new_harness: Callable[..., Harness]) -> None:
    """Regression: the page signed in again before its token ended, but the live channel
    stayed on the old token, and a channel stops delivering when its token expires
    (the platform need not say so): now it moves to the new one, without a gap."""
    conversation_id = mock.start_conversation("long-call")
    topic = f"v2.conversations.{conversation_id}.transcription"
    token = mock.sign_in()
    harness = new_harness(mock, conversation_id, token)
    expect(harness.items.nth(1)).to_be_attached(timeout=WAIT_MS)

    fresh = mock.sign_in()
    harness.give_token(fresh)  # no auth request pending: the page's own renewal
    def sockets(of: str) -> int:
        return mock.on_loop(lambda state: sum(
            len(c.connections) for c in state.channels.values()
            if c.token == of and topic in c.topics))

    # Live on the new token, the old channel's socket closed by the page.
    wait_until(lambda: sockets(fresh) == 1 and sockets(token) == 0,
               message="the live channel did not move to the new token")
    mock.on_loop(lambda state: state.expire_token(token))  # the old one ends

    expect(harness.status).to_have_attribute("data-state", "ended", timeout=WAIT_MS)
    assert harness.statuses() == ["connecting", "live", "ended"]
    expect(harness.auth_requests).to_have_count(0)
    assert_in_script_order(harness.utterances(), LONG_CALL)
    harness.assert_nothing_leaked(secrets_of(LONG_CALL, token, fresh))


def test_refused_re_sign_in_ends_unauthorized(
        mock: MockGenesys, new_harness: Callable[..., Harness]) -> None:
    conversation_id = mock.start_conversation("short-call")
    token = mock.sign_in()
    mock.on_loop(lambda state: state.expire_token(token))
    harness = new_harness(mock, conversation_id, token)

    expect(harness.auth_requests).to_have_count(1, timeout=WAIT_MS)
    harness.page.locator("#token-refuse").click()
    expect(harness.status).to_have_attribute("data-state", "unauthorized", timeout=WAIT_MS)
    assert harness.statuses() == ["connecting", "reconnecting", "unauthorized"]
    assert harness.utterances() == []
    harness.assert_nothing_leaked([token])
