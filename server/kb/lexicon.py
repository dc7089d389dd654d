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
import logging
import re
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

TOKENIZER = Path("tokenizers") / "l2_supercat_tokenizer_config.json"
# A vocabulary entry of a whole word: SentencePiece's word-start mark (U+2581, in UTF-8)
# and four letters or more (shorter pieces are as often fragments of words as words),
# then the colon before its id. Matched in the raw bytes: parsing the 1.8 MB of JSON
# left about 11 MiB more in each worker than this does.
_ENTRY = re.compile(rb'"\xe2\x96\x81([A-Za-z]{4,})":')


@cache
def common_words() -> frozenset[str]:
    """Lowercased common English words of four letters or more (empty when the
    tokenizer file cannot be read: then every unknown word may be corrected)."""
    spec = importlib.util.find_spec("wordllama")
    folders = list(spec.submodule_search_locations or ()) if spec else []
    for folder in folders:
        try:
            raw = (Path(folder) / TOKENIZER).read_bytes()
        except OSError:
            continue
        if words := frozenset(m.decode("ascii").lower() for m in _ENTRY.findall(raw)):
            return words
    log.warning("common word list not found; the spelling check corrects every unknown word")
    return frozenset()
