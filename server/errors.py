"""The one error tree of the panel, and its one mapping to JSON responses.

``PanelError`` is the root of every error the panel raises on purpose:

- ``AssistError``: what a client of the HTTP API can see, each with an HTTP status
  and a stable ``code``; the body is always ``{"error": code, "message": ...}``.
- ``CommandError``: what ends an admin or CLI command, each with the exit code the
  command ends with and a message for the operator (``AdminError``: the Genesys
  platform API as the admin client; ``SyncError``; ``SnapshotError``; ``StoreUnreadable``;
  ``ManifestError``; ``DevSessionError``).
- Failures the panel translates before anyone sees them: ``UpstreamError`` (the
  model service; the stream falls back), ``EmbeddingError`` (the embedding
  service), ``ArticleError`` (one file of a ``kb import``, reported in its summary),
  ``SharedStoreDown`` (Redis, for the limits shared across replicas: each falls back
  to this process's own).

Third-party exceptions (httpx, sqlite3, json) are translated into these where they
are caught, never leaked. Any other exception reaching the app's edge is a bug:
``answer_unexpected`` answers it 500 ``internal_error`` in the same JSON shape and logs
its traceback without its message.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ExceptionHandler, Receive, Scope, Send

log = logging.getLogger("assist_panel.errors")


class PanelError(Exception):
    """The root of every error the panel raises on purpose."""


class AssistError(PanelError):
    """Base of every error answered to a client."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadRequest(AssistError):
    status_code = 400
    code = "bad_request"


class InvalidJSON(BadRequest):
    code = "invalid_json"


class ValidationFailed(BadRequest):
    code = "invalid_request"


class UnknownHostOrigin(BadRequest):
    code = "unknown_host_origin"


class UnknownRegion(BadRequest):
    code = "unknown_region"


class InvalidState(BadRequest):
    """A sign-in ``state`` that is forged, expired or already used."""

    code = "invalid_state"


class WrongGrant(BadRequest):
    """A sign-in answer of the grant this server does not use (a token under PKCE)."""

    code = "wrong_grant"


class Unauthorized(AssistError):
    """Base of the 401s (never raised itself): the header they share."""

    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        # RFC 6750: a 401 for a bearer-protected resource names the scheme.
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class InvalidSession(Unauthorized):
    code = "invalid_session"


class SessionExpired(Unauthorized):
    code = "session_expired"


class GenesysTokenRejected(Unauthorized):
    code = "genesys_token_rejected"


class MetricsTokenRequired(Unauthorized):
    """``GET /metrics`` without ``ASSIST_METRICS_TOKEN`` as its bearer token."""

    code = "invalid_metrics_token"


class Forbidden(AssistError):
    """Base of the 403s (never raised itself)."""

    status_code = 403
    code = "forbidden"


class OrgNotAllowed(Forbidden):
    code = "org_not_allowed"


class WrongOAuthClient(Forbidden):
    code = "wrong_oauth_client"


class NotAParticipant(Forbidden):
    code = "not_a_participant"


class TokenOfAnotherUser(Forbidden):
    """A renewal's Genesys token is not the session's user's (or org's)."""

    code = "token_mismatch"


class GenesysPermissionMissing(Forbidden):
    """Genesys refused a call for a permission the user's roles lack (its
    ``missing.permissions``): an admin's fix, not the agent's."""

    code = "genesys_permission_missing"


class WrongConversation(Forbidden):
    code = "wrong_conversation"


class RequestTimeout(AssistError):
    """The client took too long to send its request; the connection is closed after.
    Base of the 408s (never raised itself)."""

    status_code = 408
    code = "request_timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Connection": "close"})


class HeaderTimeout(RequestTimeout):
    code = "header_timeout"


class BodyTimeout(RequestTimeout):
    code = "body_timeout"


class PayloadTooLarge(AssistError):
    status_code = 413
    code = "payload_too_large"


class TranscriptTooLarge(PayloadTooLarge):
    code = "transcript_too_large"


class HeadersTooLarge(AssistError):
    """The request line and headers over ``MAX_HEADER_BYTES`` (server/web/connections.py)."""

    status_code = 431
    code = "headers_too_large"


class RateLimited(AssistError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class Unavailable(AssistError):
    """Base of the 503s (never raised itself): the ``Retry-After`` they share."""

    status_code = 503
    code = "unavailable"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class GenesysUnavailable(Unavailable):
    code = "genesys_unavailable"


class OverCapacity(Unavailable):
    """The process holds ``ASSIST_MAX_STREAMS`` open streams already."""

    code = "over_capacity"


class ShuttingDown(Unavailable):
    """The process is draining after SIGTERM; another replica (or a retry) will answer."""

    code = "shutting_down"


class InvalidApiKey(Unauthorized):
    """A machine client's API key that is not one of ``ASSIST_API_KEYS``."""

    code = "invalid_api_key"


# Commands: admin and CLI ------------------------------------------------------


class CommandError(PanelError):
    """A failure that ends an admin or CLI command: one line for the operator, and
    the command's exit code."""

    exit_code: int = 1


class AdminError(CommandError):
    """A failure of an admin command, with a message for the admin."""


class CredentialsRejected(AdminError):
    """The admin client's credentials or token were refused (401)."""


class PermissionMissing(AdminError):
    """The admin client's role lacks a permission (or the token a scope) a call needs (403)."""


class PlatformUnreachable(AdminError):
    """Genesys Cloud could not be reached."""


class PlatformBusy(AdminError):
    """Still rate limited (or unavailable) after the allowed retries. ``status`` is the
    answer that stopped the call: 429 (the platform refused it: not carried out) or 503
    (a gateway's or the service's: it may have been carried out, the more so for a
    write); 503 when any try was answered 503, even if the last was a 429."""

    def __init__(self, message: str, status: int = 429) -> None:
        super().__init__(message)
        self.status = status


class PlatformCallFailed(AdminError):
    """Any other error answer; ``status`` and ``code`` are the platform's."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class SyncError(AdminError):
    """A sync that cannot start or could not finish; the message says what to do."""


class SyncBusy(SyncError):
    """Another sync holds the knowledge-base file's lock."""


class SyncInterrupted(SyncError):
    """A platform call failed midway; what was synced is kept and nothing was removed."""


class SnapshotError(CommandError):
    """A knowledge-base snapshot that cannot be published (``kb publish``) or served
    (the server keeps the one it has)."""


class StoreUnreadable(CommandError):
    """A knowledge-base file SQLite cannot read (not a database, or damaged)."""


class ManifestError(CommandError, ValueError):
    """A manifest that cannot be used; the message says where and why."""


class DevSessionError(CommandError):
    """Why no dev-mode session could be made, for the command line."""


# Translated before anyone sees them -------------------------------------------


class SharedStoreDown(PanelError):
    """Redis (``ASSIST_REDIS_URL``) did not answer: the caller uses its per-process limit."""


class UpstreamError(PanelError):
    """The model service failed; ``status`` is its HTTP status, None for network errors;
    ``code`` the error code its answer gave (OpenAI's ``error.code``, such as
    ``insufficient_quota`` or ``model_not_found``), when it gave one."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.code = code


class EmbeddingError(PanelError):
    """The embedding service failed or answered something unusable.

    The message may quote the service's own error message (which can echo the texts
    it was sent), for the ``kb`` commands' operator; ``summary`` says only what failed
    and where (the status or the kind of failure, the URL without credentials), for the
    server's log."""

    def __init__(self, message: str, *, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = message if summary is None else summary


class RetrievalError(PanelError):
    """The knowledge base could not be read (a full disk, no file descriptors left):
    the environment's failure, not a bug; the stream goes on without sources."""


class ArticleError(PanelError, ValueError):
    """A file, or an article in it, that cannot be imported; says which and why."""


class InternalError(AssistError):
    """Not raised: what an exception the panel did not mean to raise (a bug) is
    answered as, by :func:`answer_unexpected`."""

    status_code = 500
    code = "internal_error"


def error_response(error: AssistError) -> JSONResponse:
    """The JSON response for ``error``."""
    return JSONResponse(
        {"error": error.code, "message": error.message},
        status_code=error.status_code,
        headers=error.headers,
    )


async def _assist_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AssistError)
    return error_response(exc)


async def _http_exception(request: Request, exc: Exception) -> Response:
    # Starlette's own 404/405 get the same body shape as ours.
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return JSONResponse(
        {"error": codes.get(exc.status_code, "http_error"), "message": str(exc.detail)},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def exception_handlers() -> dict[int | type[Exception], ExceptionHandler]:
    """Handlers for ``Starlette(exception_handlers=...)``."""
    return {AssistError: _assist_error, HTTPException: _http_exception}


async def answer_unexpected(exc: Exception, started: bool, scope: Scope, receive: Receive,
                            send: Send) -> None:
    """What an exception that is not an ``AssistError`` (a bug) gets at the app's edge
    (``server.web.headers.ResponseHeaders``): 500 ``internal_error`` in the JSON shape
    of every other error, not Starlette's text/plain "Internal Server Error".

    It is logged as its type and traceback, never its message nor anything of the
    request: a message may quote what the client sent. A response already ``started``
    (a stream) cannot be answered again: the exception is logged and the response left
    unfinished, which closes its connection.
    """
    log.error("unexpected %s%s:\n%s", type(exc).__name__,
              " after the response started" if started else ", answered 500",
              without_messages(exc))
    if not started:
        error = InternalError("The panel failed unexpectedly; try again.")
        await error_response(error)(scope, receive, send)


def without_messages(exc: BaseException) -> str:
    """The traceback of ``exc`` and of the exceptions it came from, each named by its
    type alone, oldest first as Python prints them."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and not any(current is seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__)
    parts = ["Traceback (most recent call last):\n"
             + "".join(traceback.format_tb(error.__traceback__))
             + f"{type(error).__module__}.{type(error).__qualname__} (message not logged)"
             for error in reversed(chain)]
    return "\n\nwhich was followed by:\n\n".join(parts)
