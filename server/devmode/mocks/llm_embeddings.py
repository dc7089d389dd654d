"""Embeddings half of the mock model server: `POST /v1/embeddings`, as OpenAI answers it.

Body `{model, input, encoding_format?, dimensions?, user?}` where `input` is a
string, an array of strings, an array of token ids, or an array of token-id
arrays; the answer is `{"object": "list", "data": [{"object": "embedding",
"index", "embedding"}], "model", "usage"}`. `encoding_format: "base64"` (what the
official `openai` client asks for by default) sends each vector as base64 of
little-endian float32; `"float"` (or nothing) as a JSON array holding the same
float32 values.

The vectors are a hashed bag of features, deterministic across runs and
machines: the lowercased content words of the text (the chat mock's stop words
dropped and plurals folded, so both halves of the mock agree on what a word is)
and, more lightly, their character trigrams (so "reset" and "resetting" still
meet), each hashed to a signed slot of a fixed-size vector (256, or
`dimensions`), then L2-normalised. Texts sharing words are close; unrelated
texts are near orthogonal. Token-id inputs hash their ids the same way.

What OpenAI refuses is refused with its `{"error": {...}}` shape and 400: no or
empty input, an empty string, items of the wrong type, more than 2048 inputs,
an input over 8192 tokens, `dimensions` outside 1..3072, an unknown
`encoding_format`, a missing `model`; a model not in `EMBEDDING_MODELS` (OpenAI's
names) is a 404 `model_not_found`. A wrong or missing key is a 401 when the mock
has one.

Faults have their own runtime switch, `PUT/GET/DELETE /mock/embeddings/fault`
(same body and answers as `/mock/fault`; `app.state.embeddings_fault_switch`),
or the request's `X-Mock-Fault` header. It is a separate switch because
sharing the chat one would let an embedding call use up a `remaining` meant for
a chat completion (the panel embeds a query right before it asks the model),
and the config's `fault` (`assist-panel dev --llm-fault`) is about the chat
stream, so it does not apply here. Its `requests` counts embedding calls. The
status faults (`http_400`, `http_403`, `http_429`, `http_429_quota`, `http_500`,
`http_503`) answer as for chat; `malformed` sends a 200 whose JSON is cut in half; `stall_first`
and `stall_mid` never answer (until the client leaves); `drop_mid` drops the
connection halfway through the body; `drip`, `endless` and `flood`, which are about
streamed tokens, answer normally.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import re
import struct
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from server.devmode.mocks.llm_control import FaultControls, FaultSwitch, fault_error
from server.devmode.mocks.llm_faults import MockConnectionDrop, dumps
from server.devmode.mocks.llm_requests import (
    OpenAIError,
    common_headers,
    invalid_type,
    json_body,
)

#: Vector size when the request gives no `dimensions`.
DEFAULT_DIMENSIONS = 256
#: Largest `dimensions` accepted (text-embedding-3-large's full size).
MAX_DIMENSIONS = 3072
#: Most inputs in one request, as OpenAI allows.
MAX_INPUTS = 2048
#: The embedding models served, by OpenAI's names (the panel's default is the first);
#: any other is refused as OpenAI refuses it (404 ``model_not_found``), a missing one
#: with a 400.
EMBEDDING_MODELS = ("text-embedding-3-small", "text-embedding-3-large",
                    "text-embedding-ada-002")

#: Longest input, in (roughly counted) tokens, as OpenAI's embedding models allow.
MAX_INPUT_TOKENS = 8192
#: Where tests and scripts switch the embeddings' faults at run time.
CONTROL_PATH = "/mock/embeddings/fault"

ENCODINGS = ("float", "base64")
FAULT_HEADER = "x-mock-fault"
_STALLS = frozenset({"stall_first", "stall_mid"})
# Character trigrams count less than whole words: they only break ties between
# texts that share no word but do share word stems.
_TRIGRAM_WEIGHT = 0.35
_ANY_WORD_RE = re.compile(r"\w+")
_TOKEN_COUNT_RE = re.compile(r"\w+|[^\w\s]")

Words = Callable[[str], Iterable[str]]
EmbeddingInput = str | list[int]


# ---------------------------------------------------------------- vectors


@functools.lru_cache(maxsize=65536)
def _slot(feature: str, dim: int) -> tuple[int, float]:
    """The slot and sign of one feature: a stable hash (Python's own is salted per run)."""
    value = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    # The sign comes from bits the modulo hardly uses, so collisions cancel out on average.
    return value % dim, 1.0 if value >> 63 else -1.0


def _features(text: str, words: Words) -> list[tuple[str, float]]:
    content = sorted(set(words(text)))
    if not content:
        # Only stop words ("how do I?"): use them rather than send a zero vector.
        content = sorted(set(_ANY_WORD_RE.findall(text.lower())))
    if not content:
        # Punctuation or blanks only: still a unit vector, the same for the same text.
        return [("raw:" + text.strip(), 1.0)]
    features = [("w:" + word, 1.0) for word in content]
    for word in content:
        padded = f"<{word}>"
        grams = [padded[i : i + 3] for i in range(len(padded) - 2)]
        # Spread a word's trigram weight so long words do not outweigh short ones.
        weight = _TRIGRAM_WEIGHT / math.sqrt(len(grams))
        features.extend(("g:" + gram, weight) for gram in grams)
    return features


def embed_features(features: Iterable[tuple[str, float]], dim: int) -> list[float]:
    """A unit-length vector of `dim` floats (float32 values) from weighted features."""
    vector = [0.0] * dim
    for feature, weight in features:
        slot, sign = _slot(feature, dim)
        vector[slot] += sign * weight
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:  # every feature cancelled out: rare, but never answer a zero vector
        vector[0], norm = 1.0, 1.0
    # Rounded to float32, so the float and base64 answers carry the very same numbers.
    packed = struct.pack(f"<{dim}f", *(v / norm for v in vector))
    return list(struct.unpack(f"<{dim}f", packed))


def embed_input(item: EmbeddingInput, dim: int, words: Words) -> list[float]:
    """The mock's vector of one input (a text, or an array of token ids)."""
    if isinstance(item, str):
        return embed_features(_features(item, words), dim)
    return embed_features(((f"t:{token}", 1.0) for token in sorted(set(item))), dim)


def count_tokens(item: EmbeddingInput) -> int:
    """Tokens of one input: ids are counted as given, text roughly as a BPE would."""
    if isinstance(item, str):
        return max(1, len(_TOKEN_COUNT_RE.findall(item)))
    return len(item)


def _float_json(values: Sequence[float]) -> list[float]:
    # Nine significant digits give back the same float32 and keep the body short.
    return [float(f"{v:.9g}") for v in values]


def _base64(values: Sequence[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


# ---------------------------------------------------------------- request checks


@dataclass(frozen=True)
class EmbeddingsRequest:
    """A validated `POST /v1/embeddings` body."""

    model: str | None
    inputs: list[EmbeddingInput]
    encoding_format: str
    dimensions: int


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _empty(param: str, what: str) -> OpenAIError:
    article = "a string" if what == "string" else "an array"
    return OpenAIError(
        400,
        f"Invalid '{param}': empty {what}. Expected {article} with minimum length 1, "
        f"but got an empty {what} instead.",
        param=param,
        code="empty_string" if what == "string" else "empty_array",
    )


def _token_ids(param: str, value: list[Any]) -> list[int]:
    if not value:
        raise _empty(param, "array")
    for i, token in enumerate(value):
        if not _is_int(token):
            raise invalid_type(f"{param}[{i}]", "an integer", token)
        if token < 0:
            raise OpenAIError(
                400,
                f"Invalid '{param}[{i}]': integer below minimum value. "
                f"Expected a value >= 0, but got {token} instead.",
                param=f"{param}[{i}]",
                code="integer_below_min_value",
            )
    return value


def _inputs(value: Any) -> list[EmbeddingInput]:
    """`input` as a list of texts or token-id arrays, refused as OpenAI refuses it."""
    if isinstance(value, str):
        if not value:
            raise _empty("input", "string")
        return [value]
    if not isinstance(value, list):
        raise invalid_type("input", "a string or an array", value)
    if not value:
        raise _empty("input", "array")
    if len(value) > MAX_INPUTS:
        raise OpenAIError(
            400,
            f"Invalid 'input': array too long. Expected an array with maximum length "
            f"{MAX_INPUTS}, but got an array with length {len(value)} instead.",
            param="input",
            code="array_above_max_length",
        )
    if _is_int(value[0]):
        # One text given as token ids.
        return [_token_ids("input", value)]
    # Every item must be of the first item's kind: token-id arrays, or else strings.
    want_text = not isinstance(value[0], list)
    out: list[EmbeddingInput] = []
    for i, item in enumerate(value):
        param = f"input[{i}]"
        if want_text:
            if not isinstance(item, str):
                raise invalid_type(param, "a string", item)
            if not item:
                raise _empty(param, "string")
            out.append(item)
        else:
            if not isinstance(item, list):
                raise invalid_type(param, "an array of integers", item)
            out.append(_token_ids(param, item))
    return out


def parse_embeddings_body(raw: bytes) -> EmbeddingsRequest:
    """Decode and validate an embeddings body the way OpenAI reports problems."""
    body = json_body(raw)
    if "input" not in body:
        raise OpenAIError(
            400,
            "Missing required parameter: 'input'.",
            param="input",
            code="missing_required_parameter",
        )
    inputs = _inputs(body["input"])
    for i, item in enumerate(inputs):
        tokens = count_tokens(item)
        if tokens > MAX_INPUT_TOKENS:
            raise OpenAIError(
                400,
                f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however "
                f"you requested {tokens} tokens in input[{i}]. Please reduce your input.",
                param="input",
                code="context_length_exceeded",
            )
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise invalid_type("model", "a string", model)
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise invalid_type("user", "a string", user)
    encoding = body.get("encoding_format")
    if encoding is None:
        encoding = "float"
    if encoding not in ENCODINGS:
        raise OpenAIError(
            400,
            f"Invalid value: {encoding!r}. Supported values are: 'float' and 'base64'.",
            param="encoding_format",
            code="invalid_value",
        )
    dimensions = body.get("dimensions")
    if dimensions is None:
        dimensions = DEFAULT_DIMENSIONS
    if not _is_int(dimensions):
        raise invalid_type("dimensions", "an integer", dimensions)
    if not 1 <= dimensions <= MAX_DIMENSIONS:
        low = dimensions < 1
        raise OpenAIError(
            400,
            f"Invalid 'dimensions': integer {'below minimum' if low else 'above maximum'} "
            f"value. Expected a value {'>= 1' if low else f'<= {MAX_DIMENSIONS}'}, "
            f"but got {dimensions} instead.",
            param="dimensions",
            code="integer_below_min_value" if low else "integer_above_max_value",
        )
    return EmbeddingsRequest(
        model=model, inputs=inputs, encoding_format=encoding, dimensions=dimensions
    )


def embeddings_answer(request: EmbeddingsRequest, model: str, words: Words) -> dict[str, Any]:
    """OpenAI's `list` of embeddings for a validated request."""
    data = []
    for index, item in enumerate(request.inputs):
        vector = embed_input(item, request.dimensions, words)
        encoded: list[float] | str = (
            _base64(vector) if request.encoding_format == "base64" else _float_json(vector)
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(count_tokens(item) for item in request.inputs)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# ---------------------------------------------------------------- faults and the endpoint


def embeddings_fault_error(
    fault: str | None, model: str, retry_after_s: float
) -> OpenAIError | None:
    """The HTTP error of a status fault, worded for embeddings where chat's would not fit."""
    if fault == "http_400":
        return OpenAIError(
            400,
            f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you "
            f"requested {MAX_INPUT_TOKENS + 1} tokens. Please reduce your input. "
            "(mock fault http_400)",
            param="input",
            code="context_length_exceeded",
        )
    return fault_error(fault, model, retry_after_s)


class _NeverAnswers(Response):
    """`stall_*`: sends nothing and returns once the client has gone (so nothing leaks)."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass


class _DroppedHalfway(Response):
    """`drop_mid`: promises the whole body, sends half of it, then breaks the connection."""

    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        super().__init__(body, headers=headers, media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        raise MockConnectionDrop("mock fault drop_mid: connection dropped on purpose")


class MockEmbeddings:
    """`POST /v1/embeddings` and its fault switch, bound to the chat mock's auth and words."""

    def __init__(
        self,
        *,
        check_auth: Callable[[Request], None],
        words: Words,
        retry_after_s: float,
        models: tuple[str, ...] = EMBEDDING_MODELS,
        switch: FaultSwitch | None = None,
    ) -> None:
        self.models = models
        self.check_auth = check_auth
        self.words = words
        self.retry_after_s = retry_after_s
        # No config fault: `--llm-fault` is about the chat stream (see module docstring).
        self.switch = switch if switch is not None else FaultSwitch()

    def _served(self, model: str | None) -> str:
        """``model`` when it is one of the embedding models served; else OpenAI's
        answer: 400 when it is missing or empty, 404 ``model_not_found`` for another."""
        if not model:
            raise OpenAIError(400, "you must provide a model parameter")
        if model not in self.models:
            raise OpenAIError(
                404, f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found")
        return model

    def routes(self) -> list[BaseRoute]:
        """The endpoint and its control route."""
        control: Callable[[Request], Awaitable[Response]] = FaultControls(self.switch).handle
        return [
            Route("/v1/embeddings", self.create, methods=["POST"]),
            Route(CONTROL_PATH, control, methods=["GET", "PUT", "DELETE"]),
        ]

    async def create(self, request: Request) -> Response:
        """POST /v1/embeddings."""
        self.switch.count_request()
        try:
            self.check_auth(request)
            try:
                raw = await request.body()
            except ClientDisconnect:
                return Response(status_code=499)  # nobody left to answer
            body = parse_embeddings_body(raw)
            model = self._served(body.model)
            # Picked last, so only a valid request uses up one of the switch's `remaining`.
            fault = self.switch.pick(request.headers.get(FAULT_HEADER))
            error = embeddings_fault_error(fault, model, self.retry_after_s)
            if error is not None:
                raise error
        except OpenAIError as error:
            return error.response()
        if fault in _STALLS:
            return _NeverAnswers()
        # 2048 long texts take a while to hash: off the loop, so chat streams keep flowing.
        answer = await anyio.to_thread.run_sync(embeddings_answer, body, model, self.words)
        content = dumps(answer)
        if fault == "drop_mid":
            return _DroppedHalfway(content, common_headers())
        if fault == "malformed":
            content = content[: len(content) // 2]  # a complete HTTP message, broken JSON
        return Response(content, headers=common_headers(), media_type="application/json")
