"""``python -m server`` is the ``assist-panel`` command."""

from server.cli import main

main()
