"""``python -m server`` is the ``assist-panel`` command."""

from .cli import main

main()
