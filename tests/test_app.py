from __future__ import annotations

import gc
from pathlib import Path

import httpx
import uvicorn

from server.app import KEEPALIVE_EXPIRY_S, create_app
from tests.asgi import asgi_client
from tests.factories import make_settings


def test_what_start_up_made_is_kept_out_of_full_collections_until_shutdown(
        sample_kb_path: Path) -> None:
    """A full collection walked every object start-up made (modules, the store's
    vocabulary, the embedder's tables) and paused all streams for 70-95 ms at 400-600
    open ones; they are frozen once the app has started, and unfrozen at shutdown."""
    with asgi_client(create_app(make_settings(kb_path=sample_kb_path))) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0


def test_idle_outbound_connections_are_let_go_before_a_servers_5_s_keep_alive(
        sample_kb_path: Path) -> None:
    """Regression: the shared client kept idle connections 5 s, uvicorn's keep-alive
    (the dev mocks') too; a sign-in's token exchange written at that moment on the
    connection the mock Genesys was closing was reset (ReadError), and the panel
    showed "offline" in a browser test."""
    assert uvicorn.Config(app="server.app:create_app").timeout_keep_alive > KEEPALIVE_EXPIRY_S
    with asgi_client(create_app(make_settings(kb_path=sample_kb_path))) as client:
        http = client.app_state["http"]
        assert isinstance(http, httpx.AsyncClient)
        pool = http._transport._pool  # type: ignore[attr-defined]
        assert pool._keepalive_expiry == KEEPALIVE_EXPIRY_S
