"""The mock's OAuth host: ``/oauth/authorize`` (implicit grant).

Sign-in is automatic: every authorization is granted to the scripted agent.
Each ``response_type`` is one handler in :attr:`OAuthEndpoints.grants`, so the
authorization code grant (PKCE), ``/oauth/token`` and a sign-in page can be
added beside the implicit grant without touching the validation.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from .config import MockGenesysConfig
from .state import MockGenesysState


@dataclass(frozen=True)
class AuthorizeRequest:
    """A validated authorization request: the client and redirect URI are registered."""

    response_type: str
    client_id: str
    redirect_uri: str
    state: str | None
    request: Request


GrantHandler = Callable[[AuthorizeRequest], Awaitable[Response]]


def fragment_redirect(redirect_uri: str, params: dict[str, str]) -> RedirectResponse:
    """A 302 to ``redirect_uri#k=v&...`` (values percent-encoded)."""
    fragment = urlencode(params, quote_via=quote)
    return RedirectResponse(f"{redirect_uri}#{fragment}", status_code=302)


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


class OAuthEndpoints:
    """The login host's endpoints, for the one registered client."""

    def __init__(self, config: MockGenesysConfig, state: MockGenesysState) -> None:
        """Bind to one mock's config and state."""
        self.config = config
        self.state = state
        self.grants: dict[str, GrantHandler] = {"token": self._implicit_grant}

    def routes(self) -> list[BaseRoute]:
        """The OAuth routes."""
        return [Route("/oauth/authorize", self.authorize, methods=["GET"])]

    async def authorize(self, request: Request) -> Response:
        """``GET /oauth/authorize``.

        An unknown ``client_id`` or unregistered ``redirect_uri`` gets a 400 page
        (never a redirect); an unsupported ``response_type`` is redirected back with
        ``#error=unsupported_response_type``; otherwise the grant's handler answers.
        """
        query = request.query_params
        client_id = query.get("client_id", "")
        redirect_uri = query.get("redirect_uri", "")
        state = query.get("state")
        if client_id != self.config.client_id:
            return error_page(
                "Invalid OAuth client",
                "The client_id is missing or is not a registered OAuth client.",
            )
        if redirect_uri not in self.config.redirect_uris:
            return error_page(
                "Invalid redirect URI",
                "The redirect_uri does not exactly match a redirect URI registered "
                "for this OAuth client.",
            )
        response_type = query.get("response_type", "")
        handler = self.grants.get(response_type)
        if handler is None:
            params = {
                "error": "unsupported_response_type",
                "error_description": (
                    f"Unsupported response_type {response_type!r}; "
                    f"supported: {', '.join(sorted(self.grants))}"
                ),
            }
            if state is not None:
                params["state"] = state
            return fragment_redirect(redirect_uri, params)
        return await handler(
            AuthorizeRequest(
                response_type=response_type,
                client_id=client_id,
                redirect_uri=redirect_uri,
                state=state,
                request=request,
            )
        )

    async def _implicit_grant(self, auth: AuthorizeRequest) -> Response:
        """Issue a token to the scripted agent and hand it back in the fragment."""
        token = self.state.issue_token(self.config.agent_user_id, auth.client_id)
        params = {
            "access_token": token.value,
            "expires_in": str(int(token.expires_at - token.issued_at)),
            "token_type": "bearer",
        }
        if auth.state is not None:
            params["state"] = auth.state
        return fragment_redirect(auth.redirect_uri, params)
