"""The store's passage vectors as one matrix, searched by cosine.

Each passage's vector is a float32 BLOB in the ``passages`` table; a search multiplies
them all by the query's vector, so they are loaded once per write generation into one
numpy matrix (at 10,000 articles, 27,980 x 128 floats: about 2 ms a search).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from server.kb.embedders.base import Vectors


@dataclass(frozen=True)
class VectorMatrix:
    """Every passage vector of one generation of the store."""

    generation: str
    rowids: NDArray[np.int64]
    vectors: Vectors
    dim: int

    @classmethod
    def load(cls, conn: sqlite3.Connection, generation: str) -> VectorMatrix:
        """The vectors ``conn``'s store holds (those of another length left out)."""
        rows = conn.execute(
            "SELECT rowid, vector FROM passages WHERE vector IS NOT NULL").fetchall()
        if not rows:
            return cls(generation, np.zeros(0, np.int64), np.zeros((0, 0), np.float32), 0)
        dim = len(rows[0][1]) // 4
        rows = [r for r in rows if len(r[1]) == dim * 4]
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        return cls(generation, np.array([r[0] for r in rows], dtype=np.int64),
                   vectors.reshape(len(rows), dim), dim)

    def nearest(self, vector: Vectors, limit: int) -> dict[int, float]:
        """The ``limit`` passages nearest ``vector`` by cosine: rowid -> similarity."""
        if not len(self.rowids) or vector.shape[-1] != self.dim:
            return {}
        scores = self.vectors @ vector.reshape(-1)
        if len(scores) > limit:
            top = np.argpartition(-scores, limit - 1)[:limit]
        else:
            top = np.arange(len(scores))
        # tolist: Python ints and floats at once, not a numpy scalar an element.
        return dict(zip(self.rowids[top].tolist(), scores[top].tolist(), strict=True))
