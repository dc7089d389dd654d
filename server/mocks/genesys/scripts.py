"""Scripted conversations: the script files, and the player that voices them.

A script is a JSON file (its name is the file's stem)::

    {"title": "...", "description": "...", "media": "voice",
     "customer_name": "...", "customer_phone": "+1...",          (optional)
     "lines": [{"delay_ms": 2500, "speaker": "customer", "text": "..."}, ...]}

``delay_ms`` is the pause before the line. The player publishes each line on
the conversation's ``v2.conversations.{id}.transcription`` topic the way the
platform does: one or two interim transcripts (``isFinal: false``) while the
words come in, then the final one, all with the same ``utteranceId``; and at
the end an event whose ``status.status`` is ``SESSION_ENDED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .config import MockGenesysConfig
from .state import Conversation, FeedLine, MockGenesysState, Speaker, iso_z

logger = logging.getLogger(__name__)

#: Time one spoken word takes in the scripted timeline (about 190 words a minute).
WORD_MS = 320
ENGINE_ID = "Genesys"
DIALECT = "en-US"
CHANNELS: dict[Speaker, str] = {"customer": "EXTERNAL", "agent": "INTERNAL"}
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


class ScriptError(ValueError):
    """A script file that cannot be used, with the reason."""


@dataclass(frozen=True)
class ScriptLine:
    """One thing said: after ``delay_ms`` of silence, ``speaker`` says ``text``."""

    delay_ms: int
    speaker: Speaker
    text: str


@dataclass(frozen=True)
class Script:
    """A scripted conversation."""

    name: str
    title: str
    description: str
    media: str
    lines: tuple[ScriptLine, ...]
    customer_name: str = "Customer"
    customer_phone: str = "+15555550100"

    def summary(self) -> dict[str, Any]:
        """The script as ``GET /mock/scripts`` lists it."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "media": self.media,
            "lines": len(self.lines),
        }


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ScriptError(message)


def parse_script(name: str, data: Any) -> Script:
    """Validate a decoded script file; raises :class:`ScriptError`."""
    _require(bool(_NAME.fullmatch(name)), f"bad script name {name!r}")
    _require(isinstance(data, dict), "a script must be a JSON object")
    for key in ("title", "description"):
        value = data.get(key)
        _require(isinstance(value, str) and bool(value.strip()), f"{key!r} must be text")
    media = data.get("media", "voice")
    _require(media == "voice", "'media' must be 'voice' (the only scripted media so far)")
    raw_lines = data.get("lines")
    _require(isinstance(raw_lines, list) and bool(raw_lines), "'lines' must be a non-empty list")
    lines: list[ScriptLine] = []
    for index, raw in enumerate(cast(list[Any], raw_lines)):
        where = f"lines[{index}]"
        _require(isinstance(raw, dict), f"{where} must be an object")
        delay = raw.get("delay_ms")
        _require(
            isinstance(delay, int) and not isinstance(delay, bool) and delay >= 0,
            f"{where}.delay_ms must be a non-negative integer",
        )
        speaker = raw.get("speaker")
        _require(speaker in CHANNELS, f"{where}.speaker must be 'customer' or 'agent'")
        text = raw.get("text")
        _require(isinstance(text, str) and bool(text.split()), f"{where}.text must be text")
        lines.append(ScriptLine(delay_ms=delay, speaker=speaker, text=" ".join(text.split())))
    extras = {k: data[k] for k in ("customer_name", "customer_phone") if k in data}
    for key, extra in extras.items():
        _require(isinstance(extra, str) and bool(extra.strip()), f"{key!r} must be text")
    return Script(
        name=name,
        title=data["title"].strip(),
        description=data["description"].strip(),
        media=media,
        lines=tuple(lines),
        **extras,
    )


class ScriptLibrary:
    """The scripts of one directory, by name, in name order."""

    def __init__(self, scripts: dict[str, Script]) -> None:
        """Wrap already-parsed scripts."""
        self.scripts = dict(sorted(scripts.items()))

    @classmethod
    def load(cls, directory: Path) -> ScriptLibrary:
        """Read and validate every ``*.json`` in ``directory`` (at least one)."""
        scripts: dict[str, Script] = {}
        for path in sorted(directory.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                scripts[path.stem] = parse_script(path.stem, data)
            except (ValueError, OSError) as exc:
                raise ScriptError(f"{path}: {exc}") from exc
        if not scripts:
            raise ScriptError(f"no scripts (*.json) in {directory}")
        return cls(scripts)

    def get(self, name: str) -> Script | None:
        """The script with this name, if any."""
        return self.scripts.get(name)

    @property
    def default(self) -> Script:
        """The first script by name."""
        return next(iter(self.scripts.values()))

    def summaries(self) -> list[dict[str, Any]]:
        """Every script's summary."""
        return [script.summary() for script in self.scripts.values()]


def transcription_event(
    *,
    config: MockGenesysConfig,
    conversation: Conversation,
    event_time: float,
    transcription_start_ms: int,
    offset_ms: int,
    status: str = "SESSION_ONGOING",
    transcript: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A transcription event body (``TranscriptionTopicTranscriptionMessage``)."""
    return {
        "eventTime": iso_z(event_time),
        "organizationId": config.org_id,
        "conversationId": conversation.id,
        "communicationId": conversation.customer_communication_id,
        "sessionStartTimeMs": int(conversation.start_time * 1000),
        "transcriptionStartTimeMs": transcription_start_ms,
        "transcripts": [] if transcript is None else [transcript],
        "status": {"offsetMs": offset_ms, "status": status},
    }


def transcript_result(
    *, utterance_id: str, speaker: Speaker, words: list[str], offset_ms: int, is_final: bool
) -> dict[str, Any]:
    """One transcript (``TranscriptionTopicTranscriptResult``) of the words so far."""
    rng = random.Random(f"{utterance_id}:{len(words)}")
    confidences = [round(rng.uniform(0.82, 0.99), 3) for _ in words]
    word_items = [
        {
            "confidence": confidences[i],
            "offsetMs": offset_ms + i * WORD_MS,
            "durationMs": WORD_MS - 40,
            "word": word,
        }
        for i, word in enumerate(words)
    ]
    confidence = sum(confidences) / len(confidences)
    return {
        "utteranceId": utterance_id,
        "isFinal": is_final,
        "channel": CHANNELS[speaker],
        "alternatives": [
            {
                "confidence": round(confidence, 3),
                "offsetMs": offset_ms,
                "durationMs": len(words) * WORD_MS,
                "transcript": " ".join(words),
                "words": word_items,
            }
        ],
        "engineId": ENGINE_ID,
        "dialect": DIALECT,
        "voiceTranscriptionEnabled": True,
    }


def interim_cuts(word_count: int) -> list[int]:
    """How many words each interim transcript shows: two for long lines, else one."""
    parts = 2 if word_count >= 8 else 1
    return sorted({max(1, word_count * k // (parts + 1)) for k in range(1, parts + 1)})


class TranscriptionPlayer:
    """One playback task per conversation, publishing its script's transcript."""

    def __init__(
        self, config: MockGenesysConfig, state: MockGenesysState, library: ScriptLibrary
    ) -> None:
        """Bind to one mock."""
        self.config = config
        self.state = state
        self.library = library
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def ensure_started(self, conversation_id: str) -> None:
        """Start a conversation's playback unless it was started before."""
        conversation = self.state.conversations.get(conversation_id)
        if conversation is not None and not conversation.playback_requested:
            self._start(conversation)

    async def play(self, conversation_id: str) -> bool:
        """(Re)play a conversation from the start; False if it does not exist."""
        conversation = self.state.conversations.get(conversation_id)
        if conversation is None:
            return False
        await self._cancel(conversation_id)
        self._start(conversation)
        return True

    def is_playing(self, conversation_id: str) -> bool:
        """Whether a playback task is running for the conversation."""
        task = self._tasks.get(conversation_id)
        return task is not None and not task.done()

    async def shutdown(self) -> None:
        """Cancel every playback task and wait for them to finish."""
        for conversation_id in list(self._tasks):
            await self._cancel(conversation_id)

    def _start(self, conversation: Conversation) -> None:
        script = self.library.get(conversation.script_name)
        if script is None:  # pragma: no cover - conversations are made from known scripts
            logger.error(
                "conversation %s: unknown script %r", conversation.id, conversation.script_name
            )
            return
        conversation.playback_requested = True
        conversation.feed.reset()
        conversation.feed.set_status("playing")
        task = asyncio.create_task(self._run(conversation, script), name=f"play-{conversation.id}")
        self._tasks[conversation.id] = task
        task.add_done_callback(lambda t: self._finished(conversation.id, t))

    def _finished(self, conversation_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(conversation_id) is task:
            del self._tasks[conversation_id]
        if not task.cancelled() and task.exception() is not None:
            logger.error("playback of %s failed", conversation_id, exc_info=task.exception())

    async def _cancel(self, conversation_id: str) -> None:
        task = self._tasks.pop(conversation_id, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _pause(self, script_ms: int) -> None:
        if script_ms > 0:
            await asyncio.sleep(script_ms / 1000 / self.config.playback_speed)

    async def _run(self, conversation: Conversation, script: Script) -> None:
        feed = conversation.feed
        transcription_start_ms = int(self.state.now() * 1000)
        offset_ms = 0

        def publish(
            status: str = "SESSION_ONGOING", transcript: dict[str, Any] | None = None
        ) -> None:
            body = transcription_event(
                config=self.config,
                conversation=conversation,
                event_time=self.state.now(),
                transcription_start_ms=transcription_start_ms,
                offset_ms=offset_ms,
                status=status,
                transcript=transcript,
            )
            self.state.publish(conversation.transcription_topic, body)

        for line in script.lines:
            await self._pause(line.delay_ms)
            offset_ms += line.delay_ms
            words = line.text.split()
            utterance_id = str(uuid.uuid4())
            spoken_ms = 0
            for cut in interim_cuts(len(words)):
                await self._pause(cut * WORD_MS - spoken_ms)
                spoken_ms = cut * WORD_MS
                publish(transcript=self._result(utterance_id, line, words[:cut], offset_ms, False))
            await self._pause(len(words) * WORD_MS - spoken_ms)
            publish(transcript=self._result(utterance_id, line, words, offset_ms, True))
            feed.add_line(FeedLine(speaker=line.speaker, text=line.text, utterance_id=utterance_id))
            offset_ms += len(words) * WORD_MS
        publish(status="SESSION_ENDED")
        feed.set_status("ended")

    @staticmethod
    def _result(
        utterance_id: str, line: ScriptLine, words: list[str], offset_ms: int, is_final: bool
    ) -> dict[str, Any]:
        return transcript_result(
            utterance_id=utterance_id,
            speaker=line.speaker,
            words=words,
            offset_ms=offset_ms,
            is_final=is_final,
        )
