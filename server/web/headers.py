"""Response headers every answer carries, added in one place (pure ASGI: streams pass
through untouched).

- ``X-Content-Type-Options: nosniff`` on every response: a browser must take the
  declared type (JSON, an event stream) for what it is.
- ``Cache-Control: no-store`` on the API, sign-in, health and metrics answers, errors
  included, unless the route set its own: none of them may be kept by a shared cache.

An exception that is not one of ours (a bug) is answered here too
(``server.errors.answer_unexpected``), so that its 500 carries these headers: one
wrapper of ``send`` a request, and one frame a stream, rather than two (an open
stream keeps every frame it is awaited through; a second middleware cost each idle
stream about a kilobyte, docs/performance.md).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import answer_unexpected

_NO_STORE_PREFIXES = ("/api/", "/auth/", "/v1/", "/healthz", "/readyz", "/metrics")


class ResponseHeaders:
    """Adds the headers above to each HTTP response of ``app``, and answers a bug's
    exception (see above)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = str(scope.get("path", "")).startswith(_NO_STORE_PREFIXES)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if no_store and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            await answer_unexpected(exc, started, scope, receive, send_with_headers)
