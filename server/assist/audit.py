"""The audit log: one compact JSON line per suggestion, for compliance and offline analysis.

Each line holds the ids, the trigger, the generator and model, the source ids, the
timings and how the stream ended, built field by field from a
:class:`~server.pipeline.stream.StreamRecord`. Never transcript text, queries or answers: the
record holds none, and only the named fields below are copied.

A line is written with a single ``write`` call under a lock, so concurrent writers in one
process never interleave. A failing write (disk full, closed stream) logs one warning and
is dropped: the audit log never breaks a suggestion stream.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # at run time only the attributes matter; no import cycle
    from server.pipeline.stream import StreamRecord

log = logging.getLogger("assist_panel.audit")

STDOUT_TARGETS = ("-", "stdout")
"""Targets that write to ``sys.stdout`` (looked up at each write)."""


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def format_ts(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``: ``2024-05-01T12:00:00.123Z``.

    A naive datetime is taken to be UTC already.
    """
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def audit_entry(record: StreamRecord, moment: datetime) -> dict[str, Any]:
    """The audit line of ``record`` as a dict: exactly these keys, nothing else."""
    return {
        "ts": format_ts(moment),
        "type": "suggestion",
        "suggestionId": record.suggestion_id,
        "requestId": record.request_id,
        "conversationId": record.conversation_id,
        "userId": record.user_id,
        "trigger": record.trigger,
        "generator": record.generator,
        "model": record.model,
        "sourceIds": list(record.source_ids),
        "ttftMs": record.ttft_ms,
        "durationMs": record.duration_ms,
        "chunks": record.chunks,
        "tokens": record.tokens,
        "outcome": record.outcome,
        "stopReason": record.stop_reason,
        "fallbackReason": record.fallback_reason,
        "retries": record.retries,
    }


class AuditLog:
    """Writes one JSON line per finished suggestion; see :meth:`open` for the targets.

    Thread-safe. Use :meth:`open` rather than the constructor.
    """

    def __init__(
        self,
        stream: Callable[[], TextIO] | None,
        *,
        owned: TextIO | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """``stream`` returns where to write at each write (None: disabled); ``owned`` is
        a file this log closes on :meth:`close`."""
        self._stream = stream
        self._owned = owned
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        self._warned = False
        self._warn_lock = threading.Lock()

    @classmethod
    def open(cls, target: str, *, clock: Callable[[], datetime] = utc_now) -> AuditLog:
        """The audit log writing to ``target``.

        ``"-"`` or ``"stdout"``: standard output (``sys.stdout`` at each write); ``""``:
        disabled, nothing is written; anything else: a file path, opened for appending
        (UTF-8, line-buffered). Its directory must exist.

        Raises ValueError naming the path when the file cannot be opened.
        """
        if target == "":
            return cls(None, clock=clock)
        if target in STDOUT_TARGETS:
            return cls(lambda: sys.stdout, clock=clock)
        try:
            file = open(target, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ValueError(f"cannot open audit log {target!r}: {reason}") from exc
        return cls(lambda: file, owned=file, clock=clock)

    def write(self, record: StreamRecord) -> None:
        """Append the line of ``record``. Never raises: a failure logs one warning."""
        stream = self._stream
        if stream is None:
            return
        try:
            line = json.dumps(audit_entry(record, self._clock()), separators=(",", ":"),
                              ensure_ascii=True, allow_nan=False) + "\n"
            with self._lock:
                if self._closed:
                    raise ValueError("audit log is closed")
                out = stream()
                out.write(line)
                out.flush()
        except Exception as exc:  # never into the stream; the record is not logged
            self._warn(exc)

    def close(self) -> None:
        """Close the file (standard output is left open). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            owned, self._owned = self._owned, None
        if owned is not None:
            try:
                owned.close()
            except OSError as exc:  # a failed final flush: the lines are lost either way
                self._warn(exc)

    def _warn(self, exc: BaseException) -> None:
        with self._warn_lock:
            if self._warned:
                return
            self._warned = True
        # The exception's kind and OS reason only: its message could quote the record.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else ""
        log.warning("audit log write failed (%s%s); dropping audit lines, further failures "
                    "are not logged", type(exc).__name__, f": {reason}" if reason else "")
