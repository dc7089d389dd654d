"""Rows of the results table, shared by every benchmark, and how they print."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    """One line of the table: a percentile pair, a single value, or both.

    ``tail`` names the high percentile in ``p_tail`` (``"p99"``, or ``"p95"`` for frame
    times). ``ratio`` is the peer's figure over the panel's where both were measured.
    """

    item: str
    case: str
    unit: str
    p50: float | None = None
    p_tail: float | None = None
    tail: str = "p99"
    value: float | None = None
    ratio: float | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        return cls(**data)


@dataclass
class Section:
    """What one benchmark returns: its table rows and its raw figures (saved as JSON)."""

    name: str
    rows: list[Row]
    data: dict[str, Any]
