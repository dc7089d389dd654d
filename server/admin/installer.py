"""``assist-panel install | uninstall | status``: the manifest applied to a Genesys Cloud org.

Modelled on Genesys's own premium-app installer: object by object (the OAuth
client, then the interaction widget integration), each found by the manifest's
name prefix, then created, updated or left alone; the integration is created,
configured with its current config version, then enabled. Every step is
idempotent, so a second run changes nothing and a run that failed midway is
completed by the next one. ``uninstall`` deletes exactly the objects named with
the prefix (of the kinds install makes) and nothing else.

An OAuth client is install's own only when it is named with the prefix, signs
users in (grant ``CODE`` or ``TOKEN``) and its description carries
:data:`~server.admin.manifest.INSTALL_MARKER`: an admin's own client that happens
to share the prefix (say a Client Credentials "Assist Panel admin") is never
adopted, rewritten or deleted, only warned about.

Installs made before the marker (whose description was the manifest's own, or
empty) are recognised by their shape instead (:func:`is_earlier_install_client`):
named exactly as the manifest's client, a sign-in grant and a redirect URI to the
panel page. Install then updates such a client, which puts the marker in its
description, and uninstall deletes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.admin.client import AdminClient
from server.admin.manifest import GRANT_TYPES, INSTALL_MARKER, REDIRECT_PATH, Desired

OAUTH_CLIENTS = "/api/v2/oauth/clients"
INTEGRATIONS = "/api/v2/integrations"
#: Integration types install may have made (only these are ever deleted).
CLIENT_APP_TYPES = frozenset({"embedded-client-app-interaction-widget", "embedded-client-app"})
#: The OAuth client fields install sets, and how to compare each.
OAUTH_FIELDS = ("name", "description", "authorizedGrantType", "registeredRedirectUri", "scope",
                "accessTokenValiditySeconds")
UNORDERED = frozenset({"registeredRedirectUri", "scope", "groups", "queueIdFilterList"})
#: The grants of the clients install makes (the manifest's pkce and implicit).
SIGN_IN_GRANTS = frozenset(GRANT_TYPES.values())


@dataclass(frozen=True)
class Call:
    """One Platform API call, made or (dry run) only planned."""

    method: str
    path: str
    body: Any = None
    made: bool = True
    #: Said instead of "read" / "would make" when listing the calls (the sign-in).
    note: str = ""

    def describe(self) -> str:
        """``METHOD path`` (the body is shown separately)."""
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Change:
    """What a run did (or, dry, would do) to one object."""

    verb: str  # created, updated, configured, enabled, deleted, unchanged
    kind: str  # "OAuth client" or "integration"
    name: str
    id: str
    detail: str = ""

    def describe(self) -> str:
        """One line for the admin."""
        text = f"{self.verb} {self.kind} {self.name!r} ({self.id})"
        return f"{text}: {self.detail}" if self.detail else text


class PlatformSession:
    """The calls of one run: made through ``client``, or recorded only when ``dry_run``.

    In a dry run reads are still made (to know what exists) unless there is no
    client at all, in which case the org is taken to be empty; writes are never made
    and answer a placeholder instead.

    ``made`` collects the changes made so far, each only once its call succeeded,
    so a failed or interrupted run can say exactly what it changed. ``pending`` is
    the write under way (or the last one, if it failed); ``warnings`` are notes for
    the admin (objects left alone).
    """

    def __init__(self, client: AdminClient | None, *, dry_run: bool = False) -> None:
        self.client = client
        self.dry_run = dry_run
        self.calls: list[Call] = []
        self.made: list[Change] = []
        self.pending: Call | None = None
        self.warnings: list[str] = []

    def record(self, change: Change) -> Change:
        """Note ``change`` as made (a dry run's planned changes are not made)."""
        if not self.dry_run and self.client is not None:
            self.made.append(change)
        return change

    async def list_all(self, path: str, *, need: str) -> list[dict[str, Any]]:
        """Every entity of a numbered listing."""
        self.calls.append(Call("GET", path, made=self.client is not None))
        if self.client is None:
            return []
        found: list[dict[str, Any]] = []
        async for page in self.client.pages(path, need=need):
            found.extend(page)
        return found

    async def get(self, path: str, *, need: str) -> Any:
        """One read."""
        self.calls.append(Call("GET", path, made=self.client is not None))
        if self.client is None:
            return {}
        return await self.client.call("GET", path, need=need)

    async def write(
        self, method: str, path: str, *, need: str, body: Any = None,
        placeholder: dict[str, Any] | None = None,
    ) -> Any:
        """One change: made, or in a dry run recorded and answered with ``placeholder``."""
        if self.dry_run or self.client is None:
            self.calls.append(Call(method, path, body, made=False))
            return placeholder or {}
        call = Call(method, path, body)
        self.pending = call
        answer = await self.client.call(method, path, need=need, json=body)
        # Recorded only now: a refused or failed call changed nothing.
        self.pending = None
        self.calls.append(call)
        return answer


# Finding what install made --------------------------------------------------


@dataclass
class Found:
    """The objects named with the prefix, and each integration's current config.

    ``oauth_clients`` are install's own (:func:`is_install_client`);
    ``foreign_clients`` are the others named with the prefix, which install and
    uninstall leave alone.
    """

    oauth_clients: list[dict[str, Any]] = field(default_factory=list)
    integrations: list[dict[str, Any]] = field(default_factory=list)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    foreign_clients: list[dict[str, Any]] = field(default_factory=list)

    @property
    def anything_installed(self) -> bool:
        """Whether any object install makes is there."""
        return bool(self.oauth_clients or self.integrations)

    def foreign_warnings(self, prefix: str) -> list[str]:
        """A sentence for each client named with ``prefix`` that install did not make."""
        return [f"OAuth client {c.get('name')!r} ({c.get('id')}) is named with {prefix!r} but "
                f"was not made by install, so it is left alone ({_why_foreign(c)})"
                for c in self.foreign_clients]


def _named(entity: dict[str, Any], prefix: str) -> bool:
    return str(entity.get("name", "")).startswith(prefix)


def is_install_client(client: dict[str, Any], client_name: str) -> bool:
    """Whether an OAuth client is one install made: a sign-in grant and the marker, or
    the shape an install before the marker left (:func:`is_earlier_install_client`)."""
    if client.get("authorizedGrantType") not in SIGN_IN_GRANTS:
        return False
    return (INSTALL_MARKER in str(client.get("description") or "")
            or is_earlier_install_client(client, client_name))


def is_earlier_install_client(client: dict[str, Any], client_name: str) -> bool:
    """Whether an OAuth client is one an install from before the marker made: named
    exactly ``client_name`` (the manifest's client), a sign-in grant and a redirect URI
    to the panel page (``.../panel``), but no marker in its description. Install's next
    update adds the marker, after which it is recognised by that."""
    uris = client.get("registeredRedirectUri")
    return (bool(client_name) and client.get("name") == client_name
            and client.get("authorizedGrantType") in SIGN_IN_GRANTS
            and INSTALL_MARKER not in str(client.get("description") or "")
            and isinstance(uris, list)
            and any(isinstance(u, str) and u.endswith(REDIRECT_PATH) for u in uris))


def _why_foreign(client: dict[str, Any]) -> str:
    if client.get("authorizedGrantType") not in SIGN_IN_GRANTS:
        return f"its grant is {client.get('authorizedGrantType')}, not a sign-in grant"
    return f"its description lacks install's marker {INSTALL_MARKER!r}"


def _type_of(integration: dict[str, Any]) -> str:
    return str((integration.get("integrationType") or {}).get("id", ""))


async def discover(session: PlatformSession, prefix: str, client_name: str) -> Found:
    """Read the org's OAuth clients and integrations; keep those install owns.

    ``client_name`` is the manifest's OAuth client name, by which a client made by
    an install from before the marker is recognised. Install's own clients come
    marked ones first, so one made before the marker is only taken for the manifest's
    when no marked client has its name.
    """
    found = Found()
    clients = [c for c in await session.list_all(OAUTH_CLIENTS, need="oauth:client:view")
               if _named(c, prefix)]
    found.oauth_clients = sorted((c for c in clients if is_install_client(c, client_name)),
                                 key=lambda c: is_earlier_install_client(c, client_name))
    found.foreign_clients = [c for c in clients if not is_install_client(c, client_name)]
    integrations = await session.list_all(INTEGRATIONS, need="integrations:integration:view")
    found.integrations = [
        i for i in integrations if _named(i, prefix) and _type_of(i) in CLIENT_APP_TYPES
    ]
    for integration in found.integrations:
        found.configs[integration["id"]] = await session.get(
            f"{INTEGRATIONS}/{integration['id']}/config/current",
            need="integrations:integration:view",
        )
    return found


def _pick(candidates: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The object with the manifest's name; else the only one (a renamed manifest object)."""
    exact = [c for c in candidates if c.get("name") == name]
    if exact:
        return exact[0]
    return candidates[0] if len(candidates) == 1 else None


# Comparing ------------------------------------------------------------------


def _same(key: str, actual: Any, wanted: Any) -> bool:
    if key in UNORDERED and isinstance(actual, list) and isinstance(wanted, list):
        return sorted(map(str, actual)) == sorted(map(str, wanted))
    return bool(actual == wanted)


def oauth_differences(actual: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The OAuth client fields that differ from the manifest's."""
    return [k for k in OAUTH_FIELDS if not _same(k, actual.get(k, _default(k)), wanted[k])]


def _default(key: str) -> Any:
    return "" if key == "description" else None


def config_differences(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The integration config values that differ from the manifest's (``properties.url``...)."""
    differences = [k for k in ("name", "notes") if current.get(k, "") != wanted[k]]
    for section in ("properties", "advanced"):
        have = current.get(section) or {}
        for key, value in wanted[section].items():
            if not _same(key, have.get(key), value):
                differences.append(f"{section}.{key}")
    return differences


def _is_enabled(integration: dict[str, Any]) -> bool:
    return integration.get("intendedState") == "ENABLED"


# Install --------------------------------------------------------------------


async def install(session: PlatformSession, desired: Desired) -> list[Change]:
    """Create or update the OAuth client and the integration so they match ``desired``.

    Each change is also recorded in ``session.made`` as soon as it is made; clients
    named with the prefix that install did not make are left alone and noted in
    ``session.warnings``.
    """
    found = await discover(session, desired.prefix, desired.oauth_client["name"])
    session.warnings += found.foreign_warnings(desired.prefix)
    changes = [await _install_oauth_client(session, desired, found)]
    changes += await _install_integration(session, desired, found)
    return changes


async def _install_oauth_client(session: PlatformSession, desired: Desired,
                                found: Found) -> Change:
    wanted = desired.oauth_client
    client = _pick(found.oauth_clients, wanted["name"])
    if client is None:
        made = await session.write("POST", OAUTH_CLIENTS, need="oauth:client:add", body=wanted,
                                   placeholder={"id": "<new OAuth client id>"})
        return session.record(
            Change("created", "OAuth client", wanted["name"], str(made.get("id", ""))))
    differences = oauth_differences(client, wanted)
    if not differences:
        return Change("unchanged", "OAuth client", wanted["name"], client["id"])
    detail = "changed " + ", ".join(differences)
    if is_earlier_install_client(client, wanted["name"]):
        detail += " (made by an earlier version of install: now marked as install's own)"
    await session.write("PUT", f"{OAUTH_CLIENTS}/{client['id']}", need="oauth:client:edit",
                        body=wanted)
    return session.record(Change("updated", "OAuth client", wanted["name"], client["id"],
                                 detail))


async def _install_integration(session: PlatformSession, desired: Desired,
                               found: Found) -> list[Change]:
    name = desired.integration_name
    candidates = [i for i in found.integrations if _type_of(i) == desired.integration_type]
    integration = _pick(candidates, name)
    changes: list[Change] = []
    if integration is None:
        body = {"name": name, "integrationType": {"id": desired.integration_type}}
        integration = await session.write(
            "POST", INTEGRATIONS, need="integrations:integration:add", body=body,
            placeholder={"id": "<new integration id>", "intendedState": "DISABLED",
                         "config": {"current": {"version": 1}}},
        )
        current = (integration.get("config") or {}).get("current") or {}
        changes.append(session.record(
            Change("created", "integration", name, str(integration.get("id", "")))))
    else:
        current = found.configs.get(integration["id"], {})
    integration_id = str(integration.get("id", ""))
    differences = config_differences(current, desired.config)
    if differences:
        version = current.get("version", 1)
        body = {**desired.config, "version": version}
        answer = await session.write(
            "PUT", f"{INTEGRATIONS}/{integration_id}/config/current",
            need="integrations:integration:edit", body=body,
            placeholder={"version": version + 1},
        )
        detail = f"config version {answer.get('version', version + 1)}"
        if not changes:  # just created, everything is new: no need to list it
            detail += "; changed " + ", ".join(differences)
        changes.append(session.record(
            Change("configured", "integration", name, integration_id, detail)))
    if not _is_enabled(integration):
        await session.write("PATCH", f"{INTEGRATIONS}/{integration_id}",
                            need="integrations:integration:edit",
                            body={"intendedState": "ENABLED"})
        changes.append(session.record(Change("enabled", "integration", name, integration_id)))
    if not changes:
        changes.append(Change("unchanged", "integration", name, integration_id))
    return changes


# Uninstall ------------------------------------------------------------------


async def uninstall(session: PlatformSession, prefix: str, client_name: str) -> list[Change]:
    """Delete every client-app integration named with ``prefix`` and every OAuth client
    install made named with it (integrations first, so no widget is left pointing at a
    deleted client), including one an install from before the marker made as the
    manifest's ``client_name``. Other clients named with the prefix are left, and noted
    in ``session.warnings``."""
    found = await discover(session, prefix, client_name)
    session.warnings += found.foreign_warnings(prefix)
    changes = []
    for integration in found.integrations:
        await session.write("DELETE", f"{INTEGRATIONS}/{integration['id']}",
                            need="integrations:integration:delete")
        changes.append(session.record(
            Change("deleted", "integration", integration["name"], integration["id"])))
    for client in found.oauth_clients:
        await session.write("DELETE", f"{OAUTH_CLIENTS}/{client['id']}",
                            need="oauth:client:delete")
        changes.append(session.record(
            Change("deleted", "OAuth client", client["name"], client["id"])))
    return changes


# Status ---------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """What is installed and how it differs from the manifest."""

    lines: list[str]
    in_step: bool
    oauth_client_id: str = ""
    base_url: str = ""


async def status(session: PlatformSession, desired: Desired,
                 found: Found | None = None) -> Status:
    """Compare the org with ``desired``, object by object."""
    found = found or await discover(session, desired.prefix, desired.oauth_client["name"])
    lines: list[str] = []
    in_step = True
    client = _pick(found.oauth_clients, desired.oauth_client["name"])
    if client is None:
        lines.append(f"OAuth client {desired.oauth_client['name']!r}: not installed")
        in_step = False
    else:
        differences = oauth_differences(client, desired.oauth_client)
        in_step &= not differences
        lines.append(_state_line("OAuth client", client, differences))
    candidates = [i for i in found.integrations if _type_of(i) == desired.integration_type]
    integration = _pick(candidates, desired.integration_name)
    if integration is None:
        lines.append(f"integration {desired.integration_name!r}: not installed")
        in_step = False
    else:
        differences = config_differences(found.configs.get(integration["id"], {}),
                                         desired.config)
        if not _is_enabled(integration):
            differences.append("intendedState (not ENABLED)")
        in_step &= not differences
        lines.append(_state_line("integration", integration, differences))
    for extra in [c for c in found.oauth_clients if c is not client]:
        lines.append(f"OAuth client {extra['name']!r} ({extra['id']}): not in the manifest "
                     "(uninstall removes it)")
        in_step = False
    for extra in [i for i in found.integrations if i is not integration]:
        lines.append(f"integration {extra['name']!r} ({extra['id']}): not in the manifest "
                     "(uninstall removes it)")
        in_step = False
    # An admin's own client sharing the prefix is not install's business: listed only.
    lines += _foreign_lines(found)
    return Status(lines, in_step, client["id"] if client else "", desired.base_url)


def _state_line(kind: str, entity: dict[str, Any], differences: list[str]) -> str:
    head = f"{kind} {entity['name']!r} ({entity['id']})"
    if not differences:
        return f"{head}: installed, matches the manifest"
    return f"{head}: installed, differs from the manifest in " + ", ".join(differences)


def _foreign_lines(found: Found) -> list[str]:
    return [f"OAuth client {c.get('name')!r} ({c.get('id')}): not made by install "
            f"({_why_foreign(c)}; install and uninstall leave it alone)"
            for c in found.foreign_clients]


def found_lines(found: Found) -> list[str]:
    """What is there, uncompared (``status`` without a base URL to compare with)."""
    lines = []
    for client in found.oauth_clients:
        uris = ", ".join(map(str, client.get("registeredRedirectUri") or [])) or "none"
        lines.append(f"OAuth client {client['name']!r} ({client['id']}): installed, "
                     f"redirect URIs: {uris}")
    for integration in found.integrations:
        state = "enabled" if _is_enabled(integration) else "not enabled"
        lines.append(f"integration {integration['name']!r} ({integration['id']}): installed, "
                     f"{state}")
    return lines + _foreign_lines(found)


def installed_base_url(found: Found, prefix_name: str) -> str:
    """The base URL the installed OAuth client redirects to (for ``status`` without
    ``--base-url``); '' when nothing is installed or no redirect URI ends in ``/panel``."""
    client = _pick(found.oauth_clients, prefix_name)
    for uri in (client or {}).get("registeredRedirectUri") or []:
        if isinstance(uri, str) and uri.endswith("/panel"):
            return uri[: -len("/panel")]
    return ""

