"""The embedded default: WordLlama's static token embeddings, shipped inside its wheel.

No network and no GPU: the 16 MB weights and the tokenizer come with the package.
Its loader looks for the tokenizer under ``<cache_dir>/tokenizers``, which is where
the wheel puts it relative to the package folder, so the package folder is passed
as the cache dir and downloads are turned off.
"""

from __future__ import annotations

import json
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
# Words whose token ids are kept, shared by every query; past it the cache starts again.
_WORDS_KEPT = 16_384
_SPACE_MARK = "\u2581"  # SentencePiece's mark for a space: "▁"


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
        # Word -> token ids, where the tokenizer cuts at every space (``_splits_at_spaces``):
        # a word's ids are then the same wherever it stands. A query is mostly words seen
        # before, and the tokenizer's own call costs a cold core about 120 us for a short
        # question where a few dict lookups cost a tenth of that (docs/performance.md,
        # "On a core that idles").
        self._word_ids: dict[str, list[int]] | None = None
        self._special: tuple[str, ...] = ()

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
                    spec = json.loads(self._model.tokenizer.to_str())
                    if _splits_at_spaces(spec):
                        self._special = tuple(t["content"] for t in spec.get("added_tokens") or ())
                        self._word_ids = {}
        return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return normalize(_empty(self.size))
        model = self._load()
        if len(texts) == 1:
            return self._one(model, texts[0])
        if len(texts) <= _FEW:
            return normalize(self._few(model, texts))
        vectors = model.embed(list(texts), norm=False, return_np=True)
        if self.truncate:
            vectors = vectors[:, : self.truncate]
        return normalize(vectors)

    def _few(self, model: Any, texts: Sequence[str]) -> Any:
        """The sum of each text's token rows, only the columns kept: the direction of
        WordLlama's pooled mean, which ``normalize`` then gives (a division fewer)."""
        import numpy as np

        table = model.embedding
        out = np.zeros((len(texts), self.size), dtype=np.float32)
        for row, text in enumerate(texts):
            ids = self._ids(model, text)
            if ids:
                out[row] = np.add.reduce(table[ids, : self.size], axis=0)
        return out

    def _one(self, model: Any, text: str) -> Vectors:
        """``normalize(self._few(model, [text]))``, the same bits in six array
        operations rather than twelve: a query's, on a core whose caches went cold
        while it idled, where each costs microseconds more (docs/performance.md)."""
        import numpy as np

        ids = self._ids(model, text)
        if not ids:
            return np.zeros((1, self.size), dtype=np.float32)  # as normalize leaves it
        row: Vectors = np.add.reduce(model.embedding[ids, : self.size], axis=0, keepdims=True)
        norm: Vectors = np.sqrt(np.add.reduce(row * row, axis=1, keepdims=True))
        return row / norm if norm[0, 0] else row

    def _ids(self, model: Any, text: str) -> list[int]:
        """The tokenizer's ids of ``text``, word by word from the cache where that gives
        the same ids: words one space apart, and no special token's text."""
        words = self._word_ids
        if (words is None or not text or text[0] == " " or text[-1] == " " or "  " in text
                or _SPACE_MARK in text or any(special in text for special in self._special)):
            ids: list[int] = model.tokenizer.encode(text, add_special_tokens=False).ids
            return ids
        ids = []
        for word in text.split(" "):
            found = words.get(word)
            if found is None:
                if len(words) >= _WORDS_KEPT:
                    words.clear()  # a bound, not a policy: the next queries fill it again
                found = words[word] = model.tokenizer.encode(word, add_special_tokens=False).ids
            ids += found
        return ids

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        # A query is a few dozen tokens: a lookup and a mean, well under a millisecond.
        return self.embed(texts)


def _splits_at_spaces(spec: dict[str, Any]) -> bool:
    """Whether the tokenizer described by ``spec`` (its JSON) tokenizes each space-separated
    word on its own: a space becomes "▁" before each word (Llama 2's normalizer), BPE
    runs on the whole text with no pre-tokenizer and no dropout, and no token but a run
    of "▁" (spaces in a row, which the cache leaves to the tokenizer) holds one after its
    first character, so no merge ever joins two words."""
    model = spec.get("model") or {}
    normalizer = spec.get("normalizer") or {}
    steps = normalizer.get("normalizers") if normalizer.get("type") == "Sequence" else None
    llama = steps == [{"type": "Prepend", "prepend": _SPACE_MARK},
                      {"type": "Replace", "pattern": {"String": " "}, "content": _SPACE_MARK}]
    vocabulary = model.get("vocab") or {}
    return (llama and spec.get("pre_tokenizer") is None and model.get("type") == "BPE"
            and not model.get("dropout") and isinstance(vocabulary, dict)
            and not any(_SPACE_MARK in token[1:] and token.strip(_SPACE_MARK)
                        for token in vocabulary))


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
