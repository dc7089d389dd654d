"""The open suggestion streams of one process: the global cap, supersede, and shutdown.

A stream is ended by its own loop in ``Pipeline.stream`` (text, stall, deadline)
or from outside it through its ``StreamControl``: a newer automatic suggestion
for the same agent and conversation supersedes it, or the server shuts down.
Stopping only sets a reason and wakes the loop; the loop still sends the last
events, so every stream keeps its one ``done``.

Supersede here is per process; with Redis, ``server/shared/supersede.py`` carries
it across replicas. Either way it is only an optimisation of the page's own
behaviour (the page drops a superseded card's stream too): nothing depends on it
for correctness, so any replica can serve any request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from server.errors import OverCapacity, ShuttingDown

StopReason = Literal["superseded", "shutdown"]


class StreamControl:
    """How others end one stream: ``stop(reason)`` sets ``reason`` and wakes its loop."""

    def __init__(self, key: tuple[str, str] | None) -> None:
        self.key = key  # (owner, conversation) of an automatic suggestion, else None
        # Its place among the automatic suggestions of its key, across replicas (Redis).
        self.number: int | None = None
        self.reason: StopReason | None = None
        self._wake: Callable[[], None] | None = None

    def bind(self, wake: Callable[[], None]) -> None:
        """Called by the stream loop: how to wake it when stopped."""
        self._wake = wake
        if self.reason is not None:
            wake()

    def stop(self, reason: StopReason) -> None:
        """End the stream at its next turn (the first reason wins)."""
        if self.reason is not None:
            return
        self.reason = reason
        if self._wake is not None:
            self._wake()


class StreamRegistry:
    """The streams open in this process, under a global cap of ``max_streams``."""

    def __init__(self, max_streams: int, *, retry_after_s: int = 1) -> None:
        self.max_streams = max_streams
        self.retry_after_s = retry_after_s
        self.closing = False
        self._open: set[StreamControl] = set()
        self._automatic: dict[tuple[str, str], StreamControl] = {}

    @property
    def active(self) -> int:
        return len(self._open)

    def open(self, *, owner: str, conversation_id: str, automatic: bool) -> StreamControl:
        """A control for a new stream; 503 when shutting down or at the cap.

        An automatic suggestion supersedes the owner's previous automatic one for
        the same conversation; manual questions are never superseded.
        """
        if self.closing:
            raise ShuttingDown("The server is shutting down; try again.",
                               retry_after=self.retry_after_s)
        if len(self._open) >= self.max_streams:
            raise OverCapacity("Too many open suggestion streams; try again shortly.",
                               retry_after=self.retry_after_s)
        key = (owner, conversation_id) if automatic else None
        control = StreamControl(key)
        if key is not None:
            previous = self._automatic.get(key)
            if previous is not None:
                previous.stop("superseded")
            self._automatic[key] = control
        self._open.add(control)
        return control

    def automatic(self, key: tuple[str, str]) -> StreamControl | None:
        """The open automatic stream of ``key`` (owner, conversation), if any."""
        return self._automatic.get(key)

    def automatic_keys(self) -> list[tuple[str, str]]:
        """The keys of every open automatic stream."""
        return list(self._automatic)

    def close(self, control: StreamControl) -> None:
        """Forget a finished stream (safe to call twice)."""
        self._open.discard(control)
        if control.key is not None and self._automatic.get(control.key) is control:
            del self._automatic[control.key]

    def shutdown(self) -> int:
        """Refuse new streams and stop every open one; returns how many were open."""
        self.closing = True
        for control in list(self._open):
            control.stop("shutdown")
        return len(self._open)
