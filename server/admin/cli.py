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

from server.admin.client import AdminClient, AdminCredentials, Org, PlatformHosts
from server.admin.installer import (
    Change,
    PlatformSession,
    Status,
    discover,
    install,
    installed_base_url,
    status,
)
from server.admin.manifest import Desired, Manifest, load, render
from server.admin.readiness import Readiness
from server.admin.readiness import check as check_readiness
from server.errors import AdminError

T = TypeVar("T")
#: Timeout of each admin call.
TIMEOUT_S = 30.0

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


async def _run(
    hosts: PlatformHosts,
    credentials: AdminCredentials | None,
    dry_run: bool,
    work: Callable[[PlatformSession], Awaitable[T]],
) -> tuple[T, PlatformSession, Org | None]:
    """Sign in (when there are credentials), run ``work``, report a failure with what was done."""
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
        client = AdminClient(http, hosts, on_retry=lambda note: click.echo(note, err=True))
        session = PlatformSession(client if credentials else None, dry_run=dry_run)
        org = None
        try:
            if credentials is not None:
                await client.sign_in(credentials)
                org = await client.org()
            return await work(session), session, org
        except AdminError as exc:
            made = [c for c in session.calls if c.made and c.method != "GET"]
            message = str(exc)
            if made:
                done = "\n".join(f"  {c.describe()}" for c in made)
                message += (f"\nChanges made before the failure:\n{done}\nRun the command "
                            "again to complete it: every step is safe to repeat.")
            raise click.ClickException(message) from exc


def _echo_calls(session: PlatformSession) -> None:
    click.echo("Calls:")
    for call in session.calls:
        note = "read" if call.made else "would make"
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
    changes, session, org = asyncio.run(
        _run(hosts, credentials, dry_run, lambda s: install(s, desired)))
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
@_DRY_RUN
@_API_BASE
def uninstall_command(region: str, manifest_path: Path | None, dry_run: bool,
                      api_base: str | None) -> None:
    """Delete the OAuth clients and client-app integrations whose names start with the
    manifest's namePrefix, and nothing else."""
    from server.admin.installer import uninstall

    manifest = _manifest(manifest_path)
    hosts = _hosts(region, api_base)
    credentials = _credentials(optional=False)
    changes, session, org = asyncio.run(
        _run(hosts, credentials, dry_run, lambda s: uninstall(s, manifest.name_prefix)))
    _echo_signed_in(hosts, org)
    if dry_run:
        _echo_calls(session)
    if not changes:
        click.echo(f"Nothing to remove: no object is named with {manifest.name_prefix!r}.")
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
    hosts = _hosts(region, api_base)
    credentials = _credentials(optional=False)

    async def work(session: PlatformSession) -> tuple[Status | None, Readiness | None]:
        found = await discover(session, manifest.name_prefix)
        url = base_url or installed_base_url(found, manifest.data["oauthClient"]["name"])
        report = await status(session, _desired(manifest, url), found) if url else None
        client = session.client  # always set: status needs credentials
        return report, (await check_readiness(client) if client is not None else None)

    (report, ready), _session, org = asyncio.run(_run(hosts, credentials, False, work))
    _echo_signed_in(hosts, org)
    if report is None:
        click.echo(f"Not installed: no OAuth client named with {manifest.name_prefix!r} "
                   "(run assist-panel install).")
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


COMMANDS = (install_command, uninstall_command, status_command)
