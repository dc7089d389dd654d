"""The panel page (``GET /panel``) and its Content-Security-Policy."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from server.auth.platform import allowed_host_origins, configured_regions, resolve_env
from server.errors import BadRequest
from server.schemas import is_conversation_id, is_lang_tag
from server.settings import Settings

#: The vendored Genesys Client App SDK (see frontend/static/vendor/README.md).
CLIENT_APP_SDK = "/static/vendor/purecloud-client-app-sdk-2.6.10.min.js"
#: The URL variable that asks for popup sign-in, under each name Genesys has used:
#: ``gcUsePopupAuth`` today, ``pcUsePopupAuth`` from the PureCloud days, and the bare
#: ``usePopupAuth`` some of Genesys's own samples read.
POPUP_AUTH_PARAMS = ("gcUsePopupAuth", "pcUsePopupAuth", "usePopupAuth")
_TRUE = {"1", "true", "yes"}
#: The page's own stall watchdog (``data-stall-ms``, frontend/static/panel/assist.js):
#: its default, and how much longer than the keep-alive interval it waits at least.
DEFAULT_STALL_MS = 20_000
STALL_MARGIN_MS = 5_000


def stall_ms(settings: Settings) -> int:
    """How long the page waits for a byte of a suggestion stream before it takes the
    connection for dead: longer than the server's keep-alive interval
    (``ASSIST_SSE_PING_S``), so a healthy but quiet stream is never cut, and never
    below the page's default."""
    return max(DEFAULT_STALL_MS, round(settings.sse_ping_s * 1000) + STALL_MARGIN_MS)


def content_security_policy(settings: Settings) -> str:
    """Scripts and styles from self only; framing only by the configured Agent Desktops.

    The panel frames the login host itself (silent re-sign-in in a hidden frame,
    whose callback is this page again): hence ``frame-src`` and ``'self'`` among
    the ancestors. No form is ever submitted natively (the ask box is the page's
    script's): ``form-action 'none'``, so one sent before the script has loaded
    cannot put the agent's question in a URL.
    """
    regions = configured_regions(settings)
    ancestors = ["'self'", *allowed_host_origins(settings)]
    connect = ["'self'"]
    frames = ["'self'"]
    for region in regions:
        connect += [region.api_base, region.streaming_origin]
        frames.append(region.login_base)
    for base in (settings.genesys_api_base, settings.genesys_login_base):
        if base:
            connect.append(base)
            connect.append(base.replace("https://", "wss://").replace("http://", "ws://"))
            frames.append(base)
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src " + " ".join(dict.fromkeys(connect)),
        "frame-src " + " ".join(dict.fromkeys(frames)),
        "frame-ancestors " + " ".join(ancestors),
        "base-uri 'none'",
        "form-action 'none'",
        "object-src 'none'",
    ])


async def panel_page(request: Request) -> Response:
    """The panel, with its configuration in ``data-*`` attributes of the root element.

    Agent Desktop opens it with ``conversationId``, ``gcHostOrigin``,
    ``gcTargetEnv`` and ``langTag`` (and ``gcUsePopupAuth`` or one of its older
    names); an unknown host origin or region is refused (400). Opened without them
    it is the sign-in callback, whose answer the page reads from its own URL.
    """
    settings: Settings = request.state.settings
    templates: Jinja2Templates = request.state.templates
    params = request.query_params
    conversation_id = params.get("conversationId", "")
    if conversation_id and not is_conversation_id(conversation_id):
        raise BadRequest("conversationId must be a Genesys conversation id (a UUID)")
    lang = params.get("langTag", "en-US")
    if not is_lang_tag(lang):
        lang = "en-US"
    framed = False
    host_origin = target_env = ""
    if conversation_id:
        env = resolve_env(settings, params.get("gcTargetEnv", ""), params.get("gcHostOrigin", ""))
        framed, host_origin, target_env = env.framed, env.host_origin, env.target_env
    popup = settings.popup_sign_in or any(
        params.get(name, "").lower() in _TRUE for name in POPUP_AUTH_PARAMS)
    config = {
        "conversation-id": conversation_id,
        "gc-host-origin": host_origin,
        "gc-target-env": target_env,
        "lang-tag": lang,
        "popup-sign-in": "true" if popup else "false",
        "state-url": "/auth/state",
        "session-url": "/api/session",
        "renew-url": "/api/session/renew",
        "stream-url": "/api/assist/stream",
        "feedback-url": "/api/feedback",
        "stall-ms": str(stall_ms(settings)),
        # Loaded by a classic script tag ahead of the page's modules, so the lifecycle
        # handshake is answered at page load, before any sign-in.
        "client-app-sdk": CLIENT_APP_SDK if framed else "",
    }
    response = templates.TemplateResponse(
        request, "panel.html", {"config": config, "lang": lang})
    response.headers["Content-Security-Policy"] = content_security_policy(settings)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


routes = [Route("/panel", panel_page)]
