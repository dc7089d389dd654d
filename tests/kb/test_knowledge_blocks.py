"""Genesys Knowledge body blocks to plain text, in the importer's conventions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.devmode.mocks.genesys.knowledge_store import shipped_seed
from server.kb.blocks import blocks_to_text, cell_text
from server.pipeline.generators.extractive import split_sentences


def text(value: str, *marks: str, link: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"text": value}
    if marks:
        body["marks"] = list(marks)
    if link:
        body["hyperlink"] = link
    return {"type": "Text", "text": body}


def paragraph(*runs: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Paragraph", "paragraph": {"blocks": list(runs)}}


def item(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "ListItem", "blocks": list(content)}


def a_list(kind: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "list": {"blocks": list(items)}}


def table(*rows: list[dict[str, Any]], caption: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"rows": [{"cells": [{"blocks": [c]} for c in row]} for row in rows]}
    if caption:
        body["properties"] = {"caption": {"blocks": [text(caption)]}}
    return {"type": "Table", "table": body}


IMAGE = {"type": "Image", "image": {"url": "https://x.example/a.png"}}
VIDEO = {"type": "Video", "video": {"url": "https://x.example/a.mp4"}}


def test_paragraph_runs_join_as_written_marks_dropped_link_text_kept() -> None:
    body = [
        paragraph(text("Press "), text("Menu", "Bold"), text(", then see "),
                  text("our guide", link="https://help.example/guide"), text(".")),
        paragraph(text("Second   paragraph\nwith a line break.")),
    ]
    assert blocks_to_text(body) == (
        "Press Menu, then see our guide.\n\nSecond paragraph with a line break."
    )


def test_unordered_ordered_and_nested_lists() -> None:
    body = [
        a_list("UnorderedList",
               item(text("Passes:"),
                    a_list("OrderedList", item(text("Day")), item(text("Month")))),
               item(text("Buy in the "), text("app", "Bold"))),
        a_list("OrderedList", item(text("Open the app")), item(text("Tap Save"))),
    ]
    assert blocks_to_text(body) == (
        "- Passes:\n\n  1. Day\n\n  2. Month\n\n- Buy in the app\n\n"
        "1. Open the app\n\n2. Tap Save"
    )


def test_a_list_item_without_text_keeps_its_number() -> None:
    body = [a_list("OrderedList", item(text("one")), item(IMAGE), item(text("three")))]
    assert blocks_to_text(body) == "1. one\n\n3. three"


def test_table_caption_then_rows_of_cells() -> None:
    body = [table([text("Pass"), text("Price")], [text("Day"), text("$5")], caption="Prices")]
    assert blocks_to_text(body) == "Prices\n\nPass | Price\n\nDay | $5"


def test_cells_flatten_paragraphs_lists_and_nested_tables() -> None:
    cell = [
        text("Up to "), text("5 GB", "Bold"),
        paragraph(text("then slowed")),
        a_list("UnorderedList", item(text("a")), item(text("b"))),
        table([text("x"), text("y")]),
    ]
    assert cell_text(cell) == "Up to 5 GB then slowed - a; - b x | y"


def test_images_videos_and_unknown_blocks_carry_no_text() -> None:
    body = [
        IMAGE,
        paragraph(text("Before "), {"type": "Image", "image": {"url": "u"}}, text("after")),
        VIDEO,
        {"type": "Hologram", "hologram": {}},
        table([text(""), text("")]),
    ]
    assert blocks_to_text(body) == "Before after"


@pytest.mark.parametrize(
    "body",
    [None, "text", {}, [None, 3, "x"], [{"type": "Paragraph"}],
     [{"type": "Paragraph", "paragraph": {"blocks": [{"type": "Text", "text": {"text": 7}}]}}],
     [{"type": "OrderedList", "list": {"blocks": "nope"}}],
     [{"type": "Table", "table": {"rows": [{"cells": None}]}}]],
)
def test_malformed_bodies_give_empty_text_without_raising(body: Any) -> None:
    assert blocks_to_text(body) == ""


def test_every_shipped_seed_document_has_text_the_extractive_generator_can_split() -> None:
    documents = json.loads(shipped_seed().read_text(encoding="utf-8"))["documents"]
    assert len(documents) >= 8
    for document in documents:
        body = blocks_to_text(document["blocks"])
        assert body and "\n\n\n" not in body, document["title"]
        assert all(s.strip() for s in split_sentences(body))
    travel = blocks_to_text(documents[0]["blocks"])
    assert "1. Open the My Brightwave app" in travel
    assert "Calls | Included | $1.99 per minute" in travel
    assert "See roaming charges on your bill for how days appear." in travel
