"""``assist-panel dev-session``: a panel session for scripting against a running dev mode.

It signs the mock's scripted agent in exactly as the page does: ``POST /auth/state``
on the panel, the mock's real ``/oauth/authorize`` (implicit or PKCE, whichever
the panel uses), then the handoff ``POST /api/session``. Dev mode only: it
refuses a panel whose login host is not a mock on this machine.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import parse_qsl, urlsplit

import httpx

from server.errors import DevSessionError

#: Any well-formed id will do to learn where the panel signs in.
_PROBE_CONVERSATION = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class DevSession:
    session: str
    conversation_id: str


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _json(response: httpx.Response, what: str) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not response.is_success or not isinstance(body, dict):
        detail = body.get("message") if isinstance(body, dict) else response.text[:200]
        raise DevSessionError(f"{what} failed ({response.status_code}): {detail}")
    return body


def _start(client: httpx.Client, panel: str, conversation_id: str) -> dict[str, object]:
    return _json(client.post(f"{panel}/auth/state", json={"conversationId": conversation_id}),
                 "Starting the sign-in")


def _answer(client: httpx.Client, authorize_url: str) -> dict[str, str]:
    response = client.get(authorize_url)
    if response.status_code != 302:
        raise DevSessionError(
            "The mock did not sign the agent in at once (is its sign-in mode 'prompt' or "
            "'deny'? Set it to 'auto' in the mock desktop).")
    location = urlsplit(response.headers["location"])
    answer = dict(parse_qsl(location.fragment or location.query))
    if "error" in answer:
        raise DevSessionError(f"The mock refused the sign-in: {answer.get('error_description')}")
    return answer


def create_dev_session(panel: str, conversation_id: str | None = None,
                       timeout_s: float = 15.0) -> DevSession:
    """Sign the scripted agent in to the dev-mode panel at ``panel``.

    Without ``conversation_id`` a new scripted conversation is started on the mock.
    """
    if conversation_id is not None:
        try:
            uuid.UUID(conversation_id)
        except ValueError:
            raise DevSessionError(f"{conversation_id!r} is not a conversation id") from None
    panel = panel.rstrip("/")
    if panel.endswith("/panel"):
        panel = panel[: -len("/panel")]
    with httpx.Client(timeout=timeout_s) as client:
        try:
            probe = _start(client, panel, conversation_id or _PROBE_CONVERSATION)
            login = urlsplit(str(probe["authorizeUrl"]))
            mock = f"{login.scheme}://{login.netloc}"
            if not _is_loopback(mock):
                raise DevSessionError(
                    f"{panel} signs in at {mock}, not at a mock on this machine: "
                    "dev-session works only against 'assist-panel dev'.")
            if conversation_id is None:
                created = _json(client.post(f"{mock}/mock/conversations", json={}),
                                "Starting a scripted conversation")
                conversation_id = str(created["conversationId"])
                started = _start(client, panel, conversation_id)
            else:
                started = probe
            answer = _answer(client, str(started["authorizeUrl"]))
            body: dict[str, object] = {"state": answer["state"]}
            if "code" in answer:
                body["code"] = answer["code"]
            else:
                body.update(accessToken=answer["access_token"],
                            expiresIn=int(answer.get("expires_in") or 3600))
            result = _json(client.post(f"{panel}/api/session", json=body), "The handoff")
        except httpx.HTTPError as exc:
            raise DevSessionError(f"Could not reach the panel or the mock: {exc}") from None
    return DevSession(str(result["session"]), str(result["conversationId"]))
