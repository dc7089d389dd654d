from __future__ import annotations

from server.pipeline.watchdog import Expiry, Watchdog


def _wd() -> Watchdog:
    return Watchdog(100.0, first_token_s=3, idle_s=1, hard_s=10)


def test_first_token_deadline_before_any_text() -> None:
    wd = _wd()
    assert wd.deadline() == 103.0
    assert wd.check(102.9) is None
    assert wd.check(103.0) is Expiry.FIRST_TOKEN


def test_idle_stall_after_text() -> None:
    wd = _wd()
    wd.progress(101.0)
    assert wd.deadline() == 102.0
    assert wd.check(101.5) is None
    assert wd.check(102.0) is Expiry.STALLED


def test_hard_limit_wins_when_earlier() -> None:
    wd = _wd()
    wd.progress(109.5)
    assert wd.deadline() == 110.0
    assert wd.check(110.0) is Expiry.HARD_LIMIT
