"""Settings and sessions for tests: what every panel server needs to start."""

from __future__ import annotations

import time
from typing import Any

import httpx

from server.auth.sessions import Session, SessionCodec
from server.devmode.mocks.llm import DEFAULT_MODEL
from server.settings import Settings

SECRET = "test-secret-0123456789abcdef"
ORG = "9b2e7d4c-1a3f-4c6b-8e5d-2f7a9c0b1d35"
USER = "3f6c2a1e-8b4d-4f7a-9c2e-5d1b7a0e4c21"
CLIENT_ID = "assist-panel-test"


def make_settings(**overrides: Any) -> Settings:
    """Settings with a session secret, an org allowlist and an OAuth client, plus overrides.

    The audit log is off unless a test turns it on (it would go to stdout). The
    ``openai`` generator asks for the mock model's model, the only one it serves.
    """
    values: dict[str, Any] = {"session_secret": SECRET, "allowed_orgs": (ORG,),
                              "oauth_client_id": CLIENT_ID, "audit_log": "",
                              "openai_model": DEFAULT_MODEL,
                              # Every test signs in from 127.0.0.1: a limit test sets its own.
                              "signin_rate_limit_per_minute": 0}
    values.update(overrides)
    return Settings(**values)


def session_for(conversation_id: str, *, ttl_s: float = 600, secret: str = SECRET,
                user_id: str = USER, org_id: str = ORG) -> str:
    """A signed session as ``POST /api/session`` would answer it (for tests of other routes)."""
    codec = SessionCodec(secret)
    return codec.issue(Session(user_id, org_id, conversation_id, time.time() + ttl_s))


def bearer(conversation_id: str, **kwargs: Any) -> dict[str, str]:
    """``Authorization`` header with a session for ``conversation_id``."""
    return {"Authorization": f"Bearer {session_for(conversation_id, **kwargs)}"}


def ask(panel: str, conversation_id: str, session: str,
        query: str = "How do I get a refund?") -> httpx.Response:
    """A manual stream request with a session, read to the end."""
    with httpx.stream("POST", f"{panel}/api/assist/stream", timeout=30,
                      headers={"Authorization": f"Bearer {session}"},
                      json={"conversationId": conversation_id, "trigger": "manual",
                            "query": query}) as response:
        response.read()
        return response
