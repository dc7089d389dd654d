"""POST /api/feedback, called at the ASGI level: 204 and one log line, or a JSON error."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from server.app import create_app
from server.assist.feedback import FeedbackRequest
from server.pipeline.stream import new_suggestion_id
from tests.asgi import Response, TestClient, asgi_client
from tests.factories import SECRET, USER, bearer, make_settings, session_for

CONVERSATION = "5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
OTHER_CONVERSATION = "0f9e8d7c-6b5a-4c3d-8e1f-a2b3c4d5e6f7"
SUGGESTION = "sg_AbCdEfGh-_12345x"


@pytest.fixture(scope="module")
def panel(sample_kb_path: Path) -> Iterator[TestClient]:
    with asgi_client(create_app(make_settings(kb_path=sample_kb_path))) as client:
        yield client


def _post(panel: TestClient, body: Any, headers: dict[str, str] | None = None,
          content: bytes | None = None) -> Response:
    if content is None:
        content = json.dumps(body).encode()
    return panel.post("/api/feedback", content=content,
                      headers={"Content-Type": "application/json",
                               **(bearer(CONVERSATION) if headers is None else headers)})


def _feedback_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records
            if r.name == "assist_panel.feedback"]


def test_stream_suggestion_ids_pass_the_feedback_check() -> None:
    for _ in range(50):
        FeedbackRequest.model_validate({"suggestionId": new_suggestion_id(), "rating": "up"})
    for wrong in ("sg_short", "rq_AbCdEfGh12345678"):
        with pytest.raises(ValidationError):
            FeedbackRequest.model_validate({"suggestionId": wrong, "rating": "up"})


def test_feedback_is_204_and_one_log_line_without_text_or_secrets(
        panel: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="assist_panel.feedback")
    session = session_for(CONVERSATION)
    response = _post(panel, {"suggestionId": SUGGESTION, "rating": "up", "copied": True},
                     headers={"Authorization": f"Bearer {session}"})
    assert response.status_code == 204
    assert response.content == b""
    lines = _feedback_lines(caplog)
    assert lines == [{"event": "feedback", "suggestionId": SUGGESTION, "rating": "up",
                      "copied": True, "inserted": False, "userId": USER,
                      "conversationId": CONVERSATION}]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert session not in logged and SECRET not in logged


def test_down_rating_with_both_flags(panel: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="assist_panel.feedback")
    response = _post(panel, {"suggestionId": SUGGESTION, "rating": "down",
                             "copied": False, "inserted": True})
    assert response.status_code == 204
    [line] = _feedback_lines(caplog)
    assert (line["rating"], line["copied"], line["inserted"]) == ("down", False, True)


def test_a_session_for_another_conversation_may_rate(
        panel: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    """Decided: feedback names a suggestion, not a conversation, and the server keeps no
    suggestion store to tie them; any valid session may rate, and the line records the
    session's own conversation."""
    caplog.set_level(logging.INFO, logger="assist_panel.feedback")
    response = _post(panel, {"suggestionId": SUGGESTION, "rating": "up"},
                     headers=bearer(OTHER_CONVERSATION))
    assert response.status_code == 204
    [line] = _feedback_lines(caplog)
    assert line["conversationId"] == OTHER_CONVERSATION


@pytest.mark.parametrize("headers, code", [
    ({}, "invalid_session"),
    ({"Authorization": "Basic abc"}, "invalid_session"),
    ({"Authorization": "Bearer " + session_for(CONVERSATION,
                                               secret="another-secret-of-enough-length")},
     "invalid_session"),
    (bearer(CONVERSATION, ttl_s=-1), "session_expired"),
])
def test_without_a_valid_session_is_401(panel: TestClient, caplog: pytest.LogCaptureFixture,
                                        headers: dict[str, str], code: str) -> None:
    caplog.set_level(logging.INFO, logger="assist_panel.feedback")
    response = _post(panel, {"suggestionId": SUGGESTION, "rating": "up"}, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == code
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert _feedback_lines(caplog) == []


@pytest.mark.parametrize("body, code", [
    ({"suggestionId": SUGGESTION, "rating": "meh"}, "invalid_request"),
    ({"suggestionId": SUGGESTION}, "invalid_request"),
    ({"suggestionId": SUGGESTION, "rating": "UP"}, "invalid_request"),
    ({"suggestionId": "sg_<script>", "rating": "up"}, "invalid_request"),
    ({"suggestionId": "nope", "rating": "up"}, "invalid_request"),
    ({"suggestionId": "sg_" + "a" * 200, "rating": "up"}, "invalid_request"),
    ({"rating": "up"}, "invalid_request"),
    ({"suggestionId": 12, "rating": "up"}, "invalid_request"),
    ({"suggestionId": SUGGESTION, "rating": "up", "comment": "great"}, "invalid_request"),
    ({"suggestionId": SUGGESTION, "rating": "up", "copied": "yes"}, "invalid_request"),
    ({"suggestionId": SUGGESTION, "rating": "up", "inserted": 1}, "invalid_request"),
    ([SUGGESTION, "up"], "invalid_request"),
])
def test_bad_body_is_400(panel: TestClient, caplog: pytest.LogCaptureFixture,
                         body: Any, code: str) -> None:
    caplog.set_level(logging.INFO, logger="assist_panel.feedback")
    response = _post(panel, body)
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert response.json()["message"]
    assert _feedback_lines(caplog) == []


def test_not_json_is_400(panel: TestClient) -> None:
    response = _post(panel, None, content=b"{rating: up")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"
    response = panel.post("/api/feedback", content=b"rating=up",
                          headers={"Content-Type": "application/x-www-form-urlencoded",
                                   **bearer(CONVERSATION)})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


def test_oversized_body_is_413(panel: TestClient) -> None:
    body = {"suggestionId": SUGGESTION, "rating": "up", "pad": "x" * 10_000}
    response = _post(panel, body)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_only_post(panel: TestClient) -> None:
    response = panel.get("/api/feedback", headers=bearer(CONVERSATION))
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_model_takes_the_contract_names() -> None:
    body = FeedbackRequest.model_validate({"suggestionId": SUGGESTION, "rating": "up"})
    assert (body.copied, body.inserted) == (False, False)
