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

from . import api, health, panel, signin
from .errors import exception_handlers
from .generators import build_generator
from .genesys import GenesysClient
from .knowledge import KnowledgeBase
from .oauth_state import StateCodec
from .paths import frontend_dir
from .pipeline import Limits, Pipeline
from .platform import configured_regions
from .retrieval import KnowledgeBaseRetriever
from .sessions import SessionCodec
from .settings import Settings

log = logging.getLogger("assist_panel")


class State(TypedDict):
    """What every request sees as ``request.state``."""

    settings: Settings
    http: httpx.AsyncClient
    kb: KnowledgeBase
    pipeline: Pipeline
    templates: Jinja2Templates
    genesys: GenesysClient
    sessions: SessionCodec
    states: StateCodec


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


def check_startup(settings: Settings) -> str:
    """The session secret, after refusing settings the server cannot run safely with."""
    configured_regions(settings)  # fail at start, not on the first page view
    missing = [name for name, value in (
        ("ASSIST_SESSION_SECRET", settings.session_secret),
        ("ASSIST_ALLOWED_ORGS", settings.allowed_orgs),
        ("ASSIST_OAUTH_CLIENT_ID", settings.oauth_client_id),
    ) if not value]
    if missing:
        raise ValueError(f"{', '.join(missing)} must be set (see docs/configuration.md)")
    assert settings.session_secret is not None
    secret = settings.session_secret.get_secret_value()
    if len(secret) < 16:
        raise ValueError("ASSIST_SESSION_SECRET must be at least 16 characters")
    return secret


def create_app(settings: Settings) -> Starlette:
    """The panel server for ``settings``: routes, error mapping, and a lifespan that owns
    the shared ``httpx.AsyncClient``, the knowledge base and the pipeline.

    Raises ValueError for settings it cannot run with (no session secret, no org
    allowlist, no OAuth client, an unknown region).
    """
    secret = check_startup(settings)
    sessions = SessionCodec(secret)
    states = StateCodec(secret, settings.state_ttl_s)
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
                   "templates": templates, "sessions": sessions, "states": states,
                   "genesys": GenesysClient(http, settings.genesys_timeout_s)}
        kb.close()

    return Starlette(
        routes=[
            *health.routes,
            *panel.routes,
            *signin.routes,
            *api.routes,
            Mount("/static", StaticFiles(directory=frontend / "static"), name="static"),
        ],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
