"""Open files: the worker's limit against the streams it admits.

Each open suggestion stream holds its client's connection and, with the model over
HTTP/1.1, its own connection to the model: two open files; with the model over
HTTP/2 (many streams a connection) or the extractive generator, one. Under
``ASSIST_MODEL_HTTP2=auto`` two are counted until the model's server has agreed to
HTTP/2, and one after (after a switch from HTTP/1.1, once the streams over it have
ended: ``server.app.build_model_streams``). Linux starts many services, containers
among them, with a soft limit of 1,024 open files and a much higher hard one. A
worker left at 1,024 would fail its model connects past about 450 streams, each of
those streams ending in a fallback, while its cap (``ASSIST_MAX_STREAMS``, 1,000)
still admitted more. So
``serve`` lifts the soft limit to the hard one, as Go's runtime does for every
program, and the app admits no more streams than the limit leaves room for: past
that, the cap's 503 ``over_capacity`` with ``Retry-After``, which a client retries,
here or on another replica.
"""

from __future__ import annotations

import logging
import resource

from server.settings import Settings
from server.web import outbound

log = logging.getLogger("assist_panel")

#: What a worker holds besides its streams: its logs, the knowledge base, the shared
#: client's connections (to Genesys, up to 100 kept), spare model connections, and
#: room for requests that are not streams (/healthz, the page, sign-in).
RESERVED = 128


def lift_soft_limit() -> int | None:
    """Raise this process's soft open-file limit to its hard one (children inherit it);
    the limit now, None when it is infinite (a process cannot ask for infinity)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        log.info("open-file limit raised from %d to %d", soft, hard)
    return open_file_limit()


def open_file_limit() -> int | None:
    """This process's soft open-file limit; None when it is infinite."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def files_per_stream(settings: Settings, model_protocol: str | None = None) -> int:
    """Open files one suggestion stream holds: its client's, and with the model over
    HTTP/1.1 (or through an outbound proxy, which is httpx's HTTP/1.1) its model
    request's. ``model_protocol``: what the model agreed to under
    ``ASSIST_MODEL_HTTP2=auto`` (``"h2"`` or ``"http/1.1"``); before it is known, two
    are counted."""
    if settings.generator != "openai":
        return 1
    if outbound.proxied():
        return 2
    if settings.model_http2 is True:
        return 1
    if settings.model_http2 == "auto" and model_protocol == "h2":
        return 1
    return 2


def stream_cap(max_streams: int, per_stream: int, limit: int | None) -> int:
    """The most streams to admit at once: ``max_streams``, or fewer when ``limit`` open
    files leave room for fewer (at least one)."""
    if limit is None:
        return max_streams
    return max(1, min(max_streams, (limit - RESERVED) // per_stream))
