"""What ``assist-panel install | uninstall | status`` tell the admin when a run fails, is
interrupted, cannot compare, or is given bad arguments; and that help, docs and the
dry run's call list say what the commands really do. Against the mock Genesys Cloud
over real HTTP, in-process through the CLI (a real process where Ctrl-C is sent).
"""

from __future__ import annotations

import functools
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

import server.admin.cli
from server.admin.client import AdminClient
from server.admin.installer import install
from server.cli import main
from server.devmode.mocks.genesys.config import ADMIN_PERMISSIONS
from server.errors import PermissionMissing
from tests.admin.test_installer import (
    BASE_URL,
    Org,
    Sleeps,
    cli,
    desired,
    fault,
    run,
    writes,
)
from tests.devmode.test_mock_genesys import MockServer, run_mock

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
NO_CREDENTIALS = {"ASSIST_ADMIN_CLIENT_ID": "", "ASSIST_ADMIN_CLIENT_SECRET": "",
                  "GENESYSCLOUD_OAUTHCLIENT_ID": "", "GENESYSCLOUD_OAUTHCLIENT_SECRET": ""}


@pytest.fixture
def mock() -> Iterator[MockServer]:
    with run_mock() as running:
        yield running


def lacking(permission: str) -> tuple[str, ...]:
    return tuple(p for p in ADMIN_PERMISSIONS if p != permission)


# 2. A failure lists only the changes really made -------------------------------------


async def test_a_refused_create_is_not_recorded_as_made() -> None:
    with run_mock(admin_permissions=lacking("oauth:client:add")) as mock:
        sessions = []

        async def work(session: Any) -> Any:
            sessions.append(session)
            return await install(session, desired())

        with pytest.raises(PermissionMissing):
            await run(mock, work)
    assert writes(sessions[0]) == [] and sessions[0].made == []


def test_cli_a_refused_create_reports_no_change() -> None:
    with run_mock(admin_permissions=lacking("oauth:client:add")) as mock:
        result = cli(mock, "install", "--base-url", BASE_URL)
        assert Org(mock).oauth_clients() == []
    assert result.exit_code == 1
    assert "needs the permission oauth:client:add" in result.output
    assert "Changes made before the failure" not in result.output
    assert "No change was made." in result.output


def test_cli_a_failed_update_is_not_listed_as_made(mock: MockServer, tmp_path: Path) -> None:
    assert cli(mock, "install", "--base-url", BASE_URL).exit_code == 0
    fault(mock, method="PUT", path="/api/v2/oauth/clients/*", status=500)
    result = cli(mock, "install", "--base-url", "http://127.0.0.1:8000")
    assert result.exit_code == 1
    assert "Changes made before the failure" not in result.output
    assert "No change was made." in result.output


def test_cli_failure_midway_names_the_objects_made_with_their_ids(mock: MockServer) -> None:
    fault(mock, method="PATCH", path="/api/v2/integrations/*", status=500)
    result = cli(mock, "install", "--base-url", BASE_URL)
    assert result.exit_code == 1
    org = Org(mock)
    [client] = org.oauth_clients()
    [integration] = org.integrations()
    lines = result.stderr.splitlines()
    start = lines.index("Changes made before the failure:")
    assert lines[start + 1:start + 4] == [
        f"  created OAuth client 'Assist Panel sign-in' ({client['id']})",
        f"  created integration 'Assist Panel' ({integration['id']})",
        f"  configured integration 'Assist Panel' ({integration['id']}): config version 2",
    ]
    assert "enabled integration" not in result.output
    assert "PATCH" not in "\n".join(lines[start:])
    assert lines[start + 4].startswith("Run assist-panel install again to finish")


@pytest.fixture
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's admin client retries without sleeping (a 503 brings no Retry-After,
    so it would back off 1 + 2 + 4 + 8 s)."""
    monkeypatch.setattr(server.admin.cli, "AdminClient",
                        functools.partial(AdminClient, sleep=Sleeps()))


@pytest.mark.parametrize("status", [503, 502, 504])
@pytest.mark.usefixtures("no_waiting")
def test_cli_a_gateway_answer_to_a_delete_names_it_as_possibly_made(
        mock: MockServer, status: int) -> None:
    assert cli(mock, "install", "--base-url", BASE_URL).exit_code == 0
    [integration] = Org(mock).integrations()
    # A 503 is retried (a DELETE is safe to repeat) until the tries run out; 502 and 504
    # are not retried at all.
    fault(mock, method="DELETE", path="/api/v2/integrations/*", status=status, times=10)
    result = cli(mock, "uninstall")
    assert result.exit_code == 1
    assert f" {status} " in result.stderr
    assert "No change was made." not in result.output
    assert ("The call under way may or may not have been made: "
            f"DELETE /api/v2/integrations/{integration['id']}") in result.stderr
    assert "Run assist-panel uninstall again to finish removing it" in result.stderr


@pytest.mark.usefixtures("no_waiting")
def test_cli_a_503_that_outlasts_the_retries_of_an_update_names_it_as_possibly_made(
        mock: MockServer) -> None:
    assert cli(mock, "install", "--base-url", BASE_URL).exit_code == 0
    [client] = Org(mock).oauth_clients()
    fault(mock, method="PUT", path="/api/v2/oauth/clients/*", status=503, times=10)
    result = cli(mock, "install", "--base-url", "http://127.0.0.1:8000")
    assert result.exit_code == 1
    assert "still 503 service.unavailable after 5 tries" in result.stderr
    assert "No change was made." not in result.output
    assert ("The call under way may or may not have been made: "
            f"PUT /api/v2/oauth/clients/{client['id']}") in result.stderr
    assert "Run assist-panel install again to finish the installation" in result.stderr


def test_cli_a_rate_limit_too_long_to_wait_for_is_reported_as_not_made(
        mock: MockServer) -> None:
    assert cli(mock, "install", "--base-url", BASE_URL).exit_code == 0
    fault(mock, method="DELETE", path="/api/v2/integrations/*", status=429, times=10,
          retryAfter=120)
    result = cli(mock, "uninstall")
    assert result.exit_code == 1
    assert "Genesys asks to wait 120 s" in result.stderr
    assert "may or may not have been made" not in result.output
    assert "No change was made." in result.output


@pytest.mark.usefixtures("no_waiting")
def test_cli_a_503_before_a_long_rate_limit_still_names_the_delete_as_possibly_made(
        mock: MockServer) -> None:
    assert cli(mock, "install", "--base-url", BASE_URL).exit_code == 0
    fault(mock, method="DELETE", path="/api/v2/integrations/*", status=503, times=1)
    fault(mock, method="DELETE", path="/api/v2/integrations/*", status=429, times=10,
          retryAfter=120)
    result = cli(mock, "uninstall")
    assert result.exit_code == 1
    assert "an earlier try was answered 503" in result.stderr
    assert "The call under way may or may not have been made: DELETE" in result.stderr
    assert "No change was made." not in result.output


# 3. Ctrl-C says what was made and how to finish --------------------------------------


def _read_until(process: subprocess.Popen[bytes], needle: bytes, timeout_s: float) -> bytes:
    """Standard error read as it comes until ``needle`` appears (or the time is up)."""
    assert process.stderr is not None
    seen = b""
    deadline = time.monotonic() + timeout_s
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], deadline - time.monotonic())
        chunk = os.read(process.stderr.fileno(), 4096) if ready else b""
        if ready and not chunk:
            break  # it ended
        seen += chunk
    return seen


def test_ctrl_c_while_waiting_out_a_429_says_what_was_made_and_exits_130(
        mock: MockServer) -> None:
    fault(mock, method="POST", path="/api/v2/integrations", status=429, times=1, retryAfter=50)
    env = {**os.environ, "ASSIST_ADMIN_CLIENT_ID": mock.config.admin_client_id,
           "ASSIST_ADMIN_CLIENT_SECRET": mock.config.admin_client_secret}
    process = subprocess.Popen(
        # As a terminal starts it: Ctrl-C raises KeyboardInterrupt even if this process
        # (a test worker) ignores SIGINT, which a child would inherit.
        [sys.executable, "-c", "import signal; signal.signal(signal.SIGINT, "
         "signal.default_int_handler); from server.cli import main; main()", "install",
         "--base-url", BASE_URL, "--api-base", mock.origin],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        waiting = _read_until(process, b"retrying in 50 s", timeout_s=30)
        assert b"retrying in 50 s" in waiting, waiting
        process.send_signal(signal.SIGINT)
        out, rest = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = (waiting + rest).decode()
    assert process.returncode == 130, stderr
    assert "Aborted!" not in stderr and "Traceback" not in stderr
    [client] = Org(mock).oauth_clients()
    assert Org(mock).integrations() == []
    assert "Interrupted." in stderr
    assert ("Changes made before the interruption:\n"
            f"  created OAuth client 'Assist Panel sign-in' ({client['id']})\n") in stderr
    assert "The call under way may or may not have been made: POST /api/v2/integrations" \
        in stderr
    assert "Run assist-panel install again to finish the installation" in stderr
    assert "assist-panel uninstall" in stderr
    assert out == b""
    rerun = cli(mock, "install", "--base-url", BASE_URL)
    assert rerun.exit_code == 0, rerun.output
    assert "unchanged OAuth client" in rerun.output


# 4. Status lists what it found when it has no base URL to compare with ----------------


def test_status_lists_what_is_installed_when_the_redirect_gives_no_base_url(
        mock: MockServer) -> None:
    assert cli(mock, "install", "--base-url", BASE_URL).exit_code == 0
    org = Org(mock)
    [client] = org.oauth_clients()
    [integration] = org.integrations()
    body = {k: client[k] for k in ("name", "description", "authorizedGrantType", "scope",
                                   "accessTokenValiditySeconds")}
    org.send("PUT", f"/api/v2/oauth/clients/{client['id']}",
             {**body, "registeredRedirectUri": [f"{BASE_URL}/panel/"]})

    shown = cli(mock, "status")
    assert shown.exit_code == 1
    assert "Not installed" not in shown.output
    assert "Pass --base-url" in shown.output
    assert (f"  OAuth client 'Assist Panel sign-in' ({client['id']}): installed, redirect "
            f"URIs: {BASE_URL}/panel/") in shown.stdout.splitlines()
    assert (f"  integration 'Assist Panel' ({integration['id']}): installed, enabled"
            in shown.stdout.splitlines())

    compared = cli(mock, "status", "--base-url", BASE_URL)
    assert compared.exit_code == 1
    assert "differs from the manifest in registeredRedirectUri" in compared.output


# 5. Bad arguments end in a clear error, never a traceback -------------------------------


@pytest.mark.parametrize(
    ("content", "says"),
    [(b'{"namePrefix": "Assist \xff Panel"}', "not UTF-8"),
     (b"[" * 100_000 + b"]" * 100_000, "nested too deeply")],
    ids=["not-utf8", "deeply-nested"],
)
def test_a_manifest_that_cannot_be_read_is_an_error_not_a_traceback(
        tmp_path: Path, content: bytes, says: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes(content)
    for command in (["install", "--base-url", BASE_URL], ["status"], ["uninstall"]):
        result = CliRunner().invoke(main, [*command, "--manifest", str(path),
                                           "--region", "eu-west-1"])
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit), result.exception
        assert says in result.stderr and str(path) in result.stderr


@pytest.mark.parametrize("command", ["install", "status"])
def test_an_unparseable_base_url_is_an_error_not_a_traceback(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--base-url", "https://[bad",
                                       "--region", "eu-west-1"])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "--base-url is not a valid URL" in result.stderr


def test_an_unparseable_api_base_is_an_error_not_a_traceback() -> None:
    result = CliRunner().invoke(main, ["status", "--api-base", "http://[bad"])
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "--api-base is not a valid URL" in result.stderr


# 6. Help, docs and behaviour agree on dry runs without credentials --------------------


def test_uninstall_help_says_its_dry_run_needs_credentials_as_it_does() -> None:
    helped = CliRunner().invoke(main, ["uninstall", "--help"])
    text = " ".join(helped.output.split())
    assert "plans as for an empty org" not in text
    assert "so it needs the admin credentials too" in text
    bare = CliRunner().invoke(main, ["uninstall", "--dry-run", "--region", "eu-west-1"],
                              env=NO_CREDENTIALS)
    assert bare.exit_code == 1 and "no admin credentials" in bare.output
    docs = " ".join((ROOT / "docs" / "install.md").read_text("utf-8").split())
    assert "`uninstall --dry-run` reads the org to know what exists, so it needs the " \
           "credentials too" in docs


def test_install_dry_run_without_credentials_plans_for_an_empty_org_as_its_help_says(
) -> None:
    helped = " ".join(CliRunner().invoke(main, ["install", "--help"]).output.split())
    assert "without credentials it plans as for an empty org" in helped
    result = CliRunner().invoke(main, ["install", "--dry-run", "--base-url", BASE_URL,
                                       "--region", "eu-west-1"], env=NO_CREDENTIALS)
    assert result.exit_code == 0, result.output
    assert "planning as for an org where nothing is installed" in result.output
    assert "(read)" not in result.output  # no call made at all


# 7. The dry run lists every call it makes ----------------------------------------------


def test_dry_run_lists_every_call_it_makes_including_the_sign_in_and_org(
        mock: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []
    send = httpx.AsyncClient.send

    async def recording(self: httpx.AsyncClient, request: httpx.Request,
                        **kwargs: Any) -> httpx.Response:
        sent.append(f"{request.method} {request.url.path}")
        return await send(self, request, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "send", recording)
    result = cli(mock, "install", "--base-url", BASE_URL, "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    calls = lines[lines.index("Calls:") + 1:lines.index("Plan:")]
    listed = [line[2:] for line in calls if line.startswith("  ") and line[2] != " "]
    made = [call.split("  (")[0] for call in listed if not call.endswith("(would make)")]
    assert made == sent == ["POST /oauth/token", "GET /api/v2/tokens/me",
                            "GET /api/v2/oauth/clients", "GET /api/v2/integrations"]
    assert "GET /api/v2/tokens/me  (read)" in listed
    assert mock.config.admin_client_secret not in result.output
