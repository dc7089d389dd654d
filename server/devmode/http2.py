"""The mock model over HTTP/2 as well as HTTP/1.1, for a panel with
``ASSIST_MODEL_HTTP2=true``: uvicorn speaks HTTP/1.1 only, so hypercorn serves it
(h2c with prior knowledge and HTTP/1.1 on the one port, up to 100 streams a
connection, hypercorn's default)."""

from __future__ import annotations

import asyncio

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.types import ASGIApp


def hypercorn_config(bind: str) -> Config:
    """hypercorn's settings for a mock: quiet, a deep backlog, a short goodbye."""
    config = Config()
    config.bind = [bind]
    config.accesslog = None
    config.loglevel = "WARNING"
    config.backlog = 4096
    config.graceful_timeout = 1
    return config


class Http2Server:
    """``app`` served by hypercorn on ``bind`` (``host:port``, or ``fd://N``) until
    ``should_exit`` is set, as a uvicorn server is stopped."""

    def __init__(self, app: ASGIApp, bind: str) -> None:
        self.app = app
        self.config = hypercorn_config(bind)
        self.started = False
        self._exit = False
        self._stop: asyncio.Event | None = None

    @property
    def should_exit(self) -> bool:
        return self._exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._exit = value
        if value and self._stop is not None:
            self._stop.set()

    async def serve(self) -> None:
        """Serve until ``should_exit`` is set (a bind error raises)."""
        self._stop = asyncio.Event()
        if self._exit:
            return
        self.started = True  # hypercorn binds first thing; a bind error still raises
        await serve(self.app, self.config,  # type: ignore[arg-type]
                    shutdown_trigger=self._stop.wait)
