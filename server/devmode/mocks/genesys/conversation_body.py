"""``GET /api/v2/conversations/{id}``: a scripted conversation in the SDK's ``Conversation`` shape.

Two participants, customer and agent, each with the media of the conversation:
``calls`` for voice, ``messages`` for web messaging (listing every message so far).
On a direct call (dialled to the agent, no queue) the agent's purpose is ``user``.
Once ended, the conversation and its participants have an ``endTime`` and their
communications are ``disconnected`` (see :mod:`.disconnect`).
"""

from __future__ import annotations

from typing import Any

from server.devmode.mocks.genesys.config import MockGenesysConfig
from server.devmode.mocks.genesys.conversations import Conversation
from server.devmode.mocks.genesys.disconnect import communication_end, participant_end
from server.devmode.mocks.genesys.feed import Speaker
from server.devmode.mocks.genesys.messaging import rest_communication
from server.devmode.mocks.genesys.state import iso_z

#: The number customers of the scripted org dial (the conversations' DNIS).
CARE_LINE = "tel:+18005550142"


def conversation_body(config: MockGenesysConfig, conversation: Conversation) -> dict[str, Any]:
    """The conversation with its customer and agent participants."""
    started = iso_z(conversation.start_time)
    voice = conversation.media == "voice"
    customer_address = f"tel:{conversation.customer_phone}"
    agent_address = f"sip:{conversation.agent_user_id}@localhost"
    customer: dict[str, Any] = {
        "id": conversation.customer_participant_id,
        "startTime": started,
        "connectedTime": started,
        **participant_end(conversation),
        "name": conversation.customer_name,
        "queueId": config.queue_id,
        "queueName": config.queue_name,
        "purpose": "customer",
        "participantType": "External",
        "wrapupRequired": False,
        "attributes": {},
    }
    if voice:
        customer.update(
            address=customer_address,
            ani=customer_address,
            aniName=conversation.customer_name,
            dnis=CARE_LINE,
        )
    agent: dict[str, Any] = {
        "id": conversation.agent_participant_id,
        "startTime": started,
        "connectedTime": started,
        **participant_end(conversation),
        "name": config.agent_name,
        "userUri": f"/api/v2/users/{conversation.agent_user_id}",
        "userId": conversation.agent_user_id,
        "queueId": config.queue_id,
        "queueName": config.queue_name,
        "purpose": "agent",
        "participantType": "Internal",
        "wrapupRequired": True,
        "attributes": {},
    }
    if voice:
        agent["address"] = agent_address
        customer["calls"] = [
            _call(
                conversation,
                "customer",
                (conversation.customer_name, customer_address),
                (config.queue_name, CARE_LINE),
            )
        ]
        agent["calls"] = [
            _call(
                conversation,
                "agent",
                (config.agent_name, agent_address),
                (conversation.customer_name, customer_address),
            )
        ]
    else:
        customer["messages"] = [rest_communication(config, conversation, "customer")]
        agent["messages"] = [rest_communication(config, conversation, "agent")]
    if conversation.direct:
        # Dialled straight to the agent: no queue, and the agent is a "user" participant.
        agent["purpose"] = "user"
        for participant in (customer, agent):
            participant.pop("queueId")
            participant.pop("queueName")
    body: dict[str, Any] = {
        "id": conversation.id,
        "startTime": started,
        **participant_end(conversation),  # the conversation's endTime: its participants'
        "participants": [customer, agent],
        "recordingState": "NONE",
        "selfUri": f"/api/v2/conversations/{conversation.id}",
    }
    if voice:
        body["address"] = CARE_LINE
    return body


def _call(
    conversation: Conversation, speaker: Speaker, own: tuple[str, str], other: tuple[str, str]
) -> dict[str, Any]:
    communication_id = (
        conversation.customer_communication_id
        if speaker == "customer"
        else conversation.agent_communication_id
    )
    return {
        **communication_end(conversation, speaker),
        "id": communication_id,
        "direction": "inbound",
        "recording": False,
        "recordingState": "none",
        "muted": False,
        "confined": False,
        "held": False,
        "connectedTime": iso_z(conversation.start_time),
        "provider": "Edge",
        "self": {"name": own[0], "addressNormalized": own[1]},
        "other": {"name": other[0], "addressNormalized": other[1]},
    }
