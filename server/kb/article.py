"""A knowledge-base article, as ``kb import`` reads it and ``kb sync`` builds it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

#: The ids of the articles ``kb sync`` makes: this prefix and the Genesys document id.
#: ``kb import`` refuses ids that start with it, so neither can overwrite the other's.
SYNC_ID_PREFIX = "gk-"


@dataclass(frozen=True)
class Article:
    """One knowledge-base article; ``body`` is plain text with blank lines between blocks."""

    id: str
    title: str
    url: str
    body: str
    category: str = ""

    @property
    def content_hash(self) -> str:
        """A digest of what is indexed: an article whose digest is unchanged is not rewritten."""
        digest = hashlib.sha256()
        for part in (self.title, self.url, self.category, self.body):
            digest.update(part.encode())
            digest.update(b"\0")
        return digest.hexdigest()

    def text_problem(self) -> str | None:
        """Why the article's text cannot be stored (None when it can): a lone surrogate,
        as a JSON ``"\\ud800"`` escape gives, is no Unicode SQLite or a digest can take."""
        for name in ("id", "title", "url", "category", "body"):
            value: str = getattr(self, name)
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                code = ord(value[exc.start])
                return (f"its {name} holds U+{code:04X} at character {exc.start + 1}, "
                        "a lone surrogate (not valid Unicode)")
        return None
