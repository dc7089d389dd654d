"""Logging for ``assist-panel serve``: one format, and nothing secret or personal in it.

Our own code never logs transcript text, tokens or keys. Two filters on the one
handler make sure nobody else's does either: access-log lines lose their query
string (the sign-in answer carries a PKCE ``code`` and a ``state`` there), and
every message goes through PII redaction as a last line of defence. The HTTP
client libraries are held at WARNING whatever the level: httpx logs every outbound
request's URL at INFO (an embedder's ``user:password@`` or ``?api-key=``), and at DEBUG
httpcore, h2 and hpack log the headers sent (the model's bearer key).
"""

from __future__ import annotations

import logging
import sys

from server.pipeline.redaction import redact

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
#: Loggers that would write outbound URLs or request headers: WARNING at least, always.
QUIET = ("httpx", "httpcore", "hpack", "h2")


class AccessQueryFilter(logging.Filter):
    """Drops the query string from uvicorn's access lines (their third argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) >= 3
                and isinstance(args[2], str)):
            path, _, query = args[2].partition("?")
            record.args = (*args[:2], f"{path}?..." if query else path, *args[3:])
        return True


class RedactingFilter(logging.Filter):
    """Redacts PII from the formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(level: str) -> logging.Handler:
    """Send every logger (uvicorn's included) through one filtered handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(AccessQueryFilter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    return handler
