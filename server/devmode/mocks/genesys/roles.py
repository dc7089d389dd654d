"""The roles an agent of the mock's home org can have, and the permissions each grants.

Genesys checks a user's permissions when a notification channel subscribes to a
topic: a conversation's transcription topic needs ``conversation:transcription:view``,
which is granted org-wide and which many orgs leave out of their agents' roles. It
checks them on REST calls too: reading a conversation needs
``conversation:communication:view``, reading a message's text either
``conversation:message:view`` or ``conversation:webmessaging:view``.
The mock's home-org users hold the role named by the runtime setting ``agentRole``
(``PUT /mock/settings``), so each kind of agent can be tried without restarting.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Needed to subscribe to ``v2.conversations.{id}.transcription``.
TRANSCRIPTION_VIEW = "conversation:transcription:view"
#: Needed for ``GET /api/v2/conversations/{id}`` (who the conversation's agents are).
COMMUNICATION_VIEW = "conversation:communication:view"
#: Either of these lets a user read a message's text
#: (``GET .../conversations/messages/{id}/messages/{messageId}`` and ``.../bulk``).
MESSAGE_VIEW = "conversation:message:view"
WEBMESSAGING_VIEW = "conversation:webmessaging:view"
MESSAGE_TEXT_PERMISSIONS: tuple[str, ...] = (MESSAGE_VIEW, WEBMESSAGING_VIEW)

#: What an agent role usually holds to see conversations and follow them live.
AGENT_PERMISSIONS: frozenset[str] = frozenset(
    {
        TRANSCRIPTION_VIEW,
        COMMUNICATION_VIEW,
        *MESSAGE_TEXT_PERMISSIONS,
    }
)


@dataclass(frozen=True)
class AgentRole:
    """A role the mock's agents can hold: its permissions, and how the desktop names it."""

    name: str
    label: str
    permissions: frozenset[str]


#: The roles by name (``agentRole`` values), the default first.
AGENT_ROLES: dict[str, AgentRole] = {
    role.name: role
    for role in (
        AgentRole("agent", "Agent (all permissions)", AGENT_PERMISSIONS),
        AgentRole(
            "agent-without-transcription",
            f"Agent without {TRANSCRIPTION_VIEW}",
            AGENT_PERMISSIONS - {TRANSCRIPTION_VIEW},
        ),
        AgentRole(
            "agent-without-communication",
            f"Agent without {COMMUNICATION_VIEW}",
            AGENT_PERMISSIONS - {COMMUNICATION_VIEW},
        ),
        AgentRole(
            "agent-without-messages",
            f"Agent without {MESSAGE_VIEW} or {WEBMESSAGING_VIEW}",
            AGENT_PERMISSIONS - set(MESSAGE_TEXT_PERMISSIONS),
        ),
    )
}
DEFAULT_AGENT_ROLE = "agent"
