from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from server.cli import main
from server.errors import ArticleError
from server.kb.importer import (
    find_files,
    html_to_text,
    markdown_to_text,
    parse_html,
    parse_json,
    parse_markdown,
    read_file,
)
from server.kb.store import KnowledgeBase
from server.paths import sample_kb_dir

MD = """---
id: billing-x
title: Reading your bill
url: https://help.example/billing/x
category: billing
---
# Reading your bill

Your bill has **three** parts.

- Plan charges
- Taxes and [fees](https://help.example/fees)

Questions? Call us.
"""


def test_markdown_front_matter_and_plain_text_body() -> None:
    article = parse_markdown(MD)
    assert (article.id, article.title, article.url, article.category) == (
        "billing-x", "Reading your bill", "https://help.example/billing/x", "billing")
    assert article.body.split("\n\n") == [
        "## Reading your bill", "Your bill has three parts.", "- Plan charges",
        "- Taxes and fees", "Questions? Call us."]


@pytest.mark.parametrize("text, message", [
    ("no front matter", "missing front matter"),
    ("---\ntitle: T\n---\nbody", "invalid id"),
    ("---\nid: x\n---\nbody", "missing title"),
    ("---\nid: x\ntitle: T\nurl: javascript:alert(1)\n---\nbody", "url must be http"),
    ("---\nid: x\ntitle: T\n---\n", "empty body"),
    ("---\nid: bad id!\ntitle: T\n---\nbody", "invalid id"),
])
def test_markdown_refusals_say_why(text: str, message: str) -> None:
    with pytest.raises(ArticleError, match=message):
        parse_markdown(text, where="f.md")


def test_html_reads_meta_canonical_and_drops_scripts() -> None:
    article = parse_html(
        '<html><head><title>Track an order</title><meta name="kb-id" content="ship-1">'
        '<meta name="kb-category" content="shipping">'
        '<link rel="canonical" href="https://help.example/ship/1"><style>p{}</style></head>'
        "<body><article><h1>Track an order</h1><p>Open <b>Orders</b>.</p>"
        "<script>alert(1)</script><ol><li>Sign in</li><li>Pick the order</li></ol>"
        "<table><tr><th>Method</th><th>Days</th></tr><tr><td>Express</td><td>1-2</td></tr>"
        "</table></article></body></html>")
    assert (article.id, article.url, article.category) == (
        "ship-1", "https://help.example/ship/1", "shipping")
    assert article.title == "Track an order"
    assert "alert" not in article.body and "p{}" not in article.body
    # Ordered lists keep their numbers: passages keep numbered steps together.
    assert article.body.split("\n\n") == [
        "Open Orders.", "1. Sign in", "2. Pick the order", "Method | Days", "Express | 1-2"]


def test_headings_are_marked_and_loose_list_items_keep_their_markers() -> None:
    text = markdown_to_text("# Title\n\nIntro.\n\n### Steps\n\n1. One\n\n2. Two\n\n- a\n- b")
    assert text.split("\n\n") == ["## Title", "Intro.", "## Steps", "1. One", "2. Two",
                                    "- a", "- b"]


def test_json_accepts_object_list_and_wrapper() -> None:
    one = {"id": "a", "title": "A", "url": "https://e.example/a", "body": "Para one.\n\nTwo."}
    assert [a.id for a in parse_json(json.dumps(one))] == ["a"]
    assert [a.id for a in parse_json(json.dumps([one, {**one, "id": "b"}]))] == ["a", "b"]
    assert [a.id for a in parse_json(json.dumps({"articles": [one]}))] == ["a"]
    html = {**one, "format": "html", "body": "<p>Hi <i>there</i></p><p>Bye</p>"}
    assert next(parse_json(json.dumps(html))).body == "Hi there\n\nBye"


def test_json_errors_name_the_item() -> None:
    with pytest.raises(ArticleError, match=r"x.json\[1\]: missing title"):
        list(parse_json(json.dumps([{"id": "a", "title": "A", "body": "b"}, {"id": "b"}]),
                        where="x.json"))
    with pytest.raises(ArticleError, match="invalid JSON"):
        list(parse_json("{", where="x.json"))


def test_html_to_text_keeps_entities_as_text() -> None:
    assert html_to_text("<p>&lt;script&gt;x&lt;/script&gt; &amp; more</p>") == (
        "<script>x</script> & more")


def test_find_files_refuses_unknown_types_and_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ArticleError, match="unsupported"):
        find_files([tmp_path / "a.txt"])
    with pytest.raises(ArticleError, match="no such file"):
        find_files([tmp_path / "nope.md"])


def test_sample_knowledge_base_is_complete() -> None:
    """The shipped sample: 40+ articles of several paragraphs, every id, title and URL set."""
    files = find_files([sample_kb_dir()])
    articles = [a for f in files for a in read_file(f).articles]
    ids = [a.id for a in articles]
    assert len(articles) >= 40
    assert len(set(ids)) == len(ids)
    categories = {a.category for a in articles}
    assert {"billing", "refunds-returns", "outages", "accounts-passwords", "devices", "plans",
            "shipping", "privacy"} <= categories
    suffixes = {f.suffix for f in files}
    assert {".md", ".html", ".json"} <= suffixes
    for article in articles:
        assert article.url.startswith("https://help.brightwave.example/"), article.id
        assert len(article.body.split("\n\n")) >= 3, article.id
        assert len(article.body.split()) >= 150, article.id


def test_cli_import_shows_summary_and_search_finds(tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    runner = CliRunner()
    result = runner.invoke(main, ["kb", "import", str(sample_kb_dir()), "--db", str(db)])
    assert result.exit_code == 0, result.output
    count = KnowledgeBase(db).count()
    assert f"{count} added, 0 updated, 0 unchanged, 0 failed" in result.output
    again = runner.invoke(main, ["kb", "import", str(sample_kb_dir()), "--db", str(db)])
    assert f"0 added, 0 updated, {count} unchanged" in again.output

    found = runner.invoke(main, ["kb", "search", "restocking", "fee", "--db", str(db)])
    assert found.exit_code == 0
    assert found.output.startswith("1. ")
    assert "refunds-returns-restocking-fee" in found.output.splitlines()[0]


def test_cli_import_reports_bad_files_and_fails(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text(MD)
    (tmp_path / "bad.md").write_text("no front matter")
    result = CliRunner().invoke(main, ["kb", "import", str(tmp_path), "--db",
                                       str(tmp_path / "kb.db")])
    assert result.exit_code == 1
    assert "bad.md: missing front matter" in result.output
    assert "1 added, 0 updated, 0 unchanged, 1 failed" in result.output


def test_cli_search_without_store_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["kb", "search", "x", "--db", str(tmp_path / "none.db")])
    assert result.exit_code != 0
    assert "no knowledge base" in result.output
