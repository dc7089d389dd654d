from __future__ import annotations

import gc
from pathlib import Path

from server.app import create_app
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
