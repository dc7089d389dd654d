"""The panel server's calls to Genesys Cloud: who a token is, who is on a conversation,
and the PKCE code exchange.

httpx exceptions and platform error statuses are translated here, at the
boundary, into the errors of :mod:`server.errors`. Tokens are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

import httpx

from server.errors import (
    AssistError,
    GenesysPermissionMissing,
    GenesysTokenRejected,
    GenesysUnavailable,
    InvalidState,
    NotAParticipant,
)
from server.retry_after import retry_after_seconds

log = logging.getLogger("assist_panel.genesys")


# Participants that are the agents of a conversation: "user" is the agent's purpose on
# a direct call, one that never went through a queue.
_AGENT_PURPOSES = frozenset({"agent", "user"})


@dataclass(frozen=True)
class Identity:
    """Who an access token belongs to, as Genesys reports it."""

    user_id: str
    user_name: str
    org_id: str
    org_name: str
    client_id: str


@dataclass(frozen=True)
class TokenGrant:
    """An access token from the token endpoint."""

    access_token: str
    expires_in: int


class GenesysClient:
    """Async calls to one Genesys environment's hosts, on the app's shared httpx client."""

    def __init__(self, http: httpx.AsyncClient, timeout_s: float) -> None:
        self.http = http
        self.timeout_s = timeout_s
        # httpx's timeout bounds each phase (connecting, every read); asyncio's around it,
        # the whole call: a host trickling its answer must not hold a sign-in past the
        # proxy in front (docs/deploy.md), which would answer it with a 504 of its own.
        self.timeout = httpx.Timeout(timeout_s)

    async def _get(self, url: str, token: str, params: dict[str, str] | None = None) -> Any:
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self.http.get(
                    url, params=params, timeout=self.timeout,
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        except (httpx.HTTPError, TimeoutError) as exc:
            log.warning("Genesys call failed: %s %s", type(exc).__name__, httpx.URL(url).path)
            raise GenesysUnavailable("Genesys Cloud could not be reached.") from None
        if response.status_code == 401:
            raise GenesysTokenRejected("Genesys did not accept the access token.")
        if response.is_success:
            try:
                return response.json()
            except (ValueError, RecursionError):  # RecursionError: nested deeper than json goes
                pass
        raise _status_error(response)

    async def identify(self, api_base: str, token: str) -> Identity:
        """``users/me`` and ``tokens/me``, asked at once. ``tokens/me`` names the org and
        the OAuth client; ``users/me`` needs no ``expand`` (which may want scopes beyond
        the panel's)."""
        results = await asyncio.gather(
            self._get(f"{api_base}/api/v2/users/me", token),
            self._get(f"{api_base}/api/v2/tokens/me", token),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, _NotVisible):
                raise GenesysTokenRejected("The access token lacks the scopes the panel needs.")
            if isinstance(result, BaseException):
                raise result
        try:
            me, info = _object(results[0]), _object(results[1])
            org = _object(info.get("organization"))
            identity = Identity(
                user_id=_id(me.get("id")), user_name=_name(me.get("name")),
                org_id=_id(org.get("id")), org_name=_name(org.get("name")),
                client_id=_id(_object(info.get("OAuthClient") or {}).get("id", ""),
                              required=False),
            )
            user_org = _object(me.get("organization") or {}).get("id")
            if user_org is not None:
                user_org = _id(user_org)
        except _Unexpected:
            raise GenesysUnavailable("Genesys answered in an unexpected shape.") from None
        if user_org is not None and user_org != identity.org_id:
            raise GenesysTokenRejected("The token's user and organization disagree.")
        return identity

    async def agent_user_ids(self, api_base: str, token: str, conversation_id: str) -> set[str]:
        """The user ids of a conversation's agents: its agent participants (``agent`` on a
        queue conversation, ``user`` on a direct call) still on it, those without an
        ``endTime``; when none is (the conversation ended: wrap-up), the last to leave.
        An agent who transferred the conversation away is no longer one of them.

        A conversation the token cannot see (403/404) is reported as
        :class:`NotAParticipant`: from outside, both mean "not yours"; but a 403 for a
        permission the user's roles lack is :class:`GenesysPermissionMissing`, which
        names it (an admin's fix: the agent is on the conversation all the same), and
        one for a scope the token's OAuth client lacks is :class:`GenesysTokenRejected`
        (the token cannot do what the panel needs, whatever the conversation).
        """
        try:
            body = await self._get(f"{api_base}/api/v2/conversations/{conversation_id}", token)
        except _NotVisible:
            raise NotAParticipant("You are not an agent on this conversation.") from None
        participants = body.get("participants") if isinstance(body, dict) else None
        if not isinstance(participants, list):
            raise GenesysUnavailable("Genesys answered in an unexpected shape.")
        return current_agents(participants)

    async def exchange_code(
        self, login_base: str, *, code: str, verifier: str, client_id: str, redirect_uri: str,
    ) -> TokenGrant:
        """``POST /oauth/token`` for the authorization-code grant with PKCE (no secret)."""
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "client_id": client_id, "redirect_uri": redirect_uri}
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self.http.post(f"{login_base}/oauth/token", data=form,
                                                timeout=self.timeout,
                                                headers={"Accept": "application/json"})
        except (httpx.HTTPError, TimeoutError) as exc:
            log.warning("Genesys token exchange failed: %s", type(exc).__name__)
            raise GenesysUnavailable("Genesys Cloud could not be reached.") from None
        if response.status_code in (400, 401, 403):
            # invalid_grant and friends: the code is used, expired or not ours. A 403 is
            # a refusal too (no OAuth error is one; a gateway's may be): not a 404.
            if response.status_code == 403:
                log.warning("Genesys refused the code exchange with 403")
            raise InvalidState("Genesys refused the sign-in code; sign in again.")
        if not response.is_success:
            # Busy (429, with its Retry-After), or anything else Genesys should not
            # answer here (404: no token endpoint at the login host; 5xx).
            raise _unavailable(response)
        try:
            body = _object(response.json())
            token = body.get("access_token")
            if not isinstance(token, str) or not token:
                raise _Unexpected
            return TokenGrant(token, _expires_in(body.get("expires_in")))
        except (ValueError, RecursionError, _Unexpected):
            raise GenesysUnavailable("Genesys answered in an unexpected shape.") from None


def current_agents(participants: list[Any]) -> set[str]:
    """``agent_user_ids``'s choice among a conversation's ``participants``."""
    agents = [p for p in participants
              if isinstance(p, dict) and p.get("purpose") in _AGENT_PURPOSES and p.get("userId")]
    on_it = {str(p["userId"]) for p in agents if not p.get("endTime")}
    if on_it:
        return on_it
    # ISO 8601 times of one format, as Genesys writes them: they sort as strings.
    ends = [str(p["endTime"]) for p in agents]
    last = max(ends, default="")
    return {str(p["userId"]) for p in agents if str(p["endTime"]) == last}


class _Unexpected(Exception):
    """A Genesys answer of a shape the panel does not read (becomes GenesysUnavailable)."""


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Unexpected
    return value


def _id(value: Any, *, required: bool = True) -> str:
    """An id as Genesys writes them (a string; a number is taken as its digits); an
    empty one only where not ``required``."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or (required and not value):
        raise _Unexpected
    return value


def _name(value: Any) -> str:
    """A display name: a string, or nothing."""
    return value if isinstance(value, str) else ""


#: The longest token life read from ``expires_in`` (about 68 years): anything more is
#: not a figure a session can be held to.
_MAX_EXPIRES_IN = 2**31


def _expires_in(value: Any) -> int:
    """``expires_in`` in whole seconds, 0 when not given (the session is then held to
    the implicit grant's short ones); ``_Unexpected`` for anything that is not a count
    of seconds (a negative, NaN or infinite number, a string of other than digits)."""
    if value is None:
        return 0
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Unexpected
    if not 0 <= value <= _MAX_EXPIRES_IN:  # NaN fails this too; infinity is over
        raise _Unexpected
    return int(value)


# What Genesys names in ``messageParams.permissions``: permission strings only.
_PERMISSIONS = re.compile(r"[A-Za-z0-9:_*, -]{1,200}")


#: The codes of a 403 for the token's OAuth client lacking a scope the call needs.
_SCOPE_CODES = frozenset({"missing.any.scopes", "missing.scopes"})


def _error_body(response: httpx.Response) -> dict[str, Any]:
    """The platform's error body (``{}`` when it sent none readable)."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return {}
    return body if isinstance(body, dict) else {}


def _missing_permissions(body: dict[str, Any]) -> str | None:
    """For a 403 ``missing.permissions`` or ``missing.any.permissions`` body, the
    permissions it names ('' if none); None for any other refusal."""
    if body.get("code") not in ("missing.permissions", "missing.any.permissions"):
        return None
    params = body.get("messageParams")
    named = params.get("permissions") if isinstance(params, dict) else None
    if isinstance(named, str) and _PERMISSIONS.fullmatch(named.strip()):
        return named.strip()
    return ""


class _NotVisible(Exception):
    """A 403 or 404 for what the token may not see: each caller says what that means
    (never answered as it is)."""


def _status_error(response: httpx.Response) -> AssistError | _NotVisible:
    body = _error_body(response) if response.status_code == 403 else {}
    if body.get("code") in _SCOPE_CODES:
        # The OAuth client's doing, not the agent's: the same for every conversation.
        log.warning("Genesys refused %s: the token lacks a scope it needs",
                    response.url.path.rsplit("/", 1)[0])
        return GenesysTokenRejected("The access token lacks the scopes the panel needs.")
    if (missing := _missing_permissions(body)) is not None:
        log.warning("Genesys refused %s: the user's roles lack %s",
                    response.url.path.rsplit("/", 1)[0], missing or "a permission")
        named = f" ({missing})" if missing else ""
        return GenesysPermissionMissing(
            f"Your Genesys Cloud role lacks a permission the panel needs{named}: "
            "ask an admin to add it to the agents' role.")
    if response.status_code in (403, 404):
        return _NotVisible("Not visible to this token.")
    return _unavailable(response)


def _unavailable(response: httpx.Response) -> GenesysUnavailable:
    """A 503 for an answer Genesys should not have given: busy (429) with when to ask
    again, as Genesys told us (read finite and at most a day: server/retry_after.py),
    else its status."""
    if response.status_code == 429:
        wait = retry_after_seconds(response)
        return GenesysUnavailable("Genesys Cloud is busy; try again shortly.",
                                  retry_after=max(1, math.ceil(wait if wait else 1)))
    log.warning("Genesys answered %s for %s", response.status_code, response.url.path)
    return GenesysUnavailable(f"Genesys Cloud answered {response.status_code}.")
