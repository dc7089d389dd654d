"""The ``openai`` generator: any OpenAI-compatible streaming chat-completions endpoint.

Works with OpenAI, vLLM, Ollama, llama.cpp, LiteLLM and other servers that speak
``POST {base}/chat/completions`` with ``stream: true``. The request goes through the
app's lean stream client (server/web/upstream.py, or upstream_h2.py over HTTP/2) when
it has one, else through the shared ``httpx.AsyncClient`` (when the environment names
a proxy). Both raise httpx's
errors; they and bad statuses are translated into ``UpstreamError`` here, at the
boundary.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import httpx
import orjson

from server.errors import UpstreamError
from server.pipeline.generators.base import Chunk, GenerationRequest
from server.pipeline.generators.citations import CitationFilter
from server.pipeline.generators.event_stream import EventStreamParser
from server.pipeline.generators.prompt import build_prompt
from server.retry_after import retry_after_seconds
from server.web.upstream_body import ModelStreams, Origin, UpstreamResponse

log = logging.getLogger("assist_panel.model")
_FINISH = {"stop": "stop", "length": "max_tokens", "content_filter": "content_filter"}
# No read timeout on the stream: the pipeline's watchdog already ends a model that goes
# silent (first token, stall, hard limit) and the stream's end closes the request, and
# httpcore would otherwise arm a timer around every network read, thousands a second.
_STREAM_TIMEOUT = httpx.Timeout(connect=5.0, read=None, write=10.0, pool=5.0)


class _Response(Protocol):
    """What the generator reads of a response: an ``httpx.Response`` or a
    :class:`~server.web.upstream_body.UpstreamResponse`."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def aiter_raw(self) -> AsyncIterator[bytes]: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aread(self) -> bytes: ...

    async def aclose(self) -> None: ...


class OpenAIChatGenerator:
    """Streams a chat completion through ``streams`` (the app's lean stream client) or,
    without one, the shared ``httpx.AsyncClient``."""

    name = "openai"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        context_tokens: int = 8192,
        temperature: float = 0.2,
        streams: ModelStreams | None = None,
    ) -> None:
        self.client = client
        self.streams = streams
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._origin = Origin(self.url) if streams is not None else None
        self.model = model
        self._api_key = api_key
        self.context_tokens = context_tokens
        self.temperature = temperature

    def _request(self, request: GenerationRequest) -> tuple[_OneShot, dict[str, str],
                                                              CitationFilter]:
        """The request's body, sent once and then let go, its headers, and the filter
        that checks the answer's citations against the prompt's articles.

        Built here, so the stream (minutes long, thousands open) holds none of the
        prompt: neither its messages, nor the encoded body, nor httpx's copy of it.
        """
        messages, articles = build_prompt(request, context_tokens=self.context_tokens)
        # orjson: compact UTF-8 JSON, as json.dumps(ensure_ascii=False, separators=(",",
        # ":")) writes it, in a fraction of its time (the prompt is a few KB).
        body = orjson.dumps({
            "model": self.model,
            "messages": messages,
            "stream": True,
            # The last event then reports usage: done's metrics count real tokens.
            "stream_options": {"include_usage": True},
            "max_tokens": request.max_tokens,
            "temperature": self.temperature,
        })
        # Given its length, httpx sends the one-shot body whole, not chunked.
        # Uncompressed: a compressed token stream waits in the server's compressor (and
        # then in our decoder) before a token shows, and plain bytes need no decoder.
        headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity",
                   "Content-Type": "application/json", "Content-Length": str(len(body))}
        if request.request_id:
            # Gateways (vLLM, LiteLLM and most proxies) log it: one id from panel to model.
            headers["X-Request-Id"] = request.request_id
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return _OneShot(body), headers, CitationFilter(articles)

    async def _send(self, body: _OneShot, headers: dict[str, str]) -> _Response:
        if self.streams is not None and self._origin is not None:
            return await self.streams.post(self._origin, body.take(), headers)
        request = self.client.build_request("POST", self.url, content=body, headers=headers,
                                            timeout=_STREAM_TIMEOUT)
        return await self.client.send(request, stream=True)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        body, headers, citations = self._request(request)
        reader = _Reader(citations)
        try:
            response = await self._send(body, headers)
            try:
                if response.status_code != 200:
                    code = _error_code(await response.aread())
                    # Its body is not logged (a model's error may quote the prompt): its
                    # status, the error's code when it is a plain identifier, and which
                    # model was asked for (a 404 `model_not_found` names a wrong one).
                    log.warning("model service answered %d%s for model %r",
                                response.status_code, f" ({code})" if code else "",
                                self.model)
                    raise UpstreamError(
                        f"model service answered {response.status_code}",
                        status=response.status_code,
                        retry_after=retry_after_seconds(response),
                        code=code,
                    )
                kind = response.headers.get("content-type", "").partition(";")[0]
                if kind.strip().lower() != "text/event-stream":
                    raise UpstreamError("model service did not answer with an event stream")
                # A server that compresses anyway is decoded; plain bytes are read as sent.
                encoding = response.headers.get("content-encoding", "").strip().lower()
                reads = (response.aiter_raw() if encoding in ("", "identity")
                         else response.aiter_bytes())
                waited = response.waited if isinstance(response, UpstreamResponse) else None
                async for raw in reads:
                    # Every token this read brought becomes one chunk: one hand-off.
                    if chunk := reader.take(raw, 0.0 if waited is None else waited()):
                        yield chunk
                    if reader.ended:
                        break
                    del raw, chunk  # a quiet stream holds nothing of the last read
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            # Why, for whoever runs the panel: a refused connect, a server that does not
            # speak HTTP/2, a reset. The messages name hosts and protocols, never text.
            log.warning("model service connection failed: %s: %s", type(exc).__name__, exc)
            raise UpstreamError(f"model service connection failed: {type(exc).__name__}") from exc
        if reader.finish is None:
            raise UpstreamError("model stream ended without a finish reason")
        if rest := citations.flush():
            yield Chunk(text=rest, tokens=reader.held)
        yield Chunk(stop_reason=_FINISH.get(reader.finish, reader.finish),
                    used_tokens=reader.used)


class _Reader:
    """What the model's event stream said so far; ``take`` reads one network read."""

    def __init__(self, citations: CitationFilter) -> None:
        self.citations = citations
        self.parser = EventStreamParser()
        self.finish: str | None = None
        self.used: int | None = None
        self.held = 0  # deltas whose text the citation filter still holds
        self.ended = False

    def take(self, raw: bytes, waited_s: float = 0.0) -> Chunk | None:
        """The text of every token in ``raw`` as one chunk (None when there is none);
        ``waited_s``: how long the newest of those bytes had waited unread."""
        pieces: list[str] = []
        tokens = 0
        for data in self.parser.feed(raw):
            if data.strip() == "[DONE]":
                self.ended = True
                break
            payload = _json(data)
            if payload is None:
                continue  # a malformed event is skipped, not fatal
            self.used = _completion_tokens(payload, self.used)
            for choice in payload.get("choices") or ():
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta") or {}
                text = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(text, str) and text:
                    self.held += 1
                    if kept := self.citations.feed(text):
                        pieces.append(kept)
                        tokens += self.held
                        self.held = 0
                if choice.get("finish_reason"):
                    self.finish = str(choice["finish_reason"])
        return Chunk(text="".join(pieces), tokens=tokens, waited_s=waited_s) if pieces else None


_ERROR_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def _error_code(body: bytes) -> str | None:
    """An error answer's code (OpenAI's ``{"error": {"code", "type"}}``: ``code``, else
    ``type``; vLLM's ``type`` at the top), only when it is an identifier: the code can
    be logged and acted on, the message never."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    error = error if isinstance(error, dict) else payload
    for value in (error.get("code"), error.get("type")):
        if isinstance(value, str) and _ERROR_CODE.fullmatch(value):
            return value
    return None


class _OneShot:
    """A request body that lets go of its bytes once they are sent."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def take(self) -> bytes:
        """The bytes, let go of here (for a client that takes them whole)."""
        data, self._data = self._data or b"", None
        return data

    def __aiter__(self) -> _OneShot:
        return self

    async def __anext__(self) -> bytes:
        if self._data is None:
            raise StopAsyncIteration
        data, self._data = self._data, None
        return data


def _json(data: str) -> dict[str, Any] | None:
    # orjson parses an event in a third of json's time (one event a token); what it
    # refuses that json reads (NaN, a lone surrogate's escape, huge integers) goes to json.
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            payload = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than json goes
            return None
        return _without_lone_surrogates(payload) if isinstance(payload, dict) else None
    return payload if isinstance(payload, dict) else None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` (in place) with each lone UTF-16 surrogate in its strings made U+FFFD.

    JSON's ``"\\ud800"`` escape decodes to a string no encoder can write out again: the
    event carrying it to the client would fail to encode, mid-stream. json joins an
    escaped pair into one character, so any surrogate left is a lone one.
    """
    pending: list[Any] = [payload]
    while pending:
        node = pending.pop()
        items: list[tuple[Any, Any]] = list(
            node.items() if isinstance(node, dict) else enumerate(node))
        for key, value in items:
            if isinstance(value, str):
                if _LONE_SURROGATE.search(value):
                    node[key] = _LONE_SURROGATE.sub("\ufffd", value)
            elif isinstance(value, dict | list):
                pending.append(value)
    return payload


#: The most tokens a model's own count may say: far more than any answer, and a number
#: every writer and reader of ``done`` takes (orjson refuses integers past 64 bits, and
#: json, which reads an event orjson refuses, keeps 10**20 as it is).
MAX_USED_TOKENS = 2**31 - 1


def _completion_tokens(payload: dict[str, Any], known: int | None) -> int | None:
    """``usage.completion_tokens`` when this event reports it (the last one does, when
    ``include_usage`` is honoured) as a count, 0 to :data:`MAX_USED_TOKENS`; else what
    was known."""
    usage = payload.get("usage")
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if (isinstance(tokens, int) and not isinstance(tokens, bool)
            and 0 <= tokens <= MAX_USED_TOKENS):
        return tokens
    return known


