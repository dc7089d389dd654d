"""A Genesys token's end, in Chromium against the real dev mode: the platform need not
close a channel's socket when its token expires (the mock's default, ``tokenExpiry``
``silent``: heartbeats go on, no event comes), so the page must move its channel to a
new token before the old one ends, by its own renewal."""

from __future__ import annotations

import httpx
from playwright.sync_api import Browser, Request, expect

from tests.dev_process import run_dev_mode

WAIT = 30_000
CHANNELS = "/api/v2/notifications/channels"


def bearer_of(request: Request) -> str:
    return request.headers.get("authorization", "")


def test_utterances_keep_coming_across_a_silent_token_expiry(browser: Browser) -> None:
    # Tokens of 60 s (the shortest dev mode allows): the page renews at half their life.
    # Its clock is Playwright's, moved past that point instead of waiting 30 s; the old
    # token is then made to end at once, through the mock's control.
    with run_dev_mode("--token-lifetime", "60", "--playback-speed", "20") as dev:
        assert httpx.get(f"{dev.genesys}/mock/settings").json()["tokenExpiry"] == "silent"
        page = browser.new_page()
        page.clock.install()
        page.goto(dev.desktop)
        page.locator("#md-script").select_option("damaged-phone-return")
        with page.expect_request(lambda r: r.method == "POST" and r.url.endswith(CHANNELS),
                                 timeout=WAIT) as first:
            page.locator("#md-start").click()
        old = bearer_of(first.value)
        assert old.startswith("Bearer ")
        panel = page.frame_locator("#md-panel")
        cards = panel.locator(".ap-card")  # one for each customer utterance suggested on
        expect(cards.first).to_be_attached(timeout=WAIT)

        # The page's own renewal: a new sign-in (the token has under a minute left), and
        # the live channel moves to the new token.
        def moved(request: Request) -> bool:
            return (request.method == "PUT" and "/subscriptions" in request.url
                    and bearer_of(request) not in ("", old))

        with page.expect_request(moved, timeout=WAIT) as subscribed:
            page.clock.fast_forward("00:31")
        response = subscribed.value.response()
        assert response is not None and response.status == 200

        # The old token ends: its channel would fall silent, without a word.
        expired = httpx.post(f"{dev.genesys}/mock/tokens/expire",
                             json={"token": old.removeprefix("Bearer ")})
        assert expired.json() == {"expired": 1}
        before = cards.count()
        page.locator("#md-replay").click()  # the call plays again: new utterances
        expect(cards.nth(before)).to_be_attached(timeout=WAIT)
        expect(panel.locator(".ap-status")).to_have_attribute("data-state", "live")
        expect(panel.locator(".ap-signin")).to_be_hidden()
        page.close()
