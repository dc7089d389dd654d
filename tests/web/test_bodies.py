"""Reading a JSON body (server/web/bodies.py), at the ASGI level: what is refused, with
which code, and that a refusal's message says where without quoting the text."""

from __future__ import annotations

import codecs
import json

import anyio
import pytest
from pydantic import BaseModel, ConfigDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.errors import BadRequest, PayloadTooLarge, exception_handlers
from server.web.bodies import read_body, read_model
from tests.asgi import asgi_client


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


async def echo(request: Request) -> Response:
    body = await read_model(request, Body, 4096)
    return JSONResponse({"text": body.text})


APP = Starlette(routes=[Route("/", echo, methods=["POST"])],
                exception_handlers=exception_handlers())


def send(raw: bytes, content_type: str = "application/json") -> tuple[int, dict[str, str]]:
    with asgi_client(APP) as client:
        response = client.post("/", content=raw, headers={"Content-Type": content_type})
    return response.status_code, response.json()


def test_a_body_is_read_into_the_model() -> None:
    assert send(json.dumps({"text": "restocking fee 🙂"}).encode()) == (
        200, {"text": "restocking fee 🙂"})


def test_a_utf8_byte_order_mark_is_allowed_as_before() -> None:
    assert send(codecs.BOM_UTF8 + b'{"text": "refund"}') == (200, {"text": "refund"})


@pytest.mark.parametrize("raw", [
    b'{"text": "card 4111 \\ud800 secret"}',  # a lone surrogate: no encoder writes it out
    b'{"text": NaN}',
    '{"text": "refund"}'.encode("utf-16"),
    b'{"text": "card 4111 1111 1111 1111" oops}',
    b"[" * 1025 + b"]" * 1025,
    b"\xff\xfe not utf-8",
])
def test_what_is_not_utf8_json_is_invalid_json_and_the_message_quotes_nothing(
        raw: bytes) -> None:
    status, answer = send(raw)
    assert (status, answer["error"]) == (400, "invalid_json"), answer
    assert "line 1 column" in answer["message"]
    for secret in ("4111", "secret", "refund"):
        assert secret not in answer["message"]


def test_json_of_the_wrong_shape_is_invalid_request() -> None:
    status, answer = send(b'{"text": 1}')
    assert (status, answer["error"]) == (400, "invalid_request")


def test_another_content_type_is_a_400() -> None:
    status, answer = send(b'{"text": "refund"}', "text/plain")
    assert (status, answer["error"]) == (400, "bad_request")


def test_a_body_over_the_limit_is_a_413() -> None:
    status, answer = send(json.dumps({"text": "x" * 5000}).encode())
    assert (status, answer["error"]) == (413, "payload_too_large")


async def _declaring(content_length: bytes) -> bytes:
    """``read_body`` (limit 4096) of a request declaring ``content_length``, with 5 bytes."""
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"[1,2]", "more_body": False}

    request = Request({"type": "http", "method": "POST", "path": "/",
                       "headers": [(b"content-length", content_length)]}, receive)
    return await read_body(request, 4096)


@pytest.mark.parametrize("declared", [b"4097", b"1" + b"0" * 5000, b"9" * 5001,
                                      b"0" * 5000 + b"4097"])
def test_a_content_length_over_the_limit_is_a_413_however_many_digits_it_has(
        declared: bytes) -> None:
    """It was a 500: int() of more than 4,300 digits raises ValueError."""
    with pytest.raises(PayloadTooLarge):
        anyio.run(_declaring, declared)


@pytest.mark.parametrize("declared", [b"4096", b"0" * 5000 + b"5", b"0"])
def test_a_content_length_within_the_limit_is_read_as_its_value(declared: bytes) -> None:
    assert anyio.run(_declaring, declared) == b"[1,2]"


@pytest.mark.parametrize("declared", ["\u00b2".encode("latin-1"), b"-1", b"1e3", b" ", b""])
def test_a_content_length_that_is_not_ascii_digits_is_a_400(declared: bytes) -> None:
    """"\u00b2" (superscript two) is a digit to str.isdigit() and not to int()."""
    with pytest.raises(BadRequest):
        anyio.run(_declaring, declared)
