"""The JSON and streaming API routes under ``/api``."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.assist import feedback
from server.assist.admission import Admission
from server.assist.sse import event_source
from server.auth.sessions import Session, authenticated
from server.errors import TranscriptTooLarge
from server.pipeline.context import Utterance
from server.pipeline.stream import AssistRequest, Pipeline
from server.schemas import StreamRequest
from server.settings import Settings
from server.web.bodies import read_model


def new_request_id() -> str:
    return "rq_" + secrets.token_urlsafe(9)


MAX_UTTERANCES = 200


def check_transcript(texts: list[str], limit: int, *, query: str = "") -> None:
    """413 ``transcript_too_large`` for more than ``MAX_UTTERANCES`` utterances
    (``texts``; the ``query`` is not one), or more than ``limit`` characters in all."""
    if len(texts) > MAX_UTTERANCES:
        raise TranscriptTooLarge(f"transcript over {MAX_UTTERANCES} utterances")
    if sum(len(text) for text in texts) + len(query) > limit:
        raise TranscriptTooLarge(f"transcript over {limit} characters")


async def stream_response(request: Request, assist: AssistRequest, *, owner: str
                          ) -> Response:
    """Admit a suggestion stream for ``owner`` and answer it as ``text/event-stream``."""
    settings: Settings = request.state.settings
    pipeline: Pipeline = request.state.pipeline
    admission: Admission = request.state.admission
    control = await admission.admit(owner=owner, conversation_id=assist.conversation_id,
                                    automatic=assist.trigger == "utterance")
    return event_source(
        pipeline.stream(assist, control, keepalive_s=settings.sse_ping_s),
        send_timeout_s=settings.send_timeout_s,
        on_close=lambda: admission.streams.close(control))


@authenticated
async def assist_stream(request: Request, session: Session) -> Response:
    """``POST /api/assist/stream``: one suggestion as ``text/event-stream``.

    Needs a session for the conversation the body names (401/403 otherwise);
    429 over the agent's rate limit, 503 at the server's stream cap.
    """
    settings: Settings = request.state.settings
    admission: Admission = request.state.admission
    pipeline: Pipeline = request.state.pipeline
    received = pipeline.clock()  # the pre-model path is timed from here
    await admission.check_rate(session.user_id)
    body = await read_model(request, StreamRequest, settings.max_body_bytes)
    session.require_conversation(body.conversation_id)
    check_transcript([u.text for u in body.utterances], settings.max_transcript_chars,
                     query=body.query or "")
    assist = AssistRequest(
        conversation_id=body.conversation_id,
        trigger=body.trigger,
        query=body.query,
        utterances=tuple(Utterance(u.speaker, u.text) for u in body.utterances),
        request_id=body.request_id or new_request_id(),
        user_id=session.user_id,
        received=received,
    )
    return await stream_response(request, assist, owner=session.user_id)


routes = [Route("/api/assist/stream", assist_stream, methods=["POST"]), *feedback.routes]
