"""Checks the tests share: waiting on a condition with a deadline, reading one sample of
the Prometheus text, and the contract every suggestion stream keeps."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import anyio
from prometheus_client.parser import text_string_to_metric_families


def wait_until(condition: Callable[[], bool], timeout: float = 20,
               message: str = "condition never held", every_s: float = 0.02) -> None:
    """Poll ``condition`` (server state read from outside) until it holds; fail with
    ``message`` after ``timeout`` seconds (a bound for a hang, never a measure)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(every_s)


async def until(condition: Callable[[], bool], within_s: float = 20,
                message: str = "condition never held") -> None:
    """``wait_until`` for async tests: yields to the event loop between polls, at most
    ``within_s / 0.01`` times (each poll waits at least 10 ms, so at least that long)."""
    for _ in range(int(within_s / 0.01)):
        if condition():
            return
        await anyio.sleep(0.01)
    assert condition(), message


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name{labels}`` in Prometheus text, None when absent
    (parsed, so the text's layout and label order do not matter)."""
    wanted = labels.items()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.items() == wanted:
                return float(sample.value)
    return None


def check_stream_contract(names: Sequence[str]) -> None:
    """The order every stream keeps, whatever failed: ``suggestion`` first, at most one
    ``fallback``, and exactly one ``done``, last."""
    assert names[0] == "suggestion", names
    assert names.count("done") == 1 and names[-1] == "done", names
    assert names.count("fallback") <= 1, names
