"""Waiting for a sign-in popup to close, whenever it closed.

``Page.wait_for_event("close")`` only sees a close still to come: a popup that
handed its answer over and closed before the wait was set up (the test thread
was descheduled under load) makes it time out. Its listener is registered when
the call is made, with no dispatch in between, so checking ``is_closed()`` first
leaves no gap.
"""

from __future__ import annotations

from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout


def wait_until_closed(popup: Page, timeout: float) -> None:
    """Return once ``popup`` is closed; fail with where it stopped if it stays open."""
    if popup.is_closed():
        return
    try:
        popup.wait_for_event("close", timeout=timeout)
    except PlaywrightTimeout:
        raise AssertionError(
            f"the sign-in popup stayed open at {popup.url}: "
            f"{popup.locator('body').inner_text()[:500]!r}") from None
