"""The admin commands ``install``, ``uninstall`` and ``status`` (registered on the CLI group).

They sign in with the admin client credentials from the environment, run the
installer (:mod:`server.admin.installer`) and print what was done, in words an admin
can act on. ``status`` then reports what agents' roles and the queues need
(:mod:`server.admin.readiness`), which install does not change.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click
import httpx

from server.admin.client import (
    AdminClient,
    AdminCredentials,
    Org,
    PlatformHosts,
)
from server.admin.installer import (
    Call,
    Change,
    Found,
    PlatformSession,
    Status,
    discover,
    found_lines,
    install,
    installed_base_url,
    status,
    uninstall,
)
from server.admin.manifest import REDIRECT_PATH, Desired, Manifest, load, render
from server.admin.readiness import Readiness
from server.admin.readiness import check as check_readiness
from server.errors import (
    AdminError,
    ManifestError,
    PlatformBusy,
    PlatformCallFailed,
    PlatformUnreachable,
)

T = TypeVar("T")
#: Timeout of each admin call.
TIMEOUT_S = 30.0
#: The exit code of a command interrupted by Ctrl-C (128 + SIGINT), as shells use.
INTERRUPTED_EXIT = 130
#: How each command that changes the org is finished after a failure or Ctrl-C.
HOW_TO_FINISH = {
    "install": "Run assist-panel install again to finish the installation (every step is "
               "safe to repeat), or assist-panel uninstall to remove what was made.",
    "uninstall": "Run assist-panel uninstall again to finish removing it (every step is safe "
                 "to repeat).",
}
#: The login host's token endpoint (the sign-in, listed with the calls).
TOKEN_PATH = "/oauth/token"
ORG_PATH = "/api/v2/tokens/me"
#: Gateway answers: the request may have reached the service and been carried out.
UNCERTAIN_STATUSES = frozenset({502, 503, 504})

_REGION = click.option(
    "--region", default="", metavar="REGION",
    help="The org's Genesys Cloud region: us-east-1, eu-west-1, ... (its domain or "
         "gcTargetEnv also work).")
_API_BASE = click.option(
    "--api-base", default=None, metavar="URL",
    help="Call this host instead of the region's (dev mode's mock Genesys, e.g. "
         "http://127.0.0.1:8001).")
_MANIFEST = click.option(
    "--manifest", "manifest_path", type=click.Path(dir_okay=False, path_type=Path),
    default=None, help="The manifest to apply (default: the shipped manifest/assist-panel.json).")
_DRY_RUN = click.option(
    "--dry-run", is_flag=True,
    help="Print every API call it would make and make no change (it still reads, to know "
         "what exists; without credentials it plans as for an empty org).")
_UNINSTALL_DRY_RUN = click.option(
    "--dry-run", is_flag=True,
    help="Print every API call and what it would delete, and delete nothing (it reads the "
         "org to know what exists, so it needs the admin credentials too).")


def _manifest(path: Path | None) -> Manifest:
    return load(path)


def _desired(manifest: Manifest, base_url: str) -> Desired:
    return render(manifest, base_url)


def _hosts(region: str, api_base: str | None) -> PlatformHosts:
    if not region and not api_base:
        raise click.UsageError("--region is required (e.g. --region us-east-1)")
    return PlatformHosts.resolve(region, api_base)


def _credentials(optional: bool) -> AdminCredentials | None:
    credentials = AdminCredentials.from_env()
    if credentials is None and not optional:
        raise click.ClickException(
            "no admin credentials: set ASSIST_ADMIN_CLIENT_ID and ASSIST_ADMIN_CLIENT_SECRET "
            "to a Client Credentials OAuth client of the org (docs/install.md lists the "
            "permissions its role needs)"
        )
    return credentials


def _execute(
    command: str,
    hosts: PlatformHosts,
    credentials: AdminCredentials | None,
    dry_run: bool,
    work: Callable[[PlatformSession], Awaitable[T]],
) -> tuple[T, PlatformSession, Org | None]:
    """Run ``command``'s ``work`` (:func:`_run`); on Ctrl-C say what it changed and how
    to finish, and exit 130."""
    sessions: list[PlatformSession] = []  # outlives asyncio.run, which Ctrl-C unwinds
    try:
        return asyncio.run(_run(command, hosts, credentials, dry_run, work, sessions))
    except KeyboardInterrupt:
        session = sessions[0] if sessions else None
        click.echo(f"\nInterrupted.{_progress(command, session, None)}", err=True)
        sys.exit(INTERRUPTED_EXIT)


async def _run(
    command: str,
    hosts: PlatformHosts,
    credentials: AdminCredentials | None,
    dry_run: bool,
    work: Callable[[PlatformSession], Awaitable[T]],
    sessions: list[PlatformSession],
) -> tuple[T, PlatformSession, Org | None]:
    """Sign in (when there are credentials), run ``work``, report a failure with what was done."""
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
        client = AdminClient(http, hosts, on_retry=lambda note: click.echo(note, err=True))
        session = PlatformSession(client if credentials else None, dry_run=dry_run)
        sessions.append(session)
        org = None
        try:
            if credentials is not None:
                await client.sign_in(credentials)
                session.calls.append(Call("POST", TOKEN_PATH, note="sign-in at the login host "
                                          "as the admin client; its secret is not shown"))
                org = await client.org()
                session.calls.append(Call("GET", ORG_PATH))
            return await work(session), session, org
        except AdminError as exc:
            raise click.ClickException(f"{exc}{_progress(command, session, exc)}") from exc


def _progress(command: str, session: PlatformSession | None, error: AdminError | None) -> str:
    """What a run that stopped early (``error``, or Ctrl-C when None) changed, and how to
    finish: lines to append to its message."""
    finish = HOW_TO_FINISH.get(command)
    if finish is None or session is None:  # status changes nothing
        return ""
    if session.dry_run or session.client is None:
        return "\nA dry run: nothing was changed."
    text = ""
    if session.made:
        done = "\n".join(f"  {change.describe()}" for change in session.made)
        word = "failure" if error is not None else "interruption"
        text += f"\nChanges made before the {word}:\n{done}"
    uncertain = session.pending is not None and _maybe_made(error)
    if uncertain and session.pending is not None:
        text += ("\nThe call under way may or may not have been made: "
                 f"{session.pending.describe()}")
    if not session.made and not uncertain:
        return text + "\nNo change was made."
    return text + "\n" + finish


def _maybe_made(error: AdminError | None) -> bool:
    """Whether the write a run stopped in may have been carried out anyway: cut short
    (Ctrl-C, a lost connection) or answered by a gateway (502, 503, 504), including a
    503 that outlasted the retries of a call safe to repeat. One the platform refused
    (a 429 among them) or failed itself was not."""
    if error is None or isinstance(error, PlatformUnreachable):
        return True
    return (isinstance(error, (PlatformCallFailed, PlatformBusy))
            and error.status in UNCERTAIN_STATUSES)


def _echo_warnings(session: PlatformSession) -> None:
    for warning in session.warnings:
        click.echo(f"Warning: {warning}.", err=True)


def _echo_calls(session: PlatformSession) -> None:
    click.echo("Calls:")
    for call in session.calls:
        note = call.note or ("read" if call.made else "would make")
        click.echo(f"  {call.describe()}  ({note})")
        if call.body is not None:
            text = json.dumps(call.body, indent=2, ensure_ascii=False)
            click.echo("\n".join("      " + line for line in text.splitlines()))


def _echo_signed_in(hosts: PlatformHosts, org: Org | None) -> None:
    if org is not None:
        click.echo(f"Genesys Cloud {hosts.region}: org {org.name} ({org.id})")
    else:
        click.echo("No admin credentials: planning as for an org where nothing is installed.")


def _echo_settings(desired: Desired, manifest: Manifest, hosts: PlatformHosts,
                   api_base: str | None, org: Org | None, client_id: str) -> None:
    click.echo("\nGive the panel server (assist-panel serve) these settings:")
    lines = [f"ASSIST_PUBLIC_URL={desired.base_url}"]
    if api_base:
        lines += [f"ASSIST_GENESYS_API_BASE={hosts.api_base}",
                  f"ASSIST_GENESYS_LOGIN_BASE={hosts.login_base}"]
    else:
        lines.append(f"ASSIST_GENESYS_REGIONS={hosts.region}")
    lines += [
        f"ASSIST_OAUTH_CLIENT_ID={client_id}",
        f"ASSIST_OAUTH_GRANT={manifest.grant}",
        f"ASSIST_ALLOWED_ORGS={org.id if org else '<your org id>'}",
        "ASSIST_SESSION_SECRET=<32+ random characters, the same on every replica: "
        "python -c 'import secrets; print(secrets.token_urlsafe(32))'>",
    ]
    for line in lines:
        click.echo(f"  {line}")


def _echo_readiness(ready: Readiness) -> None:
    click.echo("\nWhat agents need (install does not change roles or queues; these findings "
               "do not change the exit code):")
    for line in ready.lines():
        click.echo(f"  {line}")


def _echo_changes(changes: list[Change], dry_run: bool) -> None:
    click.echo("Plan:" if dry_run else "Done:")
    for change in changes:
        click.echo(f"  {change.describe()}")


@click.command("install")
@_REGION
@click.option("--base-url", required=True, metavar="URL",
              help="The panel server's public https base URL, e.g. https://assist.example.com.")
@_MANIFEST
@_DRY_RUN
@_API_BASE
def install_command(region: str, base_url: str, manifest_path: Path | None, dry_run: bool,
                    api_base: str | None) -> None:
    """Create or update the panel's OAuth client and interaction widget in a Genesys Cloud org.

    Admin client credentials come from ASSIST_ADMIN_CLIENT_ID and
    ASSIST_ADMIN_CLIENT_SECRET. Safe to run again: a second run changes nothing;
    an edited manifest is applied as an update.
    """
    manifest = _manifest(manifest_path)
    desired = _desired(manifest, base_url)
    hosts = _hosts(region, api_base)
    credentials = _credentials(optional=dry_run)
    changes, session, org = _execute(
        "install", hosts, credentials, dry_run, lambda s: install(s, desired))
    _echo_warnings(session)
    _echo_signed_in(hosts, org)
    if dry_run:
        _echo_calls(session)
    _echo_changes(changes, dry_run)
    if all(c.verb == "unchanged" for c in changes):
        click.echo("Nothing to change: the org already matches the manifest.")
    client_id = next(c.id for c in changes if c.kind == "OAuth client")
    _echo_settings(desired, manifest, hosts, api_base, org, client_id)


@click.command("uninstall")
@_REGION
@_MANIFEST
@_UNINSTALL_DRY_RUN
@_API_BASE
def uninstall_command(region: str, manifest_path: Path | None, dry_run: bool,
                      api_base: str | None) -> None:
    """Delete the client-app integrations whose names start with the manifest's
    namePrefix and the OAuth clients install made (so named, a sign-in grant and
    install's marker in the description; or, made before the marker, named as the
    manifest's client with a redirect URI to /panel), and nothing else."""
    manifest = _manifest(manifest_path)
    hosts = _hosts(region, api_base)
    credentials = _credentials(optional=False)
    changes, session, org = _execute(
        "uninstall", hosts, credentials, dry_run,
        lambda s: uninstall(s, manifest.name_prefix, manifest.client_name))
    _echo_warnings(session)
    _echo_signed_in(hosts, org)
    if dry_run:
        _echo_calls(session)
    if not changes:
        click.echo(f"Nothing to remove: no object install made is named with "
                   f"{manifest.name_prefix!r}.")
        return
    _echo_changes(changes, dry_run)


@click.command("status")
@_REGION
@click.option("--base-url", default=None, metavar="URL",
              help="The panel's base URL to compare with (default: the one the installed "
                   "OAuth client redirects to).")
@_MANIFEST
@_API_BASE
def status_command(region: str, base_url: str | None, manifest_path: Path | None,
                   api_base: str | None) -> None:
    """Show what is installed and where it differs from the manifest, then which roles
    grant what agents need and which queues have voice transcription on.

    Exits 0 when the org matches the manifest, 1 when something is missing or differs;
    what agents need is reported only and does not change the exit code.
    """
    manifest = _manifest(manifest_path)
    given = _desired(manifest, base_url) if base_url else None  # a bad URL stops it here
    hosts = _hosts(region, api_base)
    credentials = _credentials(optional=False)

    async def work(session: PlatformSession) -> tuple[Found, Status | None, Readiness | None]:
        found = await discover(session, manifest.name_prefix, manifest.client_name)
        desired = given or _installed_desired(manifest, found)
        report = await status(session, desired, found) if desired else None
        client = session.client  # always set: status needs credentials
        return found, report, (await check_readiness(client) if client is not None else None)

    (found, report, ready), _session, org = _execute("status", hosts, credentials, False, work)
    _echo_signed_in(hosts, org)
    if report is None:
        _echo_uncompared(manifest, found)
    else:
        click.echo(f"Compared with the manifest for {report.base_url}:")
        for line in report.lines:
            click.echo(f"  {line}")
        if not report.in_step:
            click.echo("Run assist-panel install to bring the org in step with the manifest.")
    if ready is not None:
        _echo_readiness(ready)
    if report is None or not report.in_step:
        sys.exit(1)


def _installed_desired(manifest: Manifest, found: Found) -> Desired | None:
    """The manifest rendered for the base URL the installed OAuth client redirects to;
    None when it redirects to none that makes a valid base URL."""
    url = installed_base_url(found, manifest.client_name)
    try:
        return _desired(manifest, url) if url else None
    except ManifestError:  # e.g. a redirect URI edited to plain http on a public host
        return None


def _echo_uncompared(manifest: Manifest, found: Found) -> None:
    """``status`` without a base URL to compare with: what was found, and what to do."""
    prefix = manifest.name_prefix
    if not found.anything_installed:
        click.echo(f"Not installed: no OAuth client or integration install made is named "
                   f"with {prefix!r} (run assist-panel install).")
    else:
        click.echo(f"Installed objects named with {prefix!r}, not compared with the manifest: "
                   f"no OAuth client install made redirects to a usable {{baseUrl}}"
                   f"{REDIRECT_PATH} to take the base URL from. Pass --base-url (the panel "
                   "server's public URL) to compare them.")
    for line in found_lines(found):
        click.echo(f"  {line}")


COMMANDS = (install_command, uninstall_command, status_command)
