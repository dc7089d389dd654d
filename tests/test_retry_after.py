"""Reading Retry-After: one reader for Genesys and the model service."""

from __future__ import annotations

import httpx
import pytest

from server.retry_after import retry_after_seconds


@pytest.mark.parametrize(("header", "seconds"), [
    ("3", 3.0), (" 2.5 ", 2.5), ("0", 0.0), ("-4", 0.0),
    ("", None), ("soon", None), ("Wed, 21 Oct 2026 07:28:00 GMT", None), ("nan", None),
    # Finite and at most a day: math.ceil(inf) raised OverflowError in its callers.
    ("inf", 86_400.0), ("1e999", 86_400.0), ("Infinity", 86_400.0), ("1e9", 86_400.0),
    ("-inf", 0.0),
])
def test_retry_after_in_seconds(header: str, seconds: float | None) -> None:
    response = httpx.Response(429, headers={"Retry-After": header})
    assert retry_after_seconds(response) == seconds


def test_no_header_is_no_answer() -> None:
    assert retry_after_seconds(httpx.Response(503)) is None
