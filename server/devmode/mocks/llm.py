"""Mock OpenAI-compatible model server for dev mode (`assist-panel dev --llm mock`).

It speaks OpenAI's chat-completions protocol byte for byte (streamed chunks,
`[DONE]`, usage, error shapes), so the panel's real `openai` generator runs
against it unchanged. The answer is deterministic and grounded: the sentences of
the `<article>` blocks in the last user message that best match its
`Question:` line, each cited `[N]`.

It refuses what OpenAI refuses, in OpenAI's words: a wrong or missing API key
(401), a body that is not JSON or has a field the public API does not know (400
"Unrecognized request argument supplied"), a missing or empty `model` (400) or one
it does not serve (404 `model_not_found`: it serves `MockLLMConfig.model` alone), a
`max_tokens` (or `max_completion_tokens`) over `MockLLMConfig.max_output_tokens`,
and a prompt that with that limit does not fit `MockLLMConfig.context_tokens` (400
`context_length_exceeded`; prompt tokens counted as `usage.prompt_tokens` counts them).

Faults (see `FAULTS`) make it misbehave: stalls, slow or broken streams, dropped
connections, and OpenAI's error answers (`http_400`, `http_403`, `http_429`,
`http_429_quota`, `http_500`, `http_503`; 429 and 503 carry
`retry-after: MockLLMConfig.retry_after_s`, except `http_429_quota`, OpenAI's
`insufficient_quota`, which waiting does not cure).
Which fault a chat completion gets, first match wins:

1. its `X-Mock-Fault` header (`none` turns any fault off for that request);
2. the runtime switch, while set: `PUT /mock/fault {"fault": name|null,
   "remaining": int|null}` (or `app.state.fault_switch.set(fault, remaining)`)
   applies `fault` to the next `remaining` completions without the header
   (null: until changed), then no fault at all: `MockLLMConfig.fault` does not
   come back until `DELETE /mock/fault` (or `.clear()`);
3. `MockLLMConfig.fault`, for the whole run.

`GET /mock/fault` answers `{"fault", "remaining", "requests", "next"}`, where
`requests` counts every `POST /v1/chat/completions` received, error answers
included (see `llm_control`). `/mock/fault` is the mock's own control API, not
OpenAI's, and needs no API key; it exists so tests can switch faults while a
client that cannot send the header (the panel's `openai` generator) is running.

`GET /mock/timings` tells when each completion was received and when its first
token and last byte went out, keyed by the request's `X-Request-Id` (see
`llm_timings`); the benchmarks use it to separate the model's time from the panel's.

`POST /v1/embeddings` answers OpenAI's embeddings contract with deterministic
hashed bag-of-words vectors; its faults have their own switch,
`/mock/embeddings/fault` (see `llm_embeddings`).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import math
import re
import secrets
import string
import time
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from server.devmode.mocks.llm_control import FaultControls, FaultSwitch, fault_error
from server.devmode.mocks.llm_embeddings import MockEmbeddings
from server.devmode.mocks.llm_faults import (
    FAULTS,
    CompletionPlan,
    CompletionResponse,
    MockConnectionDrop,
    StreamTracker,
    dumps,
)
from server.devmode.mocks.llm_requests import (
    OpenAIError,
    check_token_limits,
    common_headers,
    parse_body,
)
from server.devmode.mocks.llm_timings import TimingLog

__all__ = [
    "DEFAULT_MODEL",
    "FAULTS",
    "NO_ANSWER",
    "FaultSwitch",
    "MockConnectionDrop",
    "MockLLMConfig",
    "StreamTracker",
    "create_mock_llm_app",
    "grounded_answer",
    "tokenize",
]

FAULT_HEADER = "x-mock-fault"
#: The one model the mock serves unless its config names another; dev mode points the
#: panel's `ASSIST_OPENAI_MODEL` at it.
DEFAULT_MODEL = "mock-assist-1"
NO_ANSWER = "I could not find this in the knowledge base."


@dataclass(frozen=True)
class MockLLMConfig:
    """Settings of one mock model server.

    `tokens_per_second <= 0` streams unpaced (useful in tests). `fault` applies to
    every chat completion unless a request's `X-Mock-Fault` header or the runtime
    fault switch says otherwise (see the module docstring). `retry_after_s` is the
    `retry-after` header of the `http_429` and `http_503` faults ("1" when whole,
    else the decimal, e.g. "0.2"). `context_tokens` and `max_output_tokens` are the
    model's limits, as the panel's defaults assume them (`ASSIST_MODEL_CONTEXT_TOKENS`
    8192; `ASSIST_MAX_TOKENS` 512 is well under the output limit).
    """

    api_key: str | None = None
    model: str = DEFAULT_MODEL
    tokens_per_second: float = 40.0
    fault: str | None = None
    drip_interval_s: float = 2.0  # gap between tokens under the `drip` fault
    stall_after_tokens: int = 3  # tokens sent before `stall_mid` goes silent
    drop_after_tokens: int = 3  # tokens sent before `drop_mid` drops the connection
    first_token_delay_s: float = 0.0  # extra time to first token, to mimic a real model
    max_answer_sentences: int = 3
    retry_after_s: float = 1.0  # `retry-after` of the http_429 and http_503 faults
    context_tokens: int = 8192  # prompt and completion together
    max_output_tokens: int = 4096  # the most `max_tokens` may ask for

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown mock LLM fault {self.fault!r}; valid: {', '.join(FAULTS)}")
        if self.drip_interval_s < 0 or self.first_token_delay_s < 0:
            raise ValueError("mock LLM delays must be >= 0")
        if min(self.stall_after_tokens, self.drop_after_tokens) < 0:
            raise ValueError("mock LLM fault token counts must be >= 0")
        if self.max_answer_sentences < 1:
            raise ValueError("max_answer_sentences must be >= 1")
        if not math.isfinite(self.retry_after_s) or self.retry_after_s < 0:
            raise ValueError("retry_after_s must be a finite number >= 0")
        if not 1 <= self.max_output_tokens <= self.context_tokens:
            raise ValueError("mock LLM limits need 1 <= max_output_tokens <= context_tokens")


# ---------------------------------------------------------------- grounding

_STOP_WORDS_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could d did do does doing don down during each
    few for from further had has have having he her here hers him his how i if in into is it its
    itself just ll m me more most my myself no nor not now of off on once only or other our ours
    out over own re s same she should so some such t than that the their theirs them then there
    these they this those through to too under until up us ve very was we were what when where
    which while who whom why will with would you your yours please hi hello thanks thank get
    got need want know tell"""
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_ARTICLE_RE = re.compile(r"<article\b([^>]*)>(.*?)</article\s*>", re.S | re.I)
_INDEX_RE = re.compile(r"""\bindex\s*=\s*["']?(\d+)""")
_QUESTION_RE = re.compile(r"(?im)^[ \t]*question:[ \t]*")
_WORD_RE = re.compile(r"[a-z0-9]+")
_LINK_RE = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_LIST_MARK_RE = re.compile(r"^(?:[-*+>]|\d+[.)])\s+")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9$])")
_TOKEN_RE = re.compile(r"\s*\S+")


def _words(text: str) -> frozenset[str]:
    """Lowercased content words, with a light plural fold ("bills" -> "bill")."""
    out: set[str] = set()
    for word in _WORD_RE.findall(text.lower()):
        if word in _STOP_WORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.add(word)
    return frozenset(out)


def _blocks(article_text: str) -> list[str]:
    """Paragraphs and list items of a markdown-ish text; hard-wrapped lines are rejoined."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for raw_line in html.unescape(article_text).splitlines():
        line = raw_line.strip()
        if not line or line.startswith(("#", "<", "---")):  # blank, heading, stray tag, rule
            current = None
            continue
        if current is None or _LIST_MARK_RE.match(line):
            current = []
            blocks.append(current)
        current.append(line)
    return [" ".join(block) for block in blocks]


def _sentences(article_text: str) -> list[str]:
    """Plain-text sentences of an article (markdown headings dropped, markup stripped)."""
    out: list[str] = []
    for block in _blocks(article_text):
        text = _LIST_MARK_RE.sub("", _LINK_RE.sub(r"\1", block))
        text = " ".join(text.replace("**", "").replace("__", "").replace("`", "").split())
        out.extend(s for s in _SENTENCE_END_RE.split(text) if len(s.split()) >= 3)
    return out


def _message_text(content: Any) -> str:
    """Text of a message's content: a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def grounded_answer(prompt: str, max_sentences: int = 3) -> str:
    """The mock's deterministic answer to the panel's prompt (see module docstring).

    Picks the `max_sentences` article sentences sharing the most content words
    with the question, keeps them in article order and cites each `[N]`.
    """
    articles = list(_ARTICLE_RE.finditer(prompt))
    questions = list(_QUESTION_RE.finditer(prompt))
    # Without a Question line, match against everything outside the articles.
    question = prompt[questions[-1].end() :] if questions else _ARTICLE_RE.sub(" ", prompt)
    query = _words(question)

    # (score, article position, sentence position, sentence, citation)
    scored: list[tuple[int, int, int, str, str]] = []
    for pos, match in enumerate(articles):
        index = _INDEX_RE.search(match.group(1))
        citation = index.group(1) if index else str(pos + 1)
        for spos, sentence in enumerate(_sentences(match.group(2))):
            score = len(query & _words(sentence))
            if score:
                scored.append((score, pos, spos, sentence, citation))
    # Best first; ties go to the earlier article and sentence (sort is stable).
    best = sorted(scored, key=lambda s: -s[0])
    chosen: list[tuple[int, int, int, str, str]] = []
    for item in best:
        if all(item[3] != c[3] for c in chosen):
            chosen.append(item)
        if len(chosen) == max_sentences:
            break
    if not chosen:
        return NO_ANSWER
    chosen.sort(key=lambda s: (s[1], s[2]))
    return " ".join(f"{sentence} [{citation}]" for _, _, _, sentence, citation in chosen)


def tokenize(text: str) -> tuple[str, ...]:
    """Word-ish tokens (leading space kept, punctuation attached); they join back to `text`."""
    return tuple(_TOKEN_RE.findall(text))


def _count_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    # Roughly what a BPE tokenizer yields, plus OpenAI's per-message overhead.
    return (
        sum(4 + len(re.findall(r"\w+|[^\w\s]", _message_text(m.get("content")))) for m in messages)
        + 3
    )


# ---------------------------------------------------------------- app


class _MockLLM:
    """Request handlers bound to one config (no module-level state)."""

    def __init__(self, config: MockLLMConfig, tracker: StreamTracker, switch: FaultSwitch,
                 timings: TimingLog) -> None:
        self.config = config
        self.tracker = tracker
        self.switch = switch
        self.timings = timings
        digest = hashlib.sha256(config.model.encode()).hexdigest()
        self.fingerprint = f"fp_{digest[:10]}"

    def _check_auth(self, request: Request) -> None:
        key = self.config.api_key
        if key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        given = given.strip()
        if scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), key.encode()):
            return
        if not given:
            message = (
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
        else:
            shown = f"{given[:3]}{'*' * max(len(given) - 7, 0)}{given[-4:]}"
            shown = shown if len(given) > 8 else "*" * len(given)
            message = (
                f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
        raise OpenAIError(401, message, code="invalid_api_key")

    async def chat_completions(self, request: Request) -> Response:
        """POST /v1/chat/completions."""
        self.switch.count_request()
        timing = self.timings.begin(request.headers.get("x-request-id"))
        try:
            self._check_auth(request)
            try:
                raw = await request.body()
            except ClientDisconnect:
                # The client left while sending (e.g. its stream was cancelled):
                # nobody is there to answer, and that is not a server error.
                timing.end(client_left=True)
                return Response(status_code=499)
            body = parse_body(raw)
            model = self._chat_model(body)
            prompt_tokens = _count_prompt_tokens(body["messages"])
            check_token_limits(
                body,
                prompt_tokens,
                context_tokens=self.config.context_tokens,
                max_output_tokens=self.config.max_output_tokens,
            )
            # Picked last, so only a valid request uses up one of the switch's `remaining`.
            fault = self.switch.pick(request.headers.get(FAULT_HEADER))
            error = fault_error(fault, model, self.config.retry_after_s)
            if error is not None:
                raise error
        except OpenAIError as error:
            timing.end()
            return error.response()
        return CompletionResponse(
            self._plan(body, fault, prompt_tokens),
            self.tracker,
            stream=bool(body.get("stream")),
            headers=common_headers(),
            timing=timing,
        )

    def _plan(self, body: dict[str, Any], fault: str | None, prompt_tokens: int
              ) -> CompletionPlan:
        config = self.config
        messages: list[dict[str, Any]] = body["messages"]
        users = [m for m in messages if m.get("role") == "user"]
        prompt = _message_text(users[-1].get("content")) if users else ""
        tokens = tokenize(grounded_answer(prompt, config.max_answer_sentences))
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish_reason = "stop"
        if isinstance(limit, int) and len(tokens) > limit:
            tokens, finish_reason = tokens[:limit], "length"
        if fault == "drip":
            interval = config.drip_interval_s
        else:
            tps = config.tokens_per_second
            interval = 1.0 / tps if tps > 0 else 0.0
        options = body.get("stream_options") or {}
        alphabet = string.ascii_letters + string.digits
        return CompletionPlan(
            completion_id="chatcmpl-" + "".join(secrets.choice(alphabet) for _ in range(29)),
            created=int(time.time()),
            model=config.model,
            system_fingerprint=self.fingerprint,
            tokens=tokens,
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            include_usage=options.get("include_usage") is True,
            fault=fault,
            token_interval_s=interval,
            first_token_delay_s=config.first_token_delay_s,
            fault_after_tokens=(
                config.drop_after_tokens if fault == "drop_mid" else config.stall_after_tokens
            ),
        )

    def _serves(self, model: object) -> bool:
        """Whether `model` names the model this mock serves (its only one)."""
        return model == self.config.model

    def _chat_model(self, body: dict[str, Any]) -> str:
        """The body's `model` when this mock serves it; else OpenAI's answer: 400 when
        it is missing or empty, 404 `model_not_found` for another (vLLM answers 404 too)."""
        model = body.get("model")
        if not model:  # parse_body already refused one that is not a string
            raise OpenAIError(400, "you must provide a model parameter")
        if not self._serves(model):
            raise OpenAIError(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        return self.config.model

    def _model(self) -> dict[str, Any]:
        return {
            "id": self.config.model,
            "object": "model",
            "created": 0,
            "owned_by": "assist-panel",
        }

    async def list_models(self, request: Request) -> Response:
        """GET /v1/models."""
        try:
            self._check_auth(request)
        except OpenAIError as error:
            return error.response()
        body = {"object": "list", "data": [self._model()]}
        return Response(dumps(body), headers=common_headers(), media_type="application/json")

    async def retrieve_model(self, request: Request) -> Response:
        """GET /v1/models/{model}."""
        try:
            self._check_auth(request)
            if not self._serves(request.path_params["model"]):
                raise OpenAIError(
                    404,
                    f"The model '{request.path_params['model']}' does not exist",
                    param="model",
                    code="model_not_found",
                )
        except OpenAIError as error:
            return error.response()
        return Response(
            dumps(self._model()), headers=common_headers(), media_type="application/json"
        )


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and methods, in OpenAI's error shape rather than Starlette's text."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = f"Invalid URL ({request.method} {request.url.path})"
    return OpenAIError(status, message).response()


def create_mock_llm_app(config: MockLLMConfig) -> Starlette:
    """Build the mock model server.

    `app.state.config` is the config, `app.state.streams` a `StreamTracker`
    counting in-flight completions (so tests can check nothing leaks; its `total`
    counts only completions that got a 200 answer), and `app.state.fault_switch`
    the runtime `FaultSwitch` behind `/mock/fault` (its `requests` counts every
    chat-completions call, error answers included), and `app.state.timings` the
    `TimingLog` behind `/mock/timings` (see `llm_timings`).
    `app.state.embeddings_fault_switch` is the `FaultSwitch` of `/v1/embeddings`,
    behind `/mock/embeddings/fault` (see `llm_embeddings`).
    """
    tracker = StreamTracker()
    switch = FaultSwitch(config.fault)
    timings = TimingLog()
    mock = _MockLLM(config, tracker, switch, timings)
    # Same key check and same idea of a word as the chat half.
    embeddings = MockEmbeddings(check_auth=mock._check_auth, words=_words,
                                retry_after_s=config.retry_after_s)
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", mock.chat_completions, methods=["POST"]),
            Route("/v1/models", mock.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", mock.retrieve_model, methods=["GET"]),
            *FaultControls(switch).routes(),
            *timings.routes(),
            *embeddings.routes(),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.config = config
    app.state.streams = tracker
    app.state.fault_switch = switch
    app.state.timings = timings
    app.state.embeddings_fault_switch = embeddings.switch
    return app
