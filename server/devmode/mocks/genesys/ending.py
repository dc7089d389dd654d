"""Ending a conversation, as when the agent disconnects it in Agent Desktop.

``POST /mock/conversations/{id}/end`` (see :mod:`.desktop`) stops the script and
ends the conversation on the platform: both participants leave (see
:mod:`.disconnect`), the conversation as it now is goes out on the agent's
``v2.users.{id}.conversations`` topic, and a call whose transcription session is
still open gets its last transcription event, whose ``status.status`` is
``SESSION_ENDED``.
"""

from __future__ import annotations

from typing import Any

from server.devmode.mocks.genesys.config import MockGenesysConfig
from server.devmode.mocks.genesys.conversation_body import conversation_body
from server.devmode.mocks.genesys.conversations import Conversation
from server.devmode.mocks.genesys.messaging import conversation_event
from server.devmode.mocks.genesys.state import MockGenesysState
from server.devmode.mocks.genesys.transcription import transcription_event

#: Fields of a REST ``Participant`` that a conversation event's participant does not have.
_REST_ONLY = frozenset(
    {"startTime", "queueName", "participantType", "ani", "aniName", "dnis", "userUri"}
)


def call_event(config: MockGenesysConfig, conversation: Conversation) -> dict[str, Any]:
    """A call as a ``ConversationEventTopicConversation`` event body: what
    ``GET /api/v2/conversations/{id}`` shows of it, less the REST-only fields."""
    body = conversation_body(config, conversation)
    participants = [
        {key: value for key, value in participant.items() if key not in _REST_ONLY}
        for participant in body["participants"]
    ]
    return {"id": conversation.id, "address": body["address"], "participants": participants}


def end_conversation(
    config: MockGenesysConfig, state: MockGenesysState, conversation: Conversation
) -> None:
    """End a conversation now and publish what the platform publishes then.

    Its playback must have been stopped first. Ending an ended conversation does nothing.
    """
    if conversation.ended:
        return
    now = state.now()
    conversation.end_time = now
    topic = conversation.agent_conversations_topic
    if conversation.media == "message":
        state.publish(topic, conversation_event(config, conversation))
    else:
        state.publish(topic, call_event(config, conversation))
        start_ms = conversation.transcription_start_ms
        if start_ms is not None:
            conversation.transcription_start_ms = None
            body = transcription_event(
                config=config,
                conversation=conversation,
                event_time=now,
                transcription_start_ms=start_ms,
                offset_ms=max(0, int(now * 1000) - start_ms),
                status="SESSION_ENDED",
            )
            state.publish(conversation.transcription_topic, body)
    conversation.feed.set_status("disconnected")
