"""``assist-panel install | uninstall | status`` against the mock Genesys Cloud over real HTTP.

Each test gets a fresh mock org; the installer runs in-process through the real
admin client (or through the CLI), and the org is then read back through the
Platform API to see what it really holds.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from click.testing import CliRunner

from server.admin.client import AdminClient, AdminCredentials, PlatformHosts
from server.admin.installer import (
    Change,
    PlatformSession,
    config_differences,
    install,
    status,
    uninstall,
)
from server.admin.manifest import Desired, Manifest, load, render
from server.cli import main
from server.devmode.mocks.genesys.config import ADMIN_PERMISSIONS
from server.errors import PermissionMissing, PlatformCallFailed
from tests.devmode.test_mock_genesys import MockServer, run_mock

pytestmark = pytest.mark.anyio
BASE_URL = "http://localhost:8000"
T = TypeVar("T")


@pytest.fixture
def mock() -> Iterator[MockServer]:
    with run_mock() as running:
        yield running


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def run(mock: MockServer, work: Callable[[PlatformSession], Awaitable[T]], *,
              dry_run: bool = False, sleep: Sleeps | None = None) -> tuple[T, PlatformSession]:
    """Sign the mock's admin client in and run ``work`` on a session."""
    async with httpx.AsyncClient() as http:
        client = AdminClient(http, PlatformHosts.resolve("", mock.origin), sleep=sleep or Sleeps())
        await client.sign_in(AdminCredentials(mock.config.admin_client_id,
                                              mock.config.admin_client_secret))
        session = PlatformSession(client, dry_run=dry_run)
        return await work(session), session


def desired(manifest: Manifest | None = None) -> Desired:
    return render(manifest or load(), BASE_URL)


def edited(change: Callable[[dict[str, Any]], None]) -> Manifest:
    data = copy.deepcopy(load().data)
    change(data)
    return Manifest(Path("edited.json"), data)


class Org:
    """Reads the mock org back through the Platform API, as an admin."""

    def __init__(self, mock: MockServer) -> None:
        self.origin = mock.origin
        token = httpx.post(f"{mock.origin}/oauth/token", data={"grant_type": "client_credentials"},
                           auth=(mock.config.admin_client_id, mock.config.admin_client_secret))
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.origin}{path}", headers=self.headers,
                             params={"pageSize": 100})
        response.raise_for_status()
        return response.json()

    def send(self, method: str, path: str, body: Any) -> Any:
        response = httpx.request(method, f"{self.origin}{path}", headers=self.headers, json=body)
        response.raise_for_status()
        return response.json() if response.content else None

    def oauth_clients(self, prefix: str = "Assist Panel") -> list[dict[str, Any]]:
        return [c for c in self.get("/api/v2/oauth/clients")["entities"]
                if c["name"].startswith(prefix)]

    def integrations(self, prefix: str = "Assist Panel") -> list[dict[str, Any]]:
        return [i for i in self.get("/api/v2/integrations")["entities"]
                if i["name"].startswith(prefix)]

    def config(self, integration_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/api/v2/integrations/{integration_id}/config/current")
        return result


def verbs(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.verb, c.kind) for c in changes]


def writes(session: PlatformSession) -> list[str]:
    return [c.describe() for c in session.calls if c.method != "GET" and c.made]


def fault(mock: MockServer, **rule: object) -> None:
    assert httpx.post(f"{mock.origin}/mock/faults", json=rule).status_code == 201


async def test_install_from_nothing_creates_configures_and_enables(mock: MockServer) -> None:
    changes, _ = await run(mock, lambda s: install(s, desired()))
    assert verbs(changes) == [("created", "OAuth client"), ("created", "integration"),
                              ("configured", "integration"), ("enabled", "integration")]
    org = Org(mock)
    [client] = org.oauth_clients()
    assert client["id"] == changes[0].id
    assert client["authorizedGrantType"] == "CODE"
    assert client["registeredRedirectUri"] == [f"{BASE_URL}/panel"]
    [integration] = org.integrations()
    assert integration["intendedState"] == "ENABLED"
    assert integration["integrationType"]["id"] == "embedded-client-app-interaction-widget"
    config = org.config(integration["id"])
    assert config_differences(config, desired().config) == []
    assert config["properties"]["url"].startswith(f"{BASE_URL}/panel?conversationId=")


async def test_installing_twice_changes_nothing_and_makes_no_write(mock: MockServer) -> None:
    await run(mock, lambda s: install(s, desired()))
    org = Org(mock)
    [before] = org.integrations()
    version = org.config(before["id"])["version"]
    changes, session = await run(mock, lambda s: install(s, desired()))
    assert verbs(changes) == [("unchanged", "OAuth client"), ("unchanged", "integration")]
    assert writes(session) == []
    [after] = org.integrations()
    assert after["id"] == before["id"]
    assert org.config(after["id"])["version"] == version
    assert len(org.oauth_clients()) == 1


async def test_an_edited_manifest_is_applied_as_an_update(mock: MockServer) -> None:
    first, _ = await run(mock, lambda s: install(s, desired()))

    def edit(data: dict[str, Any]) -> None:
        data["widget"]["communicationTypes"] = ["call"]
        data["widget"]["name"] = "Assist Panel Knowledge"
        data["oauthClient"]["scopes"].append("knowledge:readonly")

    changes, _ = await run(mock, lambda s: install(s, desired(edited(edit))))
    assert verbs(changes) == [("updated", "OAuth client"), ("configured", "integration")]
    assert "scope" in changes[0].detail
    assert "properties.communicationTypeFilter" in changes[1].detail
    assert "name" in changes[1].detail
    org = Org(mock)
    [client] = org.oauth_clients()
    assert client["id"] == first[0].id
    assert "knowledge:readonly" in client["scope"]
    [integration] = org.integrations()
    assert integration["id"] == first[1].id
    assert integration["name"] == "Assist Panel Knowledge"
    assert org.config(integration["id"])["properties"]["communicationTypeFilter"] == "call"


async def test_a_dry_run_lists_every_call_and_changes_nothing(mock: MockServer) -> None:
    changes, session = await run(mock, lambda s: install(s, desired()), dry_run=True)
    assert verbs(changes) == [("created", "OAuth client"), ("created", "integration"),
                              ("configured", "integration"), ("enabled", "integration")]
    planned = [(c.describe(), c.made) for c in session.calls]
    assert planned == [
        ("GET /api/v2/oauth/clients", True),
        ("GET /api/v2/integrations", True),
        ("POST /api/v2/oauth/clients", False),
        ("POST /api/v2/integrations", False),
        ("PUT /api/v2/integrations/<new integration id>/config/current", False),
        ("PATCH /api/v2/integrations/<new integration id>", False),
    ]
    assert session.calls[2].body == desired().oauth_client
    org = Org(mock)
    assert org.oauth_clients() == [] and org.integrations() == []


async def test_a_dry_run_after_install_plans_only_the_difference(mock: MockServer) -> None:
    await run(mock, lambda s: install(s, desired()))
    manifest = edited(lambda d: d["oauthClient"].update(tokenLifetimeSeconds=3600))
    changes, session = await run(mock, lambda s: install(s, desired(manifest)), dry_run=True)
    assert verbs(changes) == [("updated", "OAuth client"), ("unchanged", "integration")]
    assert [c.describe() for c in session.calls if not c.made] == [
        f"PUT /api/v2/oauth/clients/{changes[0].id}"]
    assert Org(mock).oauth_clients()[0]["accessTokenValiditySeconds"] == 86400


async def test_uninstall_removes_exactly_what_install_made(mock: MockServer) -> None:
    await run(mock, lambda s: install(s, desired()))
    org = Org(mock)
    # The org's own objects: another widget, a prefixed integration of another type,
    # and another OAuth client. None of them may be touched.
    other_widget = org.send("POST", "/api/v2/integrations", {
        "name": "Wallboard", "integrationType": {"id": "embedded-client-app-interaction-widget"}})
    data_actions = org.send("POST", "/api/v2/integrations", {
        "name": "Assist Panel data actions", "integrationType": {"id": "purecloud-data-actions"}})
    other_client = org.send("POST", "/api/v2/oauth/clients", {
        "name": "Wallboard sign-in", "authorizedGrantType": "CODE",
        "registeredRedirectUri": ["https://wallboard.example.com/"], "scope": ["user-basic-info"]})
    all_clients_before = {c["id"] for c in org.get("/api/v2/oauth/clients")["entities"]}

    changes, _ = await run(mock, lambda s: uninstall(s, "Assist Panel", "Assist Panel sign-in"))
    assert verbs(changes) == [("deleted", "integration"), ("deleted", "OAuth client")]
    remaining = {i["id"] for i in org.get("/api/v2/integrations")["entities"]}
    assert remaining == {other_widget["id"], data_actions["id"]}
    clients_after = {c["id"] for c in org.get("/api/v2/oauth/clients")["entities"]}
    assert clients_after == all_clients_before - {changes[1].id}
    assert other_client["id"] in clients_after

    again, _ = await run(mock, lambda s: uninstall(s, "Assist Panel", "Assist Panel sign-in"))
    assert again == []


async def test_a_failure_midway_is_completed_by_a_rerun(mock: MockServer) -> None:
    fault(mock, method="PUT", path="/api/v2/integrations/*/config/current", status=500)
    with pytest.raises(PlatformCallFailed, match="500"):
        await run(mock, lambda s: install(s, desired()))
    org = Org(mock)
    [half] = org.integrations()
    assert half["intendedState"] == "DISABLED"

    changes, _ = await run(mock, lambda s: install(s, desired()))
    assert verbs(changes) == [("unchanged", "OAuth client"), ("configured", "integration"),
                              ("enabled", "integration")]
    [integration] = org.integrations()
    assert integration["id"] == half["id"]
    assert integration["intendedState"] == "ENABLED"
    assert len(org.oauth_clients()) == 1
    report, _ = await run(mock, lambda s: status(s, desired()))
    assert report.in_step


async def test_a_missing_permission_is_named() -> None:
    lacking = tuple(p for p in ADMIN_PERMISSIONS if p != "integrations:integration:add")
    with run_mock(admin_permissions=lacking) as mock, pytest.raises(PermissionMissing) as caught:
        await run(mock, lambda s: install(s, desired()))
    message = str(caught.value)
    assert "POST /api/v2/integrations" in message
    assert "needs the permission integrations:integration:add" in message


async def test_rate_limits_are_waited_out_as_the_platform_asks(mock: MockServer) -> None:
    fault(mock, method="POST", path="/api/v2/integrations", status=429, times=2, retryAfter=7)
    sleeps = Sleeps()
    changes, _ = await run(mock, lambda s: install(s, desired()), sleep=sleeps)
    assert sleeps.waits == [7, 7]
    assert ("enabled", "integration") in verbs(changes)
    assert len(Org(mock).integrations()) == 1


async def test_status_names_what_differs_from_the_manifest(mock: MockServer) -> None:
    report, _ = await run(mock, lambda s: status(s, desired()))
    assert not report.in_step
    assert any("not installed" in line for line in report.lines)
    changes, _ = await run(mock, lambda s: install(s, desired()))
    org = Org(mock)
    integration_id = changes[1].id
    config = org.config(integration_id)
    config["properties"]["url"] = "https://elsewhere.example.com/panel"
    org.send("PUT", f"/api/v2/integrations/{integration_id}/config/current", config)
    report, _ = await run(mock, lambda s: status(s, desired()))
    assert not report.in_step
    assert any("differs from the manifest in properties.url" in line for line in report.lines)


# The CLI ---------------------------------------------------------------------


def cli(mock: MockServer, *args: str, secret: str | None = None) -> Any:
    env = {"ASSIST_ADMIN_CLIENT_ID": mock.config.admin_client_id,
           "ASSIST_ADMIN_CLIENT_SECRET": secret or mock.config.admin_client_secret}
    return CliRunner().invoke(main, [*args, "--api-base", mock.origin], env=env)


def test_cli_install_prints_the_server_settings_and_they_sign_agents_in(
        mock: MockServer) -> None:
    result = cli(mock, "install", "--base-url", BASE_URL)
    assert result.exit_code == 0, result.output
    settings = dict(line.strip().split("=", 1) for line in result.output.splitlines()
                    if line.strip().startswith("ASSIST_") and "=" in line)
    assert settings["ASSIST_ALLOWED_ORGS"] == mock.config.org_id
    assert settings["ASSIST_OAUTH_GRANT"] == "pkce"
    assert settings["ASSIST_PUBLIC_URL"] == BASE_URL
    assert mock.config.admin_client_secret not in result.output
    # The installed OAuth client is real: the login host signs an agent in through it.
    response = httpx.get(f"{mock.origin}/oauth/authorize", params={
        "client_id": settings["ASSIST_OAUTH_CLIENT_ID"], "response_type": "code",
        "redirect_uri": f"{BASE_URL}/panel", "state": "s",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256"})
    assert response.status_code == 302
    assert "code" in parse_qs(urlsplit(response.headers["location"]).query)

    again = cli(mock, "install", "--base-url", BASE_URL)
    assert again.exit_code == 0
    assert "Nothing to change" in again.output


def test_cli_dry_run_shows_bodies_and_makes_no_change(mock: MockServer) -> None:
    result = cli(mock, "install", "--base-url", BASE_URL, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "POST /api/v2/oauth/clients  (would make)" in result.output
    assert '"authorizedGrantType": "CODE"' in result.output
    assert Org(mock).oauth_clients() == []


def test_cli_failure_midway_says_what_was_done_and_to_rerun(mock: MockServer) -> None:
    fault(mock, method="PATCH", path="/api/v2/integrations/*", status=500)
    result = cli(mock, "install", "--base-url", BASE_URL)
    assert result.exit_code == 1
    assert "Changes made before the failure" in result.output
    assert "Run assist-panel install again to finish" in result.output
    rerun = cli(mock, "install", "--base-url", BASE_URL)
    assert rerun.exit_code == 0, rerun.output
    assert "enabled integration" in rerun.output


def test_cli_uninstall_and_status(mock: MockServer) -> None:
    assert cli(mock, "install", "--base-url", BASE_URL).exit_code == 0
    shown = cli(mock, "status")
    assert shown.exit_code == 0, shown.output
    assert "matches the manifest" in shown.output
    removed = cli(mock, "uninstall")
    assert removed.exit_code == 0
    assert removed.output.count("deleted") == 2
    assert cli(mock, "status").exit_code == 1
    assert "Nothing to remove" in cli(mock, "uninstall").output


def test_cli_refuses_bad_credentials_and_missing_ones(mock: MockServer) -> None:
    wrong = cli(mock, "install", "--base-url", BASE_URL, secret="wrong")
    assert wrong.exit_code == 1
    assert "refused the admin client credentials" in wrong.output
    assert "ASSIST_ADMIN_CLIENT_SECRET" in wrong.output
    bare = CliRunner().invoke(main, ["install", "--base-url", BASE_URL, "--region", "eu-west-1"],
                              env={"ASSIST_ADMIN_CLIENT_ID": "", "ASSIST_ADMIN_CLIENT_SECRET": "",
                                   "GENESYSCLOUD_OAUTHCLIENT_ID": "",
                                   "GENESYSCLOUD_OAUTHCLIENT_SECRET": ""})
    assert bare.exit_code == 1
    assert "no admin credentials" in bare.output


def test_cli_refuses_a_bad_manifest(mock: MockServer, tmp_path: Path) -> None:
    data = copy.deepcopy(load().data)
    data["widget"]["sandbox"] = ["allow-forms"]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    result = cli(mock, "install", "--base-url", BASE_URL, "--manifest", str(path))
    assert result.exit_code == 1
    assert "$.widget.sandbox" in result.output
    assert Org(mock).oauth_clients() == []


def test_cli_status_reports_what_agents_need_apart_from_the_exit_code(
        mock: MockServer) -> None:
    before = cli(mock, "status")
    assert before.exit_code == 1
    assert "Not installed" in before.output
    # Worth knowing before installing too: reported either way.
    assert "What agents need" in before.output
    assert cli(mock, "install", "--base-url", BASE_URL).exit_code == 0
    shown = cli(mock, "status")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    start = lines.index("What agents need (install does not change roles or queues; these "
                        "findings do not change the exit code):")
    assert lines[start - 1] == "" and "matches the manifest" in lines[start - 2]
    assert lines[start + 1:] == [
        "  Roles granting what agents need:",
        "    conversation:transcription:view: the live call transcript (org-wide: whoever "
        "holds it can read every conversation's transcript)",
        "      Assist Agent (2 users), Master Admin (0 users), Supervisor (0 users)",
        "    conversation:communication:view: reading the conversation, to check the agent "
        "is on it",
        "      Agent (2 users), Master Admin (0 users), Supervisor (0 users)",
        "    conversation:message:view: message text on messaging conversations",
        "      Agent (2 users), Master Admin (0 users), Supervisor (0 users)",
        "    conversation:webmessaging:view: message text on web messaging (this or "
        "conversation:message:view)",
        "      Agent (2 users), Master Admin (0 users)",
        "  Queues' voice transcription:",
        "    on for 2 of 5 queues; off for Brightwave Billing, Brightwave Technical Support, "
        "Brightwave Web Messaging",
        "    (a queue that takes no calls needs none; voice transcription also needs Genesys "
        "Cloud Voice or BYOC Cloud, which status cannot see)",
    ]
    assert mock.config.admin_client_secret not in shown.output


def test_cli_status_warns_when_no_agent_can_get_the_transcript(mock: MockServer) -> None:
    assert cli(mock, "install", "--base-url", BASE_URL).exit_code == 0
    changed = httpx.put(f"{mock.origin}/mock/settings",
                        json={"agentRole": "agent-without-transcription"})
    assert changed.status_code == 200, changed.text
    shown = cli(mock, "status")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert "      Assist Agent (0 users), Master Admin (0 users), Supervisor (0 users)" in lines
    assert lines[-1] == ("  Warning: Only roles no user holds grant "
                         "conversation:transcription:view: calls get no live transcript until "
                         "agents are given one of them.")


def test_cli_status_says_which_checks_it_skipped_and_why() -> None:
    lacking = tuple(p for p in ADMIN_PERMISSIONS
                    if p not in ("authorization:role:view", "routing:queue:view"))
    with run_mock(admin_permissions=lacking) as mock:
        assert cli(mock, "install", "--base-url", BASE_URL).exit_code == 0
        shown = cli(mock, "status")
    assert shown.exit_code == 0, shown.output
    assert "Traceback" not in shown.output and shown.exception is None
    assert ("    not checked: the admin client's role lacks authorization:role:view (add it "
            "to see which roles grant what agents need)") in shown.output.splitlines()
    assert ("    not checked: the admin client's role lacks routing:queue:view (add it to "
            "see which queues have voice transcription on)") in shown.output.splitlines()


def test_cli_status_help_says_the_findings_leave_the_exit_code_alone() -> None:
    shown = CliRunner().invoke(main, ["status", "--help"])
    assert shown.exit_code == 0
    text = " ".join(shown.output.split())
    assert "Exits 0 when the org matches the manifest, 1 when something is missing or " \
           "differs" in text
    assert "does not change the exit code" in text
