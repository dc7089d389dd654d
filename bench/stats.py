"""Percentiles and summaries of measured samples (no NumPy needed)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation; None for no samples."""
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    data = sorted(values)
    if not data:
        return None
    rank = (len(data) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return data[low] + (data[high] - data[low]) * (rank - low)


def summary(values: Iterable[float],
            quantiles: Sequence[float] = (50, 95, 99)) -> dict[str, float | int | None]:
    """``{"n", "min", "max", "mean", "p50", "p95", "p99"}`` of ``values``."""
    data = sorted(values)
    out: dict[str, float | int | None] = {"n": len(data)}
    out["min"] = data[0] if data else None
    out["max"] = data[-1] if data else None
    out["mean"] = sum(data) / len(data) if data else None
    for q in quantiles:
        out[f"p{q:g}"] = percentile(data, q)
    return out
