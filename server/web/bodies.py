"""Reading request bodies with a size cap, translating failures into our errors."""

from __future__ import annotations

import codecs
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from server.errors import BadRequest, InvalidJSON, PayloadTooLarge, ValidationFailed

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything over ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and _over(declared, limit):
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


def _over(declared: str, limit: int) -> bool:
    """Whether a ``Content-Length`` says more than ``limit`` bytes; 400 when it is not a
    number. Compared as digits, never ``int()``-ed whole: 5,000 leading zeros (which
    httptools passes) are more digits than Python converts (a ValueError, once a 500)."""
    if not (declared.isascii() and declared.isdigit()):  # not "²", which isdigit() takes
        raise BadRequest("invalid Content-Length")
    digits = declared.lstrip("0") or "0"
    bound = str(limit)
    return len(digits) > len(bound) or (len(digits) == len(bound) and digits > bound)


async def read_model(request: Request, model: type[M], limit: int) -> M:
    """The body parsed as JSON into ``model``: 413, 400 ``invalid_json`` or ``invalid_request``."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise BadRequest("Content-Type must be application/json")
    raw = await read_body(request, limit)
    try:
        # orjson, stricter than json where it matters here: a lone surrogate's escape
        # ("\ud800", text no encoder can write out again), NaN and UTF-16 are refused,
        # and nesting stops at 1,024 levels. A UTF-8 byte order mark is allowed, as
        # json allowed it.
        data: Any = orjson.loads(raw[3:] if raw.startswith(codecs.BOM_UTF8) else raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"body is not valid JSON: {_reason(exc)}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(_describe(exc)) from exc


def _reason(exc: orjson.JSONDecodeError) -> str:
    # What and where ("depth limit exceeded, line 1 column 1026"), never the text.
    return f"{exc.msg or 'malformed'}, line {exc.lineno} column {exc.colno}"


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
