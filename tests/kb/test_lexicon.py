from __future__ import annotations

from server.kb.lexicon import common_words


def test_common_words_hold_plain_words_and_no_typos() -> None:
    words = common_words()
    assert len(words) > 5_000
    assert {"train", "night", "sorry", "better", "heard", "charged"} <= words
    assert not {"hotpsot", "phnoe", "pament", "recieve", "stollen"} & words
    # Lowercased whole words of four letters or more, nothing else.
    assert all(w.isalpha() and w.islower() and len(w) >= 4 for w in words)
