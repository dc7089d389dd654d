"""``assist-panel dev``: the panel, the mock Genesys Cloud and (optionally) the mock model
server in one process, with the sample knowledge base imported on start.

The panel and the mock desktop get different origins (``localhost`` and
``127.0.0.1``), as in Genesys where ``apps.{domain}`` frames the panel's own host.
This module imports ``server.devmode.mocks``; production code never imports this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import uvicorn
from starlette.applications import Starlette

from server.app import create_app
from server.devmode.http2 import Http2Server
from server.devmode.mocks.genesys import MockGenesysConfig, create_mock_genesys_app
from server.devmode.mocks.llm import DEFAULT_MODEL, FAULTS, MockLLMConfig, create_mock_llm_app
from server.kb.embedders import build_embedder
from server.kb.importer import find_files, import_files
from server.kb.store import KnowledgeBase
from server.paths import sample_kb_dir
from server.settings import Settings
from server.web.serving import uvicorn_config

DEV_CLIENT_ID = "assist-panel-dev"
DEV_MODEL_KEY = "dev-model-key"


@dataclass(frozen=True)
class DevOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    genesys_port: int = 8001
    llm: str = "extractive"
    llm_port: int = 8002
    llm_fault: str | None = None
    token_lifetime_s: int = 86400
    playback_speed: float = 1.0


def _server(app: Starlette, host: str, port: int, settings: Settings | None = None
            ) -> uvicorn.Server:
    """A server for ``app``; the panel's (given its ``settings``) with its connection bounds."""
    if settings is not None:
        config = uvicorn_config(app, settings, host=host, port=port, log_level="warning",
                                lifespan="on")
    else:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    return uvicorn.Server(config)


def _free_port(host: str) -> int:
    """A port the OS has free now, for options given as 0 (used by tests)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def _start(server: uvicorn.Server | Http2Server) -> asyncio.Task[None]:
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # re-raises the bind error, e.g. port in use
            raise RuntimeError("server stopped before it started")
        await asyncio.sleep(0.02)
    return task


async def run_dev(options: DevOptions, make_settings: Callable[..., Settings]) -> None:
    """Start everything, print the desktop URL, and serve until interrupted."""
    if options.llm_fault and options.llm != "mock":
        raise ValueError("--llm-fault needs --llm mock")
    if options.llm_fault and options.llm_fault not in FAULTS:
        raise ValueError(f"unknown --llm-fault {options.llm_fault!r}; one of: {', '.join(FAULTS)}")
    loopback = options.host in {"127.0.0.1", "0.0.0.0", "localhost"}
    public_host = "localhost" if loopback else options.host
    mock_host = "127.0.0.1" if public_host == "localhost" else options.host
    tasks: list[asyncio.Task[None]] = []
    servers: list[uvicorn.Server | Http2Server] = []
    with tempfile.TemporaryDirectory(prefix="assist-panel-dev-") as tmp:
        try:
            llm_port = options.llm_port or _free_port(options.host)
            panel_port = options.port or _free_port(options.host)
            genesys_port = options.genesys_port or _free_port(options.host)
            panel_origin = f"http://{public_host}:{panel_port}"
            genesys_origin = f"http://{mock_host}:{genesys_port}"
            mock_config = MockGenesysConfig(
                public_origin=genesys_origin, panel_url=f"{panel_origin}/panel",
                client_id=DEV_CLIENT_ID, token_lifetime_s=options.token_lifetime_s,
                playback_speed=options.playback_speed)

            overrides: dict[str, object] = {
                "host": options.host, "port": panel_port, "public_url": panel_origin,
                "kb_path": Path(tmp) / "dev.db",
                "genesys_api_base": genesys_origin, "genesys_login_base": genesys_origin,
                "oauth_client_id": DEV_CLIENT_ID, "extra_frame_ancestors": (genesys_origin,),
                # A fresh secret per run: dev sessions end with the process, as they should.
                "session_secret": secrets.token_urlsafe(32),
                "allowed_orgs": (mock_config.org_id,),
            }
            if options.llm == "mock":
                overrides.update(generator="openai", openai_model=DEFAULT_MODEL,
                                 openai_base_url=f"http://127.0.0.1:{llm_port}/v1",
                                 openai_api_key=DEV_MODEL_KEY)
            settings = make_settings(**overrides)
            if options.llm == "mock":
                llm_config = MockLLMConfig(api_key=DEV_MODEL_KEY, fault=options.llm_fault)
                llm_app = create_mock_llm_app(llm_config)
                # ASSIST_MODEL_HTTP2=true: the panel speaks h2c to the model, so the mock
                # must (auto, on this http:// URL, is HTTP/1.1).
                servers.append(Http2Server(llm_app, f"{options.host}:{llm_port}")
                               if settings.model_http2 is True
                               else _server(llm_app, options.host, llm_port))
            store = KnowledgeBase(settings.kb_path, build_embedder(settings))
            store.reindex()
            summary = import_files(store, find_files([sample_kb_dir()]))
            store.close()
            if summary.errors:
                raise ValueError("sample knowledge base failed to import: " + summary.errors[0])

            servers.append(_server(create_app(settings), options.host, panel_port, settings))
            servers.append(_server(create_mock_genesys_app(mock_config), options.host,
                                   genesys_port))
            for server in servers:
                tasks.append(await _start(server))

            click.echo(f"Assist Panel dev mode: {summary.added} sample articles, "
                       f"generator {settings.generator}"
                       + (f" (mock model, fault {options.llm_fault})" if options.llm_fault else "")
                       + (" (the model over HTTP/2)" if options.llm == "mock"
                          and settings.model_http2 is True else ""))
            click.echo(f"Panel server:  {panel_origin}")
            click.echo(f"Mock Genesys:  {genesys_origin}")
            click.echo(f"Open the mock Agent Desktop: {genesys_origin}/")
            click.echo(f"Admin commands against the mock (install, status, kb sync): "
                       f"ASSIST_ADMIN_CLIENT_ID={mock_config.admin_client_id} "
                       f"ASSIST_ADMIN_CLIENT_SECRET={mock_config.admin_client_secret} "
                       f"... --api-base {genesys_origin}; its Knowledge base: "
                       f"{mock_config.knowledge_base_id}")
            await asyncio.gather(*tasks)
        finally:
            for server in servers:
                server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)

