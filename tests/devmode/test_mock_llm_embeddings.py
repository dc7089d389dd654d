"""The mock model's `POST /v1/embeddings`, over real HTTP, read by the official `openai` client."""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette

from server.devmode.mocks.llm import MockLLMConfig, create_mock_llm_app
from server.devmode.mocks.llm_control import FaultSwitch
from server.devmode.mocks.llm_embeddings import (
    DEFAULT_DIMENSIONS,
    EMBEDDING_MODELS,
    MAX_DIMENSIONS,
    MAX_INPUTS,
)
from tests.servers import serve

API_KEY = "sk-mock-embed-key-123456"
MODEL = "text-embedding-3-small"
URL_PATH = "/v1/embeddings"


@dataclass
class Mock:
    """A running mock model server and the switches tests turn."""

    url: str
    app: Starlette

    @property
    def switch(self) -> FaultSwitch:
        """The embeddings' fault switch."""
        switch: FaultSwitch = self.app.state.embeddings_fault_switch
        return switch

    def client(self, **kwargs: Any) -> openai.OpenAI:
        kwargs.setdefault("api_key", API_KEY)
        kwargs.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=f"{self.url}/v1", timeout=10, **kwargs)

    def post(self, body: Any, *, key: str | None = API_KEY, **headers: str) -> httpx.Response:
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
        return httpx.post(f"{self.url}{URL_PATH}", content=content, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def mock() -> Iterator[Mock]:
    app = create_mock_llm_app(MockLLMConfig(api_key=API_KEY, retry_after_s=0.05))
    with serve(app) as url:
        yield Mock(url, app)


@pytest.fixture(autouse=True)
def _no_fault(mock: Mock) -> Iterator[None]:
    yield
    mock.switch.clear()
    mock.app.state.fault_switch.clear()


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (norm(a) * norm(b))


def float32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


# ---------------------------------------------------------------- the official client


def test_openai_client_default_base64(mock: Mock) -> None:
    with mock.client() as client:
        answer = client.embeddings.create(model=MODEL, input=["reset my password", "pay a bill"])
    assert answer.object == "list"
    assert answer.model == MODEL
    assert [item.index for item in answer.data] == [0, 1]
    assert all(item.object == "embedding" for item in answer.data)
    for item in answer.data:
        assert len(item.embedding) == DEFAULT_DIMENSIONS
        assert norm(item.embedding) == pytest.approx(1.0, abs=1e-5)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == 6


def test_openai_client_float_matches_base64_exactly(mock: Mock) -> None:
    texts = ["How do I set up voicemail?", "Autopay charges your card on the due date."]
    with mock.client() as client:
        floats = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
        default = client.embeddings.create(model=MODEL, input=texts)
    for f, b in zip(floats.data, default.data, strict=True):
        # JSON floats carry the float32 values the base64 answer holds, bit for bit.
        assert float32(f.embedding) == float32(b.embedding)


def test_base64_is_little_endian_float32(mock: Mock) -> None:
    body = {"model": MODEL, "input": "voicemail setup", "encoding_format": "base64"}
    raw = mock.post(body).json()["data"][0]["embedding"]
    floats = mock.post({**body, "encoding_format": "float"}).json()["data"][0]["embedding"]
    packed = base64.b64decode(raw)
    assert len(packed) == 4 * DEFAULT_DIMENSIONS
    assert list(struct.unpack(f"<{DEFAULT_DIMENSIONS}f", packed)) == float32(floats)


def test_dimensions_and_single_string(mock: Mock) -> None:
    with mock.client() as client:
        answer = client.embeddings.create(model=MODEL, input="voicemail", dimensions=64)
    assert len(answer.data) == 1
    assert len(answer.data[0].embedding) == 64
    assert norm(answer.data[0].embedding) == pytest.approx(1.0, abs=1e-5)


def test_token_id_inputs(mock: Mock) -> None:
    with mock.client() as client:
        one = client.embeddings.create(model=MODEL, input=[15339, 1917], encoding_format="float")
        many = client.embeddings.create(
            model=MODEL, input=[[15339, 1917], [40, 1097]], encoding_format="float"
        )
    assert len(one.data) == 1 and len(many.data) == 2
    assert one.data[0].embedding == many.data[0].embedding
    assert one.usage.prompt_tokens == 2 and many.usage.prompt_tokens == 4


def test_answer_shape_on_the_wire(mock: Mock) -> None:
    response = mock.post({"model": MODEL, "input": ["a b c"], "user": "agent-7"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-request-id"].startswith("req_")
    body = response.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert set(body["data"][0]) == {"object", "index", "embedding"}
    assert isinstance(body["data"][0]["embedding"], list)  # float when not asked for base64
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


# ---------------------------------------------------------------- meaning


def test_vectors_are_deterministic_across_requests_and_servers(mock: Mock) -> None:
    body = {"model": MODEL, "input": ["Where is my refund?"], "encoding_format": "float"}
    first = mock.post(body).json()["data"][0]["embedding"]
    again = mock.post(body).json()["data"][0]["embedding"]
    other_app = create_mock_llm_app(MockLLMConfig())
    with serve(other_app) as url:
        elsewhere = httpx.post(f"{url}{URL_PATH}", json=body).json()["data"][0]["embedding"]
    assert first == again == elsewhere


def test_texts_sharing_words_score_higher(mock: Mock) -> None:
    texts = [
        "How do I reset my password?",
        "Password reset steps for your account",
        "Autopay charges your card on the due date.",
        "resetting passwords",
    ]
    with mock.client() as client:
        vectors = [d.embedding for d in client.embeddings.create(model=MODEL, input=texts).data]
    query, related, unrelated, morphology = vectors
    assert cosine(query, related) > 0.5
    assert cosine(query, unrelated) < 0.2
    assert cosine(query, related) > cosine(query, unrelated) + 0.4
    # Trigrams: no shared word after folding, yet closer than an unrelated text.
    assert cosine(query, morphology) > cosine(query, unrelated)


def test_only_stop_words_or_punctuation_still_give_unit_vectors(mock: Mock) -> None:
    body = {"model": MODEL, "input": ["how do I?", "?", " "], "encoding_format": "float"}
    for item in mock.post(body).json()["data"]:
        assert norm(item["embedding"]) == pytest.approx(1.0, abs=1e-5)


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b"{not json", None, None),
        ({"model": MODEL}, "input", "missing_required_parameter"),
        ({"model": MODEL, "input": ""}, "input", "empty_string"),
        ({"model": MODEL, "input": []}, "input", "empty_array"),
        ({"model": MODEL, "input": ["ok", ""]}, "input[1]", "empty_string"),
        ({"model": MODEL, "input": ["ok", 3]}, "input[1]", "invalid_type"),
        ({"model": MODEL, "input": ["ok", None]}, "input[1]", "invalid_type"),
        ({"model": MODEL, "input": [[1, 2], "x"]}, "input[1]", "invalid_type"),
        ({"model": MODEL, "input": [1, "x"]}, "input[1]", "invalid_type"),
        ({"model": MODEL, "input": [[]]}, "input[0]", "empty_array"),
        ({"model": MODEL, "input": {"text": "x"}}, "input", "invalid_type"),
        ({"model": MODEL, "input": ["x"] * (MAX_INPUTS + 1)}, "input", "array_above_max_length"),
        ({"model": MODEL, "input": "word " * 9000}, "input", "context_length_exceeded"),
        ({"model": MODEL, "input": "x", "dimensions": 0}, "dimensions", "integer_below_min_value"),
        (
            {"model": MODEL, "input": "x", "dimensions": MAX_DIMENSIONS + 1},
            "dimensions",
            "integer_above_max_value",
        ),
        ({"model": MODEL, "input": "x", "dimensions": "64"}, "dimensions", "invalid_type"),
        ({"model": MODEL, "input": "x", "encoding_format": "hex"}, "encoding_format",
         "invalid_value"),
        ({"model": 7, "input": "x"}, "model", "invalid_type"),
    ],
)
def test_refusals_are_400_in_openai_shape(
    mock: Mock, body: Any, param: str | None, code: str | None
) -> None:
    before = mock.switch.requests
    mock.switch.set("http_500", remaining=1)
    response = mock.post(body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert error["message"]
    # Counted, but a refused request does not use up the switch's fault.
    assert mock.switch.requests == before + 1
    assert mock.switch.to_json()["remaining"] == 1


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"input": "x"}, 400, None),
    ({"model": "", "input": "x"}, 400, None),
    ({"model": "text-embedding-3-smal", "input": "x"}, 404, "model_not_found"),
    ({"model": "mock-assist-1", "input": "x"}, 404, "model_not_found"),
])
def test_a_missing_or_unknown_model_is_refused_as_openai_refuses_it(
        mock: Mock, body: dict[str, Any], status: int, code: str | None) -> None:
    """Regression: any model, or none, was served, so a mistyped
    ASSIST_EMBEDDING_MODEL worked in dev mode and failed against the real service."""
    mock.switch.set("http_500", remaining=1)
    response = mock.post(body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert mock.switch.to_json()["remaining"] == 1  # a refusal uses up no fault
    for model in EMBEDDING_MODELS:
        mock.switch.clear()
        assert mock.post({"model": model, "input": "x"}).status_code == 200


def test_openai_client_raises_bad_request(mock: Mock) -> None:
    with mock.client() as client, pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=MODEL, input=["fine", ""])
    assert caught.value.param == "input[1]"


def test_wrong_or_missing_key_is_401(mock: Mock) -> None:
    with (
        mock.client(api_key="sk-wrong-key-000000") as client,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        client.embeddings.create(model=MODEL, input="x")
    assert caught.value.code == "invalid_api_key"
    assert "sk-wrong-key-000000" not in caught.value.message
    missing = mock.post({"model": MODEL, "input": "x"}, key=None)
    assert missing.status_code == 401
    assert "didn't provide an API key" in missing.json()["error"]["message"]


def test_no_key_configured_accepts_any_or_none() -> None:
    with serve(create_mock_llm_app(MockLLMConfig())) as url:
        answer = httpx.post(f"{url}{URL_PATH}", json={"model": MODEL, "input": "x"})
    assert answer.status_code == 200


# ---------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("fault", "status", "error_class"),
    [
        ("http_429", 429, openai.RateLimitError),
        ("http_500", 500, openai.InternalServerError),
        ("http_503", 503, openai.InternalServerError),
        ("http_400", 400, openai.BadRequestError),
        ("http_403", 403, openai.PermissionDeniedError),
    ],
)
def test_status_faults_by_header(
    mock: Mock, fault: str, status: int, error_class: type[openai.APIStatusError]
) -> None:
    with (
        mock.client(default_headers={"X-Mock-Fault": fault}) as client,
        pytest.raises(error_class) as caught,
    ):
        client.embeddings.create(model=MODEL, input="x")
    assert caught.value.status_code == status
    if status in (429, 503):
        assert caught.value.response.headers["retry-after"] == "0.05"
    if fault == "http_400":
        assert caught.value.param == "input"


def test_runtime_switch_then_success(mock: Mock) -> None:
    state = httpx.put(f"{mock.url}/mock/embeddings/fault",
                      json={"fault": "http_503", "remaining": 1}).json()
    assert state["next"] == "http_503"
    before = mock.switch.requests
    first = mock.post({"model": MODEL, "input": "x"})
    second = mock.post({"model": MODEL, "input": "x"})
    assert (first.status_code, second.status_code) == (503, 200)
    assert first.json()["error"]["type"] == "server_error"
    assert httpx.get(f"{mock.url}/mock/embeddings/fault").json()["requests"] == before + 2
    assert httpx.delete(f"{mock.url}/mock/embeddings/fault").json()["fault"] is None


def test_chat_switch_and_embeddings_switch_are_separate(mock: Mock) -> None:
    mock.app.state.fault_switch.set("http_429", remaining=1)
    assert mock.post({"model": MODEL, "input": "x"}).status_code == 200
    # The chat completion's fault is still there for it.
    assert mock.app.state.fault_switch.to_json()["remaining"] == 1
    mock.switch.set("http_429", remaining=1)
    assert mock.post({"model": MODEL, "input": "x"}).status_code == 429


def test_unknown_fault_header_is_400(mock: Mock) -> None:
    response = mock.post({"model": MODEL, "input": "x"}, **{"X-Mock-Fault": "explode"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_mock_fault"


def test_malformed_fault_cuts_the_json(mock: Mock) -> None:
    response = mock.post({"model": MODEL, "input": "x"}, **{"X-Mock-Fault": "malformed"})
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_stall_fault_never_answers(mock: Mock) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{mock.url}{URL_PATH}",
            json={"model": MODEL, "input": "x"},
            headers={"Authorization": f"Bearer {API_KEY}", "X-Mock-Fault": "stall_first"},
            timeout=httpx.Timeout(5, read=0.3),
        )


def test_drop_mid_fault_breaks_the_connection(mock: Mock) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        mock.post({"model": MODEL, "input": "x"}, **{"X-Mock-Fault": "drop_mid"})


@pytest.mark.parametrize("fault", ["drip", "endless"])
def test_stream_only_faults_answer_normally(mock: Mock, fault: str) -> None:
    response = mock.post({"model": MODEL, "input": "x"}, **{"X-Mock-Fault": fault})
    assert response.status_code == 200
    assert len(response.json()["data"]) == 1
