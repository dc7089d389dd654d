"""The mock's login host: ``/oauth/authorize`` (implicit and code grants) and ``/oauth/token``.

What ``authorize`` does once the client and redirect URI check out depends on the
runtime sign-in mode (``/mock/settings``): ``auto`` grants at once to the
configured user (silent, as inside Agent Desktop), ``prompt`` shows the sign-in
page (:mod:`.signin`), ``deny`` redirects back with ``error=access_denied``.
While ``loginFrameable`` is off every login-host response refuses framing.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from server.devmode.mocks.genesys.config import MockGenesysConfig
from server.devmode.mocks.genesys.oauth_answers import (
    AuthorizeRequest,
    FormError,
    answer,
    apply_frame_policy,
    error_page,
    is_frame_navigation,
    read_form,
    redirect_back,
    refuse,
)
from server.devmode.mocks.genesys.pkce import s256, valid_challenge, valid_verifier
from server.devmode.mocks.genesys.signin import DECISION_PATH, SignInPage
from server.devmode.mocks.genesys.state import MockGenesysState

#: ``response_type`` -> the grant type ``tokens/me`` reports for its tokens.
GRANT_TYPES = {"token": "TOKEN", "code": "CODE"}
#: Headers of every ``/oauth/token`` answer (RFC 6749 section 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

Handler = Callable[[Request], Awaitable[Response]]


def basic_credentials(request: Request) -> tuple[str, str]:
    """``(client_id, secret)`` from an HTTP Basic ``Authorization`` header, else empty."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


class TokenError(Exception):
    """An ``/oauth/token`` refusal: a 400 with ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str) -> None:
        """``error`` is the RFC 6749 code, e.g. ``invalid_grant``."""
        super().__init__(description)
        self.error = error
        self.description = description

    def response(self) -> JSONResponse:
        """The JSON error answer."""
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=400, headers=NO_STORE)


class OAuthEndpoints:
    """The login host's endpoints, for the org's registered OAuth clients."""

    def __init__(self, config: MockGenesysConfig, state: MockGenesysState) -> None:
        """Bind to one mock's config and state."""
        self.config = config
        self.state = state
        self.sign_in_page = SignInPage(config, state, self.grant)

    def routes(self) -> list[BaseRoute]:
        """The OAuth routes; every answer follows the frame policy."""
        return [
            Route("/oauth/authorize", self._framed(self.authorize), methods=["GET"]),
            Route(DECISION_PATH, self._framed(self.sign_in_page.decision), methods=["POST"]),
            Route("/oauth/token", self._framed(self.token), methods=["POST"]),
        ]

    def _framed(self, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            response = await handler(request)
            return apply_frame_policy(response, self.state.settings.login_frameable)

        return endpoint

    # Authorize ----------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        """``GET /oauth/authorize``.

        Any registered TOKEN or CODE client may ask. An unknown ``client_id`` (or a
        client-credentials one) or a ``redirect_uri`` not registered for that client
        gets a 400 page (never a redirect). An unsupported ``response_type`` is
        redirected back with ``#error=unsupported_response_type``, one the client's
        grant does not allow with ``error=unauthorized_client``; a code request
        without an ``S256`` challenge with ``?error=invalid_request``. Otherwise the
        sign-in mode decides.
        """
        query = request.query_params
        client_id = query.get("client_id", "")
        redirect_uri = query.get("redirect_uri", "")
        state = query.get("state")
        client = self.state.oauth_clients.get(client_id)
        if client is None or not client.response_types:
            return error_page(
                "Invalid OAuth client",
                "The client_id is missing or is not a registered OAuth client.",
            )
        if redirect_uri not in client.redirect_uris:
            return error_page(
                "Invalid redirect URI",
                "The redirect_uri does not exactly match a redirect URI registered "
                "for this OAuth client.",
            )
        response_type = query.get("response_type", "")
        if response_type not in GRANT_TYPES:
            params = {
                "error": "unsupported_response_type",
                "error_description": (
                    f"Unsupported response_type {response_type!r}; "
                    f"supported: {', '.join(sorted(GRANT_TYPES))}"
                ),
            }
            if state is not None:
                params["state"] = state
            return redirect_back(redirect_uri, params)
        auth = AuthorizeRequest(response_type, client_id, redirect_uri, state)
        if response_type not in client.response_types:
            return refuse(
                auth,
                "unauthorized_client",
                f"This OAuth client's grant ({client.grant_type}) does not allow "
                f"response_type={response_type}.",
            )
        if response_type == "code":
            challenge = query.get("code_challenge", "")
            if query.get("code_challenge_method") != "S256" or not valid_challenge(challenge):
                return refuse(
                    auth,
                    "invalid_request",
                    "PKCE is required: send code_challenge (43 base64url characters) "
                    "with code_challenge_method=S256.",
                )
            auth = AuthorizeRequest(response_type, client_id, redirect_uri, state, challenge)
        return self._sign_in(request, auth)

    def _sign_in(self, request: Request, auth: AuthorizeRequest) -> Response:
        settings = self.state.settings
        if settings.sign_in_mode == "deny":
            return refuse(
                auth,
                "access_denied",
                "The resource owner or authorization server denied the request.",
            )
        # An identity provider that refuses framing cannot sign anyone in silently inside a
        # frame (its session cookie is third-party there): it shows its page, which the
        # browser then refuses to frame. Outside a frame (a popup), auto stays silent.
        framed_refusal = not settings.login_frameable and is_frame_navigation(request)
        if settings.sign_in_mode == "prompt" or framed_refusal:
            return self.sign_in_page.show(request, auth)
        return self.grant(auth, settings.sign_in_user_id)

    def grant(self, auth: AuthorizeRequest, user_id: str) -> RedirectResponse:
        """Grant ``user_id``: a token in the fragment, or a code in the query."""
        if auth.response_type == "code":
            assert auth.code_challenge is not None  # checked by authorize()
            code = self.state.codes.issue(
                client_id=auth.client_id,
                redirect_uri=auth.redirect_uri,
                challenge=auth.code_challenge,
                user_id=user_id,
            )
            return answer(auth, {"code": code.value})
        token = self.state.issue_token(user_id, auth.client_id, "TOKEN")
        return answer(
            auth,
            {
                "access_token": token.value,
                "expires_in": str(int(token.expires_at - token.issued_at)),
                "token_type": "bearer",
            },
        )

    # Token --------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        """``POST /oauth/token``: the authorization code grant with PKCE (public client),
        and the client credentials grant (the admin client, HTTP Basic auth).

        Answers ``{"access_token", "token_type": "bearer", "expires_in"}``, or a 400
        ``{"error", "error_description"}`` with ``invalid_request``,
        ``unsupported_grant_type``, ``invalid_client`` or ``invalid_grant``.
        """
        try:
            form = await read_form(request)
            if form.get("grant_type") == "client_credentials":
                return self._client_credentials(request, form)
            return self._exchange(form)
        except FormError as exc:
            return TokenError("invalid_request", str(exc)).response()
        except TokenError as exc:
            return exc.response()

    def _client_credentials(self, request: Request, form: dict[str, str]) -> Response:
        """Client credentials: the client authenticates with HTTP Basic (or form fields)."""
        client_id, secret = basic_credentials(request)
        client_id = client_id or form.get("client_id", "")
        secret = secret or form.get("client_secret", "")
        known = secrets.compare_digest(client_id, self.config.admin_client_id)
        if not (known and secrets.compare_digest(secret, self.config.admin_client_secret)):
            refusal = {"error": "invalid_client", "description": "client not found",
                       "error_description": "client not found"}
            return JSONResponse(refusal, status_code=401, headers=NO_STORE)
        token = self.state.issue_admin_token()
        body: dict[str, str | int] = {
            "access_token": token.value,
            "token_type": "bearer",
            "expires_in": int(token.expires_at - token.issued_at),
        }
        return JSONResponse(body, headers=NO_STORE)

    def _exchange(self, form: dict[str, str]) -> Response:
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise TokenError("invalid_request", "grant_type is required.")
        if grant_type != "authorization_code":
            raise TokenError(
                "unsupported_grant_type", f"The grant type {grant_type!r} is not supported."
            )
        missing = [
            k for k in ("code", "code_verifier", "client_id", "redirect_uri") if not form.get(k)
        ]
        if missing:
            raise TokenError("invalid_request", f"{missing[0]} is required.")
        client = self.state.oauth_clients.get(form["client_id"])
        if client is None or "code" not in client.response_types:
            raise TokenError(
                "invalid_client", "Unknown OAuth client, or not a code grant client."
            )
        if not valid_verifier(form["code_verifier"]):
            raise TokenError(
                "invalid_request", "code_verifier must be 43 to 128 unreserved characters."
            )
        code = self.state.codes.redeem(form["code"])
        if code is None:
            raise TokenError("invalid_grant", "The authorization code is invalid, used or expired.")
        if code.client_id != form["client_id"]:
            raise TokenError(
                "invalid_grant", "The authorization code was issued to another client."
            )
        if code.redirect_uri != form["redirect_uri"]:
            raise TokenError(
                "invalid_grant", "redirect_uri does not match the one of the authorization request."
            )
        if s256(form["code_verifier"]) != code.challenge:
            raise TokenError(
                "invalid_grant", "The code_verifier does not match the code_challenge."
            )
        token = self.state.issue_token(code.user_id, code.client_id, "CODE")
        body = {
            "access_token": token.value,
            "token_type": "bearer",
            "expires_in": int(token.expires_at - token.issued_at),
        }
        return JSONResponse(body, headers=NO_STORE)
