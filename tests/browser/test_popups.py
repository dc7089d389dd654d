"""The popup wait used by the sign-in tests."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.browser.popups import wait_until_closed


def test_a_popup_that_closed_before_the_wait_does_not_time_out(browser: Browser) -> None:
    # What broke in CI: the popup handed its answer over and closed while the test
    # thread was descheduled, and wait_for_event("close") waited 30 s for a past event.
    page = browser.new_page()
    page.close()
    wait_until_closed(page, 1_000)


def test_a_popup_that_stays_open_fails_with_where_it_stopped(browser: Browser) -> None:
    page = browser.new_page()
    page.set_content("<p>Sign in to continue</p>")
    with pytest.raises(AssertionError, match="Sign in to continue"):
        wait_until_closed(page, 200)
    page.context.close()
