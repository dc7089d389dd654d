"""Numbered paging of the platform's entity listings (``pageSize`` and ``pageNumber``).

The answer's shape is the SDK's ``*EntityListing``: ``entities``, ``pageSize``,
``pageNumber``, ``total``, ``pageCount`` and the ``firstUri``/``selfUri``/``lastUri``
links, plus ``previousUri``/``nextUri`` only where such a page exists (the platform
omits empty fields rather than answering null).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from server.devmode.mocks.genesys.api import PlatformError

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 500


def _positive(request: Request, name: str, default: int, largest: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1 or (largest is not None and value > largest):
        limit = f" and at most {largest}" if largest is not None else ""
        raise PlatformError(
            400, "bad.request", f"{name} must be a whole number of at least 1{limit}.",
            {"parameter": name},
        )
    return value


def numbered_page(
    request: Request, entities: Sequence[dict[str, Any]], *, carry: Sequence[str] = ()
) -> dict[str, Any]:
    """The page of ``entities`` the request's ``pageSize``/``pageNumber`` ask for.

    A bad ``pageSize`` (not 1..500) or ``pageNumber`` is a 400 ``bad.request``; a
    page past the end is empty, as on the platform. The query parameters named in
    ``carry`` (a listing's filters) are kept in the page links, so following
    ``nextUri`` stays within the filtered listing.
    """
    size = _positive(request, "pageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    number = _positive(request, "pageNumber", 1)
    total = len(entities)
    page_count = -(-total // size)
    path = request.url.path
    kept = [(name, value) for name in carry for value in request.query_params.getlist(name)]
    filters = f"&{urlencode(kept)}" if kept else ""

    def uri(page: int) -> str:
        return f"{path}?pageSize={size}&pageNumber={page}{filters}"

    body: dict[str, Any] = {
        "entities": list(entities[(number - 1) * size : number * size]),
        "pageSize": size,
        "pageNumber": number,
        "total": total,
        "pageCount": page_count,
        "firstUri": uri(1),
        "selfUri": uri(number),
        "lastUri": uri(max(page_count, 1)),
    }
    if 1 < number <= page_count + 1:
        body["previousUri"] = uri(number - 1)
    if number < page_count:
        body["nextUri"] = uri(number + 1)
    return body
