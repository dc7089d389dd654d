"""The panel page (``GET /panel``) and its Content-Security-Policy."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from .errors import BadRequest
from .regions import Region, find_region
from .schemas import is_conversation_id
from .settings import Settings

_LANG_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def configured_regions(settings: Settings) -> list[Region]:
    regions = []
    for key in settings.genesys_regions:
        region = find_region(key)
        if region is None:
            raise ValueError(f"ASSIST_GENESYS_REGIONS: unknown region {key!r}")
        regions.append(region)
    return regions


def genesys_bases(settings: Settings, target_env: str) -> tuple[str, str]:
    """(login base, API base) for the page; dev mode's mock overrides the region table."""
    if settings.genesys_api_base:
        return (settings.genesys_login_base or settings.genesys_api_base,
                settings.genesys_api_base)
    if not target_env:
        return "", ""  # the sign-in callback: the page kept its bases from before
    region = find_region(target_env)
    if region is None or region not in configured_regions(settings):
        raise BadRequest(f"gcTargetEnv {target_env!r} is not a configured region")
    return region.login_base, region.api_base


def content_security_policy(settings: Settings) -> str:
    """Scripts and styles from self only; framing only by the configured Agent Desktops."""
    regions = configured_regions(settings)
    ancestors = [r.desktop_origin for r in regions] + list(settings.extra_frame_ancestors)
    connect = ["'self'"]
    for region in regions:
        connect += [region.login_base, region.api_base, region.streaming_origin]
    for base in (settings.genesys_api_base, settings.genesys_login_base):
        if base:
            connect.append(base)
            connect.append(base.replace("https://", "wss://").replace("http://", "ws://"))
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src " + " ".join(dict.fromkeys(connect)),
        "frame-ancestors " + (" ".join(ancestors) or "'none'"),
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ])


async def panel_page(request: Request) -> Response:
    """The panel, with its configuration in ``data-*`` attributes of the root element."""
    settings: Settings = request.state.settings
    templates: Jinja2Templates = request.state.templates
    params = request.query_params
    conversation_id = params.get("conversationId", "")
    if conversation_id and not is_conversation_id(conversation_id):
        raise BadRequest("conversationId must be a Genesys conversation id (a UUID)")
    lang = params.get("langTag", "en-US")
    if not lang or len(lang) > 35 or not set(lang) <= _LANG_OK:
        lang = "en-US"
    login_base, api_base = genesys_bases(settings, params.get("gcTargetEnv", ""))
    public = settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")
    config = {
        "conversation-id": conversation_id,
        "gc-host-origin": params.get("gcHostOrigin", ""),
        "gc-target-env": params.get("gcTargetEnv", ""),
        "lang-tag": lang,
        "login-base": login_base,
        "api-base": api_base,
        "client-id": settings.oauth_client_id,
        "redirect-uri": public + "/panel",
        "stream-url": "/api/assist/stream",
    }
    response = templates.TemplateResponse(request, "panel.html", {"config": config, "lang": lang})
    response.headers["Content-Security-Policy"] = content_security_policy(settings)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


routes = [Route("/panel", panel_page)]
