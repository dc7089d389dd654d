"""``kb sync`` against the mock Genesys Cloud over real HTTP: a first sync, then edits,
additions, deletions and unpublishing across several pages; failures midway that keep
what was done and delete nothing; the lock; and the CLI command end to end."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from server.admin.client import AdminClient, AdminCredentials, PlatformHosts
from server.cli import main
from server.errors import AdminError, SyncBusy, SyncError, SyncInterrupted
from server.kb.store import Article, KnowledgeBase
from server.kb.sync import DocumentResult, KnowledgeBaseInfo, choose_variation, sync_knowledge_base
from server.kb.sync_ledger import SyncLock
from server.pipeline.context import SearchQuery
from server.pipeline.retrieval import HybridSearch
from tests.devmode.test_mock_genesys import MockServer, run_mock
from tests.kb.test_kb_sync_answers import FailingEmbedder

SEED = [f"0f4d2c8a-6b1e-4c7a-9d3f-1a2b3c4d5e0{n}" for n in range(1, 10)]
TRAVEL, DATA, BILL, SIM, ESIM, PORTING, AUTOPAY, VOICEMAIL, DRAFT = SEED
PUBLISHED = SEED[:8]
WITHOUT_EXTERNAL_URL = [DATA, SIM, PORTING, VOICEMAIL]
TEMPLATE = "https://help.brightwave.example/kb/{knowledgeBaseId}/{documentId}"


def gk(doc_id: str) -> str:
    return f"gk-{doc_id}"


def paragraph(text: str) -> dict[str, Any]:
    run = {"type": "Text", "text": {"text": text}}
    return {"type": "Paragraph", "paragraph": {"blocks": [run]}}


def article(store: KnowledgeBase, doc_id: str) -> Article:
    found = store.get(gk(doc_id))
    assert found is not None, doc_id
    return found


@pytest.fixture
def mock() -> Iterator[MockServer]:
    with run_mock() as running:
        yield running


async def _no_sleep(_seconds: float) -> None:
    return None


@asynccontextmanager
async def signed_in(mock: MockServer) -> AsyncIterator[AdminClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        client = AdminClient(http, PlatformHosts.resolve("", mock.origin), sleep=_no_sleep)
        await client.sign_in(
            AdminCredentials(mock.config.admin_client_id, mock.config.admin_client_secret))
        yield client


class Mock:
    """The mock's /mock controls."""

    def __init__(self, mock: MockServer) -> None:
        self.origin = mock.origin

    def put(self, doc_id: str, title: str, text: str, **fields: Any) -> None:
        body = {"title": title, "blocks": [paragraph(text)], **fields}
        response = httpx.put(f"{self.origin}/mock/knowledge/documents/{doc_id}", json=body)
        assert response.status_code in (200, 201), response.text

    def unpublish(self, doc_id: str) -> None:
        response = httpx.post(f"{self.origin}/mock/knowledge/documents/{doc_id}/unpublish")
        assert response.status_code == 200, response.text

    def delete(self, doc_id: str) -> None:
        response = httpx.delete(f"{self.origin}/mock/knowledge/documents/{doc_id}")
        assert response.status_code == 204, response.text

    def fault(self, doc_id: str) -> None:
        rule = {"method": "GET", "status": 500, "times": 1,
                "path": f"/api/v2/knowledge/knowledgebases/*/documents/{doc_id}/variations"}
        assert httpx.post(f"{self.origin}/mock/faults", json=rule).status_code == 201

    def reset_counts(self) -> None:
        httpx.delete(f"{self.origin}/mock/knowledge/requests")

    def counts(self) -> dict[str, Any]:
        counts: dict[str, Any] = httpx.get(f"{self.origin}/mock/knowledge/requests").json()
        return counts


def counts_of(summary: Any) -> tuple[int, int, int, int, int, int]:
    return (summary.documents, summary.added, summary.updated, summary.removed,
            summary.unchanged, summary.skipped)


async def sync(mock: MockServer, store: KnowledgeBase, **options: Any) -> Any:
    options.setdefault("page_size", 3)
    async with signed_in(mock) as client:
        return await sync_knowledge_base(client, store, mock.config.knowledge_base_id, **options)


# Syncing ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_first_sync_adds_every_published_visible_document(
    mock: MockServer, store: KnowledgeBase
) -> None:
    started: list[KnowledgeBaseInfo] = []
    seen: list[DocumentResult] = []
    summary = await sync(mock, store, on_start=started.append, on_document=seen.append)

    assert counts_of(summary) == (8, 8, 0, 0, 0, 0) and summary.warnings == []
    assert started == [KnowledgeBaseInfo(mock.config.knowledge_base_id,
                                         "Brightwave Help Center", 8)]
    assert [(r.id, r.outcome) for r in seen] == [(d, "added") for d in PUBLISHED]
    assert store.ids() == {gk(d) for d in PUBLISHED}
    counts = Mock(mock).counts()
    assert counts["listings"] == 3 and counts["variations"] == 8  # 8 documents, 3 a page

    travel = article(store, TRAVEL)
    assert travel.title == "Using your phone abroad with the International Travel Pass"
    assert travel.url == "https://help.brightwave.example/plans/international-travel-pass"
    assert travel.category == "Plans & roaming"
    assert "\n\n1. Open the My Brightwave app" in travel.body
    assert "\n\nCalls | Included | $1.99 per minute\n\n" in travel.body
    data = article(store, DATA)
    assert data.url == ""
    assert "\n\n  - 5 GB Month Pass, $15" in data.body
    found = HybridSearch(store).search(SearchQuery.of("replacement SIM card stolen"), 3)
    assert found.sources[0].id == gk(SIM)


@pytest.mark.anyio
async def test_second_sync_applies_edits_additions_deletions_and_unpublishing(
    mock: MockServer, store: KnowledgeBase
) -> None:
    await sync(mock, store)
    control = Mock(mock)
    control.put(BILL, "Reading your monthly bill", "Paperless billing saves $2 every month.",
                category="Billing")
    control.put("spam-calls", "Blocking spam calls", "Turn on Call Shield in the app.")
    control.delete(PORTING)
    control.unpublish(SIM)
    control.reset_counts()

    summary = await sync(mock, store)

    assert counts_of(summary) == (7, 1, 1, 2, 5, 0)
    assert control.counts()["variationsByDocument"] == {BILL: 1, "spam-calls": 1}
    assert control.counts()["listings"] == 3  # 7 documents, 3 a page
    search = HybridSearch(store)
    assert search.search(SearchQuery.of("paperless billing"), 3).sources[0].id == gk(BILL)
    assert search.search(SearchQuery.of("call shield"), 3).sources[0].id == gk("spam-calls")
    assert store.get(gk(PORTING)) is None and store.get(gk(SIM)) is None
    expected = {gk(d) for d in PUBLISHED if d not in (PORTING, SIM)} | {gk("spam-calls")}
    assert store.ids() == expected

    control.reset_counts()
    again = await sync(mock, store)
    assert counts_of(again) == (7, 0, 0, 0, 7, 0)
    assert control.counts()["variations"] == 0


@pytest.mark.anyio
async def test_hidden_documents_leave_and_the_link_template_fills_missing_links(
    mock: MockServer, store: KnowledgeBase
) -> None:
    await sync(mock, store, link_template=TEMPLATE)
    kb_id = mock.config.knowledge_base_id
    voicemail = article(store, VOICEMAIL)
    assert voicemail.url == f"https://help.brightwave.example/kb/{kb_id}/{VOICEMAIL}"
    control = Mock(mock)
    control.put(DATA, "Buying a data pass", "Passes add data.", visible=False)
    control.reset_counts()

    summary = await sync(mock, store, link_template=TEMPLATE)
    assert counts_of(summary) == (8, 0, 0, 1, 7, 1)
    assert store.get(gk(DATA)) is None and control.counts()["variations"] == 0

    # Another template changes the links of the documents without an external URL.
    control.reset_counts()
    summary = await sync(mock, store, link_template="https://kb.example/{documentId}")
    assert counts_of(summary) == (8, 0, 3, 0, 4, 1)
    fetched = set(control.counts()["variationsByDocument"])
    assert fetched == {d for d in PUBLISHED if d != DATA}
    assert {article(store, d).url for d in (SIM, PORTING)} == {
        f"https://kb.example/{SIM}", f"https://kb.example/{PORTING}"}


@pytest.mark.anyio
async def test_a_fault_midway_keeps_what_was_synced_deletes_nothing_and_a_rerun_finishes(
    mock: MockServer, store: KnowledgeBase
) -> None:
    await sync(mock, store)
    control = Mock(mock)
    control.put(TRAVEL, "Travel Pass", "The Travel Pass now costs $12 a day.")  # page 1
    control.put(AUTOPAY, "Paying by autopay", "Autopay now gives $7 off per line.")  # page 3
    control.delete(ESIM)  # page 2
    control.fault(AUTOPAY)

    with pytest.raises(SyncInterrupted) as caught:
        await sync(mock, store)
    message = str(caught.value)
    assert "500" in message and "Injected fault" in message
    assert "nothing was removed" in message and "run it again" in message
    assert isinstance(caught.value, AdminError)
    assert store.get(gk(ESIM)) is not None  # an interrupted run never deletes
    assert "$12 a day" in article(store, TRAVEL).body
    assert "$7 off" not in article(store, AUTOPAY).body

    control.reset_counts()
    summary = await sync(mock, store)
    assert counts_of(summary) == (7, 0, 1, 1, 6, 0)  # the Travel Pass edit was kept
    assert control.counts()["variationsByDocument"] == {AUTOPAY: 1}
    assert store.get(gk(ESIM)) is None
    assert "$7 off" in article(store, AUTOPAY).body


class Crash(Exception):
    pass


@pytest.mark.anyio
async def test_a_crash_loses_nothing_already_synced_and_a_rerun_continues(
    mock: MockServer, store: KnowledgeBase
) -> None:
    def crash_after_three(result: DocumentResult) -> None:
        if result.id == SEED[2]:
            raise Crash

    with pytest.raises(Crash):
        await sync(mock, store, on_document=crash_after_three)
    assert store.ids() == {gk(d) for d in SEED[:3]}
    Mock(mock).reset_counts()

    summary = await sync(mock, store)
    assert counts_of(summary) == (8, 5, 0, 0, 3, 0)
    assert set(Mock(mock).counts()["variationsByDocument"]) == set(PUBLISHED[3:])


@pytest.mark.anyio
async def test_a_concurrent_sync_is_refused_at_once(
    mock: MockServer, store: KnowledgeBase
) -> None:
    kb_id = mock.config.knowledge_base_id
    async with signed_in(mock) as one, signed_in(mock) as other:
        # The first takes the lock before its first call; the second finds it taken.
        results: tuple[Any, ...] = await asyncio.gather(
            sync_knowledge_base(one, store, kb_id), sync_knowledge_base(other, store, kb_id),
            return_exceptions=True)
    first, second = results
    assert counts_of(first) == (8, 8, 0, 0, 0, 0)
    assert isinstance(second, SyncBusy)
    assert "already running" in str(second) and ".sync.lock" in str(second)
    assert counts_of(await sync(mock, store)) == (8, 0, 0, 0, 8, 0)  # the lock was released


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("permissions", "missing"),
    [(("knowledge:knowledgebase:view",), "knowledge:document:view"),
     (("knowledge:document:view",), "knowledge:knowledgebase:view")],
)
async def test_a_missing_permission_is_named(
    store: KnowledgeBase, permissions: tuple[str, ...], missing: str
) -> None:
    with run_mock(admin_permissions=permissions) as restricted, \
            pytest.raises(AdminError) as caught:
        await sync(restricted, store)
    assert f"needs the permission {missing}" in str(caught.value)
    assert store.count() == 0


@pytest.mark.anyio
async def test_an_unknown_knowledge_base_is_a_clear_error(
    mock: MockServer, store: KnowledgeBase
) -> None:
    async with signed_in(mock) as client:
        with pytest.raises(SyncError, match="has no knowledge base 00000000-"):
            await sync_knowledge_base(client, store, "00000000-0000-0000-0000-000000000000")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kb_id", "options", "message"),
    [("../../users/me", {}, "not a knowledge base id"),
     (None, {"page_size": 0}, "page size"),
     (None, {"link_template": "ftp://kb.example/{documentId}"}, "http(s) URL"),
     (None, {"link_template": "https://kb.example/{docId}"}, "not {docId}"),
     (None, {"link_template": "https://kb.example/{documentId"}, "not a valid template"),
     # Refused up front: checked by name only, they failed after a document was written.
     (None, {"link_template": "https://kb.example/{documentId:d}"}, "not {documentId:d}"),
     (None, {"link_template": "https://kb.example/{documentId!r}"}, "not {documentId!r}"),
     (None, {"link_template": "https://kb.example/{knowledgeBaseId!s:>40}"},
      "not {knowledgeBaseId!s:>40}"),
     (None, {"link_template": "https://kb.example/{}"}, "not {}")],
)
async def test_bad_options_are_refused_before_any_call(
    mock: MockServer, store: KnowledgeBase, kb_id: str | None, options: dict[str, Any],
    message: str,
) -> None:
    async with httpx.AsyncClient() as http:
        client = AdminClient(http, PlatformHosts.resolve("", mock.origin))  # not signed in
        with pytest.raises(SyncError, match=message.replace("(", r"\(").replace(")", r"\)")):
            await sync_knowledge_base(client, store, kb_id or mock.config.knowledge_base_id,
                                      **options)


def test_the_default_variation_is_preferred() -> None:
    assert choose_variation([]) is None
    contextual = {"id": "c", "priority": 1, "contexts": [{"context": {"id": "x"}}]}
    default = {"id": "d", "priority": 5}
    assert choose_variation([contextual, default]) == default
    assert choose_variation([{"id": "b", "priority": 2}, {"id": "a", "priority": 1}]) == {
        "id": "a", "priority": 1}


# The command ------------------------------------------------------------------------------


def run_cli(mock: MockServer, db: Path, *extra: str, **env: str | None) -> Any:
    credentials: dict[str, str | None] = {
        "ASSIST_ADMIN_CLIENT_ID": mock.config.admin_client_id,
        "ASSIST_ADMIN_CLIENT_SECRET": mock.config.admin_client_secret,
        "GENESYSCLOUD_OAUTHCLIENT_ID": None,
        "GENESYSCLOUD_OAUTHCLIENT_SECRET": None,
    }
    args = ["kb", "sync", "--knowledge-base", mock.config.knowledge_base_id,
            "--api-base", mock.origin, "--db", str(db), *extra]
    return CliRunner().invoke(main, args, env={**credentials, **env})


def test_cli_syncs_and_prints_the_summary(mock: MockServer, tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    first = run_cli(mock, db, "--page-size", "3")
    assert first.exit_code == 0, first.output
    assert first.stdout == f"8 documents: 8 added, 0 updated, 0 removed, 0 unchanged; " \
                           f"8 articles in {db}\n"
    assert "Syncing Brightwave Help Center" in first.stderr
    Mock(mock).delete(BILL)
    Mock(mock).put(DATA, "Data passes", "Hidden for now.", visible=False)
    second = run_cli(mock, db)
    assert second.exit_code == 0, second.output
    assert second.stdout.startswith(
        "7 documents: 0 added, 0 updated, 2 removed, 6 unchanged, 1 skipped; 6 articles in")


def test_cli_without_credentials_names_the_variables(mock: MockServer, tmp_path: Path) -> None:
    result = run_cli(mock, tmp_path / "kb.db", ASSIST_ADMIN_CLIENT_ID=None,
                     ASSIST_ADMIN_CLIENT_SECRET=None)
    assert result.exit_code == 1
    assert "ASSIST_ADMIN_CLIENT_ID" in result.output
    assert "ASSIST_ADMIN_CLIENT_SECRET" in result.output


def test_cli_reports_platform_errors_and_the_lock(mock: MockServer, tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    refused = run_cli(mock, db, ASSIST_ADMIN_CLIENT_SECRET="wrong")
    assert refused.exit_code == 1
    assert "Genesys refused the admin client credentials" in refused.output
    with SyncLock(db):
        busy = run_cli(mock, db)
    assert busy.exit_code == 1 and "already running" in busy.output
    assert f"(process {os.getpid()})" in busy.output


def test_cli_needs_a_region_or_the_mock(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["kb", "sync", "--knowledge-base", "kb-1",
                                       "--db", str(tmp_path / "kb.db")])
    assert result.exit_code == 2 and "--region" in result.output


def test_cli_help_documents_the_options() -> None:
    result = CliRunner().invoke(main, ["kb", "sync", "--help"])
    assert result.exit_code == 0
    for option in ("--knowledge-base ID", "--region REGION", "--api-base URL", "--db",
                   "--page-size", "--link-template URL", "--allow-remove-all",
                   "ASSIST_ADMIN_CLIENT_ID",
                   "knowledge:document:view", "Dev mode only"):
        assert option in result.output


def test_cli_refuses_to_remove_every_synced_article_without_the_flag(
    mock: MockServer, tmp_path: Path
) -> None:
    db = tmp_path / "kb.db"
    assert run_cli(mock, db).exit_code == 0
    for doc_id in PUBLISHED:
        Mock(mock).delete(doc_id)
    refused = run_cli(mock, db)
    assert refused.exit_code == 1
    assert "Error: Genesys listed no published documents" in refused.stderr
    assert "nothing was removed" in refused.stderr and "--allow-remove-all" in refused.stderr
    assert KnowledgeBase(db).count() == 8
    allowed = run_cli(mock, db, "--allow-remove-all")
    assert allowed.exit_code == 0, allowed.output
    assert allowed.stdout.startswith("0 documents: 0 added, 0 updated, 8 removed, 0 unchanged;")


def test_cli_embedding_failure_is_an_error_saying_how_far_not_a_traceback(
    mock: MockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("server.kb.embedders.build_embedder",
                        lambda _settings: FailingEmbedder(working=3))
    result = run_cli(mock, tmp_path / "kb.db")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "Error: embedding failed: embedding service answered 503\n" in result.stderr
    assert "The sync stopped after 3 of 8 documents" in result.stderr


@pytest.mark.parametrize("template", ["https://x/{documentId:d}", "https://x/{documentId!r}"])
def test_cli_link_template_with_a_conversion_is_a_usage_error_before_any_write(
    tmp_path: Path, template: str
) -> None:
    db = tmp_path / "kb.db"
    result = CliRunner().invoke(main, ["kb", "sync", "--knowledge-base", "kb-1", "--region",
                                       "us-east-1", "--db", str(db), "--link-template",
                                       template])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--link-template'" in result.output
    assert "take no conversion or format" in result.output
    assert not db.exists()


@pytest.mark.parametrize(("api_base", "message"), [
    ("http://[bad", "--api-base is not a valid URL (Invalid IPv6 URL)"),
    ("http://127.0.0.1:99999", "--api-base is not a valid URL (Port out of range 0-65535)"),
])
def test_cli_bad_api_base_is_one_error_line(tmp_path: Path, api_base: str,
                                            message: str) -> None:
    db = tmp_path / "kb.db"
    result = CliRunner().invoke(
        main, ["kb", "sync", "--knowledge-base", "kb-1", "--api-base", api_base, "--db", str(db)],
        env={"ASSIST_ADMIN_CLIENT_ID": "id", "ASSIST_ADMIN_CLIENT_SECRET": "secret"})
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr == f"Error: {message}: {api_base!r}\n"
    assert not db.exists()
