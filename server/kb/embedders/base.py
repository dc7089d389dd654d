"""The embedder interface: texts in, one unit-length float32 vector per text out.

The store keeps the vectors of its passages with the ``name`` of the embedder that
made them, so a change of model (or of its size) is noticed and re-embedded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from server.errors import EmbeddingError

Vectors = NDArray[np.float32]


class Embedder(Protocol):
    # What made the vectors, e.g. "wordllama/l2_supercat-256": recorded in the store.
    name: str

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Vectors of ``texts`` (rows unit length), blocking: for imports and worker threads."""
        ...

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        """The same without blocking the event loop: for queries."""
        ...


def normalize(vectors: NDArray[np.floating]) -> Vectors:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise EmbeddingError(f"expected a 2-D array of vectors, got shape {array.shape}")
    # np.linalg.norm's own sums, spelt out: the same result through fewer layers, which
    # counts on a core whose caches went cold while it idled (docs/performance.md).
    norms = np.sqrt(np.add.reduce(array * array, axis=1, keepdims=True))
    norms[norms == 0] = 1.0
    scaled: Vectors = (array / norms).astype(np.float32, copy=False)
    return scaled
