"""Common English words: the spelling check leaves these alone.

A query word the knowledge base never uses is either a typo ("hotpsot") or a plain
word the articles happen not to say ("stolen on the *train*", "since last *night*").
Corrected one edit away, the second kind becomes a different word ("drain",
"right") and misleads retrieval and the answer. The list that tells them apart is
the whole-word entries of the Llama 2 tokenizer's vocabulary (32,000 pieces, of
which about 10,000 are whole words of four letters or more), which the WordLlama
package ships beside its weights: common words made single tokens, typos never.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

TOKENIZER = Path("tokenizers") / "l2_supercat_tokenizer_config.json"
# SentencePiece marks a piece that starts a word with this.
_WORD_START = "\u2581"
# Shorter pieces are as often fragments of words ("cust", "ment") as words.
_MIN_LENGTH = 4


@cache
def common_words() -> frozenset[str]:
    """Lowercased common English words of four letters or more (empty when the
    tokenizer file cannot be read: then every unknown word may be corrected)."""
    spec = importlib.util.find_spec("wordllama")
    folders = list(spec.submodule_search_locations or ()) if spec else []
    for folder in folders:
        path = Path(folder) / TOKENIZER
        try:
            vocab = json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        return frozenset(
            piece[1:].lower() for piece in vocab
            if piece.startswith(_WORD_START) and len(piece) > _MIN_LENGTH
            and piece[1:].isascii() and piece[1:].isalpha())
    log.warning("common word list not found; the spelling check corrects every unknown word")
    return frozenset()
