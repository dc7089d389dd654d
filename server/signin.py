"""Signing an agent in: ``POST /auth/state`` starts a sign-in, ``POST /api/session``
hands its answer over and gets a panel session back.

The handoff checks the Genesys token with Genesys itself (``users/me``,
``tokens/me``), the org against ``ASSIST_ALLOWED_ORGS``, the OAuth client
against ours, and that the user is an agent participant of the conversation
named in the signed state. Only then is a session signed, never outliving the
token. ``/auth/state`` sits outside ``/api`` because it is what a page without
a session calls first.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .bodies import read_model
from .errors import (
    InvalidState,
    NotAParticipant,
    OrgNotAllowed,
    WrongOAuthClient,
)
from .genesys import GenesysClient
from .oauth_state import SignInState, StateCodec, pkce_challenge
from .panel import CLIENT_APP_SDK
from .platform import GenesysEnv, resolve_env
from .ratelimit import RateLimiter
from .schemas import SessionRequest, StateRequest
from .sessions import Session, SessionCodec
from .settings import Settings

log = logging.getLogger("assist_panel.signin")
MAX_BODY_BYTES = 16 * 1024


def redirect_uri(settings: Settings, request: Request) -> str:
    """The one registered redirect URI: the panel page, exactly."""
    public = settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")
    return public + "/panel"


def authorize_url(settings: Settings, env: GenesysEnv, state_value: str, nonce: str,
                  codec: StateCodec, redirect: str) -> str:
    """Where the browser goes to sign in, for the configured grant."""
    params = {"client_id": settings.oauth_client_id, "redirect_uri": redirect,
              "state": state_value}
    if settings.oauth_grant == "pkce":
        params.update(response_type="code", code_challenge_method="S256",
                      code_challenge=pkce_challenge(codec.pkce_verifier(nonce)))
    else:
        params["response_type"] = "token"
    return f"{env.login_base}/oauth/authorize?{urlencode(params)}"


async def start_sign_in(request: Request) -> JSONResponse:
    """``POST /auth/state``: a signed single-use state and the authorize URL to open."""
    _limit(request)
    settings: Settings = request.state.settings
    codec: StateCodec = request.state.states
    body = await read_model(request, StateRequest, MAX_BODY_BYTES)
    env = resolve_env(settings, body.target_env, body.host_origin)
    value, state = codec.issue(conversation_id=body.conversation_id,
                               host_origin=env.host_origin, target_env=body.target_env,
                               lang_tag=body.lang_tag, grant=settings.oauth_grant)
    url = authorize_url(settings, env, value, state.nonce, codec, redirect_uri(settings, request))
    return JSONResponse({"state": value, "authorizeUrl": url,
                         "expiresAt": int(state.expires_at * 1000)},
                        headers={"Cache-Control": "no-store"})


def _limit(request: Request) -> None:
    """429 when this client address has started too many sign-ins this minute.

    Behind a proxy the address is the one it forwards (uvicorn's proxy headers, trusted
    from ``FORWARDED_ALLOW_IPS``): agents behind one NAT share a bucket, so the default
    is generous.
    """
    limiter: RateLimiter = request.state.signin_limiter
    limiter.check(f"signin:{request.client.host if request.client else ''}")


async def create_session(request: Request) -> JSONResponse:
    """``POST /api/session``: verify a sign-in answer with Genesys; answer a signed session."""
    _limit(request)
    settings: Settings = request.state.settings
    states: StateCodec = request.state.states
    sessions: SessionCodec = request.state.sessions
    genesys: GenesysClient = request.state.genesys
    body = await read_model(request, SessionRequest, MAX_BODY_BYTES)
    state = states.consume(body.state)
    env = resolve_env(settings, state.target_env, state.host_origin)
    if body.code is not None:
        if state.grant != "pkce":
            raise InvalidState("This sign-in did not ask for a code.")
        grant = await genesys.exchange_code(
            env.login_base, code=body.code, verifier=states.pkce_verifier(state.nonce),
            client_id=settings.oauth_client_id, redirect_uri=redirect_uri(settings, request))
        token, expires_in = grant.access_token, grant.expires_in
    else:
        # The implicit grant's answer, or a renewal with the token the page holds (with
        # PKCE too): checked with Genesys below either way.
        assert body.access_token is not None and body.expires_in is not None
        token, expires_in = body.access_token, body.expires_in

    identity = await genesys.identify(env.api_base, token)
    if "*" not in settings.allowed_orgs and identity.org_id not in settings.allowed_orgs:
        log.info("sign-in refused: org %s not allowed", identity.org_id)
        raise OrgNotAllowed("Your Genesys Cloud organization may not use this panel.")
    if settings.oauth_client_id and identity.client_id != settings.oauth_client_id:
        raise WrongOAuthClient("The token was issued to another OAuth client.")
    agents = await genesys.agent_user_ids(env.api_base, token, state.conversation_id)
    if identity.user_id not in agents:
        log.info("sign-in refused: user %s not an agent on conversation %s",
                 identity.user_id, state.conversation_id)
        raise NotAParticipant("You are not an agent on this conversation.")

    now = sessions.clock()
    # The implicit grant's expires_in is the client's word: Genesys confirms the token
    # is valid now, not how long it lives (300 s at the least for any OAuth client). So
    # its session is short and each renewal checks the token with Genesys again.
    longest = (settings.session_ttl_s if body.code is not None
               else min(settings.session_ttl_s, settings.implicit_session_ttl_s))
    # (A renewal's session is as short: each one checks the token with Genesys again.)
    expires_at = now + min(longest, expires_in or longest)
    session = Session(identity.user_id, identity.org_id, state.conversation_id, expires_at)
    log.info("session issued: user %s org %s conversation %s",
             identity.user_id, identity.org_id, state.conversation_id)
    return JSONResponse(_session_body(sessions.issue(session), session, token,
                                      now + expires_in if expires_in else expires_at,
                                      identity.user_name, identity.org_name, env, state),
                        headers={"Cache-Control": "no-store"})


def _session_body(value: str, session: Session, token: str, token_expires_at: float,
                  user_name: str, org_name: str, env: GenesysEnv,
                  state: SignInState) -> dict[str, object]:
    return {
        "session": value,
        "expiresAt": int(session.expires_at * 1000),
        "conversationId": session.conversation_id,
        "user": {"id": session.user_id, "name": user_name},
        "organization": {"id": session.org_id, "name": org_name},
        "genesys": {"accessToken": token, "expiresAt": int(token_expires_at * 1000),
                    "apiBase": env.api_base, "loginBase": env.login_base},
        "context": {"conversationId": state.conversation_id, "gcHostOrigin": state.host_origin,
                    "gcTargetEnv": state.target_env, "langTag": state.lang_tag,
                    "clientAppSdk": CLIENT_APP_SDK if env.in_genesys else ""},
    }


routes = [
    Route("/auth/state", start_sign_in, methods=["POST"]),
    Route("/api/session", create_session, methods=["POST"]),
]
