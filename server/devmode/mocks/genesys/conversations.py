"""Scripted conversations as the mock keeps them: participants and, for messaging, messages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from server.devmode.mocks.genesys.feed import ConversationFeed, Speaker

#: The media a scripted conversation uses: a voice call or web messaging.
Media = Literal["voice", "message"]


def _uuid() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class ConversationMessage:
    """One message written in a messaging conversation."""

    id: str
    speaker: Speaker
    text: str
    time: float


@dataclass(eq=False)
class Conversation:
    """A live scripted conversation between a customer and the scripted agent."""

    id: str
    script_name: str
    media: Media
    customer_name: str
    customer_phone: str
    start_time: float
    agent_user_id: str
    customer_participant_id: str = field(default_factory=_uuid)
    agent_participant_id: str = field(default_factory=_uuid)
    customer_communication_id: str = field(default_factory=_uuid)
    agent_communication_id: str = field(default_factory=_uuid)
    #: The web messaging guest's opaque id (the customer's address in messaging).
    customer_messaging_id: str = field(default_factory=_uuid)
    feed: ConversationFeed = field(default_factory=ConversationFeed)
    playback_requested: bool = False
    #: A direct call to the agent, never through a queue: the agent's purpose is "user".
    direct: bool = False
    messages: list[ConversationMessage] = field(default_factory=list)
    #: When the conversation was ended (``POST /mock/conversations/{id}/end``).
    end_time: float | None = None
    #: When the current transcription session started (a call's playback), epoch ms.
    transcription_start_ms: int | None = None

    @property
    def ended(self) -> bool:
        """Whether the conversation was ended: both participants have left."""
        return self.end_time is not None

    @property
    def transcription_topic(self) -> str:
        """The notification topic carrying this conversation's transcript (voice)."""
        return f"v2.conversations.{self.id}.transcription"

    @property
    def agent_conversations_topic(self) -> str:
        """The agent's ``v2.users.{id}.conversations`` topic (messaging events)."""
        return f"v2.users.{self.agent_user_id}.conversations"

    def messages_of(self, speaker: Speaker) -> list[ConversationMessage]:
        """The messages one side wrote so far, oldest first."""
        return [message for message in self.messages if message.speaker == speaker]

    def message(self, message_id: str) -> ConversationMessage | None:
        """The message with this id, if this conversation has it."""
        return next((m for m in self.messages if m.id == message_id), None)
