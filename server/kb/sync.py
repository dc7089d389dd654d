"""``assist-panel kb sync``: copy a Genesys Knowledge base into the local knowledge base.

Pages through the base's published documents (``GET .../documents``, cursor
paging, ``expand=category``) and indexes the visible ones as articles
``gk-{documentId}``: the title, a link (the document's ``externalUrl``, else
``--link-template``), the category's name, and the text of its published
variation's blocks (:mod:`server.kb.blocks`).

Incremental: a ledger table in the same SQLite file (:mod:`server.kb.sync_ledger`)
remembers, per knowledge base, each synced document and its version key (its
``documentVersion`` id and ``dateModified``, and what the article is built from).
A document whose key has not changed is not fetched again. Each document is
committed as it goes, so an interrupted run loses nothing and a rerun continues.
Documents gone from the listing (deleted, unpublished) or now hidden are removed
only after a complete listing: a run that fails midway never deletes, and a
listing that would leave nothing of what was synced before removes nothing unless
``allow_remove_all`` says so. A lock file beside the database makes a second
concurrent sync fail at once.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from server.admin.client import AdminClient, AdminCredentials, PlatformHosts, RetryNotice
from server.errors import (
    AdminError,
    EmbeddingError,
    PlatformCallFailed,
    SyncError,
    SyncInterrupted,
)
from server.kb.article import SYNC_ID_PREFIX
from server.kb.blocks import blocks_to_text, squash
from server.kb.store import Article, KnowledgeBase
from server.kb.sync_ledger import PENDING, LedgerEntry, SyncLedger, SyncLock

__all__ = [
    "DocumentResult",
    "KnowledgeBaseInfo",
    "SyncSummary",
    "run_sync",
    "sync_knowledge_base",
]

NEED_KB = "knowledge:knowledgebase:view"
NEED_DOCUMENTS = "knowledge:document:view"
#: Article ids of synced documents are this prefix and the document id.
ARTICLE_PREFIX = SYNC_ID_PREFIX
#: Part of every version key: bump it when the text built from a document changes,
#: so that the next sync rebuilds every article.
TEXT_FORMAT = "1"
DEFAULT_PAGE_SIZE = 200
MAX_PAGE_SIZE = 200
HTTP_TIMEOUT_S = 30.0
#: The platform's ids are UUIDs; anything of these characters is safe in a path.
_PLATFORM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
TEMPLATE_FIELDS = frozenset({"documentId", "knowledgeBaseId"})
#: The option that lets a sync remove every article it synced before.
ALLOW_REMOVE_ALL = "--allow-remove-all"

Outcome = Literal["added", "updated", "unchanged", "skipped"]


@dataclass(frozen=True)
class KnowledgeBaseInfo:
    """The knowledge base being synced; ``article_count`` is its published documents."""

    id: str
    name: str
    article_count: int


@dataclass(frozen=True)
class DocumentResult:
    """What a sync did with one listed document."""

    id: str
    title: str
    outcome: Outcome


@dataclass
class SyncSummary:
    """Counts of one sync. ``documents`` were listed; each was added, updated, unchanged
    or skipped (hidden, or nothing to index); ``removed`` articles left the store."""

    documents: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    removed: int = 0
    warnings: list[str] = field(default_factory=list)


OnStart = Callable[[KnowledgeBaseInfo], None]
OnDocument = Callable[[DocumentResult], None]


# Building articles ------------------------------------------------------------


def _category_name(document: Mapping[str, Any]) -> str:
    category = document.get("category")
    return squash(category.get("name")) if isinstance(category, Mapping) else ""


def check_link_template(template: str) -> None:
    """Refuse a ``--link-template`` that is not an http(s) URL with known fields only,
    plain (no ``!r`` conversion, no ``:d`` format spec): it is used on every document,
    so it must fail here, before the first is written, not halfway through."""
    if not template.startswith(("https://", "http://")):
        raise SyncError(f"--link-template must be an http(s) URL, got {template!r}")
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion
                  in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise SyncError(f"--link-template is not a valid template: {exc}") from exc
    unknown = {name for name, _, _ in fields} - TEMPLATE_FIELDS
    if unknown:
        raise SyncError(
            f"--link-template may use {{documentId}} and {{knowledgeBaseId}} only, "
            f"not {', '.join('{' + n + '}' for n in sorted(unknown))}"
        )
    for name, spec, conversion in fields:
        if spec or conversion:
            written = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise SyncError(
                f"--link-template fields take no conversion or format: write {{{name}}}, "
                f"not {{{written}}}")


def document_link(document: Mapping[str, Any], kb_id: str, template: str | None) -> str:
    """The article's link: the document's http(s) ``externalUrl``, else the template's, else ''."""
    external = document.get("externalUrl")
    if isinstance(external, str) and external.startswith(("https://", "http://")):
        return external
    if template:
        return template.format(documentId=document.get("id", ""), knowledgeBaseId=kb_id)
    return ""


def version_key(document: Mapping[str, Any], template: str | None) -> str | None:
    """What says a document changed: ``documentVersion`` id, ``dateModified`` and a digest of
    the other inputs of its article. None when the platform gave neither (always refetch)."""
    version = document.get("documentVersion")
    version_id = squash(version.get("id")) if isinstance(version, Mapping) else ""
    modified = squash(document.get("dateModified"))
    if not version_id and not modified:
        return None
    inputs = (TEXT_FORMAT, squash(document.get("title")), _category_name(document),
              squash(document.get("externalUrl")), template or "")
    digest = hashlib.sha256("\0".join(inputs).encode()).hexdigest()[:16]
    return f"{version_id}|{modified}|{digest}"


def choose_variation(variations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The variation agents should see: the default one (no contexts), else the first by
    ``priority``; None when the document has no published variation."""

    def rank(variation: dict[str, Any]) -> tuple[bool, int]:
        priority = variation.get("priority")
        if not isinstance(priority, int) or isinstance(priority, bool):
            priority = 1 << 30
        return bool(variation.get("contexts")), priority

    return min(variations, key=rank) if variations else None


# The sync ---------------------------------------------------------------------


def _check_options(knowledge_base_id: str, page_size: int, link_template: str | None) -> None:
    if not _PLATFORM_ID.match(knowledge_base_id):
        raise SyncError(f"{knowledge_base_id!r} is not a knowledge base id (a UUID)")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise SyncError(f"the page size must be from 1 to {MAX_PAGE_SIZE}")
    if link_template is not None:
        check_link_template(link_template)


async def fetch_knowledge_base(client: AdminClient, knowledge_base_id: str) -> KnowledgeBaseInfo:
    """The knowledge base's name and published document count (a clear error if unknown)."""
    path = f"/api/v2/knowledge/knowledgebases/{knowledge_base_id}"
    try:
        body = await client.call("GET", path, need=NEED_KB)
    except PlatformCallFailed as exc:
        if exc.status == 404:
            raise SyncError(
                f"Genesys Cloud ({client.hosts.region}) has no knowledge base "
                f"{knowledge_base_id} in this org: check --knowledge-base (Admin > Knowledge) "
                "and --region"
            ) from exc
        raise
    body = body if isinstance(body, dict) else {}
    count = body.get("articleCount")
    return KnowledgeBaseInfo(
        id=knowledge_base_id,
        name=squash(body.get("name")) or knowledge_base_id,
        article_count=count if isinstance(count, int) and not isinstance(count, bool) else 0,
    )


async def sync_knowledge_base(
    client: AdminClient,
    store: KnowledgeBase,
    knowledge_base_id: str,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    link_template: str | None = None,
    on_start: OnStart | None = None,
    on_document: OnDocument | None = None,
    allow_remove_all: bool = False,
) -> SyncSummary:
    """Sync one Genesys Knowledge base into ``store`` with a signed-in ``client``.

    ``on_start`` gets the base (its ``article_count`` sizes a progress bar) and
    ``on_document`` each listed document's result. Raises :class:`SyncBusy` when
    another sync holds the store's lock, :class:`SyncInterrupted` when a call or the
    embedding service fails midway (nothing removed; rerun to continue),
    :class:`SyncError` when the listing would remove every article synced before and
    ``allow_remove_all`` is false (nothing removed), :class:`AdminError` else.
    """
    _check_options(knowledge_base_id, page_size, link_template)
    with SyncLock(store.path):
        run = _Sync(client, store, knowledge_base_id, page_size, link_template,
                    allow_remove_all)
        return await run.run(on_start, on_document)


async def run_sync(
    credentials: AdminCredentials,
    store: KnowledgeBase,
    knowledge_base_id: str,
    *,
    region: str,
    api_base: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    link_template: str | None = None,
    on_start: OnStart | None = None,
    on_document: OnDocument | None = None,
    on_retry: RetryNotice | None = None,
    allow_remove_all: bool = False,
) -> SyncSummary:
    """Sign in as the admin client of ``region`` (or ``api_base``: dev mode's mock) and sync
    (as :func:`sync_knowledge_base`).

    The lock is taken before signing in, so a concurrent run fails at once.
    """
    _check_options(knowledge_base_id, page_size, link_template)
    hosts = PlatformHosts.resolve(region, api_base)
    with SyncLock(store.path):
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as http:
            client = AdminClient(http, hosts, on_retry=on_retry)
            await client.sign_in(credentials)
            run = _Sync(client, store, knowledge_base_id, page_size, link_template,
                        allow_remove_all)
            return await run.run(on_start, on_document)


class _Sync:
    """One run, with the lock held."""

    def __init__(self, client: AdminClient, store: KnowledgeBase, kb_id: str,
                 page_size: int, link_template: str | None, allow_remove_all: bool) -> None:
        self.client = client
        self.store = store
        self.kb_id = kb_id
        self.page_size = page_size
        self.link_template = link_template
        self.allow_remove_all = allow_remove_all
        self.path = f"/api/v2/knowledge/knowledgebases/{kb_id}/documents"
        self.summary = SyncSummary()
        self.kept: set[str] = set()
        self.listed: set[str] = set()

    async def run(self, on_start: OnStart | None, on_document: OnDocument | None) -> SyncSummary:
        info = await fetch_knowledge_base(self.client, self.kb_id)
        if on_start is not None:
            on_start(info)
        with SyncLedger(self.store.path) as ledger:
            synced = ledger.documents(self.kb_id)
            existing = self.store.ids()
            try:
                params: dict[str, str | int] = {"pageSize": self.page_size, "expand": "category"}
                async for page in self.client.cursor_pages(
                    self.path, need=NEED_DOCUMENTS, params=params
                ):
                    for entity in page:
                        result = await self._listed(entity, ledger, synced, existing)
                        if result is None:
                            continue
                        self._count(result)
                        if on_document is not None:
                            on_document(result)
            except (AdminError, EmbeddingError) as exc:
                what = f"embedding failed: {exc}" if isinstance(exc, EmbeddingError) else exc
                raise SyncInterrupted(
                    f"{what}\nThe sync stopped after {self.summary.documents} of "
                    f"{info.article_count} documents. What was synced is kept and nothing was "
                    "removed; run it again to finish (unchanged documents are not fetched again)."
                    + self._warnings_so_far()
                ) from exc
            # The listing is complete: what was synced before and is not kept now goes,
            # unless that is all of it and nothing new came (see _refusal).
            gone = {doc_id: entry for doc_id, entry in synced.items() if doc_id not in self.kept}
            if gone and not self.kept and not self.allow_remove_all:
                raise SyncError(self._refusal(len(synced)) + self._warnings_so_far())
            for doc_id, entry in gone.items():
                self.summary.removed += self.store.delete([entry.article_id])
                ledger.forget(self.kb_id, doc_id)
        return self.summary

    def _refusal(self, synced: int) -> str:
        # An empty answer is likelier a platform or permission slip than an emptied
        # knowledge base: removing every article would leave agents with nothing.
        count = self.summary.documents
        listed = (f"Genesys listed no published documents in knowledge base {self.kb_id}"
                  if not count else
                  f"none of the {count} document{'s' if count > 1 else ''} Genesys listed can "
                  "be indexed")
        return (f"{listed}, which would remove all {synced} articles synced from it before; "
                "nothing was removed. If the knowledge base really is empty now, run again "
                f"with {ALLOW_REMOVE_ALL} to remove them.")

    def _warnings_so_far(self, shown: int = 5) -> str:
        """The run's warnings, for the message of a run that fails (the summary that
        would show them is never printed)."""
        warnings = self.summary.warnings
        lines = [f"\nwarning: {warning}" for warning in warnings[:shown]]
        if len(warnings) > shown:
            lines.append(f"\n... and {len(warnings) - shown} more warnings")
        return "".join(lines)

    async def _listed(self, entity: object, ledger: SyncLedger,
                      synced: Mapping[str, LedgerEntry], existing: set[str]
                      ) -> DocumentResult | None:
        """What became of one entry of the listing; None for a document listed before
        in this run (a page boundary that moved), which is neither fetched nor counted
        again."""
        if not isinstance(entity, Mapping):
            self.summary.warnings.append(
                f"the listing held {type(entity).__name__} {str(entity)[:40]!r}, not a "
                "document: skipped")
            return DocumentResult("", "", "skipped")
        doc_id = squash(entity.get("id"))
        if doc_id and doc_id in self.listed:
            return None
        self.listed.add(doc_id)
        try:
            return await self._document(entity, ledger, synced, existing)
        except UnicodeEncodeError:  # a lone surrogate in its title or version: unstorable
            self.summary.warnings.append(
                f"document {doc_id} has text that is not valid Unicode: skipped")
            return DocumentResult(doc_id, "", "skipped")

    def _count(self, result: DocumentResult) -> None:
        self.summary.documents += 1
        setattr(self.summary, result.outcome, getattr(self.summary, result.outcome) + 1)

    async def _document(self, document: Mapping[str, Any], ledger: SyncLedger,
                        synced: Mapping[str, LedgerEntry], existing: set[str]) -> DocumentResult:
        doc_id = squash(document.get("id"))
        title = squash(document.get("title"))

        def skipped(warning: str | None = None) -> DocumentResult:
            if warning:
                self.summary.warnings.append(f"document {doc_id} ({title!r}) {warning}: skipped")
            return DocumentResult(doc_id, title, "skipped")

        if not _PLATFORM_ID.match(doc_id):
            return skipped("has an id that cannot name an article")
        if document.get("state", "Published") != "Published" or document.get("visible") is False:
            return skipped()  # hidden from agents: not indexed (removed if it was)
        if not title:
            return skipped("has no title")
        article_id = ARTICLE_PREFIX + doc_id
        key = version_key(document, self.link_template)
        previous = synced.get(doc_id)
        if key and previous and previous.version_key == key and article_id in existing:
            self.kept.add(doc_id)
            return DocumentResult(doc_id, title, "unchanged")
        variation = choose_variation(await self._variations(doc_id))
        if variation is None:
            return skipped("has no published variation")
        body = variation.get("body")
        text = blocks_to_text(body.get("blocks") if isinstance(body, Mapping) else None)
        if not text:
            return skipped("has no text to index (only images or videos?)")
        article = Article(id=article_id, title=title,
                          url=document_link(document, self.kb_id, self.link_template),
                          body=text, category=_category_name(document))
        problem = article.text_problem()
        if problem:
            return skipped(f"cannot be stored: {problem}")
        if previous is None:
            # Remembered before it is written, so a crash in between cannot orphan it.
            ledger.record(self.kb_id, doc_id, article_id, PENDING)
        counts = self.store.upsert([article])
        ledger.record(self.kb_id, doc_id, article_id, key or "")
        self.kept.add(doc_id)
        outcome: Outcome = (
            "added" if counts.added else "updated" if counts.updated else "unchanged"
        )
        return DocumentResult(doc_id, title, outcome)

    async def _variations(self, doc_id: str) -> list[dict[str, Any]]:
        variations: list[dict[str, Any]] = []
        async for page in self.client.cursor_pages(
            f"{self.path}/{doc_id}/variations", need=NEED_DOCUMENTS,
            params={"documentState": "Published", "pageSize": MAX_PAGE_SIZE},
        ):
            variations.extend(v for v in page if isinstance(v, dict))
        return variations
