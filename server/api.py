"""The JSON and streaming API routes under ``/api``."""

from __future__ import annotations

import secrets

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.routing import Route

from . import feedback
from .bodies import read_model
from .context import Utterance
from .pipeline import AssistRequest, Pipeline
from .schemas import StreamRequest
from .sessions import Session, authenticated
from .settings import Settings
from .sse import event_source

MAX_BODY_BYTES = 256 * 1024


@authenticated
async def assist_stream(request: Request, session: Session) -> EventSourceResponse:
    """``POST /api/assist/stream``: one suggestion as ``text/event-stream``.

    Needs a session for the conversation the body names (401/403 otherwise).
    """
    settings: Settings = request.state.settings
    pipeline: Pipeline = request.state.pipeline
    body = await read_model(request, StreamRequest, MAX_BODY_BYTES)
    session.require_conversation(body.conversation_id)
    assist = AssistRequest(
        conversation_id=body.conversation_id,
        trigger=body.trigger,
        query=body.query,
        utterances=tuple(Utterance(u.speaker, u.text) for u in body.utterances),
        request_id=body.request_id or "rq_" + secrets.token_urlsafe(9),
    )
    return event_source(pipeline.stream(assist), ping_s=settings.sse_ping_s)


routes = [Route("/api/assist/stream", assist_stream, methods=["POST"]), *feedback.routes]
