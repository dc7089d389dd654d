"""Reading an upstream's ``Retry-After`` (Genesys, a model service)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class _Answer(Protocol):
    @property
    def headers(self) -> Mapping[str, str]: ...


def retry_after_seconds(response: _Answer) -> float | None:
    """``Retry-After`` in seconds (the delta form, as Genesys and model services send
    it), never negative; None when absent or not a number."""
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer
