"""The integration manifest: read, checked against its JSON Schema, rendered for one server.

``manifest/assist-panel.json`` says what ``assist-panel install`` creates in a
Genesys Cloud org; ``manifest/assist-panel.schema.json`` beside it is the
contract (every field is described in ``docs/manifest.md``). :func:`render`
turns a manifest and the panel server's public base URL into the exact request
bodies the Platform API takes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from server.errors import ManifestError
from server.paths import manifest_dir

#: The manifest files shipped with the package.
MANIFEST_FILE = "assist-panel.json"
SCHEMA_FILE = "assist-panel.schema.json"
#: The placeholder the manifest's URLs start with.
BASE_URL = "{baseUrl}"
#: The OAuth redirect URI is the panel page, exactly (``server.auth.signin.redirect_uri``).
REDIRECT_PATH = "/panel"
#: The manifest's grant names -> the platform's ``authorizedGrantType``.
GRANT_TYPES = {"pkce": "CODE", "implicit": "TOKEN"}
INTERACTION_WIDGET = "embedded-client-app-interaction-widget"
#: What marks an OAuth client as install's own: its description always carries it
#: (:func:`render` adds it when the manifest's description lacks it), so install
#: never adopts, and uninstall never deletes, an admin's client named with the prefix.
INSTALL_MARKER = "Installed by 'assist-panel install'."
#: Longest schema message shown per problem (a message quotes the bad value whole).
MAX_PROBLEM_CHARS = 200


@dataclass(frozen=True)
class Manifest:
    """A manifest that passed its schema (``data`` is the parsed JSON)."""

    path: Path
    data: dict[str, Any]

    @property
    def name_prefix(self) -> str:
        """Every object install makes is named with this prefix; uninstall finds them by it."""
        return str(self.data["namePrefix"])

    @property
    def client_name(self) -> str:
        """The name of the OAuth client agents sign in with."""
        return str(self.data["oauthClient"]["name"])

    @property
    def grant(self) -> str:
        """``pkce`` or ``implicit``: the server's ``ASSIST_OAUTH_GRANT``."""
        return str(self.data["oauthClient"]["grant"])


@dataclass(frozen=True)
class Desired:
    """What install should leave in the org, as Platform API request bodies."""

    prefix: str
    base_url: str
    oauth_client: dict[str, Any]
    integration_name: str
    integration_type: str
    config: dict[str, Any]

    @property
    def redirect_uri(self) -> str:
        """The OAuth client's one redirect URI (the panel page)."""
        return self.base_url + REDIRECT_PATH


def default_manifest_path() -> Path:
    """The shipped manifest."""
    return manifest_dir() / MANIFEST_FILE


def load_schema() -> dict[str, Any]:
    """The manifest's JSON Schema."""
    schema: dict[str, Any] = json.loads((manifest_dir() / SCHEMA_FILE).read_text("utf-8"))
    return schema


def load(path: Path | None = None) -> Manifest:
    """Read and validate a manifest (the shipped one by default).

    Raises :class:`ManifestError` listing every schema violation with its JSON path.
    """
    path = path or default_manifest_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text (byte {exc.start}); save the manifest "
                            "as UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from exc
    except RecursionError as exc:
        raise ManifestError(f"{path}: invalid JSON (nested too deeply)") from exc
    validate(data, where=str(path))
    return Manifest(path, data)


def validate(data: Any, *, where: str = "manifest") -> None:
    """Check ``data`` against the schema and the rules a schema cannot say."""
    validator = jsonschema.Draft202012Validator(load_schema())
    try:
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        problems = [f"  {_json_path(error)}: {_shortened(error.message)}" for error in errors]
    except RecursionError as exc:
        raise ManifestError(f"{where} is not a valid manifest: nested too deeply") from exc
    if not problems:
        prefix = data["namePrefix"]
        for key in ("widget", "oauthClient"):
            if not data[key]["name"].startswith(prefix):
                problems.append(
                    f"  $.{key}.name: {data[key]['name']!r} must start with the namePrefix "
                    f"{prefix!r} (uninstall finds what install made by it)"
                )
    if problems:
        raise ManifestError(f"{where} is not a valid manifest:\n" + "\n".join(problems))


def _shortened(message: str) -> str:
    if len(message) <= MAX_PROBLEM_CHARS:
        return message
    return message[: MAX_PROBLEM_CHARS - 3] + "..."


def _json_path(error: jsonschema.ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def normalise_base_url(base_url: str) -> str:
    """The panel server's public base URL, checked: https (http only on loopback), no query.

    Raises :class:`ManifestError` saying what is wrong with it.
    """
    try:
        parts = urlsplit(base_url.strip())
        loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    except ValueError as exc:  # urllib's own complaint, e.g. "Invalid IPv6 URL"
        raise ManifestError(f"--base-url is not a valid URL ({exc}): {base_url!r}") from exc
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ManifestError(f"--base-url must be an absolute URL, got {base_url!r}")
    if parts.scheme == "http" and not loopback:
        raise ManifestError(
            "--base-url must be https: Agent Desktop only frames https pages "
            "(http is allowed on localhost for dev mode)"
        )
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ManifestError("--base-url must not have a query, fragment or user name")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def with_marker(description: str) -> str:
    """The OAuth client's description as install sets it: the manifest's, carrying
    :data:`INSTALL_MARKER` (appended when it is not already there)."""
    if INSTALL_MARKER in description:
        return description
    return f"{description.rstrip()} {INSTALL_MARKER}".lstrip()


def render(manifest: Manifest, base_url: str) -> Desired:
    """The request bodies for a panel served at ``base_url``."""
    base = normalise_base_url(base_url)
    widget = manifest.data["widget"]
    client = manifest.data["oauthClient"]

    def url(template: str) -> str:
        return template.replace(BASE_URL, base)

    oauth_client = {
        "name": client["name"],
        "description": with_marker(client.get("description", "")),
        "authorizedGrantType": GRANT_TYPES[client["grant"]],
        "registeredRedirectUri": [base + REDIRECT_PATH],
        "scope": list(client["scopes"]),
        "accessTokenValiditySeconds": client.get("tokenLifetimeSeconds", 86400),
    }
    lifecycle = widget["lifecycle"]
    hooks = set(lifecycle["hooks"])
    properties = {
        "url": url(widget["urlTemplate"]),
        "sandbox": ",".join(widget["sandbox"]),
        "permissions": ",".join(widget["permissions"]),
        "groups": list(widget.get("groups", [])),
        "queueIdFilterList": list(widget.get("queues", [])),
        "communicationTypeFilter": ",".join(widget.get("communicationTypes", [])),
    }
    advanced = {
        "lifecycle": {
            "ephemeral": bool(lifecycle.get("ephemeral", False)),
            "hooks": {h: h in hooks for h in ("bootstrap", "focus", "blur", "stop")},
        },
        "icon": {size: url(link) for size, link in widget["icon"].items()},
        "i10n": {lang: {"name": name} for lang, name in widget.get("localizedNames", {}).items()},
    }
    config = {
        "name": widget["name"],
        "notes": widget.get("notes", ""),
        "properties": properties,
        "advanced": advanced,
        "credentials": {},
    }
    return Desired(
        prefix=manifest.name_prefix,
        base_url=base,
        oauth_client=oauth_client,
        integration_name=widget["name"],
        integration_type=widget.get("integrationType", INTERACTION_WIDGET),
        config=config,
    )
