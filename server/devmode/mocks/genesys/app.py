"""Assembles the mock Genesys Cloud: routes, CORS for the panel, and the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from server.devmode.mocks.genesys.api import PlatformApi, PlatformError, platform_error_handler
from server.devmode.mocks.genesys.config import MockGenesysConfig
from server.devmode.mocks.genesys.controls import PlatformControls
from server.devmode.mocks.genesys.desktop import MockDesktop
from server.devmode.mocks.genesys.expiry import ExpiryTimer
from server.devmode.mocks.genesys.faults import FaultInjector, Faults
from server.devmode.mocks.genesys.integrations import IntegrationsApi
from server.devmode.mocks.genesys.knowledge import knowledge_routes
from server.devmode.mocks.genesys.notifications import NotificationsApi
from server.devmode.mocks.genesys.oauth import OAuthEndpoints
from server.devmode.mocks.genesys.oauth_clients import OAuthClientsApi
from server.devmode.mocks.genesys.organization import OrganizationApi
from server.devmode.mocks.genesys.player import ConversationPlayer
from server.devmode.mocks.genesys.scripts import ScriptLibrary
from server.devmode.mocks.genesys.state import MockGenesysState

CORS_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
CORS_HEADERS = ["Authorization", "Content-Type"]


def create_mock_genesys_app(config: MockGenesysConfig) -> Starlette:
    """Build a mock Genesys Cloud serving the platform's HTTP and WebSocket contract.

    Reads the scripted conversations from ``config.scripts_dir`` (or the shipped
    ones) now, so a broken script fails here rather than mid-demo. The app's
    ``state.mock_genesys`` is the :class:`MockGenesysState` (for dev tooling).
    """
    state = MockGenesysState(config)
    library = ScriptLibrary.load(config.resolved_scripts_dir())
    player = ConversationPlayer(config, state, library)
    api = PlatformApi(config, state)
    notifications = NotificationsApi(config, state, player.on_subscribed)
    oauth = OAuthEndpoints(config, state)
    controls = PlatformControls(state)
    desktop = MockDesktop(config, state, library, player)
    expiry = ExpiryTimer(state)
    faults = Faults()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        expiry.start()
        try:
            yield
        finally:
            await expiry.stop()
            await player.shutdown()
            state.close_all(1001, "Server shutting down")

    app = Starlette(
        routes=[
            *oauth.routes(),
            *api.routes(),
            *knowledge_routes(config, state),
            *IntegrationsApi(state).routes(),
            *OAuthClientsApi(state).routes(),
            *OrganizationApi(config, state).routes(),
            *notifications.routes(),
            *controls.routes(),
            *faults.routes(),
            *desktop.routes(),
            *api.fallback_routes(),
        ],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=[config.panel_origin],
                allow_methods=CORS_METHODS,
                allow_headers=CORS_HEADERS,
                max_age=600,
            ),
            Middleware(FaultInjector, faults=faults),
        ],
        exception_handlers={PlatformError: platform_error_handler},
        lifespan=lifespan,
    )
    app.state.mock_genesys = state
    app.state.mock_faults = faults
    return app
