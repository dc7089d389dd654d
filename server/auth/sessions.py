"""Panel sessions: signed tokens bound to a user, an org, a conversation and an expiry.

There is no session store. A session is an itsdangerous-signed payload, so any
worker or replica holding ``ASSIST_SESSION_SECRET`` can check it. The page keeps
it in memory and sends it as ``Authorization: Bearer ...`` with ``fetch``, which
works where third-party cookies are blocked.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.requests import Request
from starlette.responses import Response

from server.errors import InvalidSession, SessionExpired, WrongConversation

SALT = "assist-panel.session.v1"
# Bearer values whose signature was checked, kept with their session: an agent's page
# sends the same one with every request, and checking it (itsdangerous derives its key,
# an HMAC and base64 and JSON decoding) took 0.18 ms of each suggestion's path on a core
# that had idled between requests, and finding a kept value 15 us (docs/performance.md).
# Past this many, the cache starts again: about 0.65 KB a value kept (the value and its
# session), 2.7 MB at most a worker.
_VERIFIED_KEPT = 4096


@dataclass(frozen=True, slots=True)  # slots: thousands are kept (``_VERIFIED_KEPT``)
class Session:
    """Who may ask for suggestions, about which conversation, until when (epoch s)."""

    user_id: str
    org_id: str
    conversation_id: str
    expires_at: float
    # When the Genesys token it was issued for expires, where Genesys said so (the PKCE
    # code exchange's expires_in); None where only the browser knows (implicit grant).
    token_expires_at: float | None = None

    def require_conversation(self, conversation_id: str) -> None:
        """Refuse a request about another conversation than the session's."""
        if conversation_id != self.conversation_id:
            raise WrongConversation("This session is for another conversation.")


class SessionCodec:
    """Signs and checks sessions under one secret."""

    def __init__(self, secret: str, clock: Callable[[], float] = time.time) -> None:
        """``clock`` gives epoch seconds (tests pass a fake one)."""
        self._serializer = URLSafeSerializer(secret, salt=SALT)
        self.clock = clock
        # Only values that verified: a forged one is checked (and refused) every time.
        self._verified: dict[str, Session] = {}

    def issue(self, session: Session) -> str:
        """The signed bearer value of ``session``."""
        payload: dict[str, object] = {
            "u": session.user_id, "o": session.org_id, "c": session.conversation_id,
            "e": round(session.expires_at, 3),
        }
        if session.token_expires_at is not None:
            payload["t"] = round(session.token_expires_at, 3)
        return self._serializer.dumps(payload)

    def verify(self, value: str) -> Session:
        """The session ``value`` carries; InvalidSession if forged, SessionExpired if old."""
        session = self._verified.get(value)
        if session is None:
            session = self._checked(value)
            if len(self._verified) >= _VERIFIED_KEPT:
                self._verified.clear()  # a bound, not a policy: the next requests refill it
            self._verified[value] = session
        if session.expires_at <= self.clock():
            raise SessionExpired("The session has expired; sign in again.")
        return session

    def _checked(self, value: str) -> Session:
        """``value``'s session, its signature checked; InvalidSession if forged."""
        try:
            payload: Any = self._serializer.loads(value)
            token_expires_at = payload.get("t")
            session = Session(str(payload["u"]), str(payload["o"]), str(payload["c"]),
                              float(payload["e"]),
                              None if token_expires_at is None else float(token_expires_at))
        except (BadSignature, KeyError, TypeError, ValueError, AttributeError):
            raise InvalidSession("The session is not valid; sign in again.") from None
        return session


def bearer(request: Request) -> str:
    """The bearer value of the Authorization header, or ''."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def require_session(request: Request) -> Session:
    """The request's valid session; 401 ``invalid_session``/``session_expired`` otherwise."""
    value = bearer(request)
    if not value:
        raise InvalidSession("A panel session is required (Authorization: Bearer <session>).")
    codec: SessionCodec = request.state.sessions
    return codec.verify(value)


Endpoint = Callable[[Request], Awaitable[Response]]


def authenticated(endpoint: Callable[[Request, Session], Awaitable[Response]]) -> Endpoint:
    """Wrap an endpoint so it runs only with a valid session, passed as its second argument."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        return await endpoint(request, require_session(request))

    return wrapper
