"""Assist Panel: grounded knowledge-base answers streamed beside Genesys Cloud conversations."""

__version__ = "0.1.0"
