"""Reading request bodies with a size cap, translating failures into our errors."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from server.errors import BadRequest, InvalidJSON, PayloadTooLarge, ValidationFailed

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything over ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("invalid Content-Length")
        if int(declared) > limit:
            raise PayloadTooLarge(f"request body over {limit} bytes")
    body = bytearray()
    try:
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise PayloadTooLarge(f"request body over {limit} bytes")
    except ClientDisconnect as exc:
        raise BadRequest("client went away while sending the body") from exc
    return bytes(body)


async def read_model(request: Request, model: type[M], limit: int) -> M:
    """The body parsed as JSON into ``model``: 413, 400 ``invalid_json`` or ``invalid_request``."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise BadRequest("Content-Type must be application/json")
    raw = await read_body(request, limit)
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJSON("body is not valid JSON") from exc
    except RecursionError as exc:  # '[' * 1000: deeper than anything of ours
        raise InvalidJSON("body is nested too deeply") from exc
    if (where := _unpaired_surrogate(data)) is not None:
        # JSON's "\ud800" escape decodes to a string no encoder can write out again.
        raise InvalidJSON(f"{where}: text holds an unpaired surrogate (not valid Unicode)")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(_describe(exc)) from exc


def _unpaired_surrogate(data: Any) -> str | None:
    """Where in ``data`` a string (key or value) holds a lone UTF-16 surrogate, if any."""
    pending: list[tuple[str, Any]] = [("body", data)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return where
        elif isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    return where
                pending.append((f"{where}.{key}" if where != "body" else key, item))
        elif isinstance(value, list):
            pending.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
