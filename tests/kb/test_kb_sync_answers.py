"""``kb sync`` against a fake Knowledge API that answers what the mock never does: listing
pages without entities, an empty listing, entries that are not documents, a cursor that
comes back, documents listed twice, text that is not Unicode; and an embedding service
that fails midway. None of them may remove what was synced, or end in a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from server.admin.client import AdminClient, AdminCredentials, PlatformHosts
from server.errors import EmbeddingError, SyncError, SyncInterrupted
from server.kb.embedders.base import Vectors
from server.kb.store import KnowledgeBase
from server.kb.sync import SyncSummary, sync_knowledge_base
from server.kb.sync_ledger import SyncLock

pytestmark = pytest.mark.anyio

KB_ID = "6a1f3c9e-2b7d-4e5a-8c0f-9d4b2e7a1c36"
BASE = f"/api/v2/knowledge/knowledgebases/{KB_ID}"
DOC_IDS = [f"d000000{n}" for n in range(1, 5)]

Listing = Callable[[str | None], httpx.Response]


def document(doc_id: str, title: str | None = None) -> dict[str, Any]:
    return {"id": doc_id, "title": title or f"Doc {doc_id}", "state": "Published",
            "visible": True, "dateModified": "2024-01-01T00:00:00Z",
            "documentVersion": {"id": f"v-{doc_id}"}}


def listing(*entities: object, after: str | None = None) -> httpx.Response:
    page: dict[str, Any] = {"entities": list(entities)}
    if after is not None:
        page["nextUri"] = f"{BASE}/documents?pageSize=2&after={after}"
    # json.dumps escapes a lone surrogate as \ud800, as a Java platform would send it.
    return httpx.Response(200, content=json.dumps(page).encode(),
                          headers={"Content-Type": "application/json"})


class FakeKnowledge:
    """One knowledge base of four documents, two a page, unless ``pages`` says else."""

    def __init__(self) -> None:
        self.pages: Listing = self.two_a_page
        self.listings = 0
        self.variations: list[str] = []
        self.texts: dict[str, str] = {}

    @staticmethod
    def two_a_page(after: str | None) -> httpx.Response:
        docs = [document(d) for d in DOC_IDS]
        return listing(*docs[:2], after="p2") if after is None else listing(*docs[2:])

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "token-1"})
        if path == BASE:
            return httpx.Response(200, json={"id": KB_ID, "name": "Fake KB", "articleCount": 4})
        if path == f"{BASE}/documents":
            self.listings += 1
            return self.pages(request.url.params.get("after"))
        doc_id = path.removeprefix(f"{BASE}/documents/").removesuffix("/variations")
        self.variations.append(doc_id)
        text = self.texts.get(doc_id, f"The text of {doc_id}.")
        run = {"type": "Text", "text": {"text": text}}
        variation = {"id": "var-1", "body": {"blocks": [
            {"type": "Paragraph", "paragraph": {"blocks": [run]}}]}}
        return httpx.Response(200, content=json.dumps({"entities": [variation]}).encode())


@pytest.fixture
def fake() -> FakeKnowledge:
    return FakeKnowledge()


async def _no_sleep(_seconds: float) -> None:
    return None


async def sync(fake: FakeKnowledge, store: KnowledgeBase, **options: Any) -> SyncSummary:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as http:
        client = AdminClient(http, PlatformHosts.resolve("", "http://platform.test"),
                             sleep=_no_sleep)
        await client.sign_in(AdminCredentials("id", "secret"))
        return await sync_knowledge_base(client, store, KB_ID, **options)


def counts_of(summary: SyncSummary) -> tuple[int, int, int, int, int, int]:
    return (summary.documents, summary.added, summary.updated, summary.removed,
            summary.unchanged, summary.skipped)


SYNCED = {f"gk-{d}" for d in DOC_IDS}


def body_of(content: bytes, kind: str = "application/json") -> Listing:
    return lambda _after: httpx.Response(200, content=content, headers={"Content-Type": kind})


@pytest.mark.parametrize(("content", "kind"), [
    (b"{}", "application/json"),
    (b"null", "application/json"),
    (b"", "application/json"),
    (b'{"entities": {"d1": {}}}', "application/json"),
    (b"<html>Sign in to the proxy</html>", "text/html"),
])
async def test_a_listing_page_without_entities_interrupts_and_removes_nothing(
    fake: FakeKnowledge, store: KnowledgeBase, content: bytes, kind: str
) -> None:
    assert counts_of(await sync(fake, store)) == (4, 4, 0, 0, 0, 0)
    fake.pages = body_of(content, kind)
    with pytest.raises(SyncInterrupted, match="nothing was removed"):
        await sync(fake, store)
    assert store.ids() == SYNCED


async def test_a_bad_second_page_removes_nothing(
    fake: FakeKnowledge, store: KnowledgeBase
) -> None:
    await sync(fake, store)
    fake.pages = lambda after: listing(document(DOC_IDS[0]), after="p2") if after is None \
        else httpx.Response(200, json={})
    with pytest.raises(SyncInterrupted, match="stopped after 1 of 4 documents"):
        await sync(fake, store)
    assert store.ids() == SYNCED


async def test_an_empty_listing_removes_nothing_unless_allowed(
    fake: FakeKnowledge, store: KnowledgeBase
) -> None:
    await sync(fake, store)
    fake.pages = lambda _after: listing()
    with pytest.raises(SyncError, match="listed no published documents") as caught:
        await sync(fake, store)
    assert "--allow-remove-all" in str(caught.value) and "nothing was removed" in str(caught.value)
    assert store.ids() == SYNCED

    assert counts_of(await sync(fake, store, allow_remove_all=True)) == (0, 0, 0, 4, 0, 0)
    assert store.ids() == set()
    assert counts_of(await sync(fake, store)) == (0, 0, 0, 0, 0, 0)  # nothing left to guard


async def test_a_listing_of_only_hidden_documents_is_refused_too(
    fake: FakeKnowledge, store: KnowledgeBase
) -> None:
    await sync(fake, store)
    fake.pages = lambda _after: listing(*({**document(d), "visible": False} for d in DOC_IDS))
    with pytest.raises(SyncError, match="none of the 4 documents Genesys listed can be indexed"):
        await sync(fake, store)
    assert store.ids() == SYNCED
    # Why each one was skipped is in the message: the summary is never printed.
    fake.pages = lambda _after: listing("d0000001")
    with pytest.raises(SyncError) as caught:
        await sync(fake, store)
    assert str(caught.value).startswith("none of the 1 document Genesys listed can be indexed")
    assert str(caught.value).endswith(
        "\nwarning: the listing held str 'd0000001', not a document: skipped")


async def test_removing_some_documents_needs_no_flag(
    fake: FakeKnowledge, store: KnowledgeBase
) -> None:
    await sync(fake, store)
    fake.pages = lambda _after: listing(document(DOC_IDS[0]))
    assert counts_of(await sync(fake, store)) == (1, 0, 0, 3, 1, 0)
    # Nor replacing every one of them: the listing is not empty.
    fake.pages = lambda _after: listing(document("d0000009"))
    assert counts_of(await sync(fake, store)) == (1, 1, 0, 1, 0, 0)
    assert store.ids() == {"gk-d0000009"}


async def test_entries_that_are_not_documents_are_skipped_with_a_warning(
    fake: FakeKnowledge, store: KnowledgeBase
) -> None:
    fake.pages = lambda _after: listing("d0000001", None, document(DOC_IDS[1]))
    summary = await sync(fake, store)
    assert counts_of(summary) == (3, 1, 0, 0, 0, 2)
    assert summary.warnings == [
        "the listing held str 'd0000001', not a document: skipped",
        "the listing held NoneType 'None', not a document: skipped"]
    assert store.ids() == {f"gk-{DOC_IDS[1]}"}


async def test_a_cursor_that_comes_back_interrupts_instead_of_looping(
    fake: FakeKnowledge, store: KnowledgeBase
) -> None:
    await sync(fake, store)
    fake.pages = lambda _after: listing(document(DOC_IDS[0]), after="same")
    fake.listings = 0
    with pytest.raises(SyncInterrupted, match="cursor it gave before"):
        await sync(fake, store)
    assert fake.listings == 2
    assert store.ids() == SYNCED
    with SyncLock(store.path):  # the lock was released
        pass


async def test_documents_listed_on_two_pages_are_counted_and_fetched_once(
    fake: FakeKnowledge, store: KnowledgeBase
) -> None:
    docs = [document(d) for d in DOC_IDS]
    fake.pages = lambda after: listing(*docs[:3], after="p2") if after is None \
        else listing(*docs[2:])
    seen: list[str] = []
    summary = await sync(fake, store, on_document=lambda result: seen.append(result.id))
    assert counts_of(summary) == (4, 4, 0, 0, 0, 0)
    assert seen == DOC_IDS and fake.variations == DOC_IDS


async def test_a_title_that_is_not_unicode_is_skipped_with_a_warning(
    fake: FakeKnowledge, store: KnowledgeBase
) -> None:
    fake.pages = lambda _after: listing(document(DOC_IDS[0], "Roaming \ud800"),
                                        document(DOC_IDS[1]))
    summary = await sync(fake, store)
    assert counts_of(summary) == (2, 1, 0, 0, 0, 1)
    assert summary.warnings == [f"document {DOC_IDS[0]} has text that is not valid Unicode: "
                                "skipped"]


async def test_a_body_that_is_not_unicode_is_skipped_with_a_warning(
    fake: FakeKnowledge, store: KnowledgeBase
) -> None:
    fake.texts[DOC_IDS[2]] = "Press \udfff to call"
    summary = await sync(fake, store)
    assert counts_of(summary) == (4, 3, 0, 0, 0, 1)
    assert summary.warnings == [
        f"document {DOC_IDS[2]} ('Doc {DOC_IDS[2]}') cannot be stored: its body holds U+DFFF "
        "at character 7, a lone surrogate (not valid Unicode): skipped"]
    assert f"gk-{DOC_IDS[2]}" not in store.ids()


class FailingEmbedder:
    """Embeds ``working`` batches, then fails as a service that went down."""

    name = "failing/1"

    def __init__(self, working: int) -> None:
        self.working = working

    def embed(self, texts: Sequence[str]) -> Vectors:
        if self.working <= 0:
            raise EmbeddingError("embedding service answered 503")
        self.working -= 1
        return np.full((len(texts), 4), 0.5, dtype=np.float32)

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        return self.embed(texts)


async def test_an_embedding_failure_interrupts_saying_how_far(
    fake: FakeKnowledge, tmp_path: Path
) -> None:
    store = KnowledgeBase(tmp_path / "kb.db", FailingEmbedder(working=2))
    with pytest.raises(SyncInterrupted) as caught:
        await sync(fake, store)
    message = str(caught.value)
    assert message.startswith("embedding failed: embedding service answered 503\n")
    assert "stopped after 2 of 4 documents" in message and "nothing was removed" in message
    assert store.ids() == {f"gk-{d}" for d in DOC_IDS[:2]}
    store.close()
