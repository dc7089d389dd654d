"""Which fault a mock chat completion gets, and the mock's runtime fault switch.

Precedence, per chat completion (first match wins):

1. the request's `X-Mock-Fault` header (`none` means no fault for that request);
2. the runtime switch, once set (`PUT /mock/fault`, or `app.state.fault_switch.set`):
   its fault for the next `remaining` completions (`null` = until changed), then
   *no fault*; the config's fault does not come back until the switch is cleared
   (`DELETE /mock/fault`, or `.clear()`);
3. `MockLLMConfig.fault`.

A request decided by its header does not use up the switch's `remaining`. The
switch counts down once per chat completion, when the request picks its fault:
after authentication and body validation, so a 401 or a malformed request
leaves it untouched.

`/mock/fault` is a control API of the mock, not part of OpenAI's; it needs no
API key. Its errors use OpenAI's `{"error": {...}}` shape like the rest of the
mock. The status-code faults (`http_*`) are answered here too, worded as OpenAI
words them.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.devmode.mocks.llm_faults import FAULTS, dumps
from server.devmode.mocks.llm_requests import OpenAIError, common_headers, json_object

#: Largest body `PUT /mock/fault` reads.
MAX_CONTROL_BODY_BYTES = 16 * 1024


def format_retry_after(seconds: float) -> str:
    """`retry-after` as sent: an integer when whole ("1"), else the decimal ("0.2")."""
    if seconds.is_integer():
        return str(int(seconds))
    return format(Decimal(repr(seconds)), "f")


def _unknown_fault(given: str, where: str) -> OpenAIError:
    return OpenAIError(
        400,
        f"Unknown mock fault {given!r} in {where}. Valid faults: {', '.join(FAULTS)}"
        + (", or 'none'." if where == "X-Mock-Fault" else ", or null."),
        param=where,
        code="unknown_mock_fault",
    )


def header_fault(header: str) -> str | None:
    """The fault an `X-Mock-Fault` header names (`none` or empty: no fault)."""
    name = header.strip().lower()
    if name in ("", "none"):
        return None
    if name not in FAULTS:
        raise _unknown_fault(header, "X-Mock-Fault")
    return name


class FaultSwitch:
    """The runtime fault override and the count of chat completions (see module docstring).

    Thread-safe: tests call `set` from their own thread while the server's loop
    picks faults.
    """

    def __init__(self, config_fault: str | None = None) -> None:
        self.config_fault = config_fault
        self._lock = threading.Lock()
        self._engaged = False  # set and not cleared: the config's fault is out of play
        self._fault: str | None = None
        self._remaining: int | None = None
        self._requests = 0

    def set(self, fault: str | None, remaining: int | None = None) -> None:
        """Answer the next `remaining` completions with `fault` (None: no fault; and
        `remaining=None`: until changed), then with no fault."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown mock LLM fault {fault!r}; valid: {', '.join(FAULTS)}")
        if remaining is not None and (isinstance(remaining, bool) or remaining < 0):
            raise ValueError("remaining must be None or an integer >= 0")
        with self._lock:
            self._engaged, self._fault, self._remaining = True, fault, remaining

    def clear(self) -> None:
        """Forget the override: the config's fault applies again."""
        with self._lock:
            self._engaged, self._fault, self._remaining = False, None, None

    @property
    def requests(self) -> int:
        """Every `POST /v1/chat/completions` received, whatever the answer (401, 400,
        a fault's 429 or 503, a stream). Unlike `StreamTracker.total`, which counts
        only the completions that started a 200 answer."""
        with self._lock:
            return self._requests

    def count_request(self) -> None:
        """Count one chat-completions call (first thing its handler does)."""
        with self._lock:
            self._requests += 1

    def _next(self) -> str | None:
        if not self._engaged:
            return self.config_fault
        if self._remaining == 0:
            return None
        return self._fault

    def pick(self, header: str | None) -> str | None:
        """The fault for one completion; uses up one of the switch's `remaining` when
        the switch decides it. Raises `OpenAIError` for an unknown header fault."""
        if header is not None:
            return header_fault(header)
        with self._lock:
            fault = self._next()
            if self._engaged and self._remaining:
                self._remaining -= 1
            return fault

    def to_json(self) -> dict[str, Any]:
        """`GET /mock/fault`: the switch, the request count, and the fault the next
        completion without an `X-Mock-Fault` header would get."""
        with self._lock:
            return {
                "fault": self._fault,
                "remaining": self._remaining,
                "requests": self._requests,
                "next": self._next(),
            }


def _parse_switch(raw: bytes) -> tuple[str | None, int | None]:
    """`{"fault": name|null, "remaining"?: int|null}`, or an `OpenAIError` (400)."""
    if len(raw) > MAX_CONTROL_BODY_BYTES:
        raise OpenAIError(400, "The body is too large.", code="invalid_body")
    body = json_object(raw)
    if body is None:
        raise OpenAIError(
            400,
            'The body must be a JSON object: {"fault": name or null, "remaining": int or null}.',
            code="invalid_body",
        )
    unknown = sorted(set(body) - {"fault", "remaining"})
    if unknown:
        raise OpenAIError(
            400,
            f"Unrecognized request argument supplied: {unknown[0]}",
            param=unknown[0],
            code="unknown_parameter",
        )
    if "fault" not in body:
        raise OpenAIError(
            400,
            "Missing required parameter: 'fault'.",
            param="fault",
            code="missing_required_parameter",
        )
    fault, remaining = body["fault"], body.get("remaining")
    if fault is not None and not isinstance(fault, str):
        raise OpenAIError(
            400, "Invalid 'fault': expected a string or null.", param="fault", code="invalid_type"
        )
    if fault is not None and fault not in FAULTS:
        raise _unknown_fault(fault, "fault")
    if remaining is not None and (
        not isinstance(remaining, int) or isinstance(remaining, bool) or remaining < 0
    ):
        raise OpenAIError(
            400,
            "Invalid 'remaining': expected an integer >= 0 or null.",
            param="remaining",
            code="invalid_value",
        )
    return fault, remaining


class FaultControls:
    """`GET`, `PUT` and `DELETE /mock/fault`, all answering the switch's `to_json()`."""

    def __init__(self, switch: FaultSwitch) -> None:
        self.switch = switch

    def routes(self) -> list[BaseRoute]:
        """The control routes."""
        return [Route("/mock/fault", self.handle, methods=["GET", "PUT", "DELETE"])]

    def _state(self) -> Response:
        return Response(
            dumps(self.switch.to_json()), headers=common_headers(), media_type="application/json"
        )

    async def handle(self, request: Request) -> Response:
        """`GET` reads the switch; `PUT {"fault", "remaining"}` sets it (400 for an
        unknown fault or a bad body, and then nothing changes); `DELETE` clears it."""
        if request.method == "PUT":
            try:
                fault, remaining = _parse_switch(await request.body())
            except OpenAIError as error:
                return error.response()
            self.switch.set(fault, remaining)
        elif request.method == "DELETE":
            self.switch.clear()
        return self._state()


# ---------------------------------------------------------------- status-code faults


def fault_error(fault: str | None, model: str, retry_after_s: float) -> OpenAIError | None:
    """The HTTP error a status-code fault answers with, as OpenAI words it.

    `retry_after_s` goes in the `retry-after` header of `http_429` and `http_503`;
    `http_429_quota` (OpenAI's `insufficient_quota`, which no retry cures) has none.
    """
    retry_after = format_retry_after(retry_after_s)
    if fault == "http_429":
        return OpenAIError(
            429,
            f"Rate limit reached for {model} on requests per min (RPM): Limit 3, Used 3, "
            f"Requested 1. Please try again in {retry_after}s. (mock fault http_429)",
            type_="requests",
            code="rate_limit_exceeded",
            headers={
                "retry-after": retry_after,
                "x-ratelimit-limit-requests": "3",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{retry_after}s",
            },
        )
    if fault == "http_429_quota":
        # The account's quota (credit) is used up: a 429 too, but no `retry-after` and
        # no rate-limit headers, since waiting does not help.
        return OpenAIError(
            429,
            "You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors. "
            "(mock fault http_429_quota)",
            type_="insufficient_quota",
            code="insufficient_quota",
        )
    if fault == "http_500":
        return OpenAIError(
            500,
            "The server had an error while processing your request. Sorry about that! "
            "(mock fault http_500)",
            type_="server_error",
        )
    if fault == "http_503":
        return OpenAIError(
            503,
            "The engine is currently overloaded, please try again later",
            type_="server_error",
            headers={"retry-after": retry_after},
        )
    if fault == "http_400":
        return OpenAIError(
            400,
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 128001 tokens. Please reduce the length of the messages. "
            "(mock fault http_400)",
            param="messages",
            code="context_length_exceeded",
        )
    if fault == "http_403":
        return OpenAIError(403, "You are not allowed to sample from this model")
    return None
