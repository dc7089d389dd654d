"""How the login host answers: redirects back to the client, error pages, form bodies,
and the frame policy of every login-host response.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

#: ``response_type`` -> how an answer travels back: ``#fragment`` or ``?query``.
RESPONSE_MODES = {"token": "fragment", "code": "query"}
#: Largest form body the login host reads (a form of a few short fields).
MAX_FORM_BYTES = 16 * 1024


@dataclass(frozen=True)
class AuthorizeRequest:
    """A validated authorization request: the client and redirect URI are registered.

    ``code_challenge`` is set (and valid, ``S256``) for ``response_type=code``.
    """

    response_type: str
    client_id: str
    redirect_uri: str
    state: str | None
    code_challenge: str | None = None


class FormError(ValueError):
    """A form body that is not a well-formed, size-capped urlencoded form."""


def redirect_back(
    redirect_uri: str, params: dict[str, str], mode: str = "fragment"
) -> RedirectResponse:
    """A 302 to ``redirect_uri`` with ``params`` in its fragment or its query.

    In query mode the parameters are appended with ``&`` when the registered URI
    already has a query (it is matched exactly, query included).
    """
    encoded = urlencode(params, quote_via=quote)
    if mode == "query":
        separator = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{separator}{encoded}", status_code=302)
    return RedirectResponse(f"{redirect_uri}#{encoded}", status_code=302)


def answer(auth: AuthorizeRequest, params: dict[str, str]) -> RedirectResponse:
    """Send ``params`` (plus ``state`` if the client sent one) back the grant's way."""
    full = dict(params)
    if auth.state is not None:
        full["state"] = auth.state
    return redirect_back(
        auth.redirect_uri, full, RESPONSE_MODES.get(auth.response_type, "fragment")
    )


def refuse(auth: AuthorizeRequest, error: str, description: str) -> RedirectResponse:
    """Redirect back with an OAuth ``error`` and ``error_description``."""
    return answer(auth, {"error": error, "error_description": description})


def error_page(title: str, detail: str, status_code: int = 400) -> HTMLResponse:
    """The HTML error page the login host shows instead of redirecting."""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>
<body><main><h1>{html.escape(title)}</h1><p>{html.escape(detail)}</p></main></body></html>
"""
    return HTMLResponse(
        body,
        status_code=status_code,
        headers={"Content-Security-Policy": "default-src 'none'", "Cache-Control": "no-store"},
    )


def apply_frame_policy(response: Response, frameable: bool) -> Response:
    """Make a login-host response refuse framing when the login host is not frameable.

    Both headers, as identity providers send them: ``X-Frame-Options`` for old
    browsers, CSP ``frame-ancestors`` (which wins where supported).
    """
    if frameable:
        return response
    response.headers["X-Frame-Options"] = "DENY"
    csp = response.headers.get("Content-Security-Policy")
    directive = "frame-ancestors 'none'"
    response.headers["Content-Security-Policy"] = f"{csp}; {directive}" if csp else directive
    return response


def is_frame_navigation(request: Request) -> bool:
    """Whether the browser says this navigation loads into a frame (``Sec-Fetch-Dest``)."""
    return request.headers.get("sec-fetch-dest", "").lower() in ("iframe", "frame")


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body; a repeated field is an error."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FormError("The body must be application/x-www-form-urlencoded.")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM_BYTES:
            raise FormError("The form is too large.")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormError("The form is not valid UTF-8 urlencoded data.") from exc
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise FormError(f"The parameter {key!r} is repeated.")
        form[key] = value
    return form
