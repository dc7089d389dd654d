"""``POST /v1/stream-assist``: NDJSON for machine clients, API-key auth, over real HTTP."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.assist.machine import key_id
from server.devmode.mocks.llm import MockLLMConfig, create_mock_llm_app
from tests.factories import SECRET, make_settings
from tests.servers import serve

CONVERSATION = "5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
KEY = "ak-test-0123456789abcdef"
OTHER_KEY = "ak-other-fedcba9876543210"
BODY = {"conversationId": CONVERSATION,
        "transcript": [{"speaker": "customer", "text": "I sent my phone back last week"},
                       {"speaker": "agent", "text": "Thanks, let me check."}],
        "lastUtterance": "How long does the refund take?", "requestId": "bot-42"}


@pytest.fixture(scope="module")
def panel(sample_kb_path: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[str, Path]]:
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    settings = make_settings(kb_path=sample_kb_path, extractive_token_delay_ms=0,
                             api_keys=f"{KEY},{OTHER_KEY}", audit_log=str(audit))
    with serve(create_app(settings)) as base:
        yield base, audit


def post(base: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{base}/v1/stream-assist", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {KEY}"} if headers is None else headers)


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.text.endswith("\n")
    return [json.loads(line) for line in response.text.splitlines()]


def test_flat_text_lines_then_one_complete_line(panel: tuple[str, Path]) -> None:
    base, audit = panel
    out = lines(post(base, BODY))
    *texts, last = out
    assert texts and all(set(line) == {"text"} for line in texts)
    assert "refund" in "".join(line["text"] for line in texts).lower()
    assert last["complete"] is True and last["requestId"] == "bot-42"
    assert last["outcome"] == "completed" and last["fallback"] is None
    assert last["sourceDocuments"] and {"id", "title", "url", "snippet", "score"} <= set(
        last["sourceDocuments"][0])
    record = json.loads(audit.read_text().splitlines()[-1])
    assert record["requestId"] == "bot-42" and record["userId"] == key_id(KEY.encode(), SECRET)
    assert KEY not in audit.read_text()


def test_a_keys_audit_name_is_keyed_by_the_secret() -> None:
    """Regression: the audit log named a key by a plain SHA-256 prefix, which whoever
    reads the log could match against guessed keys offline."""
    name = key_id(KEY.encode(), SECRET)
    assert name == key_id(KEY.encode(), SECRET)  # stable: one rate limit a key
    assert name != key_id(KEY.encode(), SECRET + "x")
    assert hashlib.sha256(KEY.encode()).hexdigest()[:10] not in name


def test_a_key_with_non_ascii_characters_matches(sample_kb_path: Path) -> None:
    """Regression: the header (read as latin-1) was compared as UTF-8, so such a key
    never matched."""
    key = "clé-0123456789abcdef"
    settings = make_settings(kb_path=sample_kb_path, extractive_token_delay_ms=0,
                             api_keys=key, audit_log="")
    with serve(create_app(settings)) as base:
        sent = httpx.post(f"{base}/v1/stream-assist", json=BODY, timeout=30,
                          headers={b"X-API-Key": key.encode()})  # UTF-8 on the wire
        assert lines(sent)[-1]["complete"] is True
        assert post(base, BODY, headers={"X-API-Key": "cle-0123456789abcdef"}
                    ).status_code == 401


def test_the_key_may_come_as_x_api_key_and_a_request_id_is_made_when_missing(
        panel: tuple[str, Path]) -> None:
    body = {k: v for k, v in BODY.items() if k != "requestId"}
    last = lines(post(panel[0], body, headers={"X-API-Key": OTHER_KEY}))[-1]
    assert last["complete"] is True and last["requestId"].startswith("rq_")


def test_nothing_relevant_ends_abstained_without_text(panel: tuple[str, Path]) -> None:
    out = lines(post(panel[0], {**BODY, "transcript": [],
                                "lastUtterance": "zzqx wobble frobnicate"}))
    assert len(out) == 1
    assert out[0]["outcome"] == "abstained" and out[0]["confident"] is False
    assert out[0]["stopReason"] == "low_confidence" and out[0]["fallback"] is None


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"},
                                     {"X-API-Key": KEY + "x"}, {"Authorization": f"Basic {KEY}"}])
def test_a_missing_or_wrong_key_is_401(panel: tuple[str, Path], headers: dict[str, str]) -> None:
    response = post(panel[0], BODY, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_api_key"


def test_without_configured_keys_every_request_is_401(sample_kb_path: Path) -> None:
    with serve(create_app(make_settings(kb_path=sample_kb_path))) as base:
        assert post(base, BODY).status_code == 401


@pytest.mark.parametrize(("body", "status"), [
    ({**BODY, "conversationId": "not-a-uuid"}, 400),
    ({**BODY, "lastUtterance": "   "}, 400),
    ({**BODY, "requestId": "has spaces"}, 400),
    ({**BODY, "transcript": [{"speaker": "bot", "text": "x"}]}, 400),
    ({**BODY, "extra": True}, 400),
    ({**BODY, "lastUtterance": "x" * 30_000}, 413),
    ({**BODY, "transcript": [{"speaker": "agent", "text": "y"}] * 201}, 413),
])
def test_bad_bodies_are_plain_json_errors(panel: tuple[str, Path], body: dict[str, Any],
                                          status: int) -> None:
    response = post(panel[0], body)
    assert response.status_code == status
    assert set(response.json()) == {"error", "message"}


def test_a_stalled_model_still_ends_with_the_complete_line(sample_kb_path: Path) -> None:
    with serve(create_mock_llm_app(MockLLMConfig(fault="stall_mid", tokens_per_second=0))) as llm:
        settings = make_settings(kb_path=sample_kb_path, api_keys=KEY, generator="openai",
                                 openai_base_url=f"{llm}/v1", stall_timeout_s=0.3)
        with serve(create_app(settings)) as base:
            out = lines(post(base, BODY))
    assert out[-1]["outcome"] == "fallback" and out[-1]["fallback"]["reason"] == "stalled"
    assert out[-1]["fallback"]["id"] == out[-1]["sourceDocuments"][0]["id"]
    assert len(out) > 1  # the partial text came first


def test_the_key_has_its_own_rate_limit(sample_kb_path: Path) -> None:
    settings = make_settings(kb_path=sample_kb_path, extractive_token_delay_ms=0,
                             api_keys=f"{KEY},{OTHER_KEY}", rate_limit_per_minute=1)
    with serve(create_app(settings)) as base:
        assert post(base, BODY).status_code == 200
        limited = post(base, BODY)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert post(base, BODY, headers={"X-API-Key": OTHER_KEY}).status_code == 200
