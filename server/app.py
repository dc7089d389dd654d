"""``create_app(settings)``: the panel server's ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypedDict
from urllib.parse import urlsplit

import anyio.to_thread
import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from server.assist import machine as machine_api
from server.assist import routes as api
from server.assist.admission import Admission
from server.assist.audit import AuditLog
from server.assist.ratelimit import RateLimiter
from server.assist.streams import StreamRegistry
from server.auth import signin
from server.auth.genesys import GenesysClient
from server.auth.oauth_state import StateCodec
from server.auth.platform import configured_regions
from server.auth.sessions import SessionCodec
from server.errors import exception_handlers
from server.kb.embedders import build_embedder
from server.kb.embedders.base import Embedder
from server.kb.snapshots import LiveKnowledge, follow, open_snapshot
from server.kb.snapshots import check as check_snapshot
from server.kb.store import KnowledgeBase
from server.paths import frontend_dir
from server.pipeline.breaker import CircuitBreaker
from server.pipeline.generators import RetryingGenerator, build_generator
from server.pipeline.retrieval import KnowledgeBaseRetriever, Tuning
from server.pipeline.stream import Limits, Pipeline, StreamRecord
from server.settings import Settings
from server.shared.limits import SharedRateLimiter, SharedStates
from server.shared.link import RedisLink
from server.shared.supersede import SharedSupersede
from server.web import (
    collector,
    health,
    metrics,
    open_files,
    outbound,
    panel,
    upstream,
    upstream_alpn,
    upstream_h2,
)
from server.web.connections import BodyDeadline
from server.web.headers import ResponseHeaders
from server.web.loop_lag import watch_loop_lag
from server.web.metrics import Metrics
from server.web.upstream_body import ModelStreams, Origin

log = logging.getLogger("assist_panel")


class State(TypedDict):
    """What every request sees as ``request.state``."""

    settings: Settings
    http: httpx.AsyncClient
    knowledge: LiveKnowledge
    pipeline: Pipeline
    admission: Admission
    breaker: CircuitBreaker
    metrics: Metrics
    templates: Jinja2Templates
    genesys: GenesysClient
    sessions: SessionCodec
    states: StateCodec
    shared_states: SharedStates
    signin_limiter: SharedRateLimiter
    redis: RedisLink | None


#: Seconds an idle outbound connection is kept (Genesys, the embedder, a proxied model).
KEEPALIVE_EXPIRY_S = 4.0

def tuning_from(settings: Settings) -> Tuning:
    """Retrieval's fusion weights and confidence threshold, from settings."""
    return Tuning(dense_weight=settings.retrieval_dense_weight,
                  lexical_weight=1.0 - settings.retrieval_dense_weight,
                  threshold=settings.relevance_threshold)


def _stream_cap(settings: Settings, model_protocol: str | None = None) -> int:
    """``ASSIST_MAX_STREAMS``, or fewer where the open-file limit leaves room for fewer:
    said at start, and again when the model's protocol is agreed (server/web/open_files.py)."""
    per_stream = open_files.files_per_stream(settings, model_protocol)
    limit = open_files.open_file_limit()
    cap = open_files.stream_cap(settings.max_streams, per_stream, limit)
    if cap < settings.max_streams:
        log.warning("ASSIST_MAX_STREAMS is %d, but this process may open %s files, %d a "
                    "stream: it admits %d streams at once. Raise its open-file limit "
                    "(ulimit -n, systemd's LimitNOFILE, the container's nofile)",
                    settings.max_streams, limit, per_stream, cap)
    return cap


def build_model_streams(settings: Settings, streams: StreamRegistry) -> ModelStreams:
    """The lean client of the model's streams, over what ``ASSIST_MODEL_HTTP2`` picks;
    under ``auto`` it tells ``streams`` the cap the model's protocol leaves room for."""
    if settings.model_http2 is True:
        return upstream_h2.H2StreamClient()
    # Over HTTP/1.1, a superseded answer spends its connection; a few spares keep the
    # next request from waiting on a connect.
    http1 = upstream.StreamClient(spares=4)
    if settings.model_http2 is False or urlsplit(settings.openai_base_url).scheme != "https":
        return http1  # auto asks only in a TLS handshake

    before: str | None = None  # what the model agreed to last
    raising: asyncio.TimerHandle | None = None

    def agreed(origin: Origin, protocol: str) -> None:
        # Over HTTP/2 a stream holds an open file less: the cap follows. After HTTP/1.1,
        # only once every stream admitted over it has ended (the hard limit): until
        # then each of those still holds two.
        nonlocal before, raising
        if raising is not None:
            raising.cancel()
            raising = None
        if before == upstream_alpn.HTTP1 and protocol == upstream_alpn.HTTP2:
            raising = asyncio.get_running_loop().call_later(
                settings.stream_limit_s, cap_for, protocol)
        else:
            cap_for(protocol)
        before = protocol

    def cap_for(protocol: str) -> None:
        streams.max_streams = _stream_cap(settings, protocol)

    return upstream_alpn.NegotiatedStreams(
        http1, upstream_h2.H2StreamClient(alpn=upstream_alpn.OFFERED), on_protocol=agreed)


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


def check_knowledge_base(settings: Settings) -> None:
    """Open the configured store, or the current snapshot of a snapshot directory, and
    close it: ``serve`` calls it first, so an unreadable file ends the command with one
    line for the operator instead of a failed start-up deep in each worker.

    Raises ``StoreUnreadable`` or ``SnapshotError``.
    """
    if settings.kb_path.is_dir():
        check_snapshot(settings.kb_path)
    else:
        KnowledgeBase(settings.kb_path, None).close()


async def _open_knowledge(settings: Settings, embedder: Embedder | None,
                          stack: contextlib.ExitStack) -> LiveKnowledge:
    """The knowledge base to serve, ready to search: the current snapshot of a snapshot
    directory (server/kb/snapshots.py), or the store, re-indexed if it must be (closed
    by ``stack``)."""
    snapshots = settings.kb_path if settings.kb_path.is_dir() else None
    if snapshots is not None:
        path = check_snapshot(snapshots)
        snapshot = await anyio.to_thread.run_sync(open_snapshot, path, embedder)
        log.info("serving knowledge-base snapshot %s", path.name)
        return LiveKnowledge(snapshot, path.name, snapshots)
    kb = KnowledgeBase(settings.kb_path, embedder)
    stack.callback(kb.close)
    # A store cut or embedded by another version or model is redone once.
    if redone := await anyio.to_thread.run_sync(kb.reindex):
        log.info("re-indexed %d articles for %s", redone,
                 kb.embedder.name if kb.embedder else "BM25 alone")
    await anyio.to_thread.run_sync(kb.warm)
    return LiveKnowledge(kb, settings.kb_path.name)


def create_app(settings: Settings, *, clock: Callable[[], float] = time.monotonic
               ) -> Starlette:
    """The panel server for ``settings``: routes, error mapping, and a lifespan that owns
    the shared ``httpx.AsyncClient``, the knowledge base and the pipeline.

    ``clock`` times the circuit breaker's wait before it lets a probe through (a test
    passes its own instead of waiting).

    Raises ValueError for settings it cannot run with (no session secret, no org
    allowlist, no OAuth client, an unknown region).
    """
    secret = check_startup(settings)
    sessions = SessionCodec(secret)
    states = StateCodec(secret, settings.state_ttl_s)
    frontend = frontend_dir()
    templates = Jinja2Templates(directory=frontend / "templates")
    stats = Metrics()
    breaker = CircuitBreaker(failures=settings.circuit_failures, reset_s=settings.circuit_reset_s,
                             on_change=stats.set_circuit_state, clock=clock)
    streams = StreamRegistry(_stream_cap(settings))
    # Built here, connected at its first call (on the server's loop).
    redis = (RedisLink(settings.redis_url.get_secret_value(), on_change=stats.set_redis_state)
             if settings.redis_url else None)
    supersede = (SharedSupersede(redis, streams, on_fallback=stats.redis_fallback)
                 if redis is not None else None)
    # Redis keys are keyed hashes under the session secret: never the user id or address.
    admission = Admission(
        SharedRateLimiter(RateLimiter(settings.rate_limit_per_minute), redis, "streams",
                          secret=secret, on_fallback=stats.redis_fallback),
        streams, stats, supersede)
    # Sign-in is anonymous and each attempt costs calls to Genesys: limited per address.
    signin_limiter = SharedRateLimiter(RateLimiter(settings.signin_rate_limit_per_minute),
                                       redis, "signin", secret=secret,
                                       on_fallback=stats.redis_fallback)
    shared_states = SharedStates(redis, secret=secret, on_fallback=stats.redis_fallback)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        audit = AuditLog.open(settings.audit_log)  # a bad path fails the start
        stack = contextlib.ExitStack()
        listener: asyncio.Task[None] | None = None
        if redis is not None:
            # Reported at once on /readyz and in the metrics; serving starts either way.
            stats.set_redis_state("up" if await redis.ping() else "down")
        if supersede is not None:
            listener = asyncio.create_task(supersede.listen(), name="supersede-listener")
        lag_watch = asyncio.create_task(watch_loop_lag(stats.loop_lag), name="loop-lag-watch")
        full_passes: asyncio.Task[None] | None = None

        def finished(record: StreamRecord) -> None:
            stats.stream_finished(record)
            audit.write(record)

        # Stalls are the watchdog's job; these limits only stop a socket hanging forever.
        timeout = httpx.Timeout(connect=5.0, read=settings.stream_limit_s, write=10.0, pool=5.0)
        # Streams are capped by ASSIST_MAX_STREAMS, not by the model connection pool.
        # Idle connections are let go before 5 s, the keep-alive of uvicorn (the dev
        # mocks) and of many servers: at exactly their timeout a request written on the
        # connection the server is closing was reset (a sign-in's token exchange failed).
        pool = httpx.Limits(max_connections=None, max_keepalive_connections=100,
                            keepalive_expiry=KEEPALIVE_EXPIRY_S)
        try:
            async with httpx.AsyncClient(timeout=timeout, limits=pool,
                                         transport=outbound.transport(pool)) as http:
                # The model's streams go through a lean client, unless through a proxy
                # (then httpx's).
                model_streams: ModelStreams | None = None
                if not outbound.proxied():
                    model_streams = build_model_streams(settings, streams)
                embedder = build_embedder(settings, http)
                # No name here holds the knowledge base: with snapshots, the one served
                # first must go once replaced (a reference here kept it, and its file
                # open, for the worker's life).
                knowledge = await _open_knowledge(settings, embedder, stack)
                generator = RetryingGenerator(
                    build_generator(settings, http, model_streams),
                    max_attempts=settings.retry_max_attempts,
                    on_error=stats.upstream_error, on_retry=stats.upstream_retry)
                # Only the extractive generator quotes beyond the best passages.
                retriever = KnowledgeBaseRetriever(
                    knowledge.kb, tuning_from(settings),
                    whole_top=settings.generator == "extractive")
                if knowledge.directory is not None:
                    def switched(new: KnowledgeBase) -> None:
                        retriever.search.kb = new

                    watcher = asyncio.create_task(follow(
                        knowledge.directory, knowledge, embedder, settings.kb_poll_s,
                        on_switch=switched), name="snapshot-follower")
                    stack.callback(watcher.cancel)
                pipeline = Pipeline(
                    retriever=retriever,
                    generator=generator,
                    limits=Limits.from_settings(settings),
                    static_article={
                        "id": "static-fallback",
                        "title": settings.fallback_article_title,
                        "url": settings.fallback_article_url,
                        "excerpt": settings.fallback_article_excerpt,
                    },
                    breaker=breaker,
                    on_start=stats.stream_started,
                    on_finish=finished,
                )
                # What start-up made (modules, the store's vocabulary, the embedder's
                # tables) lives as long as the worker: kept out of the collector's full
                # passes, which walked it all and paused every stream for 70-95 ms at
                # 400-600 open (a delta a whole window late). Unfrozen at shutdown.
                gc.collect()
                gc.freeze()
                stack.callback(gc.unfreeze)
                if settings.gc_full_interval_s > 0:
                    full_passes = asyncio.create_task(
                        collector.FullPassSpacing(settings.gc_full_interval_s).run(),
                        name="full-pass-spacing")
                yield {"settings": settings, "http": http, "knowledge": knowledge,
                       "pipeline": pipeline,
                       "admission": admission, "breaker": breaker, "metrics": stats,
                       "templates": templates, "sessions": sessions, "states": states,
                       "signin_limiter": signin_limiter, "shared_states": shared_states,
                       "redis": redis,
                       "genesys": GenesysClient(http, settings.genesys_timeout_s)}
                streams.shutdown()  # normally done already by serving.GracefulServer
                if model_streams is not None:
                    await model_streams.aclose()
        finally:
            stack.close()
            audit.close()
            for task in (lag_watch, full_passes, listener):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if redis is not None:
                await redis.close()

    app = Starlette(
        # The streams first: Starlette tries routes in order, and every suggestion would
        # otherwise pay for the others' path matches (the paths do not overlap).
        routes=[
            *api.routes,
            *machine_api.routes,
            *health.routes,
            *metrics.routes,
            *panel.routes,
            *signin.routes,
            Mount("/static", StaticFiles(directory=frontend / "static"), name="static"),
        ],
        # ResponseHeaders also answers a bug's exception (500 internal_error).
        middleware=[Middleware(ResponseHeaders),
                    Middleware(BodyDeadline, timeout_s=settings.body_timeout_s)],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
    app.state.streams = streams  # for serving.GracefulServer, which stops them on SIGTERM
    return app
