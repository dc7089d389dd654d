"""The mock's Genesys Knowledge (v2) REST API, read-only, in the platform's shapes.

``GET /api/v2/knowledge/knowledgebases/{kbId}`` (``KnowledgeBase``), its
``/documents`` (``KnowledgeDocumentResponseListing``, cursor paging with
``after``/``before``, ``pageSize`` 1-200, ``includeDrafts``, ``expand``),
``/documents/{docId}`` (``KnowledgeDocumentResponse``) and
``/documents/{docId}/variations`` (``DocumentVariationResponseListing`` with
``body.blocks``; ``documentState`` ``Published`` by default, or ``Draft``).
Empty fields are left out, never ``null``. Readers are admin clients holding
``knowledge:knowledgebase:view`` / ``knowledge:document:view``, or user tokens
granted ``knowledge:readonly``. The mock-only authoring controls are in
:mod:`.knowledge_controls`; the content in :mod:`.knowledge_store`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.devmode.mocks.genesys.admin_auth import require_reader
from server.devmode.mocks.genesys.api import PlatformError
from server.devmode.mocks.genesys.config import MockGenesysConfig
from server.devmode.mocks.genesys.knowledge_controls import KnowledgeControls
from server.devmode.mocks.genesys.knowledge_store import KnowledgeStore, MockDocument
from server.devmode.mocks.genesys.state import MockGenesysState, iso_z

KB_VIEW = "knowledge:knowledgebase:view"
DOCUMENT_VIEW = "knowledge:document:view"
#: The user-token scope that reads Knowledge.
READ_SCOPE = "knowledge:readonly"
LANGUAGE = "en-US"
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 200
DOCUMENT_EXPANSIONS = frozenset({"category", "labels", "variations"})
DOCUMENT_STATES = ("Published", "Draft")

T = TypeVar("T")


def knowledge_routes(config: MockGenesysConfig, state: MockGenesysState) -> list[BaseRoute]:
    """The Knowledge API routes and the ``/mock/knowledge`` controls, sharing one store.

    Reads the seed now, so a broken seed fails when the app is built.
    """
    store = KnowledgeStore.from_config(config)
    api = KnowledgeApi(store, state)
    controls = KnowledgeControls(store, lambda document: document_body(store, document, set()))
    return [*api.routes(), *controls.routes()]


# Bodies ---------------------------------------------------------------------


def kb_uri(store: KnowledgeStore) -> str:
    """The knowledge base's ``selfUri``."""
    return f"/api/v2/knowledge/knowledgebases/{store.kb_id}"


def document_uri(store: KnowledgeStore, document: MockDocument) -> str:
    """A document's ``selfUri``."""
    return f"{kb_uri(store)}/documents/{document.id}"


def knowledge_base_body(store: KnowledgeStore) -> dict[str, Any]:
    """The knowledge base in the ``KnowledgeBase`` shape (``articleCount``: published documents)."""
    return {
        "id": store.kb_id,
        "name": store.name,
        "description": "Help articles of Brightwave Mobile (mock).",
        "coreLanguage": LANGUAGE,
        "dateCreated": iso_z(store.created_at),
        "dateModified": iso_z(store.created_at),
        "faqCount": 0,
        "dateDocumentLastModified": iso_z(store.last_modified()),
        "articleCount": store.published_count(),
        "published": True,
        "contentSearchEnabled": False,
        "selfUri": kb_uri(store),
    }


def document_body(
    store: KnowledgeStore, document: MockDocument, expand: set[str]
) -> dict[str, Any]:
    """A document in the ``KnowledgeDocumentResponse`` shape, with ``expand``'s fields filled."""
    content = document.content
    uri = document_uri(store, document)
    body: dict[str, Any] = {
        "id": document.id,
        "title": content.title,
        "visible": content.visible,
        "state": document.state,
        "dateCreated": iso_z(document.date_created),
        "dateModified": iso_z(document.date_modified),
    }
    if content.alternatives:
        body["alternatives"] = [{"phrase": p, "autocomplete": False} for p in content.alternatives]
    if document.date_published is not None:
        body["datePublished"] = iso_z(document.date_published)
        body["lastPublishedVersionNumber"] = document.version_number
    if document.version_id is not None:
        body["documentVersion"] = {
            "id": document.version_id,
            "selfUri": f"{uri}/versions/{document.version_id}",
        }
    if content.category:
        category_id = store.category_id(content.category)
        category: dict[str, Any] = {"id": category_id}
        if "category" in expand:
            category["name"] = content.category
        category["selfUri"] = f"{kb_uri(store)}/categories/{category_id}"
        body["category"] = category
    if content.labels:
        body["labels"] = [_label(store, name, "labels" in expand) for name in content.labels]
    body["knowledgeBase"] = {"id": store.kb_id, "languageCode": LANGUAGE, "selfUri": kb_uri(store)}
    if content.external_url:
        body["externalUrl"] = content.external_url
    body["readonly"] = False
    if "variations" in expand:
        body["variations"] = [variation_body(store, document)] if document.published else []
    body["selfUri"] = uri
    return body


def _label(store: KnowledgeStore, name: str, expanded: bool) -> dict[str, Any]:
    label_id = store.label_id(name)
    label: dict[str, Any] = {"id": label_id}
    if expanded:
        label["name"] = name
        label["color"] = store.label_color(name)
    label["selfUri"] = f"{kb_uri(store)}/labels/{label_id}"
    return label


def variation_body(store: KnowledgeStore, document: MockDocument) -> dict[str, Any]:
    """The document's one variation in the ``DocumentVariationResponse`` shape."""
    uri = document_uri(store, document)
    body: dict[str, Any] = {
        "id": document.variation_id,
        "dateCreated": iso_z(document.date_created),
        "dateModified": iso_z(document.date_modified),
    }
    if document.version_id is not None:
        body["documentVersion"] = {
            "id": document.version_id,
            "selfUri": f"{uri}/versions/{document.version_id}",
        }
    body["document"] = {
        "id": document.id,
        "knowledgeBase": {"id": store.kb_id, "languageCode": LANGUAGE, "selfUri": kb_uri(store)},
        "selfUri": uri,
    }
    body["priority"] = 1
    body["name"] = "Default"
    body["body"] = {"blocks": list(document.content.blocks)}
    body["selfUri"] = f"{uri}/variations/{document.variation_id}"
    return body


# Paging ---------------------------------------------------------------------


def bad_request(message: str) -> PlatformError:
    """The platform's 400 for a bad query parameter."""
    return PlatformError(400, "bad.request", message)


def encode_cursor(scope: str, position: int) -> str:
    """An opaque cursor pointing at ``position`` of a ``scope`` listing."""
    return base64.urlsafe_b64encode(f"{scope}:{position}".encode()).decode().rstrip("=")


def decode_cursor(scope: str, cursor: str) -> int:
    """The position a cursor of ``scope`` points at; 400 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    found_scope, _, position = raw.partition(":")
    if found_scope != scope or not position.isdigit():
        raise bad_request(f"The cursor {cursor!r} is not valid for this listing.")
    return int(position)


def page_size_of(request: Request) -> int:
    """``pageSize`` (1-200, default 25); 400 otherwise."""
    raw = request.query_params.get("pageSize")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise bad_request(f"pageSize must be an integer from 1 to {MAX_PAGE_SIZE}.")
    return int(raw)


def cursor_page(
    request: Request,
    items: Sequence[T],
    position: Callable[[T], int],
    scope: str,
    keep: dict[str, str],
) -> tuple[list[T], dict[str, str]]:
    """One page of ``items`` (ordered by ``position``) for the request's cursor and size.

    Returns the page and the listing's URIs: ``selfUri``, plus ``nextUri`` (with
    ``after``) when items follow and ``previousUri`` (with ``before``) when items
    precede. ``keep`` are the query parameters the URIs carry along.
    """
    size = page_size_of(request)
    after = request.query_params.get("after")
    before = request.query_params.get("before")
    if after is not None and before is not None:
        raise bad_request("Use either the after or the before cursor, not both.")
    if after is not None:
        start = decode_cursor(scope, after)
        page = [i for i in items if position(i) > start][:size]
    elif before is not None:
        end = decode_cursor(scope, before)
        page = [i for i in items if position(i) < end][-size:]
    else:
        page = list(items[:size])
    path = request.url.path
    query = request.url.query
    uris = {"selfUri": f"{path}?{query}" if query else path}
    if page:
        first, last = position(page[0]), position(page[-1])
        base = {**keep, "pageSize": str(size)}
        if any(position(i) > last for i in items):
            uris["nextUri"] = f"{path}?{urlencode({**base, 'after': encode_cursor(scope, last)})}"
        if any(position(i) < first for i in items):
            uris["previousUri"] = (
                f"{path}?{urlencode({**base, 'before': encode_cursor(scope, first)})}"
            )
    return page, uris


def expansions(request: Request, allowed: frozenset[str]) -> set[str]:
    """The ``expand`` values (repeated or comma-separated); 400 for one not ``allowed``."""
    values = {
        part.strip()
        for value in request.query_params.getlist("expand")
        for part in value.split(",")
        if part.strip()
    }
    unknown = values - allowed
    if unknown:
        raise bad_request(
            f"Unknown expand value(s): {', '.join(sorted(unknown))}. "
            f"Use {', '.join(sorted(allowed))}."
        )
    return values


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise bad_request(f"{name} must be true or false.")
    return raw == "true"


# The API --------------------------------------------------------------------


class KnowledgeApi:
    """Handlers of the read-only Knowledge endpoints over one :class:`KnowledgeStore`."""

    def __init__(self, store: KnowledgeStore, state: MockGenesysState) -> None:
        """Serve ``store``; ``state`` holds the tokens."""
        self.store = store
        self.state = state

    def routes(self) -> list[BaseRoute]:
        """The ``/api/v2/knowledge/knowledgebases/...`` routes."""
        base = "/api/v2/knowledge/knowledgebases/{kb_id}"
        return [
            Route(base, self.knowledge_base, methods=["GET"]),
            Route(base + "/documents", self.documents, methods=["GET"]),
            Route(base + "/documents/{doc_id}", self.document, methods=["GET"]),
            Route(base + "/documents/{doc_id}/variations", self.variations, methods=["GET"]),
        ]

    async def knowledge_base(self, request: Request) -> Response:
        """``GET .../knowledgebases/{kbId}``: ``KnowledgeBase``."""
        self._authorize(request, KB_VIEW)
        self.store.requests.knowledge_bases += 1
        return JSONResponse(knowledge_base_body(self.store))

    async def documents(self, request: Request) -> Response:
        """``GET .../documents``: ``KnowledgeDocumentResponseListing``, in creation order."""
        self._authorize(request, DOCUMENT_VIEW)
        expand = expansions(request, DOCUMENT_EXPANSIONS)
        include_drafts = _flag(request, "includeDrafts")
        keep: dict[str, str] = {}
        if "includeDrafts" in request.query_params:
            keep["includeDrafts"] = str(include_drafts).lower()
        if expand:
            keep["expand"] = ",".join(sorted(expand))
        listed = self.store.listed(include_drafts)
        page, uris = cursor_page(request, listed, lambda d: d.seq, "documents", keep)
        self.store.requests.listings += 1
        entities = [document_body(self.store, d, expand) for d in page]
        return JSONResponse({"entities": entities, **uris})

    async def document(self, request: Request) -> Response:
        """``GET .../documents/{docId}`` (``?state=Draft`` for a draft): the document.

        A document without a published version is 404 unless ``state=Draft``.
        """
        self._authorize(request, DOCUMENT_VIEW)
        expand = expansions(request, DOCUMENT_EXPANSIONS)
        wanted = request.query_params.get("state", "Published")
        if wanted not in DOCUMENT_STATES:
            raise bad_request("state must be Published or Draft.")
        document = self._document(request)
        if wanted == "Published" and not document.published:
            raise self._no_document()
        self.store.requests.documents += 1
        return JSONResponse(document_body(self.store, document, expand))

    async def variations(self, request: Request) -> Response:
        """``GET .../documents/{docId}/variations``: ``DocumentVariationResponseListing``.

        ``documentState=Published`` (the default) lists nothing for a document
        without a published version; ``Draft`` lists its current content.
        """
        self._authorize(request, DOCUMENT_VIEW)
        wanted = request.query_params.get("documentState", "Published")
        if wanted not in DOCUMENT_STATES:
            raise bad_request("documentState must be Published or Draft.")
        document = self._document(request)
        self.store.requests.variations[document.id] += 1
        found = [document] if wanted == "Draft" or document.published else []
        keep = {"documentState": wanted} if "documentState" in request.query_params else {}
        page, uris = cursor_page(request, found, lambda _d: 0, "variations", keep)
        entities = [variation_body(self.store, d) for d in page]
        return JSONResponse({"entities": entities, **uris})

    def _authorize(self, request: Request, permission: str) -> None:
        """401/403 the platform's way; 404 for a knowledge base of another org or unknown."""
        token = require_reader(self.state, request, permission, READ_SCOPE)
        if (
            request.path_params["kb_id"] != self.store.kb_id
            or token.org_id != self.state.config.org_id
        ):
            raise PlatformError(
                404, "not.found", "The requested knowledge base could not be found."
            )

    def _document(self, request: Request) -> MockDocument:
        document = self.store.documents.get(request.path_params["doc_id"])
        if document is None:
            raise self._no_document()
        return document

    @staticmethod
    def _no_document() -> PlatformError:
        return PlatformError(404, "not.found", "The requested document could not be found.")
