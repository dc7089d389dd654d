"""Mock-only authoring of the mock's Genesys Knowledge base, under ``/mock/knowledge/``.

Not part of the platform's contract: tests and developers use these to change
what ``kb sync`` finds (create, edit, unpublish, delete documents) and to see how
many Knowledge API calls a sync made. Errors are ``{"error": code, "message": ...}``.

- ``PUT /mock/knowledge/documents/{docId}`` ``{title, blocks, externalUrl?, visible?,
  category?, labels?, alternatives?}``: create (201) or replace (200) a document and
  publish it; answers the document in the platform's shape.
- ``POST /mock/knowledge/documents/{docId}/unpublish``: back to ``Draft`` (it leaves
  default listings); answers the document.
- ``DELETE /mock/knowledge/documents/{docId}``: 204.
- ``GET /mock/knowledge/requests``: ``{knowledgeBases, listings, documents,
  variations, variationsByDocument}`` since the last ``DELETE /mock/knowledge/requests``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.devmode.mocks.genesys.controls import MAX_BODY_BYTES, control_error
from server.devmode.mocks.genesys.knowledge_store import (
    DOCUMENT_ID,
    ContentError,
    DocumentContent,
    KnowledgeStore,
    MockDocument,
    RequestCounts,
)

#: Largest document body ``PUT`` accepts (bodies carry whole articles).
MAX_DOCUMENT_BYTES = 16 * MAX_BODY_BYTES


class KnowledgeControls:
    """The ``/mock/knowledge`` routes over one :class:`KnowledgeStore`."""

    def __init__(
        self, store: KnowledgeStore, render: Callable[[MockDocument], dict[str, Any]]
    ) -> None:
        """Control ``store``; ``render`` gives a document's platform JSON."""
        self.store = store
        self.render = render

    def routes(self) -> list[BaseRoute]:
        """The control routes."""
        document = "/mock/knowledge/documents/{doc_id}"
        return [
            Route(document, self.put_document, methods=["PUT"]),
            Route(document, self.delete_document, methods=["DELETE"]),
            Route(document + "/unpublish", self.unpublish, methods=["POST"]),
            Route("/mock/knowledge/requests", self.requests, methods=["GET"]),
            Route("/mock/knowledge/requests", self.reset_requests, methods=["DELETE"]),
        ]

    async def put_document(self, request: Request) -> Response:
        """Create or replace a document and publish it (a new version)."""
        doc_id = request.path_params["doc_id"]
        if not DOCUMENT_ID.match(doc_id):
            return control_error(
                400, "bad_request", "A document id is 1-64 letters, digits and dashes."
            )
        raw = await request.body()
        if len(raw) > MAX_DOCUMENT_BYTES:
            return control_error(413, "too_large", "The document is too large.")
        try:
            body = json.loads(raw)
        except ValueError:
            return control_error(400, "bad_request", "The body must be JSON.")
        try:
            content = DocumentContent.from_json(body)
        except ContentError as exc:
            return control_error(400, "invalid_document", str(exc))
        document, created = self.store.publish(doc_id, content)
        return JSONResponse(self.render(document), status_code=201 if created else 200)

    async def unpublish(self, request: Request) -> Response:
        """Take a document back to ``Draft``."""
        document = self.store.unpublish(request.path_params["doc_id"])
        if document is None:
            return control_error(404, "not_found", "No such document.")
        return JSONResponse(self.render(document))

    async def delete_document(self, request: Request) -> Response:
        """Delete a document."""
        if not self.store.delete(request.path_params["doc_id"]):
            return control_error(404, "not_found", "No such document.")
        return Response(status_code=204)

    async def requests(self, request: Request) -> Response:
        """The Knowledge API calls answered since the last reset."""
        return JSONResponse(self.store.requests.to_json())

    async def reset_requests(self, request: Request) -> Response:
        """Start counting again; answers the (zero) counts."""
        self.store.requests = RequestCounts()
        return JSONResponse(self.store.requests.to_json())
