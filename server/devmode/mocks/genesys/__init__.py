"""A mock Genesys Cloud for dev mode and tests, with a mock Agent Desktop.

It speaks the platform's contract (see ``docs/genesys.md``): the login host (implicit
and PKCE code grants, ``/oauth/token``, a sign-in page, switchable sign-in modes
and framing), ``/api/v2/`` REST with the platform's error bodies (users, tokens,
conversations, web messaging messages, Genesys Knowledge documents and their
variations; and, for client-credentials admin
tokens, integrations with their types, config schemas and versioned config,
OAuth clients the login host then signs users in through, and the org's roles and
queues), notification channels
and their WebSockets (transcription and user-conversation topics, closed when
their token or channel expires), and plays scripted voice and messaging conversations.
Mock-only controls live under ``/mock/``.
"""

from server.devmode.mocks.genesys.app import create_mock_genesys_app
from server.devmode.mocks.genesys.config import MockGenesysConfig

__all__ = ["MockGenesysConfig", "create_mock_genesys_app"]
