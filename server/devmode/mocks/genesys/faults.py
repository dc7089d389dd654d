"""Injected platform faults: ``/mock/faults`` makes chosen API calls fail.

A fault rule matches a method and a path glob under ``/api/`` or ``/oauth/`` and
answers the next ``times`` matching requests with an error status in the
platform's ``ErrorBody`` (429 with ``Retry-After``, 500, 503...) instead of
handling them. Tests and developers use it to see rate limits and failures
midway (an installer rerun must complete what a failed run started).
"""

from __future__ import annotations

import fnmatch
import json
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from server.devmode.mocks.genesys.api import PlatformError

#: The platform's error code for each status a fault may answer with (others: ``error``).
CODES = {
    400: "bad.request",
    401: "bad.credentials",
    403: "missing.permissions",
    404: "not.found",
    409: "conflict",
    429: "too.many.requests",
    500: "internal.server.error",
    502: "bad.gateway",
    503: "service.unavailable",
    504: "gateway.timeout",
}
GUARDED_PREFIXES = ("/api/", "/oauth/")
METHODS = frozenset({"*", "GET", "POST", "PUT", "PATCH", "DELETE"})


class FaultError(ValueError):
    """A fault rule that cannot be added; says why."""


@dataclass
class FaultRule:
    """Answer ``times`` requests matching ``method`` and ``path`` with ``status``."""

    id: str
    method: str
    path: str
    status: int
    times: int
    retry_after: int | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        """Whether a request is one of this rule's and the rule has uses left."""
        return (
            self.hits < self.times
            and self.method in ("*", method)
            and fnmatch.fnmatchcase(path, self.path)
        )

    def to_json(self) -> dict[str, Any]:
        """The rule as ``/mock/faults`` shows it."""
        return {"id": self.id, "method": self.method, "path": self.path,
                "status": self.status, "times": self.times, "retryAfter": self.retry_after,
                "hits": self.hits}

    @classmethod
    def from_json(cls, body: Any) -> FaultRule:
        """Validate ``{method?, path, status, times?, retryAfter?}``."""
        if not isinstance(body, dict):
            raise FaultError("A fault is a JSON object.")
        unknown = set(body) - {"method", "path", "status", "times", "retryAfter"}
        if unknown:
            raise FaultError(f"Unknown fault fields: {', '.join(sorted(unknown))}.")
        method = str(body.get("method", "*")).upper()
        path = body.get("path")
        status = body.get("status")
        times = body.get("times", 1)
        retry_after = body.get("retryAfter")
        if method not in METHODS:
            raise FaultError(f"method must be one of {', '.join(sorted(METHODS))}.")
        if not isinstance(path, str) or not path.startswith(GUARDED_PREFIXES):
            raise FaultError("path must be a glob under /api/ or /oauth/.")
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise FaultError("status must be an HTTP error status (400-599).")
        if not isinstance(times, int) or isinstance(times, bool) or not 1 <= times <= 1000:
            raise FaultError("times must be an integer from 1 to 1000.")
        if retry_after is not None and (
            not isinstance(retry_after, int) or isinstance(retry_after, bool)
            or not 0 <= retry_after <= 3600
        ):
            raise FaultError("retryAfter must be whole seconds from 0 to 3600.")
        return cls(str(uuid.uuid4()), method, path, status, times, retry_after)

    def error(self) -> PlatformError:
        """The platform error this rule answers with."""
        if self.status == 429:
            seconds = self.retry_after if self.retry_after is not None else 1
            message = f"Rate limit exceeded the maximum. Retry the request in [{seconds}] seconds"
        else:
            message = f"Injected fault: HTTP {self.status}."
        return PlatformError(self.status, CODES.get(self.status, "error"), message)


class Faults:
    """The fault rules of one mock, consulted in order; the first match answers."""

    def __init__(self) -> None:
        """No faults at first."""
        self.rules: list[FaultRule] = []

    def take(self, method: str, path: str) -> FaultRule | None:
        """The rule answering this request, counting the hit; None to handle it normally."""
        for rule in self.rules:
            if rule.matches(method, path):
                rule.hits += 1
                return rule
        return None

    def routes(self) -> list[BaseRoute]:
        """``GET``, ``POST`` and ``DELETE /mock/faults``."""
        return [
            Route("/mock/faults", self.list_faults, methods=["GET"]),
            Route("/mock/faults", self.add_fault, methods=["POST"]),
            Route("/mock/faults", self.clear_faults, methods=["DELETE"]),
        ]

    async def list_faults(self, request: Request) -> Response:
        """``{"faults": [rule...]}`` with each rule's hits so far."""
        return JSONResponse({"faults": [r.to_json() for r in self.rules]})

    async def add_fault(self, request: Request) -> Response:
        """Add a rule ``{method?, path, status, times?, retryAfter?}``; 201 with the rule."""
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        try:
            rule = FaultRule.from_json(body)
        except FaultError as exc:
            return JSONResponse({"error": "invalid_fault", "message": str(exc)}, status_code=400)
        self.rules.append(rule)
        return JSONResponse(rule.to_json(), status_code=201)

    async def clear_faults(self, request: Request) -> Response:
        """Remove every rule; ``{"cleared": count}``."""
        count = len(self.rules)
        self.rules.clear()
        return JSONResponse({"cleared": count})


class FaultInjector:
    """Pure ASGI middleware answering matched platform calls with their fault."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        """Wrap ``app``; ``faults`` holds the rules."""
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer with a fault when a rule matches, else pass the request through."""
        if scope["type"] == "http" and scope["path"].startswith(GUARDED_PREFIXES):
            rule = self.faults.take(scope["method"], scope["path"])
            if rule is not None:
                body = rule.error().body()
                headers = {"ININ-Correlation-Id": body["contextId"]}
                if rule.status == 429:
                    headers["Retry-After"] = str(rule.retry_after or 1)
                response = JSONResponse(body, status_code=rule.status, headers=headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
