"""``create_app(settings)``: the panel server's ASGI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from . import api, health, panel
from .errors import exception_handlers
from .generators import build_generator
from .knowledge import KnowledgeBase
from .paths import frontend_dir
from .pipeline import Limits, Pipeline
from .retrieval import KnowledgeBaseRetriever
from .settings import Settings

log = logging.getLogger("assist_panel")


class State(TypedDict):
    """What every request sees as ``request.state``."""

    settings: Settings
    http: httpx.AsyncClient
    kb: KnowledgeBase
    pipeline: Pipeline
    templates: Jinja2Templates


def limits_from(settings: Settings) -> Limits:
    return Limits(
        first_token_s=settings.first_token_timeout_s,
        idle_s=settings.stall_timeout_s,
        hard_s=settings.stream_limit_s,
        flush_s=settings.flush_interval_ms / 1000,
        max_tokens=settings.max_tokens,
        top_k=settings.retrieval_top_k,
        context_utterances=settings.context_utterances,
        context_max_chars=settings.context_max_chars,
    )


def create_app(settings: Settings) -> Starlette:
    """The panel server for ``settings``: routes, error mapping, and a lifespan that owns
    the shared ``httpx.AsyncClient``, the knowledge base and the pipeline."""
    panel.configured_regions(settings)  # fail at start, not on the first page view
    frontend = frontend_dir()
    templates = Jinja2Templates(directory=frontend / "templates")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        kb = KnowledgeBase(settings.kb_path)
        # Stalls are the watchdog's job; these limits only stop a socket hanging forever.
        timeout = httpx.Timeout(connect=5.0, read=settings.stream_limit_s, write=10.0, pool=5.0)
        async with httpx.AsyncClient(timeout=timeout) as http:
            pipeline = Pipeline(
                retriever=KnowledgeBaseRetriever(kb),
                generator=build_generator(settings, http),
                limits=limits_from(settings),
                static_article={
                    "id": "static-fallback",
                    "title": settings.fallback_article_title,
                    "url": settings.fallback_article_url,
                    "excerpt": settings.fallback_article_excerpt,
                },
            )
            yield {"settings": settings, "http": http, "kb": kb, "pipeline": pipeline,
                   "templates": templates}
        kb.close()

    return Starlette(
        routes=[
            *health.routes,
            *panel.routes,
            *api.routes,
            Mount("/static", StaticFiles(directory=frontend / "static"), name="static"),
        ],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
