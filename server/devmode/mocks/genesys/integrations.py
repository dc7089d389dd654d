"""The mock's integrations API: integration types and their config schemas, and
integrations with their current config, as an installer drives them.

Every endpoint needs a client-credentials token holding the matching
``integrations:integration:*`` permission (:func:`.admin_auth.require_admin`).
Bodies are the SDK's ``Integration``, ``IntegrationEntityListing``,
``IntegrationConfiguration``, ``IntegrationType``, ``IntegrationTypeEntityListing``
and ``JsonSchemaDocument``; empty fields are left out, never null.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.devmode.mocks.genesys.admin_auth import require_admin
from server.devmode.mocks.genesys.api import PlatformError
from server.devmode.mocks.genesys.integration_types import (
    CONFIG_TYPES,
    INTEGRATION_TYPES,
    IntegrationTypeSpec,
    schema_document,
    type_body,
)
from server.devmode.mocks.genesys.listing import numbered_page
from server.devmode.mocks.genesys.state import MockGenesysState, iso_z

VIEW = "integrations:integration:view"
ADD = "integrations:integration:add"
EDIT = "integrations:integration:edit"
DELETE = "integrations:integration:delete"
INTENDED_STATES = ("ENABLED", "DISABLED")


async def json_object(request: Request) -> dict[str, Any]:
    """The request's JSON body, which must be an object; else 400 ``bad.request``."""
    try:
        body: Any = json.loads(await request.body())
    except ValueError as exc:
        raise PlatformError(400, "bad.request", "The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise PlatformError(400, "bad.request", "The request body must be a JSON object.")
    return body


def bad_request(message: str, field_name: str) -> PlatformError:
    """A 400 ``bad.request`` about one field of the request (named in ``messageParams``)."""
    return PlatformError(400, "bad.request", message, {"field": field_name})


@dataclass
class IntegrationConfig:
    """The current config of an integration (its ``version`` counts the PUTs, from 1)."""

    name: str
    version: int = 1
    properties: dict[str, Any] = field(default_factory=dict)
    advanced: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class IntegrationRecord:
    """One integration of the org."""

    id: str
    spec: IntegrationTypeSpec
    config: IntegrationConfig
    intended_state: str
    state_changed_at: float

    @property
    def self_uri(self) -> str:
        """The integration's ``selfUri``."""
        return f"/api/v2/integrations/{self.id}"


def config_body(record: IntegrationRecord) -> dict[str, Any]:
    """The current config in the ``IntegrationConfiguration`` shape."""
    config = record.config
    return {
        # The platform gives the config its integration's id.
        "id": record.id,
        "name": config.name,
        "version": config.version,
        "properties": config.properties,
        "advanced": config.advanced,
        "notes": config.notes,
        "credentials": config.credentials,
        "selfUri": f"{record.self_uri}/config/current",
    }


def integration_body(record: IntegrationRecord) -> dict[str, Any]:
    """An integration in the ``Integration`` shape."""
    active = record.intended_state == "ENABLED"
    body: dict[str, Any] = {
        "id": record.id,
        "name": record.config.name,
        "integrationType": type_body(record.spec),
        "intendedState": record.intended_state,
        "config": {"current": config_body(record)},
        # The SDK's status codes: a disabled integration reports INACTIVE.
        "reportedState": {
            "code": "ACTIVE" if active else "INACTIVE",
            "effective": "Active" if active else "Inactive",
            "lastUpdated": iso_z(record.state_changed_at),
        },
        "selfUri": record.self_uri,
    }
    if record.config.notes:
        body["notes"] = record.config.notes
    return body


def schema_problem(schema: dict[str, Any], value: Any, section: str) -> PlatformError | None:
    """A 400 naming the first part of ``value`` that ``schema`` refuses, or None."""
    error = best_match(Draft7Validator(schema).iter_errors(value))
    if error is None:
        return None
    where = ".".join([section, *(str(step) for step in error.absolute_path)])
    return bad_request(f"Invalid configuration: {where}: {_explain(error)}", where)


def _explain(error: ValidationError) -> str:
    if error.validator == "pattern":
        # The regular expression itself would not help an admin: say what is expected.
        hint = error.schema.get("description") or error.schema.get("title") or "the format"
        return f"{error.instance!r} does not match the expected format ({hint})."
    return str(error.message)


def _credentials(value: Any) -> dict[str, dict[str, str]]:
    """``credentials``: ``{key: {"id": credentialId}}`` (the ids are kept, nothing else)."""
    if not isinstance(value, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("id"), str) and v["id"] for v in value.values()
    ):
        raise bad_request("credentials must map names to objects with a credential id.",
                          "credentials")
    return {str(key): {"id": item["id"]} for key, item in value.items()}


class IntegrationsApi:
    """The integration types and the org's integrations."""

    def __init__(self, state: MockGenesysState) -> None:
        """Bind to one mock's state (the tokens); the integrations start empty."""
        self.state = state
        self.integrations: dict[str, IntegrationRecord] = {}

    def routes(self) -> list[BaseRoute]:
        """The ``/api/v2/integrations`` routes."""
        base = "/api/v2/integrations"
        one = base + "/{integration_id}"
        return [
            Route(base + "/types", self.list_types, methods=["GET"]),
            Route(base + "/types/{type_id}", self.get_type, methods=["GET"]),
            Route(base + "/types/{type_id}/configschemas/{config_type}", self.get_schema,
                  methods=["GET"]),
            Route(base, self.list_integrations, methods=["GET"]),
            Route(base, self.create, methods=["POST"]),
            Route(one, self.get_integration, methods=["GET"]),
            Route(one, self.patch, methods=["PATCH"]),
            Route(one, self.delete, methods=["DELETE"]),
            Route(one + "/config/current", self.get_config, methods=["GET"]),
            Route(one + "/config/current", self.put_config, methods=["PUT"]),
        ]

    # Types --------------------------------------------------------------

    async def list_types(self, request: Request) -> Response:
        """``GET /api/v2/integrations/types``: ``IntegrationTypeEntityListing``."""
        require_admin(self.state, request, VIEW)
        entities = [type_body(spec) for spec in INTEGRATION_TYPES.values()]
        return JSONResponse(numbered_page(request, entities))

    async def get_type(self, request: Request) -> Response:
        """``GET /api/v2/integrations/types/{typeId}``: ``IntegrationType``."""
        require_admin(self.state, request, VIEW)
        return JSONResponse(type_body(self._type(request.path_params["type_id"])))

    async def get_schema(self, request: Request) -> Response:
        """``GET .../types/{typeId}/configschemas/{configType}`` (``properties`` or
        ``advanced``): ``JsonSchemaDocument``."""
        require_admin(self.state, request, VIEW)
        spec = self._type(request.path_params["type_id"])
        config_type = request.path_params["config_type"]
        if config_type not in CONFIG_TYPES:
            raise PlatformError(
                404, "not.found", f"No config schema {config_type!r}: use properties or advanced."
            )
        return JSONResponse(schema_document(spec, config_type))

    # Integrations -------------------------------------------------------

    async def list_integrations(self, request: Request) -> Response:
        """``GET /api/v2/integrations``: ``IntegrationEntityListing``, oldest first."""
        require_admin(self.state, request, VIEW)
        entities = [integration_body(r) for r in self.integrations.values()]
        return JSONResponse(numbered_page(request, entities))

    async def create(self, request: Request) -> Response:
        """``POST /api/v2/integrations`` ``{"name"?, "integrationType": {"id"}}``.

        Answers the new ``Integration``: ``DISABLED``, config version 1 with empty
        properties (configure it with ``PUT .../config/current``).
        """
        require_admin(self.state, request, ADD)
        body = await json_object(request)
        kind = body.get("integrationType")
        type_id = kind.get("id") if isinstance(kind, dict) else None
        if not isinstance(type_id, str) or not type_id:
            raise bad_request("integrationType.id is required.", "integrationType")
        spec = INTEGRATION_TYPES.get(type_id)
        if spec is None:
            raise bad_request(
                f"integrationType.id {type_id!r} is not a known integration type.",
                "integrationType",
            )
        name = body.get("name", spec.name)
        if not isinstance(name, str) or not name.strip():
            raise bad_request("name must be a non-empty string.", "name")
        existing = sum(1 for r in self.integrations.values() if r.spec.id == spec.id)
        if spec.max_instances is not None and existing >= spec.max_instances:
            raise bad_request(
                f"The org already has the most integrations of type {spec.id!r} "
                f"({spec.max_instances}).", "integrationType")
        record = IntegrationRecord(
            id=str(uuid.uuid4()),
            spec=spec,
            config=IntegrationConfig(name=name),
            intended_state="DISABLED",
            state_changed_at=self.state.now(),
        )
        self.integrations[record.id] = record
        return JSONResponse(integration_body(record))

    async def get_integration(self, request: Request) -> Response:
        """``GET /api/v2/integrations/{integrationId}``: ``Integration``."""
        require_admin(self.state, request, VIEW)
        return JSONResponse(integration_body(self._integration(request)))

    async def patch(self, request: Request) -> Response:
        """``PATCH /api/v2/integrations/{integrationId}`` ``{"intendedState": "ENABLED" |
        "DISABLED"}``: the ``Integration`` (``reportedState`` follows at once)."""
        require_admin(self.state, request, EDIT)
        record = self._integration(request)
        body = await json_object(request)
        wanted = body.get("intendedState")
        if wanted not in INTENDED_STATES:
            raise bad_request("intendedState must be ENABLED or DISABLED.", "intendedState")
        if wanted != record.intended_state:
            record.intended_state = str(wanted)
            record.state_changed_at = self.state.now()
        return JSONResponse(integration_body(record))

    async def delete(self, request: Request) -> Response:
        """``DELETE /api/v2/integrations/{integrationId}``: the deleted ``Integration``."""
        require_admin(self.state, request, DELETE)
        record = self._integration(request)
        del self.integrations[record.id]
        return JSONResponse(integration_body(record))

    # Config -------------------------------------------------------------

    async def get_config(self, request: Request) -> Response:
        """``GET /api/v2/integrations/{integrationId}/config/current``:
        ``IntegrationConfiguration``."""
        require_admin(self.state, request, VIEW)
        return JSONResponse(config_body(self._integration(request)))

    async def put_config(self, request: Request) -> Response:
        """``PUT .../config/current`` ``{name, version, properties, advanced, notes,
        credentials}``: the new ``IntegrationConfiguration``.

        ``version`` must be the current one (409 ``conflict`` otherwise: someone
        changed it since it was read); ``properties`` and ``advanced`` must fit the
        type's schemas (400 ``bad.request`` naming the first bad value). The
        integration takes the config's name; the version goes up by one.
        """
        require_admin(self.state, request, EDIT)
        record = self._integration(request)
        body = await json_object(request)
        version = body.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise bad_request("version is required: the current config version.", "version")
        if version != record.config.version:
            raise PlatformError(
                409,
                "conflict",
                f"The config version {version} is not the current one "
                f"({record.config.version}): read the current config and try again.",
                {"version": str(record.config.version)},
            )
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request("name is required: a non-empty string.", "name")
        notes = body.get("notes", "")
        if not isinstance(notes, str):
            raise bad_request("notes must be a string.", "notes")
        sections: dict[str, dict[str, Any]] = {}
        for section in CONFIG_TYPES:
            value = body.get(section, {})
            if not isinstance(value, dict):
                raise bad_request(f"{section} must be an object.", section)
            problem = schema_problem(record.spec.schema(section), value, section)
            if problem is not None:
                raise problem
            sections[section] = value
        record.config = IntegrationConfig(
            name=name,
            version=version + 1,
            properties=sections["properties"],
            advanced=sections["advanced"],
            notes=notes,
            credentials=_credentials(body.get("credentials", {})),
        )
        return JSONResponse(config_body(record))

    # Lookups ------------------------------------------------------------

    def _type(self, type_id: str) -> IntegrationTypeSpec:
        spec = INTEGRATION_TYPES.get(type_id)
        if spec is None:
            raise PlatformError(404, "not.found", f"No integration type {type_id!r}.")
        return spec

    def _integration(self, request: Request) -> IntegrationRecord:
        record = self.integrations.get(request.path_params["integration_id"])
        if record is None:
            raise PlatformError(404, "not.found", "The requested integration could not be found.")
        return record
