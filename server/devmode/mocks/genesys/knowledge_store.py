"""The mock's Genesys Knowledge content: one knowledge base of documents.

Each document has one variation (its body, the platform's ``DocumentBodyBlock``
JSON) and a state: ``Published`` documents are what a default listing shows,
``Draft`` ones only with ``includeDrafts``. Publishing a change bumps the
document's ``dateModified``, ``lastPublishedVersionNumber`` and
``documentVersion`` id, as the platform does. Documents are listed in creation
order (``seq``), which the cursors of :mod:`.knowledge` rely on.

The seed file (``knowledge_seed.json`` beside this module, or the config's
``knowledge_seed``) is ``{"documents": [...]}``, each document an object like the
body of ``PUT /mock/knowledge/documents/{id}`` plus its ``id`` and an optional
``state`` (``Published``, the default, or ``Draft``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.devmode.mocks.genesys.config import MockGenesysConfig

#: Ids the mock accepts for documents it creates (the platform's are UUIDs).
DOCUMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
#: Each top-level block type and the key holding its content.
BLOCK_KEYS = {
    "Paragraph": "paragraph",
    "Image": "image",
    "Video": "video",
    "OrderedList": "list",
    "UnorderedList": "list",
    "Table": "table",
}
CONTENT_FIELDS = frozenset(
    {"title", "blocks", "externalUrl", "visible", "category", "labels", "alternatives"}
)
SEED_STATES = ("Published", "Draft")
#: When the seed documents were written (epoch seconds), one day apart.
SEED_CREATED_AT = 1_709_283_600.0  # 2024-03-01T09:00:00Z
_SEED_SPACING_S = 86_400.0
_LABEL_COLORS = ("#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


class ContentError(ValueError):
    """A document body or seed entry that the mock refuses; says why."""


def shipped_seed() -> Path:
    """The seed of the mock's knowledge base that ships beside this module."""
    return Path(__file__).resolve().parent / "knowledge_seed.json"


def _strings(body: dict[str, Any], key: str) -> tuple[str, ...]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ContentError(f"{key} must be a list of non-empty strings.")
    return tuple(v.strip() for v in value)


def _blocks(value: Any) -> tuple[dict[str, Any], ...]:
    """Check the top level of a body's blocks: objects of a known type holding their content."""
    if not isinstance(value, list):
        raise ContentError("blocks must be a list of DocumentBodyBlock objects.")
    for index, block in enumerate(value):
        if not isinstance(block, dict):
            raise ContentError(f"blocks[{index}] must be an object.")
        kind = block.get("type")
        key = BLOCK_KEYS.get(kind) if isinstance(kind, str) else None
        if key is None:
            raise ContentError(
                f"blocks[{index}].type must be one of {', '.join(BLOCK_KEYS)}."
            )
        if not isinstance(block.get(key), dict):
            raise ContentError(f"blocks[{index}] of type {block['type']} needs an object {key!r}.")
    return tuple(value)


@dataclass(frozen=True)
class DocumentContent:
    """What an author writes: title, body blocks and the document's settings."""

    title: str
    blocks: tuple[dict[str, Any], ...]
    external_url: str | None = None
    visible: bool = True
    category: str | None = None
    labels: tuple[str, ...] = ()
    alternatives: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, body: Any) -> DocumentContent:
        """Validate ``{title, blocks, externalUrl?, visible?, category?, labels?, alternatives?}``.

        Blocks are checked at the top level only (a known type holding its content).
        """
        if not isinstance(body, dict):
            raise ContentError("The document must be a JSON object.")
        unknown = set(body) - CONTENT_FIELDS
        if unknown:
            raise ContentError(f"Unknown document fields: {', '.join(sorted(unknown))}.")
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            raise ContentError("title must be a non-empty string.")
        external_url = body.get("externalUrl")
        if external_url is not None and (
            not isinstance(external_url, str) or not external_url.startswith(("http://", "https://"))
        ):
            raise ContentError("externalUrl must be an http(s) URL.")
        visible = body.get("visible", True)
        if not isinstance(visible, bool):
            raise ContentError("visible must be true or false.")
        category = body.get("category")
        if category is not None and (not isinstance(category, str) or not category.strip()):
            raise ContentError("category must be a non-empty string (the category's name).")
        return cls(
            title=title.strip(),
            blocks=_blocks(body.get("blocks")),
            external_url=external_url,
            visible=visible,
            category=category.strip() if category else None,
            labels=_strings(body, "labels"),
            alternatives=_strings(body, "alternatives"),
        )


@dataclass
class MockDocument:
    """One document of the knowledge base, in its current state."""

    id: str
    seq: int
    content: DocumentContent
    state: str
    date_created: float
    date_modified: float
    variation_id: str
    date_published: float | None = None
    version_number: int = 0
    version_id: str | None = None

    @property
    def published(self) -> bool:
        """Whether the document has a published version (default listings show it)."""
        return self.state == "Published"


@dataclass
class RequestCounts:
    """The Knowledge API calls answered since the last reset (``/mock/knowledge/requests``)."""

    knowledge_bases: int = 0
    listings: int = 0
    documents: int = 0
    variations: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        """``{knowledgeBases, listings, documents, variations, variationsByDocument}``."""
        return {
            "knowledgeBases": self.knowledge_bases,
            "listings": self.listings,
            "documents": self.documents,
            "variations": sum(self.variations.values()),
            "variationsByDocument": dict(self.variations),
        }


class KnowledgeStore:
    """The documents of the mock's one knowledge base, and the API's request counts."""

    def __init__(self, kb_id: str, name: str, clock: Callable[[], float]) -> None:
        """An empty knowledge base; add documents with :meth:`load_seed` or :meth:`publish`."""
        self.kb_id = kb_id
        self.name = name
        self.clock = clock
        self.created_at = SEED_CREATED_AT - _SEED_SPACING_S
        self.documents: dict[str, MockDocument] = {}
        self.requests = RequestCounts()
        self._seq = 0
        self._last_stamp = 0.0

    @classmethod
    def from_config(cls, config: MockGenesysConfig) -> KnowledgeStore:
        """The config's knowledge base, seeded from ``knowledge_seed`` (or the shipped seed)."""
        store = cls(config.knowledge_base_id, config.knowledge_base_name, config.clock)
        path = config.knowledge_seed or shipped_seed()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the knowledge seed {path}: {exc}") from exc
        try:
            store.load_seed(data)
        except ContentError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        return store

    def load_seed(self, data: Any) -> None:
        """Add the seed's documents, written one day apart from :data:`SEED_CREATED_AT`."""
        if not isinstance(data, dict) or set(data) != {"documents"}:
            raise ContentError('The seed must be {"documents": [...]}.')
        entries = data["documents"]
        if not isinstance(entries, list):
            raise ContentError("documents must be a list.")
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise ContentError(f"documents[{index}] must be an object.")
            fields = dict(entry)
            doc_id = fields.pop("id", None)
            state = fields.pop("state", "Published")
            if not isinstance(doc_id, str) or not DOCUMENT_ID.match(doc_id):
                raise ContentError(f"documents[{index}].id is missing or invalid.")
            if doc_id in self.documents:
                raise ContentError(f"documents[{index}].id {doc_id} is there twice.")
            if state not in SEED_STATES:
                raise ContentError(f"documents[{index}].state must be Published or Draft.")
            try:
                content = DocumentContent.from_json(fields)
            except ContentError as exc:
                raise ContentError(f"documents[{index}]: {exc}") from exc
            when = SEED_CREATED_AT + index * _SEED_SPACING_S
            document = self._new(doc_id, content, when)
            if state == "Published":
                self._publish_version(document, when)

    # Reading --------------------------------------------------------------

    def listed(self, include_drafts: bool) -> list[MockDocument]:
        """Documents in creation order: the published ones, or every one with drafts."""
        documents = sorted(self.documents.values(), key=lambda d: d.seq)
        return [d for d in documents if include_drafts or d.published]

    def published_count(self) -> int:
        """How many documents have a published version (the base's ``articleCount``)."""
        return sum(1 for d in self.documents.values() if d.published)

    def last_modified(self) -> float:
        """When a document last changed (the base's creation when it has none)."""
        return max((d.date_modified for d in self.documents.values()), default=self.created_at)

    def category_id(self, name: str) -> str:
        """A stable id for a category name."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.kb_id}/categories/{name}"))

    def label_id(self, name: str) -> str:
        """A stable id for a label name."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.kb_id}/labels/{name}"))

    def label_color(self, name: str) -> str:
        """A stable display colour for a label."""
        return _LABEL_COLORS[uuid.UUID(self.label_id(name)).int % len(_LABEL_COLORS)]

    # Authoring (the /mock/knowledge controls) -----------------------------------

    def publish(self, doc_id: str, content: DocumentContent) -> tuple[MockDocument, bool]:
        """Create or replace a document and publish it; ``(document, created)``."""
        now = self._stamp()
        document = self.documents.get(doc_id)
        created = document is None
        if document is None:
            document = self._new(doc_id, content, now)
        else:
            document.content = content
            document.date_modified = now
        self._publish_version(document, now)
        return document, created

    def unpublish(self, doc_id: str) -> MockDocument | None:
        """Take a document back to ``Draft`` (it leaves default listings); None if unknown."""
        document = self.documents.get(doc_id)
        if document is not None and document.published:
            document.state = "Draft"
            document.version_id = None
            document.date_modified = self._stamp()
        return document

    def delete(self, doc_id: str) -> bool:
        """Delete a document; whether it existed."""
        return self.documents.pop(doc_id, None) is not None

    # Internals --------------------------------------------------------------

    def _new(self, doc_id: str, content: DocumentContent, when: float) -> MockDocument:
        self._seq += 1
        document = MockDocument(
            id=doc_id,
            seq=self._seq,
            content=content,
            state="Draft",
            date_created=when,
            date_modified=when,
            variation_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.kb_id}/variations/{doc_id}")),
        )
        self.documents[doc_id] = document
        return document

    def _publish_version(self, document: MockDocument, when: float) -> None:
        document.state = "Published"
        document.version_number += 1
        document.version_id = str(uuid.uuid4())
        document.date_published = when
        document.date_modified = when

    def _stamp(self) -> float:
        """Now, at least 2 ms after any earlier change (so every change shows in the dates)."""
        now = max(self.clock(), self._last_stamp + 0.002, self.last_modified() + 0.002)
        self._last_stamp = now
        return now
