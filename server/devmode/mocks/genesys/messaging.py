"""Web messaging: a script's lines as messages, and the platform's shapes for them.

When a messaging script plays, each line becomes a stored message; the mock then
publishes the whole conversation on the agent's ``v2.users.{id}.conversations``
topic (SDK ``ConversationEventTopicConversation``), every participant listing
the ids of all its messages so far. Texts are not in the event: clients fetch
them by id as ``MessageData`` (see :mod:`.api`). Nothing goes on the
transcription topic: messaging has no transcript.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from server.devmode.mocks.genesys.config import MockGenesysConfig
from server.devmode.mocks.genesys.conversations import Conversation, ConversationMessage
from server.devmode.mocks.genesys.disconnect import communication_end, participant_end
from server.devmode.mocks.genesys.feed import FeedLine, Speaker
from server.devmode.mocks.genesys.scripts import Script
from server.devmode.mocks.genesys.state import MockGenesysState, iso_z

MESSENGER_TYPE = "webmessaging"
PROVIDER = "PureCloud Messaging"
#: A message's delivery status as its own side sees it.
STATUS: dict[Speaker, str] = {"customer": "received", "agent": "sent"}
DIRECTION: dict[Speaker, str] = {"customer": "inbound", "agent": "outbound"}

#: Waits for this many milliseconds of script time.
Pause = Callable[[int], Awaitable[None]]


def message_path(conversation: Conversation, message_id: str) -> str:
    """``/api/v2/conversations/messages/{conversationId}/messages/{messageId}``."""
    return f"/api/v2/conversations/messages/{conversation.id}/messages/{message_id}"


def _participant_ids(conversation: Conversation, speaker: Speaker) -> tuple[str, str]:
    """(participant id, communication id) of one side."""
    if speaker == "customer":
        return conversation.customer_participant_id, conversation.customer_communication_id
    return conversation.agent_participant_id, conversation.agent_communication_id


# Event (v2.users.{id}.conversations) -----------------------------------------


def _event_communication(conversation: Conversation, speaker: Speaker) -> dict[str, Any]:
    """A ``ConversationEventTopicMessage``: the side's messaging communication."""
    _, communication_id = _participant_ids(conversation, speaker)
    return {
        "id": communication_id,
        **communication_end(conversation, speaker),
        "direction": "inbound",
        "held": False,
        "provider": PROVIDER,
        "connectedTime": iso_z(conversation.start_time),
        "type": MESSENGER_TYPE,
        "messages": [
            {
                "messageId": message.id,
                "messageTime": iso_z(message.time),
                "messageStatus": STATUS[speaker],
                "messageSegmentCount": 1,
            }
            for message in conversation.messages_of(speaker)
        ],
    }


def conversation_event(config: MockGenesysConfig, conversation: Conversation) -> dict[str, Any]:
    """The conversation as a ``ConversationEventTopicConversation`` event body."""
    connected = iso_z(conversation.start_time)
    customer = {
        "id": conversation.customer_participant_id,
        "connectedTime": connected,
        **participant_end(conversation),
        "name": conversation.customer_name,
        "queueId": config.queue_id,
        "purpose": "customer",
        "wrapupRequired": False,
        "attributes": {},
        "messages": [_event_communication(conversation, "customer")],
    }
    agent = {
        "id": conversation.agent_participant_id,
        "connectedTime": connected,
        **participant_end(conversation),
        "userId": conversation.agent_user_id,
        "name": config.agent_name,
        "queueId": config.queue_id,
        "purpose": "agent",
        "wrapupRequired": True,
        "attributes": {},
        "messages": [_event_communication(conversation, "agent")],
    }
    return {"id": conversation.id, "participants": [customer, agent]}


# REST: the conversation's messaging communications ---------------------------


def rest_communication(
    config: MockGenesysConfig, conversation: Conversation, speaker: Speaker
) -> dict[str, Any]:
    """A participant's ``Message`` communication in ``GET /api/v2/conversations/{id}``."""
    _, communication_id = _participant_ids(conversation, speaker)
    customer = {
        "name": conversation.customer_name,
        "addressNormalized": conversation.customer_messaging_id,
    }
    org_side = {"name": config.queue_name, "addressNormalized": config.messaging_deployment_id}
    return {
        **communication_end(conversation, speaker),
        "id": communication_id,
        "held": False,
        "direction": "inbound",
        "provider": PROVIDER,
        "type": MESSENGER_TYPE,
        "connectedTime": iso_z(conversation.start_time),
        "fromAddress": customer,
        "toAddress": org_side,
        "messages": [
            {
                "messageId": message.id,
                "messageURI": config.origin + message_path(conversation, message.id),
                "messageStatus": STATUS[speaker],
                "messageSegmentCount": 1,
                "messageTime": iso_z(message.time),
            }
            for message in conversation.messages_of(speaker)
        ],
    }


# REST: one message ------------------------------------------------------------


def message_data(
    config: MockGenesysConfig,
    conversation: Conversation,
    message: ConversationMessage,
    normalized_only: bool = False,
) -> dict[str, Any]:
    """A message as ``MessageData``.

    By default the text is in ``textBody`` and there is no ``normalizedMessage``
    (optional in the platform's model: a client must not count on it). Asked with
    ``useNormalizedMessage=true`` (``normalized_only``), the platform leaves out the
    deprecated ``textBody`` and sends the ``normalizedMessage`` instead.
    """
    guest = conversation.customer_messaging_id
    deployment = config.messaging_deployment_id
    first, _, last = conversation.customer_name.partition(" ")
    customer = {
        "nickname": conversation.customer_name,
        "id": guest,
        "idType": "Opaque",
        "firstName": first,
        "lastName": last,
    }
    if message.speaker == "customer":
        from_address, to_address = guest, deployment
        sender, recipient = customer, {"id": deployment, "idType": "Opaque"}
    else:
        from_address, to_address = deployment, guest
        sender = {"nickname": config.agent_name, "id": deployment, "idType": "Opaque"}
        recipient = {k: v for k, v in customer.items() if k in ("id", "idType", "nickname")}
    normalized: dict[str, Any] = {
        "id": message.id,
        "channel": {
            "id": deployment,
            "platform": "WebMessaging",
            "type": "Private",
            "messageId": message.id,
            "to": recipient,
            "from": sender,
            "time": iso_z(message.time),
        },
        "type": "Text",
        "text": message.text,
        "originatingEntity": "Human",
        "direction": DIRECTION[message.speaker].capitalize(),
    }
    body: dict[str, Any] = {
        "id": message.id,
        "timestamp": iso_z(message.time),
        "fromAddress": from_address,
        "toAddress": to_address,
        "direction": DIRECTION[message.speaker],
        "messengerType": MESSENGER_TYPE,
        "status": STATUS[message.speaker],
        "conversationId": conversation.id,
        "selfUri": message_path(conversation, message.id),
    }
    if normalized_only:
        body["normalizedMessage"] = normalized
    else:
        body["textBody"] = message.text
    if message.speaker == "agent":
        normalized["status"] = "Sent"
        body["createdBy"] = {
            "id": conversation.agent_user_id,
            "name": config.agent_name,
            "selfUri": f"/api/v2/users/{conversation.agent_user_id}",
        }
    return body


# Playback ---------------------------------------------------------------------


async def play_messaging(
    config: MockGenesysConfig,
    state: MockGenesysState,
    conversation: Conversation,
    script: Script,
    pause: Pause,
) -> None:
    """Write a messaging script's lines as messages, publishing the conversation each time.

    A first event (no messages yet) announces the connected conversation, as the
    platform does when the agent's side connects.
    """
    conversation.messages.clear()
    topic = conversation.agent_conversations_topic
    state.publish(topic, conversation_event(config, conversation))
    for line in script.lines:
        await pause(line.delay_ms)
        message = ConversationMessage(
            id=uuid.uuid4().hex, speaker=line.speaker, text=line.text, time=state.now()
        )
        conversation.messages.append(message)
        state.publish(topic, conversation_event(config, conversation))
        conversation.feed.add_line(
            FeedLine(speaker=line.speaker, text=line.text, utterance_id=message.id)
        )
    conversation.feed.set_status("ended")
