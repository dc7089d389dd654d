"""``POST /api/feedback``: an agent's rating of one suggestion, recorded as one log line.

The body is ``{suggestionId, rating: "up"|"down", copied?, inserted?}``. The server
keeps no suggestion store, so it cannot (and does not) check that the suggestion
belonged to the session's conversation: the feedback is about the suggestion, and
the log line records which user and which conversation (both from the signed
session) sent it. The line holds ids, the rating and two booleans: never any text,
token or secret.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.assist.admission import Admission
from server.auth.sessions import Session, authenticated
from server.web.bodies import read_model

log = logging.getLogger("assist_panel.feedback")

# Suggestion ids are "sg_" + secrets.token_urlsafe(12) (server/pipeline/stream.py): 16 base64url
# characters. The length range leaves room for a longer token without a contract change.
SUGGESTION_ID_PATTERN = r"^sg_[A-Za-z0-9_-]{8,64}$"
SuggestionId = Annotated[str, StringConstraints(pattern=SUGGESTION_ID_PATTERN)]
MAX_BODY_BYTES = 4 * 1024


class FeedbackRequest(BaseModel):
    """``POST /api/feedback``: unknown fields refused, booleans strictly booleans."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    suggestion_id: SuggestionId = Field(alias="suggestionId")
    rating: Literal["up", "down"]
    copied: StrictBool = False
    inserted: StrictBool = False


def feedback_record(body: FeedbackRequest, session: Session) -> dict[str, object]:
    """The log line's fields: ids, the rating and the two booleans, nothing else."""
    return {
        "event": "feedback",
        "suggestionId": body.suggestion_id,
        "rating": body.rating,
        "copied": body.copied,
        "inserted": body.inserted,
        "userId": session.user_id,
        "conversationId": session.conversation_id,
    }


@authenticated
async def feedback(request: Request, session: Session) -> Response:
    """``POST /api/feedback``: 204 and one JSON log line on ``assist_panel.feedback``.

    Needs a valid session (401 otherwise) for any conversation; 400 for a bad body,
    413 for one over ``MAX_BODY_BYTES``; 429 over the agent's rate limit (its own
    bucket, so ratings never use up suggestions).
    """
    admission: Admission = request.state.admission
    await admission.check_other_rate("feedback:" + session.user_id)
    body = await read_model(request, FeedbackRequest, MAX_BODY_BYTES)
    log.info(json.dumps(feedback_record(body, session), separators=(",", ":")))
    return Response(status_code=204)


routes = [Route("/api/feedback", feedback, methods=["POST"])]
