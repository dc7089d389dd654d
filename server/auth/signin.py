"""Signing an agent in: ``POST /auth/state`` starts a sign-in, ``POST /api/session``
hands its answer over and gets a panel session back.

The handoff checks the Genesys token with Genesys itself (``users/me``,
``tokens/me``), the org against ``ASSIST_ALLOWED_ORGS``, the OAuth client
against ours, and that the user is an agent participant of the conversation
named in the signed state. Only then is a session signed, never outliving the
token. ``POST /api/session/renew`` does the same checks for a session's holder,
without a new sign-in. ``/auth/state`` sits outside ``/api`` because it is what a
page without a session calls first.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.auth.genesys import GenesysClient, Identity
from server.auth.oauth_state import StateCodec, pkce_challenge
from server.auth.platform import GenesysEnv, resolve_env
from server.auth.sessions import Session, SessionCodec, require_session
from server.errors import (
    GenesysTokenRejected,
    NotAParticipant,
    OrgNotAllowed,
    TokenOfAnotherUser,
    WrongGrant,
    WrongOAuthClient,
)
from server.schemas import RenewRequest, SessionRequest, StateRequest
from server.settings import Settings
from server.shared.limits import SharedRateLimiter
from server.web.bodies import read_model
from server.web.panel import CLIENT_APP_SDK

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
    await _limit(request)
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


async def _limit(request: Request) -> None:
    """429 when this client address has started too many sign-ins this minute.

    Behind a proxy the address is the one it forwards (uvicorn's proxy headers, trusted
    from ``FORWARDED_ALLOW_IPS``): agents behind one NAT share a bucket, so the default
    is generous.
    """
    limiter: SharedRateLimiter = request.state.signin_limiter
    await limiter.check(f"signin:{request.client.host if request.client else ''}")


async def create_session(request: Request) -> JSONResponse:
    """``POST /api/session``: verify a sign-in answer with Genesys; answer a signed session.

    The answer must be of the grant the sign-in started with (400 ``wrong_grant``): a
    code under PKCE, a token under the implicit grant.
    """
    await _limit(request)
    settings: Settings = request.state.settings
    states: StateCodec = request.state.states
    sessions: SessionCodec = request.state.sessions
    genesys: GenesysClient = request.state.genesys
    body = await read_model(request, SessionRequest, MAX_BODY_BYTES)
    state = states.consume(body.state)
    # This process has not seen it used; nor has any other replica (with Redis).
    await request.state.shared_states.claim(state.nonce, state.expires_at)
    env = resolve_env(settings, state.target_env, state.host_origin)
    now = sessions.clock()
    if body.code is not None:
        if state.grant != "pkce":
            raise WrongGrant("This sign-in uses the implicit grant: send the access token.")
        grant = await genesys.exchange_code(
            env.login_base, code=body.code, verifier=states.pkce_verifier(state.nonce),
            client_id=settings.oauth_client_id, redirect_uri=redirect_uri(settings, request))
        token = grant.access_token
        # Genesys's own figure: the session never outlives the token. (A token answer
        # without one is held to the implicit grant's short, re-checked sessions.)
        # To the millisecond, as the session carries it: a renewal reports the same figure.
        token_expires_at: float | None = (round(now + grant.expires_in, 3)
                                          if grant.expires_in else None)
        expires_at = (min(now + settings.session_ttl_s, token_expires_at)
                      if token_expires_at is not None else now + _implicit_ttl(settings))
    else:
        if state.grant == "pkce":
            raise WrongGrant("This sign-in uses PKCE: send the authorization code.")
        assert body.access_token is not None and body.expires_in is not None
        token, token_expires_at = body.access_token, None
        expires_at = now + min(_implicit_ttl(settings), body.expires_in)

    identity = await _verify(genesys, settings, env, token, state.conversation_id)
    session = Session(identity.user_id, identity.org_id, state.conversation_id, expires_at,
                      token_expires_at)
    log.info("session issued: user %s org %s conversation %s",
             identity.user_id, identity.org_id, state.conversation_id)
    context = _context(state.conversation_id, state.host_origin, state.target_env,
                       state.lang_tag, env)
    return _answer(sessions.issue(session), session, token, identity, env, context)


async def renew_session(request: Request) -> JSONResponse:
    """``POST /api/session/renew``: a new session for the current one's user and
    conversation, with the Genesys token the page holds, checked with Genesys again.

    Needs ``Authorization: Bearer <session>`` (401 ``invalid_session`` /
    ``session_expired``). The token must be the session's user's (403
    ``token_mismatch``) and still valid (401 ``genesys_token_rejected``: a revoked
    token stops getting sessions here), and the user still an agent on the
    conversation. The new session ends where the old one's token does when Genesys
    said when (PKCE); with the implicit grant it is at most
    ``ASSIST_IMPLICIT_SESSION_TTL_S`` long, renewed (and re-checked) again after.
    """
    await _limit(request)
    settings: Settings = request.state.settings
    sessions: SessionCodec = request.state.sessions
    genesys: GenesysClient = request.state.genesys
    current = require_session(request)
    body = await read_model(request, RenewRequest, MAX_BODY_BYTES)
    env = resolve_env(settings, body.target_env, body.host_origin)
    identity = await _verify(genesys, settings, env, body.access_token, current.conversation_id)
    if (identity.user_id, identity.org_id) != (current.user_id, current.org_id):
        raise TokenOfAnotherUser("The Genesys token is not this session's user's.")
    now = sessions.clock()
    if current.token_expires_at is not None:
        expires_at = min(now + settings.session_ttl_s, current.token_expires_at)
        if expires_at <= now:
            raise GenesysTokenRejected("The Genesys token has expired; sign in again.")
    else:
        expires_at = now + _implicit_ttl(settings)
    session = Session(current.user_id, current.org_id, current.conversation_id, expires_at,
                      current.token_expires_at)
    log.info("session renewed: user %s org %s conversation %s",
             session.user_id, session.org_id, session.conversation_id)
    context = _context(session.conversation_id, env.host_origin, body.target_env,
                       body.lang_tag, env)
    return _answer(sessions.issue(session), session, body.access_token, identity, env, context)


def _implicit_ttl(settings: Settings) -> float:
    # The implicit grant's expires_in is the browser's word: Genesys confirms the token
    # is valid now, not how long it lives. So its session is short, and each renewal
    # checks the token with Genesys again.
    return min(settings.session_ttl_s, settings.implicit_session_ttl_s)


async def _verify(genesys: GenesysClient, settings: Settings, env: GenesysEnv, token: str,
                  conversation_id: str) -> Identity:
    """Who ``token`` is, per Genesys: an allowed org, our OAuth client, and an agent on
    the conversation (403 otherwise; 401 for a token Genesys refuses)."""
    identity = await genesys.identify(env.api_base, token)
    if "*" not in settings.allowed_orgs and identity.org_id not in settings.allowed_orgs:
        log.info("sign-in refused: org %s not allowed", identity.org_id)
        raise OrgNotAllowed("Your Genesys Cloud organization may not use this panel.")
    if settings.oauth_client_id and identity.client_id != settings.oauth_client_id:
        raise WrongOAuthClient("The token was issued to another OAuth client.")
    agents = await genesys.agent_user_ids(env.api_base, token, conversation_id)
    if identity.user_id not in agents:
        log.info("sign-in refused: user %s not an agent on conversation %s",
                 identity.user_id, conversation_id)
        raise NotAParticipant("You are not an agent on this conversation.")
    return identity


def _context(conversation_id: str, host_origin: str, target_env: str, lang_tag: str,
             env: GenesysEnv) -> dict[str, str]:
    return {"conversationId": conversation_id, "gcHostOrigin": host_origin,
            "gcTargetEnv": target_env, "langTag": lang_tag,
            "clientAppSdk": CLIENT_APP_SDK if env.framed else ""}


def _answer(value: str, session: Session, token: str, identity: Identity, env: GenesysEnv,
            context: dict[str, str]) -> JSONResponse:
    """The session answer; ``genesys.expiresAt`` is what the server can vouch for: the
    token's expiry where Genesys gave it, else the session's own."""
    token_expires_at = session.token_expires_at or session.expires_at
    return JSONResponse({
        "session": value,
        "expiresAt": int(session.expires_at * 1000),
        "conversationId": session.conversation_id,
        "user": {"id": session.user_id, "name": identity.user_name},
        "organization": {"id": session.org_id, "name": identity.org_name},
        "genesys": {"accessToken": token, "expiresAt": int(token_expires_at * 1000),
                    "apiBase": env.api_base, "loginBase": env.login_base},
        "context": context,
    }, headers={"Cache-Control": "no-store"})


routes = [
    Route("/auth/state", start_sign_in, methods=["POST"]),
    Route("/api/session", create_session, methods=["POST"]),
    Route("/api/session/renew", renew_session, methods=["POST"]),
]
