"""Voice playback: a script's lines as the platform's live transcription events.

Each line is published on the conversation's ``v2.conversations.{id}.transcription``
topic the way the platform does: one or two interim transcripts (``isFinal:
false``) while the words come in, then the final one, all with the same
``utteranceId``; and at the end an event whose ``status.status`` is
``SESSION_ENDED``. Bodies follow the SDK's ``TranscriptionTopicTranscriptionMessage``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from server.devmode.mocks.genesys.config import MockGenesysConfig
from server.devmode.mocks.genesys.conversations import Conversation
from server.devmode.mocks.genesys.feed import FeedLine, Speaker
from server.devmode.mocks.genesys.scripts import Script
from server.devmode.mocks.genesys.state import MockGenesysState, iso_z

#: Time one spoken word takes in the scripted timeline (about 190 words a minute).
WORD_MS = 320
ENGINE_ID = "Genesys"
DIALECT = "en-US"
CHANNELS: dict[Speaker, str] = {"customer": "EXTERNAL", "agent": "INTERNAL"}

#: Waits for this many milliseconds of script time.
Pause = Callable[[int], Awaitable[None]]


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


async def play_voice(
    config: MockGenesysConfig,
    state: MockGenesysState,
    conversation: Conversation,
    script: Script,
    pause: Pause,
) -> None:
    """Publish a voice script's transcript, line by line, then ``SESSION_ENDED``."""
    feed = conversation.feed
    transcription_start_ms = int(state.now() * 1000)
    # The transcription session is open until SESSION_ENDED (here, or when the call ends).
    conversation.transcription_start_ms = transcription_start_ms
    offset_ms = 0

    def publish(status: str = "SESSION_ONGOING", transcript: dict[str, Any] | None = None) -> None:
        body = transcription_event(
            config=config,
            conversation=conversation,
            event_time=state.now(),
            transcription_start_ms=transcription_start_ms,
            offset_ms=offset_ms,
            status=status,
            transcript=transcript,
        )
        state.publish(conversation.transcription_topic, body)

    for line in script.lines:
        await pause(line.delay_ms)
        offset_ms += line.delay_ms
        words = line.text.split()
        utterance_id = str(uuid.uuid4())
        spoken_ms = 0
        cuts = interim_cuts(len(words))
        # The interims show the words so far; the last (final) one shows them all.
        for index, cut in enumerate([*cuts, len(words)]):
            await pause(cut * WORD_MS - spoken_ms)
            spoken_ms = cut * WORD_MS
            is_final = index == len(cuts)
            transcript = transcript_result(
                utterance_id=utterance_id,
                speaker=line.speaker,
                words=words[:cut],
                offset_ms=offset_ms,
                is_final=is_final,
            )
            publish(transcript=transcript)
        feed.add_line(FeedLine(speaker=line.speaker, text=line.text, utterance_id=utterance_id))
        offset_ms += len(words) * WORD_MS
    publish(status="SESSION_ENDED")
    conversation.transcription_start_ms = None
    feed.set_status("ended")
