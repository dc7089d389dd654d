"""Passages: the parts of an article that retrieval ranks and answers quote.

An article body is plain text in blocks separated by blank lines (see
``kb_import``): ``## `` headings, paragraphs, ``- `` and ``1. `` list items,
``a | b`` table rows. A passage is one section: its heading with its paragraphs
or its whole list. Long sections are cut between paragraphs, never inside a list,
and every piece keeps the section's heading, so a passage read alone still says
what it is about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A section is cut once it passes this many words (lists stay whole up to 3x).
MAX_WORDS = 140
_LIST_ITEM = re.compile(r"^\s*(?:[-*]|\d+[.)])\s+")
_HEADING = re.compile(r"^#{1,6}\s+")
# Bodies synced without heading marks: a short line with no closing punctuation,
# followed by more text, reads as a heading.
_HEADING_WORDS = 8


@dataclass(frozen=True)
class Passage:
    """A section of an article: ``heading`` ("" before the first one) and its ``text``."""

    position: int
    heading: str
    text: str

    @property
    def blocks(self) -> list[str]:
        """The passage's paragraphs, list items and table rows."""
        return self.text.split("\n\n")


def is_list_item(block: str) -> bool:
    return bool(_LIST_ITEM.match(block))


def is_heading(block: str) -> bool:
    return bool(_HEADING.match(block))


def heading_text(block: str) -> str:
    return _HEADING.sub("", block).strip()


def _looks_like_heading(block: str, following: str | None) -> bool:
    """A short title-like line followed by body text (not by a heading, not by another
    such line: "Phones $35" / "Tablets $25" are content)."""
    return (
        following is not None
        and _heading_shape(block)
        and not is_heading(following)
        and not _heading_shape(following)
    )


def _heading_shape(block: str) -> bool:
    words = block.split()
    return (
        0 < len(words) <= _HEADING_WORDS
        and not block.rstrip().endswith((".", "!", "?", ":", ";", ","))
        and not is_list_item(block)
        and "|" not in block
        and block[:1].isupper()
    )


def split_passages(body: str, *, max_words: int = MAX_WORDS) -> list[Passage]:
    """The passages of an article ``body``, in reading order."""
    blocks = [" ".join(b.split()) if not is_list_item(b) else b.strip()
              for b in re.split(r"\n\s*\n", body)]
    blocks = [b for b in blocks if b]
    sections: list[tuple[str, list[str]]] = [("", [])]
    for index, block in enumerate(blocks):
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        if is_heading(block):
            sections.append((heading_text(block), []))
        elif _looks_like_heading(block, following):
            sections.append((block, []))
        else:
            sections[-1][1].append(block)
    passages: list[Passage] = []
    for heading, section in sections:
        for piece in _cut(section, max_words):
            passages.append(Passage(len(passages), heading, "\n\n".join(piece)))
    return passages


def _cut(blocks: list[str], max_words: int) -> list[list[str]]:
    """``blocks`` in pieces of about ``max_words``; a run of list items is one unit."""
    units: list[list[str]] = []
    for block in blocks:
        if units and is_list_item(block) and is_list_item(units[-1][-1]):
            units[-1].append(block)
        elif units and is_list_item(block) and units[-1][-1].rstrip().endswith(":"):
            units[-1].append(block)  # "You can choose one of two options:" goes with its list
        else:
            units.append([block])
    pieces: list[list[str]] = []
    current: list[str] = []
    words = 0
    for unit in units:
        size = sum(len(b.split()) for b in unit)
        if size > 3 * max_words and _is_list(unit):
            # A very long list: cut between items after all.
            for block in unit:
                pieces, current, words = _add(pieces, current, words, [block], max_words)
            continue
        pieces, current, words = _add(pieces, current, words, unit, max_words)
    if current:
        pieces.append(current)
    return pieces


def _is_list(unit: list[str]) -> bool:
    return any(is_list_item(b) for b in unit)


def _add(pieces: list[list[str]], current: list[str], words: int, unit: list[str],
         max_words: int) -> tuple[list[list[str]], list[str], int]:
    size = sum(len(b.split()) for b in unit)
    if current and words + size > max_words:
        pieces.append(current)
        current, words = [], 0
    return pieces, [*current, *unit], words + size


def passage_document(title: str, passage: Passage) -> str:
    """The text a passage is embedded from: its article's title, heading and text."""
    return "\n".join(part for part in (title, passage.heading, passage.text) if part)
