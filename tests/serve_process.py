"""A real ``assist-panel serve`` in a child process, for the tests that signal it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from server.devmode.mocks.llm import DEFAULT_MODEL
from tests.factories import CLIENT_ID, ORG, SECRET


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_env(port: int, kb_path: Path, llm_url: str, grace_s: float, **extra: str
              ) -> dict[str, str]:
    """``serve``'s environment: the openai generator against ``llm_url``, limits a minute
    away (only a shutdown ends a stream early), the audit log on stdout."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "ASSIST_PORT": str(port),
            "ASSIST_KB_PATH": str(kb_path), "ASSIST_SESSION_SECRET": SECRET,
            "ASSIST_ALLOWED_ORGS": ORG, "ASSIST_OAUTH_CLIENT_ID": CLIENT_ID,
            "ASSIST_GENERATOR": "openai", "ASSIST_OPENAI_BASE_URL": f"{llm_url}/v1",
            "ASSIST_OPENAI_MODEL": DEFAULT_MODEL,
            "ASSIST_STREAM_LIMIT_S": "60", "ASSIST_STALL_TIMEOUT_S": "60",
            "ASSIST_SHUTDOWN_GRACE_S": str(grace_s), "ASSIST_AUDIT_LOG": "-", **extra}


@dataclass
class Serve:
    """A running ``serve`` and what it has written to standard error so far."""

    process: subprocess.Popen[str]
    url: str
    stderr: list[str] = field(default_factory=list)
    _grew: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, text: str, count: int = 1, timeout: float = 60) -> list[str]:
        """The first ``count`` lines of standard error holding ``text``, once written:
        waits on the process's output (an event), at most ``timeout`` seconds."""
        def found() -> list[str]:
            return [line for line in self.stderr if text in line]

        with self._grew:
            if not self._grew.wait_for(lambda: len(found()) >= count
                                       or self.process.poll() is not None, timeout):
                raise TimeoutError(f"serve did not write {text!r} {count}x: {self.stderr}")
        lines = found()
        if len(lines) < count:
            raise RuntimeError(f"serve exited ({self.process.returncode}): {self.stderr}")
        return lines[:count]

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._grew:
                self.stderr.append(line)
                self._grew.notify_all()
        with self._grew:
            self._grew.notify_all()


@contextlib.contextmanager
def running_serve(args: list[str], env: dict[str, str], *, executable: str | None = None,
                  cwd: Path | None = None, open_files: int | None = None) -> Iterator[Serve]:
    """``python -m server serve ARGS`` (or ``EXECUTABLE serve ARGS``, an installed
    ``assist-panel``) with ``env``; killed afterwards if still running. ``open_files``:
    its open-file limit, soft and hard."""
    command = [executable] if executable else [sys.executable, "-m", "server"]
    if open_files is not None:  # util-linux's prlimit: no code run between fork and exec
        command = ["prlimit", f"--nofile={open_files}:{open_files}", "--", *command]
    process = subprocess.Popen([*command, "serve", *args], env=env, cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    running = Serve(process, f"http://127.0.0.1:{env['ASSIST_PORT']}")
    reader = threading.Thread(target=running._read, daemon=True)
    reader.start()
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        reader.join(timeout=10)
