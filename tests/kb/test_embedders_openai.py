"""The `openai` embedder against the real mock model server (and a few scripted servers)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.devmode.mocks.llm import MockLLMConfig, create_mock_llm_app
from server.devmode.mocks.llm_control import FaultSwitch
from server.errors import EmbeddingError
from server.kb.embedders.openai_embeddings import OpenAIEmbedder
from tests.servers import listening_socket, serve

API_KEY = "sk-embed-secret-key-987654321"
MODEL = "text-embedding-3-small"
TEXTS = [
    "How do I reset my password?",
    "Password reset steps for your account",
    "Autopay charges your card on the due date.",
    "Set up voicemail on your desk phone",
    "Where is my refund?",
]


@dataclass
class Mock:
    url: str
    app: Starlette

    @property
    def base(self) -> str:
        return f"{self.url}/v1"

    @property
    def switch(self) -> FaultSwitch:
        switch: FaultSwitch = self.app.state.embeddings_fault_switch
        return switch

    def embedder(self, **kwargs: Any) -> OpenAIEmbedder:
        kwargs.setdefault("base_url", self.base)
        kwargs.setdefault("model", MODEL)
        kwargs.setdefault("api_key", API_KEY)
        return OpenAIEmbedder(**kwargs)


@pytest.fixture(scope="module")
def mock() -> Iterator[Mock]:
    # A short retry-after keeps the blocking path's retries quick.
    app = create_mock_llm_app(MockLLMConfig(api_key=API_KEY, retry_after_s=0.05))
    with serve(app) as url:
        yield Mock(url, app)


@pytest.fixture(autouse=True)
def _no_fault(mock: Mock) -> Iterator[None]:
    mock.switch.clear()
    yield
    mock.switch.clear()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as shared:
        yield shared


def closed_port_url() -> str:
    sock = listening_socket()
    port = sock.getsockname()[1]
    sock.close()  # bound, never listening, now closed: connections are refused
    return f"http://127.0.0.1:{port}/v1"


def assert_unit_rows(vectors: np.ndarray[Any, Any], rows: int, dim: int) -> None:
    assert vectors.shape == (rows, dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# ---------------------------------------------------------------- answers


def test_name_records_model_and_dimensions(mock: Mock) -> None:
    assert mock.embedder().name == "openai/text-embedding-3-small"
    assert mock.embedder(dimensions=64).name == "openai/text-embedding-3-small-64"


def test_embed_blocking(mock: Mock) -> None:
    vectors = mock.embedder().embed(TEXTS)
    assert_unit_rows(vectors, len(TEXTS), 256)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.4


@pytest.mark.anyio
async def test_aembed_matches_embed(mock: Mock, client: httpx.AsyncClient) -> None:
    blocking = mock.embedder().embed(TEXTS)
    on_loop = await mock.embedder(client=client).aembed(TEXTS)
    assert_unit_rows(on_loop, len(TEXTS), 256)
    np.testing.assert_array_equal(on_loop, blocking)


def test_order_is_kept_across_batches(mock: Mock) -> None:
    before = mock.switch.requests
    batched = mock.embedder(batch_size=2).embed(TEXTS)
    assert mock.switch.requests == before + 3  # 2 + 2 + 1
    one_by_one = np.vstack([mock.embedder().embed([text]) for text in TEXTS])
    np.testing.assert_array_equal(batched, one_by_one)


@pytest.mark.anyio
async def test_order_is_kept_across_batches_async(mock: Mock, client: httpx.AsyncClient) -> None:
    batched = await mock.embedder(client=client, batch_size=2).aembed(TEXTS)
    np.testing.assert_array_equal(batched, mock.embedder().embed(TEXTS))


@pytest.mark.anyio
async def test_dimensions_pass_through(mock: Mock, client: httpx.AsyncClient) -> None:
    embedder = mock.embedder(dimensions=64, client=client)
    assert_unit_rows(embedder.embed(TEXTS[:2]), 2, 64)
    assert_unit_rows(await embedder.aembed(TEXTS[:2]), 2, 64)


@pytest.mark.anyio
async def test_no_texts_no_request(mock: Mock, client: httpx.AsyncClient) -> None:
    before = mock.switch.requests
    assert mock.embedder(dimensions=32).embed([]).shape == (0, 32)
    assert (await mock.embedder(client=client).aembed([])).shape == (0, 0)
    assert mock.switch.requests == before


def test_empty_text_is_embedded_not_refused(mock: Mock) -> None:
    # OpenAI refuses "" with a 400; one blank text must not fail a whole import batch.
    assert_unit_rows(mock.embedder().embed(["", "voicemail"]), 2, 256)


def test_a_single_string_is_refused(mock: Mock) -> None:
    with pytest.raises(TypeError):
        mock.embedder().embed("not a list")


@pytest.mark.parametrize(
    "kwargs", [{"batch_size": 0}, {"dimensions": 0}, {"model": ""}, {"timeout_s": 0.0}]
)
def test_bad_arguments(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"base_url": "http://x/v1", "model": MODEL, "api_key": None}
    with pytest.raises(ValueError):
        OpenAIEmbedder(**{**arguments, **kwargs})


@pytest.mark.anyio
async def test_aembed_without_client_is_an_embedding_error(mock: Mock) -> None:
    with pytest.raises(EmbeddingError, match="AsyncClient"):
        await mock.embedder().aembed(["x"])


# ---------------------------------------------------------------- errors from the mock


@pytest.mark.anyio
async def test_wrong_key_is_401(mock: Mock, client: httpx.AsyncClient) -> None:
    wrong = "sk-wrong-secret-key-000111222"
    embedder = mock.embedder(api_key=wrong, client=client)
    with pytest.raises(EmbeddingError) as blocking:
        embedder.embed(["x"])
    with pytest.raises(EmbeddingError) as on_loop:
        await embedder.aembed(["x"])
    for caught in (blocking, on_loop):
        message = str(caught.value)
        assert "401" in message and "Incorrect API key" in message
        assert wrong not in message


def test_missing_key_is_401(mock: Mock) -> None:
    with pytest.raises(EmbeddingError, match=r"401.*didn't provide an API key"):
        mock.embedder(api_key=None).embed(["x"])


@pytest.mark.anyio
async def test_400_carries_the_service_message(mock: Mock, client: httpx.AsyncClient) -> None:
    embedder = mock.embedder(dimensions=5000, client=client)
    with pytest.raises(EmbeddingError, match=r"400 Bad Request: Invalid 'dimensions'"):
        embedder.embed(["x"])
    with pytest.raises(EmbeddingError, match=r"400 Bad Request: Invalid 'dimensions'"):
        await embedder.aembed(["x"])


@pytest.mark.anyio
async def test_connection_refused(client: httpx.AsyncClient) -> None:
    embedder = OpenAIEmbedder(base_url=closed_port_url(), model=MODEL, api_key=API_KEY,
                              client=client)
    with pytest.raises(EmbeddingError, match="ConnectError") as blocking:
        embedder.embed(["x"])
    with pytest.raises(EmbeddingError, match="ConnectError") as on_loop:
        await embedder.aembed(["x"])
    assert API_KEY not in str(blocking.value) + str(on_loop.value)


@pytest.mark.anyio
async def test_timeout(mock: Mock, client: httpx.AsyncClient) -> None:
    embedder = mock.embedder(client=client, timeout_s=0.3)
    mock.switch.set("stall_first", remaining=2)
    with pytest.raises(EmbeddingError, match="ReadTimeout"):
        embedder.embed(["x"])
    with pytest.raises(EmbeddingError, match="ReadTimeout"):
        await embedder.aembed(["x"])


@pytest.mark.parametrize("fault", ["malformed", "drop_mid"])
def test_broken_answers(mock: Mock, fault: str) -> None:
    mock.switch.set(fault, remaining=1)
    with pytest.raises(EmbeddingError, match=r"JSON|RemoteProtocolError"):
        mock.embedder().embed(["x"])


# ---------------------------------------------------------------- retries


def test_blocking_path_retries_a_429_then_succeeds(mock: Mock) -> None:
    mock.switch.set("http_429", remaining=1)
    before = mock.switch.requests
    vectors = mock.embedder().embed(TEXTS[:2])
    assert_unit_rows(vectors, 2, 256)
    assert mock.switch.requests == before + 2


def test_blocking_path_retries_twice_at_most(mock: Mock) -> None:
    mock.switch.set("http_503", remaining=None)
    before = mock.switch.requests
    with pytest.raises(EmbeddingError, match=r"503 Service Unavailable.*after 3 attempts"):
        mock.embedder().embed(["x"])
    assert mock.switch.requests == before + 3


def test_blocking_path_does_not_retry_a_used_up_quota(mock: Mock) -> None:
    """Regression: OpenAI's insufficient_quota 429 was tried three times; no wait cures it."""
    mock.switch.set("http_429_quota", remaining=None)
    before = mock.switch.requests
    with pytest.raises(EmbeddingError, match="429"):
        mock.embedder().embed(["x"])
    assert mock.switch.requests == before + 1


def test_blocking_path_does_not_retry_a_500(mock: Mock) -> None:
    mock.switch.set("http_500", remaining=None)
    before = mock.switch.requests
    with pytest.raises(EmbeddingError, match="500"):
        mock.embedder().embed(["x"])
    assert mock.switch.requests == before + 1


@pytest.mark.anyio
async def test_async_path_never_retries(mock: Mock, client: httpx.AsyncClient) -> None:
    mock.switch.set("http_429", remaining=1)
    before = mock.switch.requests
    embedder = mock.embedder(client=client)
    with pytest.raises(EmbeddingError, match="429 Too Many Requests: Rate limit reached"):
        await embedder.aembed(["x"])
    assert mock.switch.requests == before + 1
    assert (await embedder.aembed(["x"])).shape == (1, 256)


# ---------------------------------------------------------------- a scripted server


@dataclass
class Script:
    """What the scripted server answers next, and what it was sent."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    queue: list[Any] = field(default_factory=list)  # bodies answered first, one per request


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[str, Script]]:
    script = Script()

    async def embeddings(request: Request) -> Response:
        script.requests.append((dict(request.headers), json.loads(await request.body())))
        body = script.queue.pop(0) if script.queue else script.body
        if isinstance(body, bytes):
            return Response(body, script.status, headers=script.headers)
        return JSONResponse(body, script.status, headers=script.headers)

    app = Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"])])
    with serve(app) as url:
        yield f"{url}/v1", script


def item(index: int, vector: Any) -> dict[str, Any]:
    return {"object": "embedding", "index": index, "embedding": vector}


def test_request_body_and_headers(scripted: tuple[str, Script]) -> None:
    base, script = scripted
    script.status, script.body, script.requests = 200, {"data": [item(0, [1.0, 0.0])]}, []
    OpenAIEmbedder(base_url=base + "/", model="m", api_key="k", dimensions=2).embed(["hi"])
    OpenAIEmbedder(base_url=base, model="m", api_key=None).embed(["hi"])
    (with_key, body), (without_key, plain) = script.requests
    assert body == {"model": "m", "input": ["hi"], "encoding_format": "float", "dimensions": 2}
    assert plain == {"model": "m", "input": ["hi"], "encoding_format": "float"}
    assert with_key["authorization"] == "Bearer k"
    assert "authorization" not in without_key


def test_rows_follow_the_index_not_the_list_order(scripted: tuple[str, Script]) -> None:
    base, script = scripted
    script.status = 200
    script.body = {"data": [item(2, [0.0, 3.0]), item(0, [2.0, 0.0]), item(1, [1.0, 1.0])]}
    vectors = OpenAIEmbedder(base_url=base, model="m", api_key=None).embed(["a", "b", "c"])
    expected = np.array([[1.0, 0.0], [2**-0.5, 2**-0.5], [0.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([1, 2], "no 'data' list"),
        ({"data": "x"}, "no 'data' list"),
        ({"data": [item(0, [1.0])]}, "1 embeddings for 2 inputs"),
        ({"data": [item(0, [1.0]), item(0, [1.0])]}, "index 0 twice"),
        ({"data": [item(0, [1.0]), item(5, [1.0])]}, "valid index"),
        ({"data": [item(0, [1.0]), {"embedding": [1.0]}]}, "valid index"),
        ({"data": [item(0, [1.0]), item(1, [1.0, 2.0])]}, "different lengths"),
        ({"data": [item(0, "AACAPw=="), item(1, "AACAPw==")]}, "base64"),
        ({"data": [item(0, []), item(1, [])]}, "no embedding list"),
        ({"data": [item(0, ["1"]), item(1, [1.0])]}, "other than numbers"),
        ({"data": [item(0, [None]), item(1, [1.0])]}, "other than numbers"),
        ({"data": [item(0, [[1.0]]), item(1, [1.0])]}, "other than numbers"),
        (b'{"data": [{"index": 0, "embedding": [NaN]}, {"index": 1, "embedding": [1]}]}',
         "NaN"),
        (b"<html>gateway</html>", "did not answer JSON"),
    ],
)
def test_unusable_answers(scripted: tuple[str, Script], body: Any, problem: str) -> None:
    base, script = scripted
    script.status, script.body = 200, body
    with pytest.raises(EmbeddingError, match=problem):
        OpenAIEmbedder(base_url=base, model="m", api_key=None).embed(["a", "b"])


def test_ignored_dimensions_are_an_error(scripted: tuple[str, Script]) -> None:
    base, script = scripted
    script.status, script.body = 200, {"data": [item(0, [1.0, 0.0, 0.0])]}
    with pytest.raises(EmbeddingError, match="3 dimensions, not the 2 asked for"):
        OpenAIEmbedder(base_url=base, model="m", api_key=None, dimensions=2).embed(["a"])


def test_widths_must_agree_across_batches(scripted: tuple[str, Script]) -> None:
    base, script = scripted
    script.status = 200
    script.queue = [{"data": [item(0, [1.0, 0.0])]}, {"data": [item(0, [1.0, 0.0, 0.0])]}]
    embedder = OpenAIEmbedder(base_url=base, model="m", api_key=None, batch_size=1)
    with pytest.raises(EmbeddingError, match="across batches"):
        embedder.embed(["a", "b"])


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ({"error": {"message": "model 'm' not found", "type": "x"}}, ": model 'm' not found"),
        ({"error": "model 'm' not found, try pulling it first"}, ": model 'm' not found, try"),
        (b"Bad gateway", "404 Not Found"),
    ],
)
def test_status_errors_show_the_service_message(
    scripted: tuple[str, Script], body: Any, shown: str
) -> None:
    base, script = scripted
    script.status, script.body = 404, body
    with pytest.raises(EmbeddingError, match=shown):
        OpenAIEmbedder(base_url=base, model="m", api_key=None).embed(["a"])


@pytest.mark.anyio
async def test_the_key_never_reaches_the_message(
    scripted: tuple[str, Script], client: httpx.AsyncClient
) -> None:
    base, script = scripted
    # A careless gateway echoes the whole key back in its error.
    script.status, script.body = 401, {"error": {"message": f"bad key {API_KEY} for you"}}
    embedder = OpenAIEmbedder(base_url=base, model="m", api_key=API_KEY, client=client)
    with pytest.raises(EmbeddingError) as blocking:
        embedder.embed(["a"])
    with pytest.raises(EmbeddingError) as on_loop:
        await embedder.aembed(["a"])
    for caught in (blocking, on_loop):
        assert API_KEY not in str(caught.value)
        assert "bad key *** for you" in str(caught.value)


def test_retry_after_is_capped_and_dates_are_read(
        scripted: tuple[str, Script], monkeypatch: pytest.MonkeyPatch) -> None:
    from server.kb.embedders import openai_embeddings as module

    response = httpx.Response(429, headers={"retry-after": "3600"})
    assert module._retry_wait(response, 1) == module.MAX_RETRY_WAIT_S
    soon = httpx.Response(503, headers={"retry-after": "0.25"})
    assert module._retry_wait(soon, 1) == 0.25
    past = httpx.Response(503, headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert module._retry_wait(past, 1) == 0.0
    assert module._retry_wait(httpx.Response(429), 2) == module.BACKOFF_S[1]
    # And the blocking path does wait for the service's Retry-After.
    base, script = scripted
    script.status, script.body, script.headers = 429, {"error": {"message": "slow"}}, {
        "retry-after": "0.2"
    }
    waits: list[float] = []  # the waits it asks for, none taken (only the module's time)
    monkeypatch.setattr(module, "time", SimpleNamespace(sleep=waits.append))
    try:
        with pytest.raises(EmbeddingError, match=r"429.*slow.*after 3 attempts"):
            OpenAIEmbedder(base_url=base, model="m", api_key=None).embed(["a"])
    finally:
        script.headers = {}
    assert waits == [0.2, 0.2]
