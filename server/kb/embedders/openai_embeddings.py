"""The ``openai`` embedder: any OpenAI-compatible ``POST {base}/embeddings`` endpoint.

Works with OpenAI, Azure OpenAI (its ``/openai/v1`` endpoint, which takes the key
as a bearer token), vLLM, Ollama, Hugging Face TEI, LiteLLM and the dev-mode mock
model server. Vectors are asked for as JSON floats (``encoding_format: "float"``):
every one of those servers speaks it, while base64 is not universal.

Two paths, as the ``Embedder`` protocol wants:

- ``embed`` blocks, for imports: a short-lived ``httpx.Client``, and a 429 or 503
  (not an ``insufficient_quota`` 429, which no wait cures) is tried again (at most
  twice, after the service's ``Retry-After``, capped), because an import would
  rather wait a little than fail half-way.
- ``aembed`` is for queries, on the app's shared ``httpx.AsyncClient``, and never
  retries: a query that cannot be embedded at once falls back to BM25 instead.

Every failure (connection, timeout, status, JSON, shape) becomes an
``EmbeddingError`` here, at the boundary; its message never holds the API key.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np

from server.errors import EmbeddingError
from server.kb.embedders.base import Vectors, normalize

#: Statuses the blocking path tries again: rate limited, or overloaded for a while.
RETRYABLE = frozenset({429, 503})
#: Extra attempts after the first, blocking path only.
MAX_RETRIES = 2
#: Longest wait honoured from a ``Retry-After``: an import waits, but not for minutes.
MAX_RETRY_WAIT_S = 5.0
#: Wait before retry n (1-based) when the service gives no ``Retry-After``.
BACKOFF_S = (0.5, 1.0)
#: Longest piece of a service's error message put into an ``EmbeddingError``.
MAX_DETAIL_CHARS = 300


class OpenAIEmbedder:
    """Embeds texts through an OpenAI-compatible embeddings endpoint (see module docstring).

    ``base_url`` is the API root, e.g. ``https://api.openai.com/v1`` or
    ``http://localhost:11434/v1``; ``/embeddings`` is appended to its path (a query
    string, if any, is kept). ``dimensions`` asks models that can shorten their
    vectors (OpenAI's text-embedding-3) for that size and is part of ``name``, so
    the store re-embeds when it changes. ``client`` is the app's shared
    ``httpx.AsyncClient``, needed by ``aembed`` only.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None,
        dimensions: int | None = None,
        batch_size: int = 64,
        timeout_s: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not model:
            raise ValueError("an embedding model name is required")
        if dimensions is not None and dimensions < 1:
            raise ValueError("dimensions must be None or >= 1")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not math.isfinite(timeout_s) or timeout_s <= 0:
            raise ValueError("timeout_s must be a finite number > 0")
        root = httpx.URL(base_url)
        self.url = root.copy_with(path=root.path.rstrip("/") + "/embeddings")
        # For messages: no user:password that a URL might carry, and no query.
        self._shown_url = str(self.url.copy_with(username=None, password=None, query=None))
        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.name = f"openai/{model}" + (f"-{dimensions}" if dimensions is not None else "")
        self._api_key = api_key or None
        self._client = client

    # ---------------------------------------------------------------- public

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Vectors of ``texts``, blocking; retries 429 and 503 (see module docstring)."""
        batches = self._batches(texts)
        if not batches:
            return self._none()
        with httpx.Client(timeout=self.timeout_s) as client:
            return self._join([self._post_blocking(client, batch) for batch in batches])

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        """Vectors of ``texts`` on the shared async client; one attempt per batch."""
        if self._client is None:
            raise EmbeddingError(
                f"embedder {self.name} has no shared httpx.AsyncClient: aembed needs one"
            )
        batches = self._batches(texts)
        if not batches:
            return self._none()
        arrays = []
        for batch in batches:
            try:
                response = await self._client.post(
                    self.url, json=self._body(batch), headers=self._headers(),
                    timeout=self.timeout_s,
                )
            except httpx.HTTPError as exc:
                raise self._network_error(exc) from exc
            arrays.append(self._vectors(response, len(batch)))
        return self._join(arrays)

    # ---------------------------------------------------------------- requests

    def _batches(self, texts: Sequence[str]) -> list[list[str]]:
        if isinstance(texts, str):
            # A str is a Sequence[str] too: it would embed each character.
            raise TypeError("embed a list of texts, not a single string")
        # OpenAI refuses an empty string outright; one blank embeds to something harmless.
        items = [text if text else " " for text in texts]
        size = self.batch_size
        return [items[i : i + size] for i in range(0, len(items), size)]

    def _body(self, batch: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "input": batch, "encoding_format": "float"}
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _post_blocking(self, client: httpx.Client, batch: list[str]) -> Vectors:
        attempt = 0
        while True:
            try:
                response = client.post(self.url, json=self._body(batch), headers=self._headers())
            except httpx.HTTPError as exc:
                raise self._network_error(exc) from exc
            if not _retryable(response) or attempt >= MAX_RETRIES:
                return self._vectors(response, len(batch), attempts=attempt + 1)
            attempt += 1
            time.sleep(_retry_wait(response, attempt))

    # ---------------------------------------------------------------- answers

    def _vectors(self, response: httpx.Response, count: int, attempts: int = 1) -> Vectors:
        """The ``count`` vectors of one answer, in input order, or an ``EmbeddingError``."""
        if not response.is_success:
            raise self._status_error(response, attempts)
        try:
            payload = response.json()
        except ValueError as exc:  # JSONDecodeError and bad UTF-8 alike
            raise EmbeddingError(
                f"embedding service at {self._shown_url} did not answer JSON "
                f"(status {response.status_code})"
            ) from exc
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise self._shape_error("no 'data' list")
        if len(data) != count:
            raise self._shape_error(f"{len(data)} embeddings for {count} inputs")
        rows: list[list[Any] | None] = [None] * count
        for item in data:
            index = item.get("index") if isinstance(item, dict) else None
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
                raise self._shape_error(f"an item without a valid index (0..{count - 1})")
            if rows[index] is not None:
                raise self._shape_error(f"index {index} twice")
            embedding = item.get("embedding")
            if isinstance(embedding, str):
                raise self._shape_error("base64 vectors although floats were asked for")
            if not isinstance(embedding, list) or not embedding:
                raise self._shape_error(f"no embedding list at index {index}")
            rows[index] = embedding
        lengths = sorted({len(row) for row in rows if row is not None})
        if len(lengths) != 1:
            raise self._shape_error(f"vectors of different lengths {lengths}")
        # Without a dtype numpy keeps strings and nulls visible instead of coercing them.
        try:
            array = np.array(rows)
        except ValueError as exc:  # nested lists of uneven shape
            raise self._shape_error("vectors holding something other than numbers") from exc
        if array.ndim != 2 or array.dtype.kind not in "iuf":
            raise self._shape_error("vectors holding something other than numbers")
        vectors = array.astype(np.float32)
        if not np.isfinite(vectors).all():
            raise self._shape_error("vectors holding NaN or infinity")
        if self.dimensions is not None and vectors.shape[1] != self.dimensions:
            # The server ignored `dimensions` (many do): the store's name would lie.
            raise self._shape_error(
                f"vectors of {vectors.shape[1]} dimensions, not the {self.dimensions} asked for"
            )
        return vectors

    def _join(self, arrays: list[Vectors]) -> Vectors:
        widths = sorted({array.shape[1] for array in arrays})
        if len(widths) != 1:
            raise self._shape_error(f"vectors of different lengths {widths} across batches")
        return normalize(np.concatenate(arrays))

    def _none(self) -> Vectors:
        # No request for no texts; without `dimensions` the width is unknown, so 0.
        return np.zeros((0, self.dimensions or 0), dtype=np.float32)

    # ---------------------------------------------------------------- errors

    def _scrub(self, text: str) -> str:
        # Some services echo what they were sent; the key must not reach a log from here.
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text

    def _network_error(self, exc: httpx.HTTPError) -> EmbeddingError:
        detail = str(exc).strip()
        what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        return EmbeddingError(
            self._scrub(f"embedding service at {self._shown_url} failed: {what}"),
            summary=f"embedding service at {self._shown_url} failed: {type(exc).__name__}",
        )

    def _status_error(self, response: httpx.Response, attempts: int) -> EmbeddingError:
        # The summary, for the server's log, without the service's message: it may
        # quote the texts it was sent (a query: a customer's redacted words).
        summary = f"embedding service at {self._shown_url} answered {response.status_code}"
        message = f"{summary} {response.reason_phrase}".rstrip()
        detail = _service_message(response)
        if detail:
            message += f": {detail}"
        if attempts > 1:
            message += f" (after {attempts} attempts)"
        return EmbeddingError(self._scrub(message), summary=summary)

    def _shape_error(self, problem: str) -> EmbeddingError:
        return EmbeddingError(
            f"embedding service at {self._shown_url} answered an unusable body: {problem}"
        )


def _retryable(response: httpx.Response) -> bool:
    """A 429 or 503 that a wait may cure: not OpenAI's ``insufficient_quota`` (a 429
    too), which stays until someone pays."""
    if response.status_code not in RETRYABLE:
        return False
    try:
        payload = response.json()
    except ValueError:
        return True
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code != "insufficient_quota"


def _service_message(response: httpx.Response) -> str | None:
    """The message of an error body: OpenAI's ``{"error": {"message"}}``, or the
    ``{"error": "..."}`` of Ollama and TEI."""
    try:
        payload = response.json()
    except ValueError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    if not isinstance(error, str) or not error.strip():
        return None
    text = " ".join(error.split())
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


def _retry_wait(response: httpx.Response, attempt: int) -> float:
    """Seconds before retry ``attempt``: the ``Retry-After`` (seconds or an HTTP date),
    capped, or a short backoff without one."""
    value = response.headers.get("retry-after", "").strip()
    wait: float | None = None
    if value:
        try:
            wait = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                wait = (when - datetime.now(UTC)).total_seconds()
    if wait is None or not math.isfinite(wait):
        wait = BACKOFF_S[min(attempt, len(BACKOFF_S)) - 1]
    return min(max(wait, 0.0), MAX_RETRY_WAIT_S)
