"""Install, uninstall and status touch only the OAuth clients install made.

An admin's own client named with the prefix (a Client Credentials "Assist Panel
admin", say) is not install's: install must not adopt and rewrite it, uninstall
must not delete it, status must not count it against the installation. Run
against the mock Genesys Cloud over real HTTP, as ``test_installer`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from server.admin.installer import install, status, uninstall
from server.admin.manifest import INSTALL_MARKER
from tests.admin.test_installer import BASE_URL, Org, cli, desired, edited, run, verbs
from tests.devmode.test_mock_genesys import MockServer, run_mock

pytestmark = pytest.mark.anyio
#: Fields an adopted client would have had rewritten.
WATCHED = ("name", "description", "authorizedGrantType", "registeredRedirectUri", "scope",
           "dateModified")


@pytest.fixture
def mock() -> Iterator[MockServer]:
    with run_mock() as running:
        yield running


def admins_client(org: Org, **fields: Any) -> dict[str, Any]:
    """The org admin's own automation client, named with the prefix by bad luck."""
    body = {"name": "Assist Panel admin", "authorizedGrantType": "CLIENT-CREDENTIALS",
            "description": "Our deployment scripts", **fields}
    created: dict[str, Any] = org.send("POST", "/api/v2/oauth/clients", body)
    return created


def client_by_id(org: Org, client_id: str) -> dict[str, Any]:
    found: dict[str, Any] = org.get(f"/api/v2/oauth/clients/{client_id}")
    return {key: found.get(key) for key in WATCHED}


async def test_install_does_not_take_over_an_admins_client_named_with_the_prefix(
        mock: MockServer) -> None:
    org = Org(mock)
    theirs = admins_client(org)
    before = client_by_id(org, theirs["id"])

    changes, session = await run(mock, lambda s: install(s, desired()))
    assert verbs(changes)[0] == ("created", "OAuth client")
    assert changes[0].id != theirs["id"]
    assert client_by_id(org, theirs["id"]) == before
    [warning] = session.warnings
    assert "'Assist Panel admin'" in warning and theirs["id"] in warning
    assert "left alone" in warning

    again, _ = await run(mock, lambda s: install(s, desired()))
    assert verbs(again) == [("unchanged", "OAuth client"), ("unchanged", "integration")]
    report, _ = await run(mock, lambda s: status(s, desired()))
    assert report.in_step, report.lines
    assert any("'Assist Panel admin'" in line and "not made by install" in line
               for line in report.lines)


async def test_a_sign_in_client_without_installs_marker_is_not_adopted(
        mock: MockServer) -> None:
    org = Org(mock)
    theirs = admins_client(org, name="Assist Panel sign-in", authorizedGrantType="CODE",
                           registeredRedirectUri=["https://other.example.com/cb"],
                           scope=["user-basic-info"])
    before = client_by_id(org, theirs["id"])
    changes, _ = await run(mock, lambda s: install(s, desired()))
    assert verbs(changes)[0] == ("created", "OAuth client")
    assert client_by_id(org, theirs["id"]) == before


async def test_uninstall_never_deletes_an_admins_client_named_with_the_prefix(
        mock: MockServer) -> None:
    org = Org(mock)
    theirs = admins_client(org)
    changes, session = await run(mock, lambda s: uninstall(s, "Assist Panel"))
    assert changes == []
    assert session.warnings and theirs["id"] in session.warnings[0]
    await run(mock, lambda s: install(s, desired()))
    removed, _ = await run(mock, lambda s: uninstall(s, "Assist Panel"))
    assert theirs["id"] not in {c.id for c in removed}
    assert [c["id"] for c in org.oauth_clients()] == [theirs["id"]]


async def test_install_still_updates_its_own_client_after_a_rename_or_grant_change(
        mock: MockServer) -> None:
    first, _ = await run(mock, lambda s: install(s, desired()))

    def edit(data: dict[str, Any]) -> None:
        data["oauthClient"]["name"] = "Assist Panel agents"
        data["oauthClient"]["grant"] = "implicit"
        data["oauthClient"]["description"] = "Agents sign in here."

    changes, _ = await run(mock, lambda s: install(s, desired(edited(edit))))
    assert verbs(changes)[0] == ("updated", "OAuth client")
    assert changes[0].id == first[0].id
    [client] = Org(mock).oauth_clients()
    assert client["name"] == "Assist Panel agents"
    assert client["authorizedGrantType"] == "TOKEN"
    # The marker goes with any description, so the next run still knows the client.
    assert client["description"] == f"Agents sign in here. {INSTALL_MARKER}"


def test_cli_warns_about_an_admins_client_and_status_is_in_step_beside_it(
        mock: MockServer) -> None:
    theirs = admins_client(Org(mock))
    installed = cli(mock, "install", "--base-url", BASE_URL)
    assert installed.exit_code == 0, installed.output
    assert (f"Warning: OAuth client 'Assist Panel admin' ({theirs['id']}) is named with "
            "'Assist Panel' but was not made by install") in installed.stderr
    shown = cli(mock, "status")
    assert shown.exit_code == 0, shown.output
    removed = cli(mock, "uninstall")
    assert removed.exit_code == 0, removed.output
    assert theirs["id"] not in removed.stdout
    assert "Warning: OAuth client 'Assist Panel admin'" in removed.stderr
    assert [c["id"] for c in Org(mock).oauth_clients()] == [theirs["id"]]
