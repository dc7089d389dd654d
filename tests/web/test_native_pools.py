"""One thread a native pool in each worker (server/web/native_pools.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.web.native_pools import POOL_SIZES, one_thread_each
from tests.serve_process import free_port, running_serve, serve_env


def test_each_pool_is_asked_for_one_thread_and_an_operators_value_stands() -> None:
    environ = {"OPENBLAS_NUM_THREADS": "4"}
    one_thread_each(environ)
    assert environ == {"OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": "1",
                       "MKL_NUM_THREADS": "1"}


def _env(kb: Path, **extra: str) -> dict[str, str]:
    env = serve_env(free_port(), kb, "http://127.0.0.1:9", 5, ASSIST_GENERATOR="extractive",
                    **extra)
    for name in POOL_SIZES:
        if name not in extra:
            env.pop(name, None)  # as a host that sets none of them starts it
    return env


def _threads(pid: int) -> list[str]:
    """The names of a process's threads."""
    tasks = Path(f"/proc/{pid}/task")
    return sorted((tasks / task / "comm").read_text().strip() for task in os.listdir(tasks))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                    reason="on one core OpenBLAS starts no thread of its own anyway")
def test_serve_starts_no_blas_threads_of_its_own(sample_kb_path: Path) -> None:
    # On a machine of N cores numpy's OpenBLAS would start N - 1 threads at import, in
    # every worker: the worker's threads are those of one asked for one thread.
    seen = []
    for extra in ({}, {"OPENBLAS_NUM_THREADS": "1"}):
        with running_serve([], _env(sample_kb_path, **extra)) as serve:
            serve.wait_for("Uvicorn running on")
            seen.append(_threads(serve.process.pid))
    assert seen[0] == seen[1]


def test_workers_inherit_one_thread_a_pool(sample_kb_path: Path) -> None:
    with running_serve(["--workers", "2"], _env(sample_kb_path)) as serve:
        serve.wait_for("accepting connections", count=2)
        children = Path(f"/proc/{serve.process.pid}/task/{serve.process.pid}/children")
        workers = [int(pid) for pid in children.read_text().split()]
        assert len(workers) >= 2
        for pid in workers:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert b"OPENBLAS_NUM_THREADS=1" in environ
