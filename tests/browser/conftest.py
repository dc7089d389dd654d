"""Browser tests: Playwright for Python driving Debian's Chromium (never a downloaded one)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

CHROMIUM = os.environ.get("ASSIST_TEST_CHROMIUM", "/usr/bin/chromium")
# Without these, Chromium reaches for Google's hosts at start and is refused.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


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


class DevMode:
    """A running 'assist-panel dev' process and the URLs it printed."""

    def __init__(self, process: subprocess.Popen[str], desktop: str, panel: str) -> None:
        self.process = process
        self.desktop = desktop
        self.panel = panel


@pytest.fixture(scope="session")
def dev_mode() -> Iterator[DevMode]:
    """The real dev command on free loopback ports, read until it prints its URLs."""
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "dev", "--port", "0", "--genesys-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    lines = []
    desktop = panel = ""
    for line in process.stdout:  # blocks on the process's own output: an event, not a sleep
        lines.append(line)
        if match := re.search(r"Panel server:\s+(\S+)", line):
            panel = match.group(1)
        if match := re.search(r"Open the mock Agent Desktop: (\S+)", line):
            desktop = match.group(1)
            break
    if not desktop:
        process.kill()
        pytest.fail("dev mode did not start:\n" + "".join(lines))
    yield DevMode(process, desktop, panel)
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
