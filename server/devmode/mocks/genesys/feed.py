"""The mock desktop's live view of a conversation (mock-only, not the platform's)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from server.devmode.mocks.genesys.sockets import Outbox

Speaker = Literal["customer", "agent"]
#: ``ended``: the script was played to its end; ``disconnected``: the conversation was ended.
PlaybackStatus = Literal["waiting", "playing", "ended", "disconnected"]


@dataclass(frozen=True)
class FeedLine:
    """One final line of a playing conversation (said, or a message written)."""

    speaker: Speaker
    text: str
    utterance_id: str


class ConversationFeed:
    """The mock-only live transcript of a conversation, for the desktop page."""

    def __init__(self) -> None:
        """Start empty, waiting for playback."""
        self.status: PlaybackStatus = "waiting"
        self.lines: list[FeedLine] = []
        self._listeners: set[Outbox] = set()

    def subscribe(self) -> Outbox:
        """A new listener; it first gets the status and every line so far."""
        outbox = Outbox()
        outbox.push(json.dumps({"type": "status", "status": self.status}))
        for line in self.lines:
            outbox.push(self._line_message(line))
        self._listeners.add(outbox)
        return outbox

    def unsubscribe(self, outbox: Outbox) -> None:
        """Forget a listener."""
        self._listeners.discard(outbox)

    def reset(self) -> None:
        """A (re)play starts: drop the lines so far."""
        self.lines.clear()
        self._broadcast(json.dumps({"type": "reset"}))

    def set_status(self, status: PlaybackStatus) -> None:
        """Announce a playback status change."""
        self.status = status
        self._broadcast(json.dumps({"type": "status", "status": status}))

    def add_line(self, line: FeedLine) -> None:
        """Record and announce one final line."""
        self.lines.append(line)
        self._broadcast(self._line_message(line))

    def close(self, code: int, reason: str) -> None:
        """Close every listener's socket."""
        for outbox in list(self._listeners):
            outbox.close(code, reason)
        self._listeners.clear()

    def _broadcast(self, message: str) -> None:
        for outbox in list(self._listeners):
            if not outbox.push(message):
                self._listeners.discard(outbox)

    @staticmethod
    def _line_message(line: FeedLine) -> str:
        return json.dumps(
            {
                "type": "line",
                "speaker": line.speaker,
                "text": line.text,
                "utteranceId": line.utterance_id,
            }
        )
