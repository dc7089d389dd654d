"""Liveness and readiness probes."""

from __future__ import annotations

import math

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.kb.snapshots import LiveKnowledge
from server.pipeline.breaker import CircuitBreaker
from server.shared.link import RedisLink


async def healthz(request: Request) -> JSONResponse:
    """The process is up and its event loop answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready to serve suggestions: the knowledge base opens and holds articles.

    ``knowledgeBase`` names what this replica serves: the snapshot's file name when
    ``ASSIST_KB_PATH`` is a directory of published snapshots, else the store's.

    The model's circuit breaker is reported, not failed on: with the circuit open
    the panel still answers every suggestion (with the top article), and taking
    every replica out of the load balancer at once would answer nothing at all.
    So an open circuit is ``"status": "degraded"`` with 200. So is Redis down (with
    ``ASSIST_REDIS_URL`` set: ``"redis": "down"``, pinged first when nothing has shown
    its state for a few seconds): the limits fall back to this process's own, and the
    panel keeps serving. So is a served snapshot whose file ``kb publish`` has pruned
    (``"knowledgeBaseFile": "gone"``): this replica still reads it, but it refuses the
    snapshot the directory names now, and would not find its own after a restart.
    """
    knowledge: LiveKnowledge = request.state.knowledge
    kb = knowledge.kb
    breaker: CircuitBreaker = request.state.breaker

    def inspect() -> tuple[int, bool]:
        articles = kb.count()
        try:
            gone = knowledge.file_gone()
        except OSError:
            # A shared volume's hiccup (ESTALE, EIO, EACCES) says nothing of the snapshot
            # this replica serves from its open connections: degraded, never "not ready",
            # or every replica would leave the load balancer at once.
            gone = True
        return articles, gone

    try:
        # A worker thread: a store busy with an import, or a slow network volume, must
        # not stall the event loop (and with it every open stream and /healthz).
        articles, gone = await anyio.to_thread.run_sync(inspect)
    except Exception:  # any store failure means "not ready", never a 500
        return JSONResponse({"status": "unavailable", "reason": "knowledge base"}, 503)
    if articles == 0:
        return JSONResponse({"status": "unavailable", "reason": "knowledge base empty"}, 503)
    # Rounded up: 0 must mean a probe would be let through now.
    model = {"circuit": breaker.state, "retryInS": math.ceil(breaker.retry_in() * 10) / 10}
    body: dict[str, object] = {"articles": articles, "knowledgeBase": knowledge.version,
                               "model": model}
    if gone:
        body["knowledgeBaseFile"] = "gone"
    redis: RedisLink | None = request.state.redis
    redis_state = await redis.current() if redis is not None else None
    if redis_state is not None:
        body["redis"] = redis_state
    healthy = breaker.state == "closed" and redis_state in (None, "up") and not gone
    return JSONResponse({"status": "ready" if healthy else "degraded", **body})


routes = [Route("/healthz", healthz), Route("/readyz", readyz)]
