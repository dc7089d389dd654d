"""Plain text of Genesys Knowledge document bodies (a variation's ``body.blocks``).

The text follows the importer's conventions (:mod:`server.kb.importer`), so that
retrieval and the extractive generator treat synced and imported articles alike:
one block per paragraph, list item or table row, blocks separated by blank lines;
``- `` before unordered list items and ``1. ``, ``2. ``... before ordered ones,
nested items indented by two spaces per level; a table's caption first, then one
line per row with its cells joined by `` | ``. Hyperlinks keep their text; marks
(bold, italic...) are dropped; images, videos and block types this module does
not know carry no text and are left out.

Pure functions, no I/O. They accept any decoded JSON and never raise on a
missing or malformed field: what cannot be read is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

#: Indentation of a nested list item, per level.
INDENT = "  "
#: Block types that hold a list (``DocumentBodyList`` under their ``list`` key).
LIST_TYPES = frozenset({"OrderedList", "UnorderedList"})

_EMPTY: Mapping[str, Any] = {}


def blocks_to_text(blocks: object) -> str:
    """The plain text of a document body's ``blocks`` (``DocumentBodyBlock`` list)."""
    return "\n\n".join(body_lines(blocks))


def body_lines(blocks: object) -> Iterator[str]:
    """The text blocks of a body, in reading order (each non-empty, without newlines)."""
    for block in _objects(blocks):
        kind = block.get("type")
        if kind == "Paragraph":
            text = paragraph_text(_child(block, "paragraph"))
            if text:
                yield text
        elif kind in LIST_TYPES:
            yield from list_lines(_child(block, "list"), ordered=kind == "OrderedList")
        elif kind == "Table":
            yield from table_lines(_child(block, "table"))


def paragraph_text(paragraph: Mapping[str, Any]) -> str:
    """A ``DocumentBodyParagraph``'s text: its text runs joined as written, spaces squashed."""
    return squash(_runs(paragraph.get("blocks")))


def list_lines(body_list: Mapping[str, Any], *, ordered: bool, depth: int = 0) -> Iterator[str]:
    """One line per item of a ``DocumentBodyList``, nested lists after their item, indented."""
    for number, item in enumerate(_objects(body_list.get("blocks")), start=1):
        content = _objects(item.get("blocks"))
        text = squash(_runs(content))
        if text:
            marker = f"{number}. " if ordered else "- "
            yield f"{INDENT * depth}{marker}{text}"
        for block in content:
            kind = block.get("type")
            if kind in LIST_TYPES:
                yield from list_lines(
                    _child(block, "list"), ordered=kind == "OrderedList", depth=depth + 1
                )


def table_lines(table: Mapping[str, Any]) -> Iterator[str]:
    """A ``DocumentBodyTable``'s caption, then each row as its cells joined by `` | ``."""
    caption = _child(_child(table, "properties"), "caption")
    caption_text = cell_text(caption.get("blocks"))
    if caption_text:
        yield caption_text
    for row in _objects(table.get("rows")):
        cells = [cell_text(cell.get("blocks")) for cell in _objects(row.get("cells"))]
        if any(cells):
            yield " | ".join(cells)


def cell_text(blocks: object) -> str:
    """The text of a table cell's (or caption's) blocks on one line.

    Consecutive text runs join as written; paragraphs, lists and nested tables are
    separated by spaces, list items and nested rows by ``; ``.
    """
    pieces: list[str] = []
    runs: list[str] = []
    for block in _objects(blocks):
        kind = block.get("type")
        if kind == "Text":
            runs.append(_text(block))
            continue
        pieces.append("".join(runs))
        runs = []
        if kind == "Paragraph":
            pieces.append(paragraph_text(_child(block, "paragraph")))
        elif kind in LIST_TYPES:
            lines = list_lines(_child(block, "list"), ordered=kind == "OrderedList")
            pieces.append("; ".join(line.strip() for line in lines))
        elif kind == "Table":
            pieces.append("; ".join(table_lines(_child(block, "table"))))
    pieces.append("".join(runs))
    return squash(" ".join(pieces))


# Tolerant readers ------------------------------------------------------------


def _objects(value: object) -> list[Mapping[str, Any]]:
    """The JSON objects of a list (anything else: none)."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _child(block: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = block.get(key)
    return value if isinstance(value, Mapping) else _EMPTY


def _text(block: Mapping[str, Any]) -> str:
    """The text of a ``Text`` block (``{"text": {"text": ..., "marks", "hyperlink"}}``)."""
    value = _child(block, "text").get("text")
    return value if isinstance(value, str) else ""


def _runs(blocks: object) -> str:
    """The ``Text`` blocks among ``blocks``, concatenated (inline runs of one block)."""
    return "".join(_text(b) for b in _objects(blocks) if b.get("type") == "Text")


def squash(value: object) -> str:
    """Text with its whitespace runs collapsed to single spaces; '' for anything not text."""
    return " ".join(value.split()) if isinstance(value, str) else ""
