"""Property-based tests (hypothesis) of every request parser: no input gives a 500.

Each route gets arbitrary JSON, JSON shaped like its contract with arbitrary values,
arbitrary bytes, and arbitrary header bytes, over real HTTP. Every answer must be a
success or a plain 4xx with the ``{"error", "message"}`` body.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.app import create_app
from tests.factories import bearer, make_settings
from tests.servers import serve

CONVERSATION = "5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
API_KEY = "ak-property-0123456789"
EXAMPLES = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20)
# Any Unicode: lone surrogates, controls (NUL, DEL), format characters (bidi), 4-byte.
hostile_text = st.text(alphabet=st.characters(
    categories=["Cs", "Cc", "Cf", "Co", "Lu", "Ll", "Nd", "Zs", "So", "Po"]), max_size=60)
texts = st.text(max_size=300) | hostile_text | st.sampled_from(
    ["", " ", CONVERSATION, "customer", "agent", "manual", "utterance", "up", "sg_abcdefghij12",
     "\x00", "<script>alert(1)</script>", "4111 1111 1111 1111", "🙂" * 50, "\ud800",
     "voicemail \udfff", "\u202eevil\u202c", "\U0001f600" * 20, "\x7f\x1b[2J"])
values = json_values | texts
# A URL cannot carry a lone surrogate (httpx cannot encode one): query strings get the rest.
SURROGATE = re.compile("[\ud800-\udfff]")


def shaped(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with (some of) the contract's keys, and arbitrary values."""
    loose = st.dictionaries(st.sampled_from(keys), values, max_size=len(keys))
    return loose | st.fixed_dictionaries({}, optional={key: values for key in keys})


utterance_lists = st.lists(st.fixed_dictionaries({"speaker": st.sampled_from(
    ["customer", "agent", "bot"]), "text": texts}), max_size=8)
stream_bodies = shaped(["conversationId", "trigger", "query", "utterances", "requestId"]) | \
    st.fixed_dictionaries({"conversationId": st.just(CONVERSATION),
                           "trigger": st.sampled_from(["manual", "utterance"]),
                           "query": texts, "utterances": utterance_lists},
                          optional={"requestId": texts})
machine_bodies = shaped(["conversationId", "transcript", "lastUtterance", "requestId"]) | \
    st.fixed_dictionaries({"conversationId": st.just(CONVERSATION),
                           "transcript": utterance_lists, "lastUtterance": texts})


@pytest.fixture(scope="module")
def panel(sample_kb_path: Path) -> Iterator[str]:
    settings_ = make_settings(kb_path=sample_kb_path, extractive_token_delay_ms=0,
                              rate_limit_per_minute=0, api_keys=API_KEY,
                              # Never the network: a closed loopback port.
                              genesys_api_base="http://127.0.0.1:9",
                              genesys_login_base="http://127.0.0.1:9",
                              # A Content-Length longer than the body waits this long.
                              body_timeout_s=1)
    with serve(create_app(settings_)) as base:
        yield base


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http


def check(response: httpx.Response) -> None:
    """A documented 4xx with its JSON body, or a stream that ends with exactly one ``done``.

    The one 5xx allowed is the documented 503 ``genesys_unavailable`` of a body good
    enough to be checked with Genesys, which this fixture points at a closed port.
    """
    if response.status_code == 503 and response.json().get("error") == "genesys_unavailable":
        return
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "message"} and isinstance(body["error"], str)
        return
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        assert response.text.count("event: done") == 1, response.text[-300:]
    elif kind.startswith("application/x-ndjson"):
        lines = response.text.strip().splitlines()
        assert json.loads(lines[-1])["complete"] is True, response.text[-300:]


def post(client: httpx.Client, url: str, body: Any, headers: dict[str, str]) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with client.stream("POST", url, content=raw, headers={  # ensure_ascii: "\ud800" escapes
            "Content-Type": "application/json", **headers}) as response:
        response.read()
        check(response)


ROUTES = {
    "/auth/state": (shaped(["conversationId", "gcHostOrigin", "gcTargetEnv", "langTag"]), {}),
    "/api/session": (shaped(["state", "accessToken", "expiresIn", "code"]), {}),
    "/api/session/renew": (shaped(["accessToken", "gcHostOrigin", "gcTargetEnv", "langTag"])
                           | st.fixed_dictionaries({"accessToken": st.sampled_from(
                               ["tok", "a.b-c_d~e+f/g==", "tök", "a\nb"])},
                               optional={"langTag": texts}), bearer(CONVERSATION)),
    "/api/assist/stream": (stream_bodies, bearer(CONVERSATION)),
    "/api/feedback": (shaped(["suggestionId", "rating", "copied", "inserted"]),
                      bearer(CONVERSATION)),
    "/v1/stream-assist": (machine_bodies, {"X-API-Key": API_KEY}),
}


@pytest.mark.parametrize("path", list(ROUTES))
def test_no_json_body_gives_a_500(panel: str, client: httpx.Client, path: str) -> None:
    strategy, headers = ROUTES[path]

    @EXAMPLES
    @given(body=strategy | json_values)
    def run(body: Any) -> None:
        post(client, panel + path, body, headers)

    run()


@pytest.mark.parametrize("path", list(ROUTES))
def test_no_bytes_give_a_500(panel: str, client: httpx.Client, path: str) -> None:
    headers = ROUTES[path][1]

    @settings(max_examples=60, deadline=None)
    @given(raw=st.binary(max_size=2000))
    def run(raw: bytes) -> None:
        post(client, panel + path, raw, headers)

    run()


@EXAMPLES
@given(params=st.dictionaries(st.sampled_from(
    ["conversationId", "gcHostOrigin", "gcTargetEnv", "langTag", "gcUsePopupAuth", "code",
     "state", "error"]), texts.filter(lambda t: not SURROGATE.search(t))
    | st.binary(max_size=40).map(lambda b: b.decode("latin-1")), max_size=6))
def test_no_panel_query_gives_a_500(panel: str, client: httpx.Client,
                                    params: dict[str, str]) -> None:
    response = client.get(f"{panel}/panel", params=params)
    assert response.status_code < 500, response.text[:300]


EXAMPLE_BODIES: dict[str, dict[str, Any]] = {
    "/auth/state": {"conversationId": CONVERSATION},
    "/api/session": {"state": "s", "code": "c"},
    "/api/session/renew": {"accessToken": "tok"},
    "/api/assist/stream": {"conversationId": CONVERSATION, "trigger": "manual",
                           "query": "restocking fee"},
    "/api/feedback": {"suggestionId": "sg_abcdefghij12", "rating": "up"},
    "/v1/stream-assist": {"conversationId": CONVERSATION, "transcript": [],
                          "lastUtterance": "restocking fee"},
}


# Any header bytes: raw requests over a socket (an HTTP client refuses to send most of
# these), parsed back with h11. CR and LF are left out: they end a header line, which is
# framing, not a value.
header_names = st.sampled_from([
    "Authorization", "Content-Type", "Content-Length", "X-API-Key", "X-Request-Id",
    "X-Forwarded-For", "Origin", "Accept-Language", "Transfer-Encoding", "Host",
    "X-Weird\x7f", "Bad Name", "Ümlaut"])
header_values = st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


def raw_exchange(panel: str, path: str, headers: list[tuple[bytes, bytes]],
                 body: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request sent as bytes; the response's status, headers and body."""
    host, port = panel.removeprefix("http://").split(":")
    head = b"POST " + path.encode() + b" HTTP/1.1\r\n" + b"".join(
        name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n"
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head + body)
        parser = h11.Connection(h11.CLIENT)
        status, fields, data = 0, {}, b""
        while True:
            event = parser.next_event()
            if event is h11.NEED_DATA:
                parser.receive_data(sock.recv(65536))
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                fields = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                data += bytes(event.data)
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return status, fields, data


@pytest.mark.parametrize("path", list(ROUTES))
def test_no_header_bytes_give_a_500(panel: str, path: str) -> None:
    good = {"Content-Type": "application/json", "Connection": "close", "Host": "127.0.0.1",
            **ROUTES[path][1]}
    body = json.dumps(EXAMPLE_BODIES[path]).encode()

    @settings(max_examples=80, deadline=None)
    @given(extra=st.lists(st.tuples(header_names, header_values), max_size=4))
    def run(extra: list[tuple[str, bytes]]) -> None:
        names = {name.lower() for name, _ in extra}
        headers = [(k.encode(), v.encode()) for k, v in good.items() if k.lower() not in names]
        headers += [(name.encode("utf-8"), value) for name, value in extra]
        if not any(k.lower() == b"content-length" for k, _ in headers):
            headers.append((b"Content-Length", str(len(body)).encode()))
        status, fields, data = raw_exchange(panel, path, headers, body)
        assert status, "no answer"
        if status == 503 and json.loads(data).get("error") == "genesys_unavailable":
            return
        assert status < 500, data[:300]
        if status >= 400:
            answer = json.loads(data)
            assert set(answer) == {"error", "message"}, answer
        elif fields.get("content-type", "").startswith("text/event-stream"):
            assert data.count(b"event: done") == 1, data[-300:]
        elif fields.get("content-type", "").startswith("application/x-ndjson"):
            assert json.loads(data.strip().splitlines()[-1])["complete"] is True

    run()
