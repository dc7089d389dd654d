from __future__ import annotations

import pytest

from server.pipeline.generators.citations import CitationFilter


def _run(articles: int, chunks: list[str]) -> tuple[str, int]:
    citations = CitationFilter(articles)
    text = "".join(citations.feed(c) for c in chunks) + citations.flush()
    return text, citations.dropped


def test_citations_of_given_articles_pass_and_others_are_dropped() -> None:
    text, dropped = _run(2, ["Refunds take 5 days [1]. Or 7 [3]. See [2]."])
    assert text == "Refunds take 5 days [1]. Or 7 . See [2]."
    assert dropped == 1


@pytest.mark.parametrize("chunks", [["[", "1", "]"], ["x [1", "0] y"], ["[12", "3]"]])
def test_a_citation_split_across_chunks_is_judged_whole(chunks: list[str]) -> None:
    text, _ = _run(10, chunks)
    joined = "".join(chunks)
    if joined.strip().startswith("[1]"):
        assert text == "[1]"
    elif "[10]" in joined:
        assert text == "x [10] y"
    else:
        assert text == ""  # [123] names no article of ten


def test_brackets_that_are_not_citations_pass_unchanged() -> None:
    assert _run(1, ["a [b] [", "] [0x] [1"])[0] == "a [b] [] [0x] [1"
    assert _run(0, ["[0] [1]"]) == (" ", 2)
