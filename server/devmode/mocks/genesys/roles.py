"""The roles an agent of the mock's home org can have, and the permissions each grants.

Genesys checks a user's permissions when a notification channel subscribes to a
topic: a conversation's transcription topic needs ``conversation:transcription:view``,
which is granted org-wide and which many orgs leave out of their agents' roles.
The mock's home-org users hold the role named by the runtime setting ``agentRole``
(``PUT /mock/settings``), so both kinds of agent can be tried without restarting.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Needed to subscribe to ``v2.conversations.{id}.transcription``.
TRANSCRIPTION_VIEW = "conversation:transcription:view"
#: Needed for ``GET /api/v2/conversations/{id}`` (who the conversation's agents are).
COMMUNICATION_VIEW = "conversation:communication:view"

#: What an agent role usually holds to see conversations and follow them live.
AGENT_PERMISSIONS: frozenset[str] = frozenset(
    {
        TRANSCRIPTION_VIEW,
        COMMUNICATION_VIEW,
        "conversation:message:view",
        "conversation:webmessaging:view",
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
    )
}
DEFAULT_AGENT_ROLE = "agent"
