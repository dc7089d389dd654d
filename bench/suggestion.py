"""Time to the ``suggestion`` event, compared across checkouts in one run of the machine.

``python -m bench.suggestion [--requests N] [--pause-ms MS] [--out FILE] CHECKOUT...``
builds each checkout's own store of the sample knowledge base with that checkout's
code, starts its ``assist-panel serve`` (extractive generator, on one core; this
client on the others), sends N
manual questions one after another to ``POST /api/assist/stream`` and times each request to its
``suggestion`` event: the pre-model path (redaction, context, retrieval, sources).
``--pause-ms`` waits that long between requests, so the server's core idles as it
does between the probes of the latency benchmark's one stream (50 ms there): a core
that sleeps comes back with cold caches, and the same work takes longer (see
docs/performance.md, "On a core that idles").
Two rounds, checkouts interleaved, so a busy moment of the machine does not land on
one of them. Prints p50/p90/p99 per checkout and writes them with every sample to
``--out`` (bench/results/suggestion.json).
Issue 14 used it to compare the commit before its retrieval changes with the result:
``git worktree add /tmp/before <commit>``, then ``python -m bench.suggestion
/tmp/before .``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from server.auth.sessions import Session, SessionCodec

from .procs import Cpus, free_port
from .stats import summary

SECRET = "bench-suggestion-" + "s" * 32
CONVERSATION = "c0ffee00-0000-4000-8000-000000000000"
QUESTIONS = (
    "how much is the restocking fee for a phone", "my phone was stolen on the train",
    "how do I activate my eSIM", "late fee after the due date?",
    "I was in Italy and got charged a fortune", "can I change my delivery address",
    "how long does a refund take to my card", "reset my password",
)
# Builds the store with the checkout's own code: its modules were flat in server/ before
# the sub-packages, and before passages it had no embedder.
_BUILD = """
import sys
from server.paths import sample_kb_dir
try:
    from server.kb.importer import find_files, import_files
    from server.kb.store import KnowledgeBase
except ImportError:
    from server.kb_import import find_files, import_files
    from server.knowledge import KnowledgeBase
try:
    try:
        from server.kb.embedders import build_embedder
    except ImportError:
        from server.embedders import build_embedder
    from server.settings import Settings
    store = KnowledgeBase(sys.argv[1], build_embedder(Settings()))
    store.reindex()
except ImportError:
    store = KnowledgeBase(sys.argv[1])
import_files(store, find_files([sample_kb_dir()]))
"""


def _env(checkout: Path, db: Path, port: int) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(checkout), "ASSIST_PORT": str(port),
            "ASSIST_KB_PATH": str(db), "ASSIST_SESSION_SECRET": SECRET,
            "ASSIST_ALLOWED_ORGS": "org", "ASSIST_OAUTH_CLIENT_ID": "bench",
            "ASSIST_RATE_LIMIT_PER_MINUTE": "0", "ASSIST_EXTRACTIVE_TOKEN_DELAY_MS": "0",
            "ASSIST_LOG_LEVEL": "warning", "ASSIST_AUDIT_LOG": os.devnull,
            "OPENBLAS_NUM_THREADS": "1"}


def _serve(checkout: Path, db: Path, core: int | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [sys.executable, "-m", "server", "serve"]
    if core is not None:
        argv = ["taskset", "-c", str(core), *argv]
    proc = subprocess.Popen(argv, env=_env(checkout, db, port), cwd=checkout)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{checkout}: the panel did not become ready")


def _times(url: str, count: int, pause_s: float = 0.0) -> list[float]:
    token = SessionCodec(SECRET).issue(Session("u1", "org", CONVERSATION, time.time() + 3600))
    headers = {"Authorization": f"Bearer {token}"}
    samples: list[float] = []
    with httpx.Client(timeout=60) as http:
        for n in range(count):
            if pause_s:
                time.sleep(pause_s)
            body = {"conversationId": CONVERSATION, "trigger": "manual",
                    "query": QUESTIONS[n % len(QUESTIONS)]}
            began = time.perf_counter()
            with http.stream("POST", f"{url}/api/assist/stream", json=body,
                             headers=headers) as response:
                for line in response.iter_lines():
                    if line.startswith("event: suggestion"):
                        samples.append((time.perf_counter() - began) * 1000)
                        break
    return samples


def compare(checkouts: list[Path], requests: int, work: Path, rounds: int = 2,
            pause_s: float = 0.0) -> dict[str, Any]:
    """Per checkout: the request -> ``suggestion`` summary and its samples (ms)."""
    # The server on a core of its own, the client on the others, as the benchmarks split
    # them: a client that ran on the server's core at times took it from the server.
    cores = os.sched_getaffinity(0)
    cpus = Cpus.split()
    split = cpus.server != cpus.harness
    if split:
        os.sched_setaffinity(0, cpus.harness)
    try:
        return _rounds(checkouts, requests, work, rounds, pause_s,
                       min(cpus.server) if split else None)
    finally:
        os.sched_setaffinity(0, cores)


def _rounds(checkouts: list[Path], requests: int, work: Path, rounds: int, pause_s: float,
            core: int | None) -> dict[str, Any]:
    samples: dict[str, list[float]] = {str(c): [] for c in checkouts}
    stores: dict[Path, Path] = {}
    for index, checkout in enumerate(checkouts):
        stores[checkout] = work / f"{index}.db"
        subprocess.run([sys.executable, "-c", _BUILD, str(stores[checkout])], check=True,
                       cwd=checkout, env={**os.environ, "PYTHONPATH": str(checkout)})
    for _ in range(rounds):
        for checkout in checkouts:
            proc, url = _serve(checkout, stores[checkout], core)
            try:
                _times(url, max(1, requests // 10))  # warm-up, not counted
                samples[str(checkout)] += _times(url, requests, pause_s)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    return {name: {"ms": summary(values, (50, 90, 99)), "samples_ms": values}
            for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.suggestion", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--requests", type=int, default=300,
                        help="timed requests per checkout and round (default 300)")
    parser.add_argument("--pause-ms", type=float, default=0.0,
                        help="idle time before each request, in ms (default 0)")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "results" / "suggestion.json",
                        help="where the results go (default bench/results/suggestion.json)")
    args = parser.parse_args(argv)
    if args.pause_ms < 0:
        parser.error("--pause-ms must not be negative")
    checkouts = [c.resolve() for c in args.checkouts]
    with tempfile.TemporaryDirectory(prefix="assist-suggestion-") as tmp:
        results = compare(checkouts, args.requests, Path(tmp), pause_s=args.pause_ms / 1000)
    for name, result in results.items():
        ms = result["ms"]
        print(f"{name}: n {ms['n']}, p50 {ms['p50']:.2f} ms, p90 {ms['p90']:.2f} ms, "
              f"p99 {ms['p99']:.2f} ms")
    args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
