from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
from server.kb.store import Article, KnowledgeBase
from server.paths import sample_kb_dir
from tests.kb.test_kb_sync_answers import FailingEmbedder

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


# Duplicate ids, bad files, odd encodings and ids ---------------------------------------


def article_json(article_id: object, text: str, **fields: object) -> dict[str, object]:
    return {"id": article_id, "title": f"Title {text}", "body": f"The {text} text.", **fields}


def import_dir(folder: Path, db: Path) -> Any:
    return CliRunner().invoke(main, ["kb", "import", str(folder), "--db", str(db)])


def test_duplicate_ids_in_one_json_file_are_refused_naming_both_places(tmp_path: Path) -> None:
    # Both were written in one transaction, their passages mixed under one article.
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "x.json").write_text(json.dumps(
        [article_json("a", "walrus"), article_json("b", "badger"), article_json("a", "otter")]))
    db = tmp_path / "kb.db"
    result = import_dir(folder, db)
    assert result.exit_code == 1
    assert (f"error: {folder / 'x.json'}[2]: duplicate id 'a' (also at {folder / 'x.json'}[0]); "
            "ids must be unique, so this file was not imported") in result.stderr
    assert "0 files: 0 added, 0 updated, 0 unchanged, 1 failed" in result.stdout
    assert KnowledgeBase(db).count() == 0


def test_duplicate_ids_across_files_are_refused_and_a_rerun_changes_nothing(
    tmp_path: Path
) -> None:
    # The later file silently overwrote the earlier one, "updated" on every run.
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(article_json("shared", "walrus")))
    (folder / "b.md").write_text("---\nid: shared\ntitle: Otters\n---\nThe otter text.\n")
    db = tmp_path / "kb.db"
    first = import_dir(folder, db)
    assert first.exit_code == 1
    assert f"{folder / 'b.md'}: duplicate id 'shared' (also at {folder / 'a.json'}[0])" in (
        first.stderr)
    assert "1 files: 1 added, 0 updated, 0 unchanged, 1 failed" in first.stdout
    again = import_dir(folder, db)
    assert "1 files: 0 added, 0 updated, 1 unchanged, 1 failed" in again.stdout
    found = KnowledgeBase(db).get("shared")
    assert found is not None and "walrus" in found.body


def test_upsert_of_an_id_given_twice_keeps_the_last_version_unmixed(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path / "kb.db")
    first = Article("a", "Walrus", "", "The walrus text.")
    last = Article("a", "Otter", "", "The otter text.")
    counts = kb.upsert([first, last])
    assert (counts.added, counts.updated, counts.unchanged) == (1, 0, 0)
    assert [p.text for p in kb.passages("a")] == ["The otter text."]
    assert kb.get("a") == last


BAD_JSON = {
    "deeply nested": ("[" * 100_000, "nested too deeply"),
    "lone surrogate": ('{"id": "x", "title": "T \\ud800", "body": "b"}',
                       "its title holds U+D800 at character 3, a lone surrogate"),
    "boolean id": ('{"id": true, "title": "T", "body": "b"}',
                   "id must be a string or a whole number, got true"),
    "fractional id": ('{"id": 1.5, "title": "T", "body": "b"}',
                      "id must be a string or a whole number, got 1.5"),
    "huge number": ('{"id": "x", "title": "T", "body": "b", "n": 1' + "0" * 5000 + "}",
                    "invalid JSON (a number too long to read)"),
}


@pytest.mark.parametrize("bad", sorted(BAD_JSON))
def test_a_bad_file_is_reported_and_the_run_goes_on(tmp_path: Path, bad: str) -> None:
    # A traceback at b.json ended the run with no summary; c.md was never imported.
    content, message = BAD_JSON[bad]
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.md").write_text(MD)
    (folder / "b.json").write_text(content)
    (folder / "c.md").write_text(MD.replace("billing-x", "billing-y"))
    result = import_dir(folder, tmp_path / "kb.db")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert f"error: {folder / 'b.json'}" in result.stderr and message in result.stderr
    assert "2 files: 2 added, 0 updated, 0 unchanged, 1 failed" in result.stdout


def test_files_with_a_utf8_byte_order_mark_are_read(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_bytes(b"\xef\xbb\xbf" + MD.encode())
    (tmp_path / "b.json").write_bytes(
        b"\xef\xbb\xbf" + json.dumps(article_json("b", "bom")).encode())
    assert read_file(tmp_path / "a.md").articles[0].id == "billing-x"
    assert read_file(tmp_path / "b.json").articles[0].id == "b"


def test_json_ids_may_be_whole_numbers() -> None:
    assert [a.id for a in parse_json(json.dumps(article_json(42, "answer")))] == ["42"]
    with pytest.raises(ArticleError, match="missing title"):
        list(parse_json(json.dumps({"id": "x", "title": True, "body": "b"})))


def test_ids_of_kb_sync_are_refused() -> None:
    # kb sync owns gk-...: it would overwrite the article, then remove it with its document.
    with pytest.raises(ArticleError, match=r"'gk-6a1f' starts with 'gk-'.*kb sync"):
        list(parse_json(json.dumps(article_json("gk-6a1f", "synced")), where="x.json"))


def test_cli_import_embedding_failure_says_how_far(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b", "c"):
        (folder / f"{name}.json").write_text(json.dumps(article_json(name, name)))
    monkeypatch.setattr("server.kb.embedders.build_embedder",
                        lambda _settings: FailingEmbedder(working=1))
    result = import_dir(folder, tmp_path / "kb.db")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Error: embedding failed: embedding service answered 503\n" in result.stderr
    assert f"The import stopped at {folder / 'b.json'} (1 of 3 files done, kept)" in (
        result.stderr)
