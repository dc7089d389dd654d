"""Liveness and readiness probes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .knowledge import KnowledgeBase


async def healthz(request: Request) -> JSONResponse:
    """The process is up and its event loop answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready to serve suggestions: the knowledge base opens and holds articles."""
    kb: KnowledgeBase = request.state.kb
    try:
        articles = kb.count()
    except Exception:  # any store failure means "not ready", never a 500
        return JSONResponse({"status": "unavailable", "reason": "knowledge base"}, 503)
    if articles == 0:
        return JSONResponse({"status": "unavailable", "reason": "knowledge base empty"}, 503)
    return JSONResponse({"status": "ready", "articles": articles})


routes = [Route("/healthz", healthz), Route("/readyz", readyz)]
