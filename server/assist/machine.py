"""``POST /v1/stream-assist``: suggestions for machine clients (bots, Architect data actions).

API-key auth (``ASSIST_API_KEYS``; ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``), no Genesys session. The body is ``{conversationId,
transcript: [{speaker, text}], lastUtterance, requestId?}``: ``lastUtterance`` is
the customer's newest words, appended to the transcript unless it already ends
with them. The answer is ``application/x-ndjson``: one ``{"text": ...}`` line per
aggregated chunk, then one last line ``{"complete": true, "sourceDocuments": [...],
"requestId": ..., "outcome": ..., "fallback": article|null}``. The same pipeline,
limits, supersede and audit as the panel's stream; a key is its own "user".
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncGenerator, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.assist.admission import Admission
from server.assist.routes import check_transcript, new_request_id
from server.assist.sse import STREAM_HEADERS
from server.auth.sessions import bearer
from server.errors import InvalidApiKey
from server.pipeline.context import Utterance
from server.pipeline.events import Event
from server.pipeline.stream import AssistRequest, Pipeline
from server.schemas import MachineStreamRequest
from server.settings import Settings
from server.web.bodies import read_model
from server.web.streamed import OneTaskStream


def key_id(key: bytes, secret: str) -> str:
    """A short, stable name for a key (for the audit log and the rate limit), not the key.

    Keyed by the session secret: a plain hash of the key in the audit log would let
    whoever reads the log confirm a guessed key offline. Every replica shares the
    secret, so a key's name (and its rate limit) is the same on all of them.
    """
    return "key_" + hmac.new(secret.encode(), key, hashlib.sha256).hexdigest()[:16]


def authenticate(request: Request, settings: Settings) -> str:
    """The id of the request's API key; 401 ``invalid_api_key`` otherwise."""
    given = request.headers.get("x-api-key", "").strip() or bearer(request)
    if not given:
        raise InvalidApiKey("An API key is required (Authorization: Bearer <key>).")
    # The header's own bytes (Starlette decodes headers as latin-1), against the key's
    # UTF-8: a key with non-ASCII characters, sent as UTF-8, matches.
    sent = given.encode("latin-1")
    digest = hashlib.sha256(sent).digest()
    matched = False
    for key in settings.api_keys:  # compare every key, in constant time, whatever matches
        expected = hashlib.sha256(key.get_secret_value().encode()).digest()
        matched |= hmac.compare_digest(digest, expected)
    if not matched:
        raise InvalidApiKey("The API key is not valid.")
    secret = settings.session_secret
    return key_id(sent, secret.get_secret_value() if secret is not None else "")


def line(payload: dict[str, object]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


async def ndjson(events: AsyncGenerator[Event, None], request_id: str
                 ) -> AsyncGenerator[bytes, None]:
    """The pipeline's events as the flat NDJSON lines of the contract."""
    sources: list[object] = []
    fallback: object = None
    confident = True
    try:
        async for event in events:
            if event.name == "suggestion":
                sources = event.data["sources"]
                confident = event.data["confident"]
            elif event.name == "delta":
                yield line({"text": event.data["text"]})
            elif event.name == "fallback":
                fallback = event.data["article"] | {"reason": event.data["reason"]}
            elif event.name == "done":
                yield line({"complete": True, "sourceDocuments": sources,
                            "confident": confident,
                            "requestId": request_id, "outcome": event.data["outcome"],
                            "stopReason": event.data["stop_reason"], "fallback": fallback})
    finally:
        await events.aclose()


def ndjson_stream(content: AsyncGenerator[bytes, None], *, on_close: Callable[[], None],
                  send_timeout_s: float) -> OneTaskStream:
    """A streamed NDJSON response that gives its slot back however it ends, and drops a
    client that takes longer than ``send_timeout_s`` to accept a line (it stopped
    reading). A client that leaves ends it at once, cancelling its model request."""
    return OneTaskStream(content, media_type="application/x-ndjson", headers=STREAM_HEADERS,
                         on_close=on_close, send_timeout_s=send_timeout_s)


async def stream_assist(request: Request) -> Response:
    """``POST /v1/stream-assist``: one suggestion as NDJSON for an API-key client.

    401 without a valid key, 400/413 for a bad or oversized body, 429 over the
    key's rate limit, 503 at the stream cap.
    """
    settings: Settings = request.state.settings
    pipeline: Pipeline = request.state.pipeline
    admission: Admission = request.state.admission
    received = pipeline.clock()  # the pre-model path is timed from here
    owner = authenticate(request, settings)
    await admission.check_rate(owner)
    body = await read_model(request, MachineStreamRequest, settings.max_body_bytes)
    utterances = [Utterance(u.speaker, u.text) for u in body.transcript]
    customer = [u.text.strip() for u in utterances if u.speaker == "customer"]
    if not customer or customer[-1] != body.last_utterance:
        utterances.append(Utterance("customer", body.last_utterance))
    check_transcript([u.text for u in utterances], settings.max_transcript_chars)
    request_id = body.request_id or new_request_id()
    assist = AssistRequest(conversation_id=body.conversation_id, trigger="utterance", query=None,
                           utterances=tuple(utterances), request_id=request_id, user_id=owner,
                           received=received)
    control = await admission.admit(owner=owner, conversation_id=body.conversation_id,
                                    automatic=True)
    return ndjson_stream(ndjson(pipeline.stream(assist, control), request_id),
                         on_close=lambda: admission.streams.close(control),
                         send_timeout_s=settings.send_timeout_s)


routes = [Route("/v1/stream-assist", stream_assist, methods=["POST"])]
