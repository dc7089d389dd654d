"""``bench/__main__.py``: what a section's record says of its run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.__main__ import run_section
from bench.report import Row, Section


def test_a_section_is_dated_by_its_start_not_its_end() -> None:
    """Regression: each section's "started" was the time it ended, so the docs dated
    a 12-minute run by its last minute."""
    start = datetime(2026, 12, 6, 22, 5, 43, tzinfo=UTC)
    moments = iter([start, start + timedelta(minutes=12)])
    ticks = iter([100.0, 826.8])

    def section() -> Section:
        return Section("capacity", [Row("2 capacity", "streams", "streams", value=1200)],
                       {"held": 1200})

    record = run_section(section, now=lambda: next(moments), clock=lambda: next(ticks))
    assert record["started"] == "2026-12-06T22:05:43+00:00"
    assert record["seconds"] == 726.8
    assert record["data"] == {"held": 1200}
    assert [Row.from_json(r).value for r in record["rows"]] == [1200]
