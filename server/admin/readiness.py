"""What agents need that ``install`` cannot change: their roles' permissions and the
queues' voice transcription, checked for ``assist-panel status``.

``install`` makes the panel's OAuth client and widget and leaves the org's roles
and queues alone: they belong to the org's admins and grant far more than the
panel. Yet the panel on an agent's desktop does less without them:

- ``conversation:transcription:view`` lets the panel receive a call's live
  transcript (the notification topic ``v2.conversations.{id}.transcription``). It
  is org-wide, not limited by division: whoever holds it can read the transcript
  of every conversation in the org. Without it the panel still works on messaging
  and the ask box still works on calls; the panel tells the agent what is missing.
- ``conversation:communication:view`` lets the panel read the conversation
  (``GET /api/v2/conversations/{id}``) to check that the agent is on it; without
  it the panel refuses the agent.
- ``conversation:message:view`` or ``conversation:webmessaging:view`` lets it read
  the text of messages on messaging conversations.

A call has a live transcript only if its queue has voice transcription on
(``enableTranscription``) and the org uses Genesys Cloud Voice or BYOC Cloud (no
API call here can tell which telephony the org uses).

Roles are read with ``authorization:role:view`` and queues with
``routing:queue:view``; when the admin client lacks one, that check is skipped and
says which permission would allow it. The findings are advice: ``status`` prints
them and its exit code does not depend on them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from server.admin.client import QUEUE_VIEW, ROLE_VIEW, AdminClient
from server.errors import AdminError, PermissionMissing

T = TypeVar("T")

TRANSCRIPTION_VIEW = "conversation:transcription:view"
COMMUNICATION_VIEW = "conversation:communication:view"
MESSAGE_VIEW = "conversation:message:view"
WEBMESSAGING_VIEW = "conversation:webmessaging:view"
#: Most roles named for one permission, and queues named without transcription:
#: enough to act on, short enough to read.
MAX_ROLES_NAMED = 8
MAX_QUEUES_NAMED = 5


@dataclass(frozen=True)
class Need:
    """A permission agents' roles need, and what the panel uses it for."""

    permission: str
    purpose: str


#: What the panel needs of agents' roles, in the order ``status`` lists it.
NEEDS: tuple[Need, ...] = (
    Need(TRANSCRIPTION_VIEW, "the live call transcript (org-wide: whoever holds it can read "
                             "every conversation's transcript)"),
    Need(COMMUNICATION_VIEW, "reading the conversation, to check the agent is on it"),
    Need(MESSAGE_VIEW, "message text on messaging conversations"),
    Need(WEBMESSAGING_VIEW, f"message text on web messaging (this or {MESSAGE_VIEW})"),
)


@dataclass(frozen=True)
class RoleGrant:
    """A role granting a permission; ``user_count`` None when the platform did not say."""

    name: str
    user_count: int | None
    conditional: bool = False

    def describe(self) -> str:
        """``Agent (2 users)``, ``Agent (1 user, with conditions)``."""
        notes = []
        if self.user_count is not None:
            notes.append(f"{self.user_count} user{'' if self.user_count == 1 else 's'}")
        if self.conditional:
            notes.append("with conditions")
        return f"{self.name} ({', '.join(notes)})" if notes else self.name


@dataclass(frozen=True)
class PermissionCheck:
    """The roles that grant one needed permission."""

    need: Need
    roles: tuple[RoleGrant, ...]

    @property
    def held(self) -> bool:
        """Whether some role that someone holds grants it (unknown counts count as held)."""
        return any(r.user_count is None or r.user_count > 0 for r in self.roles)


@dataclass(frozen=True)
class QueueCheck:
    """The queues' voice transcription: the names of those with it on and off."""

    transcribed: tuple[str, ...]
    untranscribed: tuple[str, ...]

    @property
    def total(self) -> int:
        """How many queues the org has."""
        return len(self.transcribed) + len(self.untranscribed)


@dataclass(frozen=True)
class Skipped:
    """A check that could not be made, and why (for the admin)."""

    reason: str


@dataclass(frozen=True)
class Readiness:
    """The findings of :func:`check`: each check's result, or why it was skipped."""

    permissions: tuple[PermissionCheck, ...] | Skipped
    queues: QueueCheck | Skipped

    def warnings(self) -> list[str]:
        """What stops agents from getting all the panel does, one sentence each."""
        found: list[str] = []
        if not isinstance(self.permissions, Skipped):
            found += _permission_warnings({c.need.permission: c for c in self.permissions})
        if isinstance(self.queues, QueueCheck) and self.queues.total and \
                not self.queues.transcribed:
            found.append("No queue has voice transcription on: calls get no live transcript.")
        return found

    def lines(self) -> list[str]:
        """The report, one line each (indented where it belongs to the line above)."""
        lines = ["Roles granting what agents need:"]
        if isinstance(self.permissions, Skipped):
            lines.append(f"  {self.permissions.reason}")
        else:
            for item in self.permissions:
                lines.append(f"  {item.need.permission}: {item.need.purpose}")
                lines.append(f"    {_named([r.describe() for r in item.roles], MAX_ROLES_NAMED)}"
                             if item.roles else "    no role")
        lines.append("Queues' voice transcription:")
        if isinstance(self.queues, Skipped):
            lines.append(f"  {self.queues.reason}")
        else:
            lines += _queue_lines(self.queues)
        lines += [f"Warning: {w}" for w in self.warnings()]
        return lines


def _permission_warnings(checks: Mapping[str, PermissionCheck]) -> list[str]:
    found: list[str] = []
    transcription = checks[TRANSCRIPTION_VIEW]
    if not transcription.roles:
        found.append(f"No role grants {TRANSCRIPTION_VIEW}: calls get no live transcript "
                     "(the panel still works on messaging, and its ask box on calls).")
    elif not transcription.held:
        found.append(f"Only roles no user holds grant {TRANSCRIPTION_VIEW}: calls get no live "
                     "transcript until agents are given one of them.")
    if not checks[COMMUNICATION_VIEW].held:
        found.append(f"No role that users hold grants {COMMUNICATION_VIEW}: the panel cannot "
                     "check that an agent is on the conversation, so it refuses them.")
    if not (checks[MESSAGE_VIEW].held or checks[WEBMESSAGING_VIEW].held):
        found.append(f"No role that users hold grants {MESSAGE_VIEW} or {WEBMESSAGING_VIEW}: "
                     "the panel cannot read messages on messaging conversations.")
    return found


def _queue_lines(queues: QueueCheck) -> list[str]:
    if not queues.total:
        return ["  the org has no queues"]
    line = f"  on for {len(queues.transcribed)} of {queues.total} queues"
    if queues.untranscribed:
        line += f"; off for {_named(queues.untranscribed, MAX_QUEUES_NAMED)}"
    return [line,
            "  (a queue that takes no calls needs none; voice transcription also needs "
            "Genesys Cloud Voice or BYOC Cloud, which status cannot see)"]


def _named(names: Sequence[str], most: int) -> str:
    shown = ", ".join(names[:most])
    return f"{shown} and {len(names) - most} more" if len(names) > most else shown


# Judging what the platform answered --------------------------------------------


def role_grant(role: Mapping[str, Any], permission: str) -> RoleGrant | None:
    """How ``role`` (a ``DomainOrganizationRole``) grants ``permission``, or None.

    Permissions are granted by ``permissionPolicies`` (``domain``, ``entityName``,
    ``actionSet``), where ``*`` is every entity or every action. A grant is
    conditional when every policy granting it carries a condition (it then holds
    for some conversations only).
    """
    domain, _, rest = permission.partition(":")
    entity, _, action = rest.partition(":")
    matching = [
        policy for policy in role.get("permissionPolicies") or []
        if isinstance(policy, Mapping)
        and policy.get("domain") == domain
        and policy.get("entityName") in ("*", entity)
        and _has_action(policy.get("actionSet"), action)
    ]
    if not matching:
        return None
    count = role.get("userCount")
    return RoleGrant(
        name=str(role.get("name") or role.get("id") or "(unnamed role)"),
        user_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
        conditional=all(policy.get("resourceConditionNode") for policy in matching),
    )


def _has_action(actions: object, action: str) -> bool:
    return isinstance(actions, list) and ("*" in actions or action in actions)


def permission_checks(roles: Iterable[Mapping[str, Any]]) -> tuple[PermissionCheck, ...]:
    """For each of :data:`NEEDS`, the roles granting it, most users first."""
    roles = list(roles)
    checks = []
    for need in NEEDS:
        grants = [g for g in (role_grant(r, need.permission) for r in roles) if g is not None]
        grants.sort(key=lambda g: (-(g.user_count if g.user_count is not None else -1),
                                   g.name.lower()))
        checks.append(PermissionCheck(need, tuple(grants)))
    return tuple(checks)


def queue_check(queues: Iterable[Mapping[str, Any]]) -> QueueCheck:
    """The queues (``Queue``) with voice transcription on and off, by name."""
    on: list[str] = []
    off: list[str] = []
    for queue in queues:
        name = str(queue.get("name") or queue.get("id") or "(unnamed queue)")
        # The platform leaves out empty fields: an absent flag is off.
        (on if queue.get("enableTranscription") is True else off).append(name)
    return QueueCheck(tuple(sorted(on, key=str.lower)), tuple(sorted(off, key=str.lower)))


# Asking the platform ---------------------------------------------------------------


async def _checked(
    read: Callable[[], Awaitable[list[dict[str, Any]]]],
    judge: Callable[[list[dict[str, Any]]], T],
    permission: str,
    purpose: str,
) -> T | Skipped:
    try:
        found = await read()
    except PermissionMissing:
        return Skipped(f"not checked: the admin client's role lacks {permission} "
                       f"(add it to {purpose})")
    except AdminError as exc:
        # Advice only: a failed read is reported, and status carries on.
        return Skipped(f"could not be checked: {exc}")
    return judge(found)


async def check(client: AdminClient) -> Readiness:
    """Read the org's roles and queues through ``client`` (signed in) and judge them.

    Never raises :class:`AdminError`: a check that cannot be made is
    :class:`Skipped`, naming the permission that would allow it.
    """
    permissions = await _checked(client.roles, permission_checks, ROLE_VIEW,
                                 "see which roles grant what agents need")
    queues = await _checked(client.queues, queue_check, QUEUE_VIEW,
                            "see which queues have voice transcription on")
    return Readiness(permissions, queues)
