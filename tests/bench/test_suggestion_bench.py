"""bench/suggestion.py at a tiny size: real checkouts' servers, real streams."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import suggestion
from bench.procs import Cpus

ROOT = Path(__file__).resolve().parents[2]


def test_each_checkout_is_timed_to_its_suggestion_event(tmp_path: Path) -> None:
    # With a pause before each request, as the idle-core comparison runs it.
    results = suggestion.compare([ROOT], requests=3, work=tmp_path, rounds=1, pause_s=0.01)
    result = results[str(ROOT)]
    assert result["ms"]["n"] == 3 and len(result["samples_ms"]) == 3
    # Physical facts only: a time is positive and the quantiles are ordered.
    assert all(v > 0 for v in result["samples_ms"])
    assert result["ms"]["p50"] <= result["ms"]["p99"]
    json.dumps(results)  # what main() saves


def test_main_writes_where_it_is_told(tmp_path: Path) -> None:
    out = tmp_path / "idle.json"
    assert suggestion.main(["--requests", "2", "--pause-ms", "5", "--out", str(out),
                            str(ROOT)]) == 0
    assert json.loads(out.read_text())[str(ROOT)]["ms"]["n"] == 4  # two rounds of 2


def test_a_negative_pause_is_refused() -> None:
    with pytest.raises(SystemExit) as raised:
        suggestion.main(["--pause-ms", "-1", str(ROOT)])
    assert raised.value.code == 2


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to split")
def test_the_client_runs_off_the_servers_core_and_gets_its_cores_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A client on the server's core took it from the server at times, and the samples.
    before = os.sched_getaffinity(0)
    seen: list[tuple[set[int], int | None]] = []

    def rounds(checkouts: list[Path], requests: int, work: Path, count: int,
               pause_s: float, core: int | None) -> dict[str, object]:
        seen.append((os.sched_getaffinity(0), core))
        raise RuntimeError("a server did not start")

    monkeypatch.setattr(suggestion, "_rounds", rounds)
    with pytest.raises(RuntimeError):
        suggestion.compare([ROOT], requests=1, work=tmp_path)
    [(client, core)] = seen
    server = Cpus.split().server
    assert core in server and core not in client and client == before - server
    assert os.sched_getaffinity(0) == before
