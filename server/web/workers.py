"""Several worker processes behind one listening socket: ``assist-panel serve --workers N``.

The supervisor (this process) binds the socket once and starts N workers with the
``spawn`` method, each a fresh interpreter that builds its own app from the same
settings and serves the shared socket: the kernel spreads new connections across
them. Each worker is the single-process server of ``serving.py``, with the same
shutdown: on SIGTERM or SIGINT the supervisor passes SIGTERM to every worker, each
ends its open streams with their final events and ``done``, and the supervisor exits
when all have (a worker still running ``ASSIST_SHUTDOWN_GRACE_S`` + 10 s later is
killed). A worker that dies on its own is started again; one that dies before it
ever accepted a connection (its app could not start) stops them all, since starting
it again would only fail again.

Every limit kept in memory (rate limits, supersede, the circuit breaker) is per
worker unless ``ASSIST_REDIS_URL`` shares it (docs/deploy.md).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from types import FrameType

from server.settings import Settings

log = logging.getLogger("assist_panel.workers")

#: Exit code of a worker whose app could not start (bad settings, unreadable store).
EXIT_STARTUP = 3
#: How long past the shutdown grace a worker may take before it is killed.
KILL_AFTER_S = 10.0


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket every worker serves (IPv6 when ``host`` is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_worker(settings: Settings, sock: socket.socket, index: int, ready: Event) -> None:
    """One worker process: the app, served on ``sock`` until SIGTERM (spawn target);
    ``ready`` is set once it accepts connections."""
    from server.app import create_app
    from server.logs import configure_logging
    from server.web.serving import GracefulServer, uvicorn_config

    configure_logging(settings.log_level)
    try:
        app = create_app(settings)
    except (ValueError, OSError) as exc:
        log.error("worker %d could not start: %s", index, exc)
        sys.exit(EXIT_STARTUP)
    config = uvicorn_config(app, settings, log_config=None, log_level=settings.log_level,
                            proxy_headers=True,
                            timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 1)

    def on_ready() -> None:
        log.info("worker %d accepting connections (pid %d)", index, os.getpid())
        ready.set()

    server = GracefulServer(config, app.state.streams, on_ready=on_ready)
    server.run(sockets=[sock])
    if not server.started:  # its lifespan failed: uvicorn has logged why
        sys.exit(EXIT_STARTUP)


@dataclass
class _Worker:
    process: BaseProcess
    ready: Event


class Supervisor:
    """Starts the workers, restarts one that dies, and stops them all on a signal."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self.settings = settings
        self.count = workers
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[int, _Worker] = {}
        self.stopping = False
        self.failed = False

    def run(self) -> int:
        """Serve until a signal; the exit code (1 when a worker could not start)."""
        sock = bind_socket(self.settings.host, self.settings.port)
        host, port = sock.getsockname()[:2]
        log.info("serving http://%s:%d with %d workers (supervisor pid %d)",
                 host if ":" not in host else f"[{host}]", port, self.count,
                 multiprocessing.current_process().pid)
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self.count):
                self._start(index, sock)
            self._watch(sock)
            # No worker is started again from here: our copy of the socket would only
            # let the kernel queue connections nobody accepts while the workers drain
            # (a proxy's POST sent there hangs, then fails, and is never sent again).
            sock.close()
            log.info("stopped listening; waiting for the workers' streams to end")
            self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            sock.close()
        return 1 if self.failed else 0

    def _start(self, index: int, sock: socket.socket) -> None:
        ready = self.context.Event()
        process = self.context.Process(target=run_worker,
                                       args=(self.settings, sock, index, ready),
                                       name=f"assist-panel-worker-{index}")
        process.start()
        self.workers[index] = _Worker(process, ready)

    def _watch(self, sock: socket.socket) -> None:
        while not self.stopping:
            sentinels = {worker.process.sentinel: index
                         for index, worker in self.workers.items()}
            # The handler of a signal sets ``stopping``; the wait then ends within its
            # timeout (PEP 475 resumes an interrupted wait).
            for exited in wait(list(sentinels), timeout=1.0):
                index = sentinels[exited]  # type: ignore[index]  # sentinels are ints
                worker = self.workers[index]
                worker.process.join()
                if self.stopping:
                    break
                if not worker.ready.is_set():
                    log.error("worker %d exited before it could serve (code %s): stopping",
                              index, worker.process.exitcode)
                    self.failed = self.stopping = True
                    break
                log.warning("worker %d exited (code %s): starting it again",
                            index, worker.process.exitcode)
                self._start(index, sock)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.stopping = True
        self._signal_workers()

    def _signal_workers(self) -> None:
        # SIGTERM even for SIGINT: a terminal's Ctrl-C also reaches the workers as
        # SIGINT, and uvicorn treats a second SIGINT (not a SIGTERM) as "exit now".
        for worker in self.workers.values():
            if worker.process.is_alive():
                worker.process.terminate()  # SIGTERM; one that has exited meanwhile is skipped

    def _stop_all(self) -> None:
        self._signal_workers()
        deadline = time.monotonic() + self.settings.shutdown_grace_s + KILL_AFTER_S
        for index, worker in self.workers.items():
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.error("worker %d still running past the grace period: killing it", index)
                worker.process.kill()
                worker.process.join()
        log.info("all workers stopped")
