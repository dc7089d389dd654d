"""A real ``redis-server`` (Debian's) on a free loopback port, for the shared limits."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.serve_process import free_port


@contextlib.contextmanager
def running_redis(workdir: Path, port: int | None = None) -> Iterator[str]:
    """``redis-server`` on 127.0.0.1 (``port``, or a free one), persisting nothing; its
    ``redis://`` URL until the block ends."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is missing: run scripts/test, which installs it")
    port = port or free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly",
         "no", "--dir", str(workdir), "--protected-mode", "yes"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # its own "ready" line: an event, not a sleep
        seen.append(line)
        if "Ready to accept connections" in line:
            break
    else:
        raise RuntimeError(f"redis-server did not start: {''.join(seen)}")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
