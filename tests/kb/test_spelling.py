from __future__ import annotations

import pytest

from server.kb.spelling import Vocabulary, distance
from server.pipeline.terms import stem

WORDS = ["payment", "extension", "hotspot", "travel", "phone", "order", "cancel", "unlock"]
VOCABULARY = Vocabulary("1", {stem(w): 3 for w in WORDS} | {"pay": 9})


@pytest.mark.parametrize(("typed", "meant"), [
    ("pament", "payment"), ("extention", "extension"), ("hotpsot", "hotspot"),
    ("travle", "travel"), ("phnoe", "phone"), ("ordr", "order"), ("cancle", "cancel"),
])
def test_a_misspelt_word_is_corrected_to_the_index_word_one_edit_away(typed: str,
                                                                       meant: str) -> None:
    assert VOCABULARY.correct(stem(typed)) == stem(meant)


@pytest.mark.parametrize("word", ["phone", "teacher", "bitcoin", "car", "4111"])
def test_known_short_numeric_or_far_words_are_left_alone(word: str) -> None:
    assert VOCABULARY.correct(stem(word)) is None


def test_distance_counts_a_swap_as_one_edit() -> None:
    assert distance("hotpsot", "hotspot") == 1
    assert distance("abc", "abc") == 0
    assert distance("kitten", "sitting") == 3
