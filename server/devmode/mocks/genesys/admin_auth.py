"""Who may call the mock's admin endpoints (integrations, OAuth clients, Knowledge).

Client-credentials tokens carry the permissions of their client's role; a call
needing one they lack is refused the platform's way, with 403
``missing.permissions`` naming what is missing. User tokens may read Knowledge
when they were granted its scope.
"""

from __future__ import annotations

from starlette.requests import Request

from server.devmode.mocks.genesys.api import (
    PlatformError,
    bearer_value,
    missing_any_scopes,
    missing_permissions,
)
from server.devmode.mocks.genesys.state import AccessToken, AdminToken, MockGenesysState


def require_admin(
    state: MockGenesysState, request: Request, *permissions: str
) -> AdminToken:
    """The request's client-credentials token if it holds every one of ``permissions``.

    401 ``bad.credentials`` without a valid token (a user token is not enough for
    admin calls: 403 ``missing.permissions``).
    """
    value = bearer_value(request)
    token = state.authenticate_admin(value)
    if token is None:
        if state.authenticate(value) is not None:
            raise missing_permissions(list(permissions))
        raise PlatformError(401, "bad.credentials", "Invalid login credentials.")
    missing = [p for p in permissions if p not in token.permissions]
    if missing:
        raise missing_permissions(missing)
    return token


def require_reader(
    state: MockGenesysState, request: Request, permission: str, scope: str
) -> AdminToken | AccessToken:
    """A client-credentials token with ``permission``, or a user token granted ``scope``."""
    value = bearer_value(request)
    user_token = state.authenticate(value)
    if user_token is None:
        return require_admin(state, request, permission)
    if scope not in user_token.scopes:
        raise missing_any_scopes((scope,))
    return user_token
