"""The audit log: one whole JSON line per suggestion, to a file, stdout, or nowhere."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from server.assist.audit import AuditLog, format_ts
from server.pipeline.stream import StreamRecord

KEYS = {
    "ts", "type", "suggestionId", "requestId", "conversationId", "userId", "trigger",
    "generator", "model", "sourceIds", "ttftMs", "durationMs", "chunks", "tokens", "outcome",
    "stopReason", "fallbackReason", "retries",
}
MOMENT = datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=UTC)


def _clock() -> datetime:
    return MOMENT


def _record(**overrides: Any) -> StreamRecord:
    fields: dict[str, Any] = {
        "suggestion_id": "sg_abc", "request_id": "rq-1", "conversation_id": "conv-1",
        "user_id": "user-1", "trigger": "utterance", "generator": "openai",
        "model": "gpt-test", "source_ids": ["kb-1", "kb-2"], "ttft_ms": 420,
        "duration_ms": 1800, "chunks": 7, "tokens": 95, "outcome": "completed",
        "stop_reason": "stop", "fallback_reason": None, "retries": 1,
    }
    fields.update(overrides)
    return StreamRecord(**fields)


def test_file_target_appends_whole_json_lines_across_opens(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog.open(str(path), clock=_clock)
    log.write(_record())
    log.close()
    log = AuditLog.open(str(path), clock=_clock)
    log.write(_record(suggestion_id="sg_def", outcome="fallback", stop_reason="stalled",
                      fallback_reason="stalled", ttft_ms=None, retries=0))
    log.close()

    raw = path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 2
    first, second = (json.loads(line) for line in raw.decode("utf-8").splitlines())
    assert set(first) == KEYS and set(second) == KEYS
    assert first == {
        "ts": "2024-05-01T12:30:45.123Z", "type": "suggestion", "suggestionId": "sg_abc",
        "requestId": "rq-1", "conversationId": "conv-1", "userId": "user-1",
        "trigger": "utterance", "generator": "openai", "model": "gpt-test",
        "sourceIds": ["kb-1", "kb-2"], "ttftMs": 420, "durationMs": 1800, "chunks": 7,
        "tokens": 95, "outcome": "completed", "stopReason": "stop", "fallbackReason": None,
        "retries": 1,
    }
    assert second["suggestionId"] == "sg_def"
    assert second["ttftMs"] is None and second["fallbackReason"] == "stalled"
    # Compact: no spaces between tokens.
    assert b", " not in raw and b": " not in raw


def test_stdout_target(capsys: pytest.CaptureFixture[str]) -> None:
    for target in ("-", "stdout"):
        log = AuditLog.open(target, clock=_clock)
        log.write(_record())
        log.close()
        log.close()
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 2 and out.endswith("\n")
    assert all(json.loads(line)["suggestionId"] == "sg_abc" for line in lines)


def test_disabled_target_writes_nothing(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    log = AuditLog.open("")
    log.write(_record())
    log.close()
    assert capsys.readouterr() == ("", "")
    assert list(tmp_path.iterdir()) == []


def test_unopenable_path_raises_value_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "audit.jsonl"
    with pytest.raises(ValueError, match="no-such-dir"):
        AuditLog.open(str(missing))
    with pytest.raises(ValueError, match=str(tmp_path.name)):
        AuditLog.open(str(tmp_path))  # a directory


def test_timestamps_are_utc_with_milliseconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_ts(datetime(2024, 5, 1, 14, 0, 0, 5000, tzinfo=plus_two)) == \
        "2024-05-01T12:00:00.005Z"
    assert format_ts(datetime(2024, 5, 1, 12, 0, 0)) == "2024-05-01T12:00:00.000Z"


def test_non_ascii_values_stay_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog.open(str(path), clock=_clock)
    log.write(_record(user_id="Zoë\u2028\nx"))
    log.close()
    raw = path.read_bytes()
    assert raw.count(b"\n") == 1
    assert json.loads(raw)["userId"] == "Zoë\u2028\nx"


def test_concurrent_writes_produce_only_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog.open(str(path))
    threads, per_thread = 8, 200
    source_ids = [f"kb-{i:04d}" for i in range(300)]  # long lines, beyond one buffer
    start = threading.Barrier(threads)

    def worker(n: int) -> None:
        start.wait()
        for i in range(per_thread):
            log.write(_record(suggestion_id=f"sg_{n}_{i}", source_ids=source_ids))

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    log.close()

    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == threads * per_thread
    ids = {json.loads(line)["suggestionId"] for line in lines}
    assert ids == {f"sg_{n}_{i}" for n in range(threads) for i in range(per_thread)}


class _SlowStream(io.StringIO):
    """Writes in small pieces, yielding to other threads between them: without the log's
    lock, concurrent lines would interleave here."""

    def write(self, s: str) -> int:
        for i in range(0, len(s), 16):
            super().write(s[i:i + 16])
            time.sleep(0)
        return len(s)


def test_concurrent_writes_never_interleave_in_a_slow_stream() -> None:
    stream = _SlowStream()
    log = AuditLog(lambda: stream)
    threads, per_thread = 6, 30
    start = threading.Barrier(threads)

    def worker(n: int) -> None:
        start.wait()
        for i in range(per_thread):
            log.write(_record(suggestion_id=f"sg_{n}_{i}"))

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    lines = stream.getvalue().splitlines()
    assert len(lines) == threads * per_thread
    assert {json.loads(line)["suggestionId"] for line in lines} == \
        {f"sg_{n}_{i}" for n in range(threads) for i in range(per_thread)}


class _FullDisk(io.StringIO):
    def write(self, s: str) -> int:
        raise OSError(28, "No space left on device")


def test_failing_stream_warns_once_without_content_and_never_raises(
        caplog: pytest.LogCaptureFixture) -> None:
    log = AuditLog(lambda: _FullDisk())
    with caplog.at_level(logging.WARNING, logger="assist_panel.audit"):
        for _ in range(3):
            log.write(_record())
    warnings = [r for r in caplog.records if r.name == "assist_panel.audit"]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "No space left on device" in message
    for content in ("sg_abc", "conv-1", "user-1", "rq-1", "kb-1"):
        assert content not in message


def test_write_to_closed_stream_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    stream.close()
    log = AuditLog(lambda: stream)
    with caplog.at_level(logging.WARNING, logger="assist_panel.audit"):
        log.write(_record())
        log.write(_record())
    assert len([r for r in caplog.records if r.name == "assist_panel.audit"]) == 1


def test_close_is_idempotent_and_later_writes_are_dropped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog.open(str(path))
    log.write(_record())
    log.close()
    log.close()
    with caplog.at_level(logging.WARNING, logger="assist_panel.audit"):
        log.write(_record())  # after close: dropped with a warning, never raised
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1
    assert len([r for r in caplog.records if r.name == "assist_panel.audit"]) == 1
