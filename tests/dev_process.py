"""A real ``assist-panel dev`` process on free loopback ports, read until it prints its URLs."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass
class DevMode:
    """A running dev mode and the URLs it printed."""

    process: subprocess.Popen[str]
    desktop: str
    panel: str
    genesys: str
    output: list[str]  # what it printed so far (the audit log among it)


@contextlib.contextmanager
def run_dev_mode(*args: str, env: dict[str, str] | None = None) -> Iterator[DevMode]:
    """Start ``assist-panel dev --port 0 --genesys-port 0 ARGS`` (with ``ASSIST_*`` settings
    from ``env``); stop it afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "dev", "--port", "0", "--genesys-port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    lines = []
    found: dict[str, str] = {}
    patterns = {"panel": r"Panel server:\s+(\S+)", "genesys": r"Mock Genesys:\s+(\S+)",
                "desktop": r"Open the mock Agent Desktop: (\S+)"}
    for line in process.stdout:  # blocks on the process's own output: an event, not a sleep
        lines.append(line)
        for key, pattern in patterns.items():
            if match := re.search(pattern, line):
                found[key] = match.group(1)
        if "desktop" in found:
            break
    if "desktop" not in found:
        process.kill()
        pytest.fail("dev mode did not start:\n" + "".join(lines))
    # Keep reading: dev mode prints its audit log to stdout, and a full pipe would block it.
    drain = threading.Thread(target=lines.extend, args=(process.stdout,), daemon=True)
    drain.start()
    try:
        yield DevMode(process, found["desktop"], found["panel"], found["genesys"], lines)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
