from __future__ import annotations

import re

import pytest

from server.kb.importer import find_files, read_file
from server.kb.passages import MAX_WORDS, Passage, is_heading, is_list_item, split_passages
from server.kb.store import Article
from server.paths import sample_kb_dir


def _para(word: str, count: int) -> str:
    """A paragraph of ``count`` words, ending with a full stop."""
    return " ".join([word] * (count - 1) + [word + "."])


def _item(n: int, count: int) -> str:
    return f"- item{n} " + " ".join(["word"] * (count - 1))


def _sample_articles() -> list[Article]:
    return [article for path in find_files([sample_kb_dir()])
            for article in read_file(path).articles]


def test_a_section_is_its_heading_with_its_paragraphs() -> None:
    body = ("Intro before any heading.\n\n## Refund timing\n\nRefunds take 5 days.\n\n"
            "They go back to your card.\n\n## Fees\n\nThere is no fee.")
    assert split_passages(body) == [
        Passage(0, "", "Intro before any heading."),
        Passage(1, "Refund timing", "Refunds take 5 days.\n\nThey go back to your card."),
        Passage(2, "Fees", "There is no fee."),
    ]


def test_a_section_with_a_list_keeps_the_whole_list() -> None:
    body = ("## Activate your eSIM\n\n1. Open the app.\n\n2. Tap Activate.\n\n"
            "3. Restart the phone.\n\n## Other\n\nText.")
    first = split_passages(body)[0]
    assert first.heading == "Activate your eSIM"
    assert first.blocks == ["1. Open the app.", "2. Tap Activate.", "3. Restart the phone."]


def test_paragraph_whitespace_is_collapsed_and_blank_blocks_dropped() -> None:
    body = "## Title\n\nOne   line\nwrapped   here.\n\n   \n\n\n\nNext."
    assert split_passages(body) == [Passage(0, "Title", "One line wrapped here.\n\nNext.")]


def test_an_empty_body_has_no_passages() -> None:
    assert split_passages("") == []
    assert split_passages("\n\n   \n\n") == []


def test_a_long_section_is_cut_between_paragraphs_and_each_piece_keeps_the_heading() -> None:
    paragraphs = [_para(w, 60) for w in ("alpha", "bravo", "charlie", "delta")]
    body = "## Long section\n\n" + "\n\n".join(paragraphs)
    passages = split_passages(body, max_words=140)
    assert [p.blocks for p in passages] == [paragraphs[:2], paragraphs[2:]]
    assert [p.heading for p in passages] == ["Long section", "Long section"]
    assert [p.position for p in passages] == [0, 1]


def test_a_paragraph_longer_than_the_limit_is_never_split() -> None:
    paragraph = _para("word", 300)
    passages = split_passages(f"## Big\n\n{paragraph}\n\nShort one.", max_words=140)
    assert [p.blocks for p in passages] == [[paragraph], ["Short one."]]


def test_a_list_is_never_cut_while_it_is_under_three_times_the_limit() -> None:
    intro = _para("intro", 100)
    items = [_item(n, 20) for n in range(10)]  # 200 words: over 140, under 420
    body = "## Steps\n\n" + intro + "\n\n" + "\n\n".join(items) + "\n\nAfter the list."
    passages = split_passages(body, max_words=140)
    lists = [p for p in passages if any(is_list_item(b) for b in p.blocks)]
    assert len(lists) == 1
    assert lists[0].blocks == items
    assert all(p.heading == "Steps" for p in passages)
    assert len(lists[0].text.split()) > 140


def test_a_list_over_three_times_the_limit_is_cut_between_items() -> None:
    items = [_item(n, 20) for n in range(30)]  # 600 words
    passages = split_passages("## Huge list\n\n" + "\n\n".join(items), max_words=140)
    assert len(passages) > 1
    assert [b for p in passages for b in p.blocks] == items  # whole items, in order
    assert all(len(p.text.split()) <= 140 for p in passages)
    assert all(p.heading == "Huge list" for p in passages)


def test_a_lead_sentence_ending_with_a_colon_stays_with_its_list() -> None:
    body = ("## Waivers\n\n" + _para("context", 25) + "\n\n"
            "We don't charge a restocking fee if:\n\n- The device is defective.\n\n"
            "- We sent the wrong item.")
    # A limit small enough that the lead would otherwise close a piece on its own.
    passages = split_passages(body, max_words=35)
    with_lead = [p for p in passages if "We don't charge a restocking fee if:" in p.blocks]
    assert len(with_lead) == 1
    assert with_lead[0].blocks[-3:] == ["We don't charge a restocking fee if:",
                                        "- The device is defective.",
                                        "- We sent the wrong item."]


def test_heading_less_body_short_capitalised_lines_followed_by_text_are_headings() -> None:
    body = ("Refund timing\n\nRefunds take 5 business days.\n\n"
            "Card refunds\n\nThey post to your card within 3 days.\n\n"
            "- A list item is never a heading\n\nMore text.")
    passages = split_passages(body)
    assert [(p.heading, p.text) for p in passages] == [
        ("Refund timing", "Refunds take 5 business days."),
        ("Card refunds", "They post to your card within 3 days.\n\n"
                         "- A list item is never a heading\n\nMore text."),
    ]


@pytest.mark.parametrize("line", [
    "Refunds take five days.",  # final punctuation
    "Do you need help?",
    "You can choose:",
    "refund timing",  # not capitalised
    "This line has far too many words to be read as a heading",  # over 8 words
    "Plan | Price",  # a table row
])
def test_heading_less_lines_that_do_not_read_as_headings_stay_text(line: str) -> None:
    passages = split_passages(f"{line}\n\nSome following text here.")
    assert [p.heading for p in passages] == [""]
    assert passages[0].blocks[0] == line


def test_a_heading_like_last_line_stays_text() -> None:
    passages = split_passages("Refunds take 5 days.\n\nCall us any time")
    assert passages == [Passage(0, "", "Refunds take 5 days.\n\nCall us any time")]


@pytest.mark.parametrize("body, lost", [
    # A short unpunctuated line just before a `## ` heading.
    ("## Contact\n\nCall Customer Care at 1-800-555-0142\n\n## Hours\n\nWe are open 8am to 8pm.",
     "Call Customer Care at 1-800-555-0142"),
    # Two short lines in a row in a heading-less body.
    ("Phones $35\n\nTablets $25\n\nThe fee is charged once per device.", "Phones $35"),
], ids=["short-line-before-a-heading", "two-short-lines-in-a-row"])
def test_no_block_of_a_body_is_lost(body: str, lost: str) -> None:
    """Every paragraph survives, as a passage's text or at least its heading."""
    passages = split_passages(body)
    kept = "\n\n".join(f"{p.heading}\n\n{p.text}" for p in passages)
    assert lost in kept


def test_list_items_keep_their_markers_and_lines() -> None:
    body = "## Steps\n\n1. Open the app\n   and sign in.\n\n2) Tap Activate.\n\n* Or use the web."
    assert split_passages(body)[0].blocks == [
        "1. Open the app\n   and sign in.", "2) Tap Activate.", "* Or use the web."]


def test_the_shipped_sample_articles_split_into_passages_that_keep_every_block() -> None:
    articles = _sample_articles()
    assert len(articles) >= 40
    for article in articles:
        passages = split_passages(article.body)
        assert passages, article.id
        assert [p.position for p in passages] == list(range(len(passages)))
        joined = "\n\n".join(p.text for p in passages)
        for block in re.split(r"\n\s*\n", article.body):
            block = block.strip()
            if not block or is_heading(block):
                continue
            expected = block if is_list_item(block) else " ".join(block.split())
            assert expected in joined, (article.id, block)
        for passage in passages:
            assert passage.text.strip(), article.id
            assert all(b.strip() for b in passage.blocks), article.id
            size = len(passage.text.split())
            lead_and_list = all(is_list_item(b) for b in passage.blocks[1:])
            assert size <= 3 * MAX_WORDS or lead_and_list, (article.id, size)


def test_the_shipped_sample_sections_keep_their_headings() -> None:
    articles = {a.id: a for a in _sample_articles()}
    passages = split_passages(articles["refunds-returns-restocking-fee"].body)
    by_heading = {p.heading: p for p in passages}
    assert by_heading["How much the fee is"].blocks[0] == "- Phones: $35"
    waived = by_heading["When the fee is waived"].blocks
    assert waived[0] == "We don't charge a restocking fee if:"
    assert all(is_list_item(b) for b in waived[1:])
    steps = next(p for p in split_passages(articles["devices-activate-esim"].body)
                 if p.blocks[0].startswith("1. "))
    assert steps.heading == "Activate your eSIM"
    assert [b[:2] for b in steps.blocks] == ["1.", "2.", "3.", "4.", "5."]
