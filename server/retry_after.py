"""Reading an upstream's ``Retry-After`` (Genesys, a model service)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class _Answer(Protocol):
    @property
    def headers(self) -> Mapping[str, str]: ...


#: The longest wait read from a ``Retry-After``: a day. A longer one ("inf", "1e999",
#: which float() reads as infinity) is read as this, so that every caller can compare,
#: round and write back what it gets (math.ceil(inf) raises OverflowError).
MAX_SECONDS = 86_400.0


def retry_after_seconds(response: _Answer) -> float | None:
    """``Retry-After`` in seconds (the delta form, as Genesys and model services send
    it), from 0 to :data:`MAX_SECONDS`; None when absent or not a number."""
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    if seconds != seconds:  # NaN is no answer
        return None
    return min(max(0.0, seconds), MAX_SECONDS)
