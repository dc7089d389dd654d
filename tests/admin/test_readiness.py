"""What agents need that install cannot change (``server.admin.readiness``): judging roles and
queues, the report and its warnings, and the checks against the mock Genesys Cloud
over real HTTP (found, skipped for a missing permission, failed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from server.admin.client import (
    QUEUE_VIEW,
    ROLE_VIEW,
    AdminClient,
    AdminCredentials,
    PlatformHosts,
)
from server.admin.readiness import (
    COMMUNICATION_VIEW,
    MAX_QUEUES_NAMED,
    MAX_ROLES_NAMED,
    MESSAGE_VIEW,
    NEEDS,
    TRANSCRIPTION_VIEW,
    WEBMESSAGING_VIEW,
    PermissionCheck,
    QueueCheck,
    Readiness,
    RoleGrant,
    Skipped,
    check,
    permission_checks,
    queue_check,
    role_grant,
)
from server.devmode.mocks.genesys.config import ADMIN_PERMISSIONS
from tests.devmode.test_mock_genesys import MockServer, run_mock


def role(name: str, *policies: tuple[str, str, list[str]], users: Any = 3,
         **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"id-{name}", "name": name,
        "permissionPolicies": [{"domain": d, "entityName": e, "actionSet": a}
                               for d, e, a in policies],
        **extra,
    }
    if users is not None:
        body["userCount"] = users
    return body


AGENT = role("Agent", ("conversation", "communication", ["view", "accept"]),
             ("conversation", "message", ["view"]))
ASSIST = role("Assist", ("conversation", "transcription", ["view"]), users=1)


def readiness(roles: list[dict[str, Any]], queues: list[dict[str, Any]] | None = None,
              ) -> Readiness:
    on = [{"name": "Care", "enableTranscription": True}]
    return Readiness(permission_checks(roles), queue_check(on if queues is None else queues))


# Judging one role -------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "grants"), [
    (("conversation", "transcription", ["view"]), True),
    (("conversation", "transcription", ["*"]), True),
    (("conversation", "*", ["view"]), True),
    (("conversation", "*", ["*"]), True),
    (("conversation", "transcription", ["add"]), False),
    (("conversation", "communication", ["view"]), False),
    (("routing", "transcription", ["view"]), False),
    (("*", "transcription", ["view"]), False),
])
def test_a_role_grants_through_its_policies_wildcards_included(
        policy: tuple[str, str, list[str]], grants: bool) -> None:
    found = role_grant(role("R", policy), TRANSCRIPTION_VIEW)
    assert (found is not None) == grants


def test_the_older_permissions_list_grants_nothing_fine_grained() -> None:
    assert role_grant(role("R", permissions=[TRANSCRIPTION_VIEW]), TRANSCRIPTION_VIEW) is None


def test_a_grant_only_under_conditions_is_marked() -> None:
    conditioned = role("Q", ("conversation", "communication", ["view"]))
    conditioned["permissionPolicies"][0]["resourceConditionNode"] = {
        "variableName": "Conversation.queues", "operator": "IN", "operands": []}
    grant = role_grant(conditioned, COMMUNICATION_VIEW)
    assert grant == RoleGrant("Q", 3, conditional=True)
    assert grant.describe() == "Q (3 users, with conditions)"
    # Another policy granting it without a condition makes the grant whole.
    conditioned["permissionPolicies"].append(
        {"domain": "conversation", "entityName": "*", "actionSet": ["view"]})
    assert role_grant(conditioned, COMMUNICATION_VIEW) == RoleGrant("Q", 3)


@pytest.mark.parametrize(("users", "shown"), [(1, "A (1 user)"), (0, "A (0 users)"),
                                              (None, "A"), (True, "A"), ("2", "A")])
def test_user_counts_are_shown_when_the_platform_gave_a_number(users: Any, shown: str) -> None:
    grant = role_grant(role("A", ("conversation", "*", ["*"]), users=users), MESSAGE_VIEW)
    assert grant is not None and grant.describe() == shown


def test_malformed_policies_are_ignored() -> None:
    odd = {"name": "Odd", "permissionPolicies": [
        "conversation:transcription:view", {"domain": "conversation"},
        {"domain": "conversation", "entityName": "transcription", "actionSet": "view"}]}
    assert role_grant(odd, TRANSCRIPTION_VIEW) is None
    assert role_grant({"name": "Bare"}, TRANSCRIPTION_VIEW) is None


# Judging every role and queue -------------------------------------------------------


def test_each_need_lists_its_roles_most_users_first() -> None:
    admin = role("Admin", ("conversation", "*", ["*"]), users=0)
    unknown = role("Unknown", ("conversation", "*", ["view"]), users=None)
    checks = permission_checks([admin, AGENT, ASSIST, unknown])
    assert [c.need for c in checks] == list(NEEDS)
    by = {c.need.permission: [g.name for g in c.roles] for c in checks}
    assert by == {
        TRANSCRIPTION_VIEW: ["Assist", "Admin", "Unknown"],
        COMMUNICATION_VIEW: ["Agent", "Admin", "Unknown"],
        MESSAGE_VIEW: ["Agent", "Admin", "Unknown"],
        WEBMESSAGING_VIEW: ["Admin", "Unknown"],
    }


def test_queues_are_split_by_transcription_an_absent_flag_being_off() -> None:
    found = queue_check([{"name": "b", "enableTranscription": False},
                         {"name": "A", "enableTranscription": True},
                         {"id": "q-3"}, {"name": "c", "enableTranscription": "true"}])
    assert found == QueueCheck(("A",), ("b", "c", "q-3"))
    assert found.total == 4


# The report -------------------------------------------------------------------------


def test_an_org_with_everything_has_no_warning_and_lists_each_need() -> None:
    ready = readiness([AGENT, ASSIST, role("Web", ("conversation", "webmessaging", ["view"]))],
                      [{"name": "Care", "enableTranscription": True},
                       {"name": "Billing", "enableTranscription": False}])
    assert ready.warnings() == []
    lines = ready.lines()
    assert lines[0] == "Roles granting what agents need:"
    assert f"  {TRANSCRIPTION_VIEW}: the live call transcript (org-wide: whoever holds it can " \
           "read every conversation's transcript)" in lines
    assert lines[lines.index(f"  {WEBMESSAGING_VIEW}: message text on web messaging (this or "
                             f"{MESSAGE_VIEW})") + 1] == "    Web (3 users)"
    assert "  on for 1 of 2 queues; off for Billing" in lines
    assert not any(line.startswith("Warning") for line in lines)


def test_no_role_granting_the_transcript_is_flagged() -> None:
    ready = readiness([AGENT])
    [warning] = ready.warnings()
    assert warning.startswith(f"No role grants {TRANSCRIPTION_VIEW}: calls get no live "
                              "transcript")
    lines = ready.lines()
    assert lines[lines.index(f"  {TRANSCRIPTION_VIEW}: the live call transcript (org-wide: "
                             "whoever holds it can read every conversation's transcript)")
                 + 1] == "    no role"
    assert lines[-1] == f"Warning: {warning}"


def test_roles_that_no_user_holds_do_not_count() -> None:
    unused = role("Unused", ("conversation", "*", ["*"]), users=0)
    warnings = readiness([unused]).warnings()
    assert len(warnings) == 3
    assert warnings[0].startswith(f"Only roles no user holds grant {TRANSCRIPTION_VIEW}")
    assert COMMUNICATION_VIEW in warnings[1] and "refuses them" in warnings[1]
    assert MESSAGE_VIEW in warnings[2] and WEBMESSAGING_VIEW in warnings[2]
    # Counts the platform did not give are not taken for zero.
    assert readiness([role("Uncounted", ("conversation", "*", ["*"]), users=None)]
                     ).warnings() == []


def test_either_message_permission_is_enough() -> None:
    web_only = role("Web", ("conversation", "communication", ["view"]),
                    ("conversation", "webmessaging", ["view"]))
    assert readiness([web_only, ASSIST]).warnings() == []
    no_messages = role("Calls", ("conversation", "communication", ["view"]))
    [warning] = readiness([no_messages, ASSIST]).warnings()
    assert "cannot read messages on messaging conversations" in warning


def test_no_queue_with_transcription_is_flagged_but_no_queue_at_all_is_not() -> None:
    off = [{"name": "Billing", "enableTranscription": False}]
    assert readiness([AGENT, ASSIST], off).warnings() == [
        "No queue has voice transcription on: calls get no live transcript."]
    empty = readiness([AGENT, ASSIST], [])
    assert empty.warnings() == []
    assert "  the org has no queues" in empty.lines()


def test_long_lists_are_cut_short_with_a_count() -> None:
    many = [role(f"R{i:02}", ("conversation", "*", ["*"])) for i in range(MAX_ROLES_NAMED + 3)]
    queues = [{"name": f"Q{i:02}"} for i in range(MAX_QUEUES_NAMED + 2)]
    lines = readiness(many, queues).lines()
    assert lines[2].endswith(f"R{MAX_ROLES_NAMED - 1:02} (3 users) and 3 more")
    assert lines[2].count("(3 users)") == MAX_ROLES_NAMED
    assert f"  on for 0 of {len(queues)} queues; off for Q00, Q01, Q02, Q03, Q04 and 2 more" \
        in lines


def test_skipped_checks_say_why_and_nothing_is_flagged() -> None:
    ready = Readiness(Skipped("not checked: x"), Skipped("could not be checked: y"))
    assert ready.warnings() == []
    assert ready.lines() == ["Roles granting what agents need:", "  not checked: x",
                             "Queues' voice transcription:", "  could not be checked: y"]


# Against the mock -------------------------------------------------------------------


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with run_mock() as running:
        yield running


@asynccontextmanager
async def signed_in(mock: MockServer) -> AsyncIterator[AdminClient]:
    async def no_sleep(seconds: float) -> None:
        return None

    async with httpx.AsyncClient() as http:
        client = AdminClient(http, PlatformHosts.resolve("", mock.origin), sleep=no_sleep,
                             max_attempts=2)
        await client.sign_in(AdminCredentials(mock.config.admin_client_id,
                                              mock.config.admin_client_secret))
        yield client


def granted(ready: Readiness) -> dict[str, list[str]]:
    assert not isinstance(ready.permissions, Skipped)
    return {c.need.permission: [g.describe() for g in c.roles] for c in ready.permissions}


@pytest.mark.anyio
async def test_the_mock_org_has_what_agents_need(mock: MockServer) -> None:
    async with signed_in(mock) as client:
        ready = await check(client)
    assert granted(ready) == {
        TRANSCRIPTION_VIEW: ["Assist Agent (2 users)", "Master Admin (0 users)",
                             "Supervisor (0 users)"],
        COMMUNICATION_VIEW: ["Agent (2 users)", "Master Admin (0 users)",
                             "Supervisor (0 users)"],
        MESSAGE_VIEW: ["Agent (2 users)", "Master Admin (0 users)", "Supervisor (0 users)"],
        WEBMESSAGING_VIEW: ["Agent (2 users)", "Master Admin (0 users)"],
    }
    assert ready.queues == QueueCheck(
        ("Brightwave Customer Care", "Brightwave Retentions"),
        ("Brightwave Billing", "Brightwave Technical Support", "Brightwave Web Messaging"))
    assert ready.warnings() == []


@pytest.mark.anyio
async def test_the_mock_roles_without_the_transcript_policy_are_flagged(
        mock: MockServer) -> None:
    async with signed_in(mock) as client:
        roles = await client.roles()
    for each in roles:
        each["permissionPolicies"] = [p for p in each["permissionPolicies"]
                                      if p["domain"] != "conversation"
                                      or p["entityName"] != "transcription"]
        if each["name"] == "Master Admin":
            each["permissionPolicies"] = []
    checks = {c.need.permission: c for c in permission_checks(roles)}
    assert checks[TRANSCRIPTION_VIEW] == PermissionCheck(NEEDS[0], ())
    [warning] = Readiness(tuple(checks.values()), QueueCheck(("Care",), ())).warnings()
    assert warning.startswith(f"No role grants {TRANSCRIPTION_VIEW}")


@pytest.mark.parametrize("lacking", [(ROLE_VIEW,), (QUEUE_VIEW,), (ROLE_VIEW, QUEUE_VIEW)])
@pytest.mark.anyio
async def test_a_check_the_admin_client_may_not_make_is_skipped_naming_the_permission(
        lacking: tuple[str, ...]) -> None:
    permissions = tuple(p for p in ADMIN_PERMISSIONS if p not in lacking)
    with run_mock(admin_permissions=permissions) as limited:
        async with signed_in(limited) as client:
            ready = await check(client)
    assert isinstance(ready.permissions, Skipped) == (ROLE_VIEW in lacking)
    assert isinstance(ready.queues, Skipped) == (QUEUE_VIEW in lacking)
    if isinstance(ready.permissions, Skipped):
        assert ready.permissions.reason == (
            f"not checked: the admin client's role lacks {ROLE_VIEW} (add it to see which "
            "roles grant what agents need)")
    else:
        assert granted(ready)[TRANSCRIPTION_VIEW][0] == "Assist Agent (2 users)"
    if isinstance(ready.queues, Skipped):
        assert ready.queues.reason == (
            f"not checked: the admin client's role lacks {QUEUE_VIEW} (add it to see which "
            "queues have voice transcription on)")
    else:
        assert ready.queues.total == 5
    assert ready.warnings() == []


@pytest.mark.anyio
async def test_a_failed_read_is_reported_and_the_other_check_still_made(
        mock: MockServer) -> None:
    rule = {"method": "GET", "path": "/api/v2/routing/queues", "status": 500, "times": 1}
    async with signed_in(mock) as client:
        added = await client.http.post(f"{mock.origin}/mock/faults", json=rule)
        assert added.status_code == 201
        try:
            ready = await check(client)
        finally:
            await client.http.delete(f"{mock.origin}/mock/faults")
    assert isinstance(ready.queues, Skipped)
    assert ready.queues.reason.startswith("could not be checked: GET /api/v2/routing/queues "
                                          "failed: 500")
    assert granted(ready)[TRANSCRIPTION_VIEW]


@pytest.mark.anyio
async def test_every_page_is_read(mock: MockServer) -> None:
    async with signed_in(mock) as client:
        pages = [page async for page in client.pages(
            "/api/v2/authorization/roles", need=ROLE_VIEW, page_size=2,
            params={"userCount": "true", "permission": COMMUNICATION_VIEW})]
        roles = await client.roles()
        queues = await client.queues()
    assert [[r["name"] for r in page] for page in pages] == [["Agent", "Master Admin"],
                                                            ["Supervisor"]]
    assert all("userCount" in r for page in pages for r in page)
    assert len(roles) == 5 and all("userCount" in r for r in roles)
    assert len(queues) == 5
