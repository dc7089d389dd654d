"""The integration types the mock offers, and their config schemas.

Two Client App types (the Interaction Widget the panel is installed as, and the
sidebar/standalone Client Application) and one unrelated type, so that listing
code has to pick. Each type has a ``properties`` and an ``advanced`` JSON Schema;
``PUT .../config/current`` validates against them (:mod:`.integrations`).
Bodies are the SDK's ``IntegrationType`` and ``JsonSchemaDocument``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INTERACTION_WIDGET = "embedded-client-app-interaction-widget"
CLIENT_APPLICATION = "embedded-client-app"
DATA_ACTIONS = "purecloud-data-actions"
CONFIG_TYPES = ("properties", "advanced")
SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"

#: https anywhere, plain http only to this machine (dev); the rest of the URL may hold
#: ``{{gcConversationId}}``-style interpolation variables.
APP_URL_PATTERN = (
    r"^(https://[^\s/?#]+|http://(localhost|127\.0\.0\.1)(:[0-9]+)?)([/?#]\S*)?$"
)
#: The communication types an interaction widget can be limited to.
COMMUNICATION_TYPES = (
    "call", "callback", "chat", "cobrowse", "email", "message", "screenshare",
    "socialexpression", "video", "voicemail", "webmessaging",
)


def comma_list(token: str) -> str:
    """A pattern for a comma-separated list of ``token`` (spaces allowed), or nothing."""
    return rf"^\s*({token}\s*(,\s*{token}\s*)*)?$"


def _ids(title: str) -> dict[str, Any]:
    return {"type": "array", "title": title, "items": {"type": "string", "minLength": 1}}


def _client_app_properties(extra: dict[str, Any]) -> dict[str, Any]:
    """The ``properties`` both Client App types share, plus ``extra``."""
    return {
        "url": {
            "type": "string",
            "title": "Application URL",
            "description": "https (or http to localhost/127.0.0.1 for development); may "
            "hold interpolation variables such as {{gcConversationId}}.",
            "pattern": APP_URL_PATTERN,
        },
        "sandbox": {
            "type": "string",
            "title": "Iframe sandbox options",
            "pattern": comma_list(r"allow-[a-z-]+"),
        },
        "permissions": {
            "type": "string",
            "title": "Iframe feature permissions",
            "pattern": comma_list(r"[a-z][a-z-]*"),
        },
        "groups": _ids("Group filtering"),
        **extra,
    }


def _advanced_schema(lifecycle_hooks: bool) -> dict[str, Any]:
    """The ``advanced`` schema of a Client App: lifecycle, icons, localised names."""
    properties: dict[str, Any] = {
        "icon": {
            "type": "object",
            "title": "Icons by size",
            "propertyNames": {"pattern": r"^(vector|[0-9]+x[0-9]+)$"},
            "additionalProperties": {"type": "string", "pattern": r"^https?://\S+$"},
        },
        "i10n": {
            "type": "object",
            "title": "Localised names by language tag",
            "propertyNames": {"pattern": r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"},
            "additionalProperties": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string", "minLength": 1}},
                "additionalProperties": False,
            },
        },
    }
    if lifecycle_hooks:
        hooks = {hook: {"type": "boolean"} for hook in ("bootstrap", "focus", "blur", "stop")}
        properties["lifecycle"] = {
            "type": "object",
            "title": "Lifecycle",
            "properties": {
                "ephemeral": {"type": "boolean"},
                "hooks": {"type": "object", "properties": hooks, "additionalProperties": False},
            },
            "additionalProperties": False,
        }
    return {"type": "object", "properties": properties, "additionalProperties": False}


@dataclass(frozen=True)
class IntegrationTypeSpec:
    """One integration type: what the listing shows and its two config schemas."""

    id: str
    name: str
    description: str
    category: str
    properties_schema: dict[str, Any]
    advanced_schema: dict[str, Any]
    max_instances: int | None = None

    def schema(self, config_type: str) -> dict[str, Any]:
        """The schema of ``properties`` or ``advanced`` (see :data:`CONFIG_TYPES`)."""
        return self.properties_schema if config_type == "properties" else self.advanced_schema


def _types() -> dict[str, IntegrationTypeSpec]:
    widget_properties = _client_app_properties(
        {
            "queueIdFilterList": _ids("Queue filtering"),
            "communicationTypeFilter": {
                "type": "string",
                "title": "Communication type filtering",
                "pattern": comma_list("(" + "|".join(COMMUNICATION_TYPES) + ")"),
            },
        }
    )
    app_properties = _client_app_properties(
        {
            "displayType": {"type": "string", "enum": ["standalone", "widget"]},
            "featureCategory": {"type": "string"},
        }
    )
    specs = [
        IntegrationTypeSpec(
            id=INTERACTION_WIDGET,
            name="Interaction Widget",
            description="Embeds a third-party web app beside each interaction in the agent "
            "workspace.",
            category="Client Apps",
            properties_schema={"type": "object", "required": ["url"],
                               "properties": widget_properties, "additionalProperties": False},
            advanced_schema=_advanced_schema(lifecycle_hooks=True),
        ),
        IntegrationTypeSpec(
            id=CLIENT_APPLICATION,
            name="Client Application",
            description="Embeds a third-party web app in the sidebar or as a standalone page.",
            category="Client Apps",
            properties_schema={"type": "object", "required": ["url"],
                               "properties": app_properties, "additionalProperties": False},
            advanced_schema=_advanced_schema(lifecycle_hooks=True),
        ),
        IntegrationTypeSpec(
            id=DATA_ACTIONS,
            name="Genesys Cloud Data Actions",
            description="Calls the Genesys Cloud Platform API from Architect and scripts.",
            category="Data Actions",
            properties_schema={"type": "object", "properties": {}},
            advanced_schema={"type": "object", "properties": {}},
            max_instances=1,
        ),
    ]
    return {spec.id: spec for spec in specs}


#: Every integration type of the mock, by id, in listing order.
INTEGRATION_TYPES: dict[str, IntegrationTypeSpec] = _types()


def type_body(spec: IntegrationTypeSpec) -> dict[str, Any]:
    """An integration type in the ``IntegrationType`` shape."""
    self_uri = f"/api/v2/integrations/types/{spec.id}"
    body: dict[str, Any] = {
        "id": spec.id,
        "name": spec.name,
        "description": spec.description,
        "provider": "embedded" if spec.category == "Client Apps" else "genesys",
        "category": spec.category,
        "configPropertiesSchemaUri": f"{self_uri}/configschemas/properties",
        "configAdvancedSchemaUri": f"{self_uri}/configschemas/advanced",
        "helpUri": "https://help.mypurecloud.com/",
        "vendorName": "Genesys",
        "nonInstallable": False,
        "selfUri": self_uri,
    }
    if spec.max_instances is not None:
        body["maxInstances"] = spec.max_instances
    return body


def schema_document(spec: IntegrationTypeSpec, config_type: str) -> dict[str, Any]:
    """A type's ``properties`` or ``advanced`` schema as a ``JsonSchemaDocument``."""
    schema = spec.schema(config_type)
    body: dict[str, Any] = {
        "id": f"/api/v2/integrations/types/{spec.id}/configschemas/{config_type}",
        "$schema": SCHEMA_DIALECT,
        "title": f"{spec.name} {config_type}",
        "description": f"The {config_type} of an integration of type {spec.id}.",
        **schema,
    }
    return body
