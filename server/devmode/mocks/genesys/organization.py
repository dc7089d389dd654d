"""The org's roles and queues, as an admin reads them: ``GET /api/v2/authorization/roles``
and ``GET /api/v2/routing/queues``.

``assist-panel status`` reads them to tell an admin whether agents' roles grant
what the panel needs and which queues have voice transcription on. Both need a
client-credentials token holding the listing's view permission
(``authorization:role:view``, ``routing:queue:view``); without it the platform's
403 ``missing.permissions``. Bodies are the SDK's ``OrganizationRoleEntityListing``
of ``DomainOrganizationRole`` and ``QueueEntityListing`` of ``Queue``; empty
fields are left out, never null.

The seed is fixed: the home org's roles and queues (another org's admin would see
none). Fine-grained permissions live in a role's ``permissionPolicies``
(``domain``, ``entityName``, ``actionSet``, where ``*`` stands for every entity or
action); ``permissions`` holds only the older, general ones (``admin``). Each
role's ``userCount`` (only when asked for with ``userCount=true``) counts the
home org's users who hold it. The agents' roles follow what those users may do
now (the ``agentRole`` setting of ``/mock/settings``, see :mod:`.roles`): with
``agent-without-transcription`` no user holds "Assist Agent", the one role
agents get ``conversation:transcription:view`` from, so this listing and the
notification channels' permission checks never disagree.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.devmode.mocks.genesys.admin_auth import require_admin
from server.devmode.mocks.genesys.api import PlatformError
from server.devmode.mocks.genesys.config import MockGenesysConfig
from server.devmode.mocks.genesys.directory import Role as UserRole
from server.devmode.mocks.genesys.directory import User
from server.devmode.mocks.genesys.listing import numbered_page
from server.devmode.mocks.genesys.roles import AGENT_PERMISSIONS
from server.devmode.mocks.genesys.state import MockGenesysState

ROLE_VIEW = "authorization:role:view"
QUEUE_VIEW = "routing:queue:view"
ROLES_PATH = "/api/v2/authorization/roles"
QUEUES_PATH = "/api/v2/routing/queues"
#: When the seeded objects were made and last changed (they never change here).
CREATED = "2024-03-04T09:15:00.000Z"
MODIFIED = "2025-01-20T14:30:00.000Z"
#: Ids of seeded objects derive from their org and name, so they stay the same.
_IDS = uuid.UUID("0b7c5e1a-9d24-4f3b-8a61-2e5f7c9d0a14")

#: A permission policy: ``(domain, entityName, actionSet)``.
Policy = tuple[str, str, tuple[str, ...]]
T = TypeVar("T")


@dataclass(frozen=True)
class SeedRole:
    """A role of the home org. An ``agents`` role is held by each home-org user whose
    current permissions include every agent permission it grants; the others by no one.
    """

    name: str
    description: str
    policies: tuple[Policy, ...]
    agents: bool = False
    permissions: tuple[str, ...] = ()
    default_role_id: str | None = None


@dataclass(frozen=True)
class SeedQueue:
    """An ACD queue of the home org (``members``: the mock users on it)."""

    name: str
    description: str
    transcription: bool
    members: frozenset[UserRole] = field(default_factory=frozenset)
    #: The config's own queue (its id and name come from the config).
    scripted: bool = False


AGENTS: frozenset[UserRole] = frozenset({"scripted-agent", "second-agent"})
ROLES: tuple[SeedRole, ...] = (
    SeedRole(
        "Employee", "Every user of the org.",
        (("directory", "user", ("view",)), ("directory", "group", ("view",))),
        agents=True, default_role_id="employee",
    ),
    SeedRole(
        "Agent", "Handles calls and messages from the Customer Care queues.",
        (
            ("conversation", "communication", ("accept", "disconnect", "transfer", "view")),
            ("conversation", "message", ("create", "view")),
            ("conversation", "webmessaging", ("view",)),
            ("routing", "queue", ("join",)),
        ),
        agents=True,
    ),
    # Held only while the agentRole setting grants the transcript.
    SeedRole(
        "Assist Agent", "Live call transcript for the Assist Panel (org-wide).",
        (("conversation", "transcription", ("view",)),),
        agents=True,
    ),
    SeedRole(
        "Supervisor", "Monitors the Customer Care queues.",
        (
            ("conversation", "communication", ("monitor", "view")),
            ("conversation", "transcription", ("view",)),
            ("conversation", "message", ("view",)),
            ("routing", "queue", ("view",)),
        ),
    ),
    SeedRole(
        "Master Admin", "Every permission of the org.",
        tuple((domain, "*", ("*",)) for domain in (
            "authorization", "conversation", "directory", "integrations", "knowledge",
            "oauth", "routing")),
        permissions=("admin",), default_role_id="admin",
    ),
)
QUEUES: tuple[SeedQueue, ...] = (
    SeedQueue("", "Calls and web messaging from Brightwave customers.", True, AGENTS,
              scripted=True),
    SeedQueue("Brightwave Retentions", "Customers asking to cancel.", True,
              frozenset({"scripted-agent"})),
    SeedQueue("Brightwave Billing", "Bills, payments and refunds.", False,
              frozenset({"second-agent"})),
    SeedQueue("Brightwave Technical Support", "Devices, coverage and outages.", False),
    SeedQueue("Brightwave Web Messaging", "Messaging only: web chat from the help center.",
              False, AGENTS),
)


def grants(policies: tuple[Policy, ...], permission: str) -> bool:
    """Whether ``policies`` grant ``domain:entity:action`` (``*`` matches any)."""
    parts = permission.split(":")
    if len(parts) != 3:
        return False
    domain, entity, action = parts
    return any(
        d == domain and e in ("*", entity) and ("*" in actions or action in actions)
        for d, e, actions in policies
    )


def name_matches(pattern: str, name: str) -> bool:
    """The platform's ``name`` filter: the whole name, case-insensitive; a leading or
    trailing ``*`` lets the name start or end with anything."""
    wanted = pattern.strip().lower()
    value = name.lower()
    core = wanted.strip("*")
    if wanted.startswith("*") and wanted.endswith("*") and len(wanted) > 1:
        return core in value
    if wanted.startswith("*"):
        return value.endswith(core)
    if wanted.endswith("*"):
        return value.startswith(core)
    return value == wanted


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "").strip().lower()
    if raw in ("", "false"):
        return False
    if raw == "true":
        return True
    raise PlatformError(400, "bad.request", f"{name} must be true or false.",
                        {"parameter": name})


def _seed_id(org_id: str, kind: str, name: str) -> str:
    return str(uuid.uuid5(_IDS, f"{org_id}/{kind}/{name}"))


class OrganizationApi:
    """The home org's roles and queues (read only)."""

    def __init__(self, config: MockGenesysConfig, state: MockGenesysState) -> None:
        """Bind to one mock's config (the home org, its queue) and state (tokens, users)."""
        self.config = config
        self.state = state

    def routes(self) -> list[BaseRoute]:
        """``GET /api/v2/authorization/roles`` and ``GET /api/v2/routing/queues``."""
        return [
            Route(ROLES_PATH, self.list_roles, methods=["GET"]),
            Route(QUEUES_PATH, self.list_queues, methods=["GET"]),
        ]

    async def list_roles(self, request: Request) -> Response:
        """``GET /api/v2/authorization/roles``: ``OrganizationRoleEntityListing``, by name.

        ``permission`` (repeatable; several are taken as any of them) keeps the roles
        granting it, through a wildcard too; ``name`` filters by name; ``userCount=true``
        adds each role's ``userCount``. Paged by ``pageSize``/``pageNumber``.
        """
        token = require_admin(self.state, request, ROLE_VIEW)
        with_count = _flag(request, "userCount")
        wanted = [p.strip() for p in request.query_params.getlist("permission") if p.strip()]
        roles = [
            role for role in self._seeded(token.org_id, ROLES)
            if not wanted or any(grants(role.policies, p) for p in wanted)
        ]
        entities = [self._role_body(token.org_id, role, with_count)
                    for role in self._named(request, roles, lambda r: r.name)]
        carry = ("permission", "name", "userCount")
        return JSONResponse(numbered_page(request, entities, carry=carry))

    async def list_queues(self, request: Request) -> Response:
        """``GET /api/v2/routing/queues``: ``QueueEntityListing``, sorted by name.

        ``name`` filters by name (``*`` at either end as a wildcard); paged by
        ``pageSize``/``pageNumber``. ``enableTranscription`` says whether voice
        transcription is on for the queue.
        """
        token = require_admin(self.state, request, QUEUE_VIEW)
        queues = self._seeded(token.org_id, QUEUES)
        entities = [self._queue_body(token.org_id, queue)
                    for queue in self._named(request, queues, self._queue_name)]
        return JSONResponse(numbered_page(request, entities, carry=("name",)))

    # Bodies -------------------------------------------------------------

    def _role_body(self, org_id: str, role: SeedRole, with_count: bool) -> dict[str, Any]:
        role_id = _seed_id(org_id, "role", role.name)
        body: dict[str, Any] = {
            "id": role_id,
            "name": role.name,
            "description": role.description,
            "permissions": list(role.permissions),
            "permissionPolicies": [
                {"domain": domain, "entityName": entity, "actionSet": list(actions),
                 "allowConditions": False}
                for domain, entity, actions in role.policies
            ],
            "default": role.default_role_id is not None,
            "base": False,
            "roleNeedsUpdate": False,
            "selfUri": f"{ROLES_PATH}/{role_id}",
        }
        if role.default_role_id is not None:
            body["defaultRoleId"] = role.default_role_id
        if with_count:
            body["userCount"] = sum(1 for user in self._users(org_id) if self._holds(user, role))
        return body

    def _queue_body(self, org_id: str, queue: SeedQueue) -> dict[str, Any]:
        queue_id = self.config.queue_id if queue.scripted else _seed_id(org_id, "queue",
                                                                        queue.name)
        members = sum(1 for user in self._users(org_id) if user.role in queue.members)
        division = self.config.agent_division_id
        media = {"alertingTimeoutSeconds": 8, "enableAutoAnswer": False,
                 "serviceLevel": {"percentage": 0.8, "durationMs": 20000}}
        return {
            "id": queue_id,
            "name": self._queue_name(queue),
            "description": queue.description,
            "division": {"id": division, "name": "Home",
                         "selfUri": f"/api/v2/authorization/divisions/{division}"},
            "dateCreated": CREATED,
            "dateModified": MODIFIED,
            "memberCount": members,
            "userMemberCount": members,
            "joinedMemberCount": members,
            "mediaSettings": {"call": media, "callback": media, "chat": media,
                              "email": {**media, "alertingTimeoutSeconds": 300},
                              "message": media},
            "acwSettings": {"wrapupPrompt": "OPTIONAL", "timeoutMs": 30000},
            "skillEvaluationMethod": "BEST",
            "scoringMethod": "TimestampAndPriority",
            "autoAnswerOnly": False,
            "enableTranscription": queue.transcription,
            "enableAudioMonitoring": False,
            "enableManualAssignment": False,
            "suppressInQueueCallRecording": True,
            "selfUri": f"{QUEUES_PATH}/{queue_id}",
        }

    # Helpers ------------------------------------------------------------

    def _queue_name(self, queue: SeedQueue) -> str:
        return self.config.queue_name if queue.scripted else queue.name

    def _seeded(self, org_id: str, seed: tuple[T, ...]) -> list[T]:
        # Only the home org is seeded; another org's admin would see an empty org.
        return list(seed) if org_id == self.config.org_id else []

    @staticmethod
    def _named(request: Request, items: list[T], name_of: Callable[[T], str]) -> list[T]:
        pattern = request.query_params.get("name", "").strip()
        chosen = [i for i in items if not pattern or name_matches(pattern, name_of(i))]
        return sorted(chosen, key=lambda i: name_of(i).lower())

    def _users(self, org_id: str) -> list[User]:
        return [user for user in self.state.users.values() if user.org_id == org_id]

    def _holds(self, user: User, role: SeedRole) -> bool:
        if not role.agents:
            return False
        # Derived from what the user may do now, so a subscription refused for a
        # missing permission and this listing tell the same story.
        may = self.state.user_permissions(user.id)
        return all(p in may for p in AGENT_PERMISSIONS if grants(role.policies, p))
