"""Reading a JSON body (server/web/bodies.py), at the ASGI level: what is refused, with
which code, and that a refusal's message says where without quoting the text."""

from __future__ import annotations

import codecs
import json

import pytest
from pydantic import BaseModel, ConfigDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.errors import exception_handlers
from server.web.bodies import read_model
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
