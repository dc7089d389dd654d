from __future__ import annotations

import pytest

from server.knowledge import KnowledgeBase
from server.retrieval import KnowledgeBaseRetriever

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("question, expected", [
    ("How do I reset my password?", "accounts-passwords-reset-password"),
    ("how much is the restocking fee", "refunds-returns-restocking-fee"),
    ("my phone has no signal since this morning", "outages-no-signal-troubleshooting"),
    ("can I return the damaged phone for a refund", "refunds-returns-damaged-defective-device"),
    ("how do I set up esim on my new phone", "devices-activate-esim"),
    ("please delete my personal data", "privacy-request-delete-data"),
])
async def test_sample_questions_find_their_article_first(
        sample_kb: KnowledgeBase, question: str, expected: str) -> None:
    sources = await KnowledgeBaseRetriever(sample_kb).retrieve(question, 3)
    assert sources[0].id == expected


async def test_sources_carry_public_fields_and_the_full_text(sample_kb: KnowledgeBase) -> None:
    sources = await KnowledgeBaseRetriever(sample_kb).retrieve("restocking fee", 2)
    assert len(sources) == 2
    public = sources[0].public()
    assert set(public) == {"id", "title", "url", "snippet", "score"}
    assert "restocking" in sources[0].text.lower()
    assert len(sources[0].text) > len(sources[0].snippet)
