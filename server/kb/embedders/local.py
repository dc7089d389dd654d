"""The embedded default: WordLlama's static token embeddings, shipped inside its wheel.

No network and no GPU: the 16 MB weights and the tokenizer come with the package.
Its loader looks for the tokenizer under ``<cache_dir>/tokenizers``, which is where
the wheel puts it relative to the package folder, so the package folder is passed
as the cache dir and downloads are turned off.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from server.errors import EmbeddingError
from server.kb.embedders.base import Vectors, normalize

DEFAULT_CONFIG = "l2_supercat"
DEFAULT_DIM = 256
# The vectors kept: half the model's, as good on the answer benchmark and half the
# cost to search (docs/quality.md).
DEFAULT_TRUNCATE = 128
# Up to this many texts (a query's turns) are embedded here, token rows averaged
# directly: WordLlama's batch path pads and masks, three times slower for one query.
_FEW = 8


class WordLlamaEmbedder:
    """Mean-pooled static embeddings; fast enough to embed a query on the event loop."""

    def __init__(self, *, config: str = DEFAULT_CONFIG, dim: int = DEFAULT_DIM,
                 truncate: int | None = DEFAULT_TRUNCATE) -> None:
        self.config = config
        self.dim = dim
        # WordLlama is trained Matryoshka-style: its first dimensions carry the most, so
        # vectors can be cut shorter (cheaper to store and search) and renormalised.
        self.truncate = truncate if truncate and truncate < dim else None
        self.size = self.truncate or dim
        self.name = f"wordllama/{config}-{dim}" + (f":{truncate}" if self.truncate else "")
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    try:
                        with _root_logger_kept():
                            import wordllama
                            from wordllama import WordLlama
                    except ImportError as exc:  # pragma: no cover - a broken install
                        raise EmbeddingError("the wordllama package is not installed") from exc
                    folder = Path(wordllama.__file__).parent
                    try:
                        self._model = WordLlama.load(
                            config=self.config, dim=self.dim, cache_dir=folder,
                            disable_download=True,
                        )
                    except (FileNotFoundError, ValueError) as exc:
                        raise EmbeddingError(f"cannot load WordLlama {self.name}: {exc}") from exc
        return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return normalize(_empty(self.size))
        model = self._load()
        if len(texts) <= _FEW:
            return normalize(self._few(model, texts))
        vectors = model.embed(list(texts), norm=False, return_np=True)
        if self.truncate:
            vectors = vectors[:, : self.truncate]
        return normalize(vectors)

    def _few(self, model: Any, texts: Sequence[str]) -> Any:
        """The mean of each text's token rows (the same sums as WordLlama's pooling),
        only the columns kept."""
        import numpy as np

        table = model.embedding
        out = np.zeros((len(texts), self.size), dtype=np.float32)
        for row, text in enumerate(texts):
            ids = model.tokenizer.encode(text, add_special_tokens=False).ids
            if ids:
                out[row] = table[ids, : self.size].sum(axis=0, dtype=np.float32) / len(ids)
        return out

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        # A query is a few dozen tokens: a lookup and a mean, well under a millisecond.
        return self.embed(texts)


def _empty(dim: int) -> Any:
    import numpy as np

    return np.zeros((0, dim), dtype=np.float32)


@contextmanager
def _root_logger_kept() -> Iterator[None]:
    """Undo what an import does to the root logger. WordLlama's modules call
    ``logging.basicConfig(level=INFO)`` when imported: in a process whose logging is not
    yet configured (the ``import`` command, the benchmarks) every library's INFO lines,
    httpx's line per request among them, would then go to stderr."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    try:
        yield
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers
