"""Scripted conversations: the script files and their validation.

A script is a JSON file (its name is the file's stem)::

    {"title": "...", "description": "...", "media": "voice" | "message",
     "customer_name": "...", "customer_phone": "+1...",          (optional)
     "lines": [{"delay_ms": 2500, "speaker": "customer", "text": "..."}, ...]}

``delay_ms`` is the pause before the line: silence before it is said (voice,
see :mod:`.transcription`) or the time taken to write it (messaging, see
:mod:`.messaging`). :mod:`.player` plays them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast, get_args

from server.devmode.mocks.genesys.conversations import Media
from server.devmode.mocks.genesys.feed import Speaker

SPEAKERS: tuple[str, ...] = get_args(Speaker)
MEDIA: tuple[str, ...] = get_args(Media)
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


class ScriptError(ValueError):
    """A script file that cannot be used, with the reason."""


@dataclass(frozen=True)
class ScriptLine:
    """One thing said: after ``delay_ms`` of silence, ``speaker`` says ``text``."""

    delay_ms: int
    speaker: Speaker
    text: str


@dataclass(frozen=True)
class Script:
    """A scripted conversation."""

    name: str
    title: str
    description: str
    media: Media
    lines: tuple[ScriptLine, ...]
    customer_name: str = "Customer"
    customer_phone: str = "+15555550100"

    def summary(self) -> dict[str, Any]:
        """The script as ``GET /mock/scripts`` lists it."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "media": self.media,
            "lines": len(self.lines),
        }


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ScriptError(message)


def parse_script(name: str, data: Any) -> Script:
    """Validate a decoded script file; raises :class:`ScriptError`."""
    _require(bool(_NAME.fullmatch(name)), f"bad script name {name!r}")
    _require(isinstance(data, dict), "a script must be a JSON object")
    for key in ("title", "description"):
        value = data.get(key)
        _require(isinstance(value, str) and bool(value.strip()), f"{key!r} must be text")
    media = data.get("media", "voice")
    _require(media in MEDIA, f"'media' must be one of {', '.join(MEDIA)}")
    raw_lines = data.get("lines")
    _require(isinstance(raw_lines, list) and bool(raw_lines), "'lines' must be a non-empty list")
    lines: list[ScriptLine] = []
    for index, raw in enumerate(cast(list[Any], raw_lines)):
        where = f"lines[{index}]"
        _require(isinstance(raw, dict), f"{where} must be an object")
        delay = raw.get("delay_ms")
        _require(
            isinstance(delay, int) and not isinstance(delay, bool) and delay >= 0,
            f"{where}.delay_ms must be a non-negative integer",
        )
        speaker = raw.get("speaker")
        _require(speaker in SPEAKERS, f"{where}.speaker must be 'customer' or 'agent'")
        text = raw.get("text")
        _require(isinstance(text, str) and bool(text.split()), f"{where}.text must be text")
        lines.append(ScriptLine(delay_ms=delay, speaker=speaker, text=" ".join(text.split())))
    extras = {k: data[k] for k in ("customer_name", "customer_phone") if k in data}
    for key, extra in extras.items():
        _require(isinstance(extra, str) and bool(extra.strip()), f"{key!r} must be text")
    return Script(
        name=name,
        title=data["title"].strip(),
        description=data["description"].strip(),
        media=media,
        lines=tuple(lines),
        **extras,
    )


class ScriptLibrary:
    """The scripts of one directory, by name, in name order."""

    def __init__(self, scripts: dict[str, Script]) -> None:
        """Wrap already-parsed scripts."""
        self.scripts = dict(sorted(scripts.items()))

    @classmethod
    def load(cls, directory: Path) -> ScriptLibrary:
        """Read and validate every ``*.json`` in ``directory`` (at least one)."""
        scripts: dict[str, Script] = {}
        for path in sorted(directory.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                scripts[path.stem] = parse_script(path.stem, data)
            except (ValueError, OSError) as exc:
                raise ScriptError(f"{path}: {exc}") from exc
        if not scripts:
            raise ScriptError(f"no scripts (*.json) in {directory}")
        return cls(scripts)

    def get(self, name: str) -> Script | None:
        """The script with this name, if any."""
        return self.scripts.get(name)

    @property
    def default(self) -> Script:
        """The first script by name."""
        return next(iter(self.scripts.values()))

    def summaries(self) -> list[dict[str, Any]]:
        """Every script's summary."""
        return [script.summary() for script in self.scripts.values()]
