"""A mock Genesys Cloud for dev mode and tests, with a mock Agent Desktop.

It speaks the platform's contract (see ``GENESYS.md``): OAuth authorize,
``/api/v2/`` REST with the platform's error bodies, notification channels and
their WebSockets with the transcription topic, and plays scripted conversations.
"""

from .app import create_mock_genesys_app
from .config import MockGenesysConfig

__all__ = ["MockGenesysConfig", "create_mock_genesys_app"]
