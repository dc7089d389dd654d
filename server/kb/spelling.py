"""Spelling: query words the knowledge base never uses, corrected to words it does.

Agents type fast ("pament extention", "hotpsot"). A query stem that no passage
holds is replaced by the index's stem one edit away (a deletion, insertion,
substitution or swap; two for long words), the most common one on a tie. The
lookup is by deletions (the symmetric-delete method): every stem of the index is
filed under itself and each of its one-letter deletions, built once per write.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Words this short are left alone: one edit turns them into too many others.
_MIN_LENGTH = 4
_SHORT = 5
_LONG = 8


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def distance(a: str, b: str) -> int:
    """Optimal string alignment distance (Damerau-Levenshtein without re-edits)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


@dataclass
class Vocabulary:
    """The stems of one index generation and how many passages hold each."""

    generation: str
    counts: dict[str, int]
    passages: int = 0
    _index: dict[str, list[str]] | None = field(default=None, repr=False)

    def __contains__(self, stem: str) -> bool:
        return stem in self.counts

    def correct(self, stem: str) -> str | None:
        """The index's stem closest to ``stem`` (None when it is known or nothing is near)."""
        if stem in self.counts or len(stem) < _MIN_LENGTH or not stem.isalpha():
            return None
        index = self._deletes_index()
        candidates: set[str] = set(index.get(stem, ()))
        for deleted in _deletes(stem):
            candidates.update(index.get(deleted, ()))
            if deleted in self.counts:
                candidates.add(deleted)
        limit = 2 if len(stem) >= _LONG else 1
        scored = [(distance(stem, c), -self.counts[c], c) for c in candidates
                  if abs(len(c) - len(stem)) <= limit and len(c) >= _MIN_LENGTH - 1]
        scored = [s for s in scored if s[0] <= limit and (
            # A short word is only corrected for a letter missing, extra or swapped
            # ("ordr"): a changed letter makes another word too easily ("cust", "cost").
            len(stem) >= _SHORT or len(s[2]) != len(stem) or sorted(s[2]) == sorted(stem))]
        return min(scored)[2] if scored else None

    def _deletes_index(self) -> dict[str, list[str]]:
        if self._index is None:
            index: dict[str, list[str]] = {}
            for stem in self.counts:
                if len(stem) >= _MIN_LENGTH - 1 and stem.isalpha():
                    for deleted in _deletes(stem):
                        index.setdefault(deleted, []).append(stem)
            self._index = index
        return self._index
