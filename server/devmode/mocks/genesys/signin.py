"""The login host's sign-in page (sign-in mode ``prompt``).

The page names the org and user, offers a picker among the mock's users, and
posts its choice to ``/oauth/authorize/decision`` with an opaque id of the
pending authorization request: no script at all, and a strict CSP. The pending
request is single use and expires, so a stale or replayed form is refused.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from server.devmode.mocks.genesys.config import MockGenesysConfig
from server.devmode.mocks.genesys.oauth_answers import (
    AuthorizeRequest,
    FormError,
    error_page,
    read_form,
    refuse,
)
from server.devmode.mocks.genesys.pages import page_headers
from server.devmode.mocks.genesys.state import MockGenesysState

DECISION_PATH = "/oauth/authorize/decision"
STYLESHEET = "/mock/static/signin.css"
#: How long a shown sign-in page stays answerable.
PENDING_LIFETIME_S = 600.0
#: Pending requests kept at most (the oldest are dropped), so a crawler cannot grow memory.
MAX_PENDING = 1000

#: Issues a grant for a user: the redirect back to the client.
Finish = Callable[[AuthorizeRequest, str], Response]


@dataclass(frozen=True)
class PendingSignIn:
    """An authorization request waiting for the sign-in page's answer."""

    auth: AuthorizeRequest
    expires_at: float


class SignInPage:
    """Renders the sign-in page and takes its answer."""

    def __init__(self, config: MockGenesysConfig, state: MockGenesysState, finish: Finish) -> None:
        """Bind to one mock; ``finish`` grants the chosen user and redirects back."""
        self.config = config
        self.state = state
        self.finish = finish
        self.templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
        self._pending: dict[str, PendingSignIn] = {}

    def content_security_policy(self) -> str:
        """No script; the form may only post here (and follow the redirect to the client)."""
        # Chromium applies form-action to the redirect that answers the form, so the
        # registered redirect URIs' origins must be allowed too.
        targets = sorted({_origin(uri) for uri in self.config.redirect_uris})
        return "; ".join(
            [
                "default-src 'none'",
                "style-src 'self'",
                "img-src 'self' data:",
                f"form-action 'self' {' '.join(targets)}",
                "base-uri 'none'",
            ]
        )

    def show(self, request: Request, auth: AuthorizeRequest) -> Response:
        """The sign-in page for a validated authorization request."""
        request_id = self._remember(auth)
        users = list(self.state.users.values())
        selected = self.state.users[self.state.settings.sign_in_user_id]
        context: dict[str, Any] = {
            "request_id": request_id,
            "decision_path": DECISION_PATH,
            "stylesheet": STYLESHEET,
            "client_name": self.config.client_name,
            "org_name": self.state.directory.org_of(selected).name,
            "user_name": selected.name,
            "selected_id": selected.id,
            "users": [
                {"id": u.id, "name": u.name, "org": self.state.directory.org_of(u).name}
                for u in users
            ],
        }
        return self.templates.TemplateResponse(
            request,
            "signin.html",
            context,
            headers=page_headers(self.content_security_policy()),
        )

    async def decision(self, request: Request) -> Response:
        """``POST /oauth/authorize/decision``: form fields ``request``, ``action``, ``user``.

        ``action`` is ``allow`` (grant the chosen ``user``) or ``cancel`` (redirect
        back with ``error=access_denied``).
        """
        try:
            form = await read_form(request)
        except FormError as exc:
            return error_page("Invalid sign-in answer", str(exc))
        pending = self._take(form.get("request", ""))
        if pending is None:
            return error_page(
                "Sign-in expired",
                "This sign-in page has expired or was already answered. Start the sign-in again.",
            )
        action = form.get("action", "")
        if action == "cancel":
            return refuse(pending.auth, "access_denied", "The user cancelled the sign-in.")
        user_id = form.get("user", "")
        if action != "allow" or user_id not in self.state.users:
            return error_page("Invalid sign-in answer", "Choose a user and sign in, or cancel.")
        return self.finish(pending.auth, user_id)

    def _remember(self, auth: AuthorizeRequest) -> str:
        now = self.state.now()
        for key in [k for k, p in self._pending.items() if p.expires_at <= now]:
            del self._pending[key]
        while len(self._pending) >= MAX_PENDING:
            del self._pending[next(iter(self._pending))]
        request_id = secrets.token_urlsafe(24)
        self._pending[request_id] = PendingSignIn(auth, now + PENDING_LIFETIME_S)
        return request_id

    def _take(self, request_id: str) -> PendingSignIn | None:
        pending = self._pending.pop(request_id, None)
        if pending is None or pending.expires_at <= self.state.now():
            return None
        return pending


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
