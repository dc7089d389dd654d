"""Where the shipped non-Python files live, in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _shipped(packaged: str, checkout: str) -> Path:
    inside = _PACKAGE / packaged
    return inside if inside.is_dir() else _PACKAGE.parent / checkout


def frontend_dir() -> Path:
    """``frontend/``: templates and static files of the panel page."""
    return _shipped("_frontend", "frontend")


def sample_kb_dir() -> Path:
    """The sample knowledge base of the fictional Brightwave Mobile."""
    return _shipped("_sample_kb", "kb/sample")


def manifest_dir() -> Path:
    """``manifest/``: the integration manifest and its JSON Schema."""
    return _shipped("_manifest", "manifest")
