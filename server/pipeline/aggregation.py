"""Chunk aggregation: many small model tokens become a few ``delta`` events.

The first text goes out at once (time to first token is what the agent feels);
after that, text is buffered and flushed at most once per interval, or as soon as
``max_chars`` are buffered: a model that floods the stream then makes many
bounded deltas, each waiting for the client to take the one before, instead of
one delta as large as everything it sent in an interval. Pure logic: the caller
passes the clock, so it is tested without waiting.
"""

from __future__ import annotations

# Far above a real answer's text in one 100 ms window (a few dozen words).
MAX_DELTA_CHARS = 8192


class Aggregator:
    def __init__(self, interval_s: float, max_chars: int = MAX_DELTA_CHARS) -> None:
        self.interval_s = interval_s
        self.max_chars = max_chars
        self._buffer: list[str] = []
        self._chars = 0
        self._last_flush: float | None = None

    def push(self, text: str, now: float) -> str | None:
        """Add ``text``; returns what to send now, if anything."""
        self._buffer.append(text)
        self._chars += len(text)
        if (self._last_flush is None or now - self._last_flush >= self.interval_s
                or self._chars >= self.max_chars):
            return self.flush(now)
        return None

    def ready_at(self) -> float | None:
        """When text pushed now would be sent (None: at once)."""
        return None if self._last_flush is None else self._last_flush + self.interval_s

    def deadline(self) -> float | None:
        """When the buffered text is due, or None if nothing is buffered."""
        if not self._buffer or self._last_flush is None:
            return None
        return self._last_flush + self.interval_s

    def flush(self, now: float) -> str | None:
        """Everything buffered (None if empty), and restart the interval."""
        if not self._buffer:
            return None
        text = "".join(self._buffer)
        self._buffer.clear()
        self._chars = 0
        self._last_flush = now
        return text
