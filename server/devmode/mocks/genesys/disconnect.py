"""What an ended conversation shows of it: end times and disconnected communications.

When the agent ends a conversation (the desktop's End conversation), both sides
leave at once: each participant gets its ``endTime``, and each communication the
state ``disconnected`` with its ``disconnectedTime`` and ``disconnectType``
(``client`` for the agent, who hung up; ``peer`` for the customer, whose other
side did). The REST conversation and the conversation events both show it.
"""

from __future__ import annotations

from typing import Any

from server.devmode.mocks.genesys.conversations import Conversation
from server.devmode.mocks.genesys.feed import Speaker
from server.devmode.mocks.genesys.state import iso_z

#: How each side's communication ended when the agent ends the conversation.
DISCONNECT_TYPES: dict[Speaker, str] = {"agent": "client", "customer": "peer"}


def participant_end(conversation: Conversation) -> dict[str, Any]:
    """``{"endTime"}`` for a participant of an ended conversation, else nothing."""
    if conversation.end_time is None:
        return {}
    return {"endTime": iso_z(conversation.end_time)}


def communication_end(conversation: Conversation, speaker: Speaker) -> dict[str, Any]:
    """A communication's state, with its disconnection once the conversation ended."""
    if conversation.end_time is None:
        return {"state": "connected"}
    return {
        "state": "disconnected",
        "disconnectedTime": iso_z(conversation.end_time),
        "disconnectType": DISCONNECT_TYPES[speaker],
    }
