"""Browser tests: Playwright for Python driving Debian's Chromium (never a downloaded one)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.dev_process import DevMode, run_dev_mode

CHROMIUM = os.environ.get("ASSIST_TEST_CHROMIUM", "/usr/bin/chromium")
# Without these, Chromium reaches for Google's hosts at start and is refused.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage",
                 # The Genesys desktop stand-in (https://apps.mypurecloud.com, served by
                 # Playwright) frames the loopback panel: Local Network Access would refuse a
                 # public page framing a local one. In production the panel is public too.
                 "--disable-features=LocalNetworkAccessChecks,PrivateNetworkAccessForNavigations"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" in str(item.path):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/test, which installs Debian's chromium")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def dev_mode() -> Iterator[DevMode]:
    """The real dev command on free loopback ports, shared by the browser tests."""
    # One scripted agent asks far more than an agent could here (60 questions at once in
    # test_feed): the per-user rate limit is off for the page tests and tested on its own.
    # The scripts play four times faster than a real call: the tests wait on what the
    # page shows, never on the pace of speech.
    with run_dev_mode("--playback-speed", "4",
                      env={"ASSIST_RATE_LIMIT_PER_MINUTE": "0",
                           "ASSIST_SIGNIN_RATE_LIMIT_PER_MINUTE": "0"}) as running:
        yield running
