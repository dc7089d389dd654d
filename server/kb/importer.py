"""Reading knowledge-base articles from markdown, HTML and JSON files.

Markdown files carry ``id``/``title``/``url``/``category`` in a front-matter
block; HTML files in ``<title>``, ``<meta name="kb-id">``, ``<meta
name="kb-category">`` and ``<link rel="canonical">``; JSON files hold one
article object, a list of them, or ``{"articles": [...]}``. Bodies become plain
text with blank lines between paragraphs, ``## `` before headings, ``- `` before
list items and ``1. ``, ``2. ``... before ordered ones: enough structure for the store
to cut articles into passages (a heading with its paragraphs or its whole list).

An import run stores each file whole or not at all, and goes on past a bad one: the
summary lists why each failed. An id may appear once per run; ids starting with
``gk-`` belong to ``kb sync`` and are refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from markdown_it import MarkdownIt

from server.errors import ArticleError
from server.kb.article import SYNC_ID_PREFIX
from server.kb.store import Article, KnowledgeBase

SUFFIXES = frozenset({".md", ".markdown", ".html", ".htm", ".json"})
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.DOTALL)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCKS = frozenset(
    """p div section article header footer main aside ul ol table tr blockquote pre h1
    h2 h3 h4 h5 h6 li dl dt dd figure figcaption hr""".split()
)


@dataclass(frozen=True)
class FileResult:
    """The articles of one file; ``places`` says where each was read (``x.json[2]``)."""

    path: Path
    articles: tuple[Article, ...]
    places: tuple[str, ...] = ()


def find_files(paths: list[Path]) -> list[Path]:
    """The importable files among ``paths`` (directories are walked), sorted, no duplicates."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in SUFFIXES:
                    found.setdefault(child, None)
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise ArticleError(f"{path}: unsupported file type (use .md, .html or .json)")
            found.setdefault(path, None)
        else:
            raise ArticleError(f"{path}: no such file or directory")
    return list(found)


def read_file(path: Path) -> FileResult:
    """Parse one file into its articles, raising ``ArticleError`` on bad content."""
    try:
        # utf-8-sig: editors on Windows start UTF-8 files with a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArticleError(f"{path}: cannot read ({exc})") from exc
    suffix = path.suffix.lower()
    if suffix in {".md", ".markdown"}:
        articles: list[Article] = [parse_markdown(text, where=str(path))]
        places = [str(path)]
    elif suffix in {".html", ".htm"}:
        articles = [parse_html(text, where=str(path))]
        places = [str(path)]
    else:
        articles = list(parse_json(text, where=str(path)))
        places = [f"{path}[{index}]" for index in range(len(articles))]
    return FileResult(path, tuple(articles), tuple(places))


def parse_markdown(text: str, *, where: str = "<markdown>") -> Article:
    match = _FRONT_MATTER.match(text)
    if not match:
        raise ArticleError(f"{where}: missing front matter (--- id/title/url ---)")
    meta: dict[str, str] = {}
    for line in match.group(1).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition(":")
            if not sep:
                raise ArticleError(f"{where}: bad front matter line {line!r}")
            meta[key.strip().lower()] = value.strip().strip("'\"")
    body = markdown_to_text(text[match.end():])
    return _article(meta, body, where)


def markdown_to_text(markdown: str) -> str:
    """Plain text of a markdown document (through its HTML rendering)."""
    return html_to_text(MarkdownIt("commonmark").render(markdown))


def parse_html(text: str, *, where: str = "<html>") -> Article:
    parser = _ArticleHTML()
    parser.feed(text)
    parser.close()
    body = parser.text()
    title = parser.title.strip() or parser.first_heading.strip()
    # The page's own <h1> repeats the title; keep it out of the body.
    for repeat in (f"## {title}", title):
        if title and body.startswith(repeat):
            body = body[len(repeat):].lstrip()
            break
    meta = {"title": title, **parser.meta}
    return _article(meta, body, where)


def parse_json(text: str, *, where: str = "<json>") -> Iterator[Article]:
    """The articles of a JSON file: one object, a list of them or ``{"articles": [...]}``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArticleError(f"{where}: invalid JSON ({exc.msg} at line {exc.lineno})") from exc
    except RecursionError:
        raise ArticleError(f"{where}: invalid JSON (nested too deeply)") from None
    except ValueError:  # json's own limit on the digits of an integer
        raise ArticleError(f"{where}: invalid JSON (a number too long to read)") from None
    if isinstance(data, dict) and isinstance(data.get("articles"), list):
        data = data["articles"]
    items = data if isinstance(data, list) else [data]
    for index, item in enumerate(items):
        here = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise ArticleError(f"{here}: an article must be an object")
        raw_id = item.get("id")
        if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, str | int)):
            # str(True) would make the id "True", and str(1.5) "1.5": refused, not guessed.
            raise ArticleError(f"{here}: id must be a string or a whole number, "
                               f"got {json.dumps(raw_id)[:40]}")
        meta = {k: str(v) for k, v in item.items()
                if isinstance(v, str | int | float) and not isinstance(v, bool)}
        body = item.get("body", "")
        if not isinstance(body, str):
            raise ArticleError(f"{here}: body must be a string")
        fmt = str(item.get("format", "markdown")).lower()
        yield _article(meta, html_to_text(body) if fmt == "html" else markdown_to_text(body), here)


def _article(meta: dict[str, str], body: str, where: str) -> Article:
    article_id = meta.get("id", "").strip()
    title = " ".join(meta.get("title", "").split())
    url = meta.get("url", "").strip()
    if not _ID.match(article_id):
        raise ArticleError(f"{where}: missing or invalid id {article_id!r}")
    if article_id.startswith(SYNC_ID_PREFIX):
        raise ArticleError(f"{where}: id {article_id!r} starts with {SYNC_ID_PREFIX!r}, which "
                           "is kept for the articles kb sync brings from Genesys Knowledge")
    if not title:
        raise ArticleError(f"{where}: missing title")
    if url and not url.startswith(("https://", "http://")):
        raise ArticleError(f"{where}: url must be http(s), got {url!r}")
    if not body.strip():
        raise ArticleError(f"{where}: empty body")
    article = Article(id=article_id, title=title, url=url, body=body.strip(),
                      category=meta.get("category", "").strip())
    problem = article.text_problem()
    if problem:
        raise ArticleError(f"{where}: {problem}")
    return article


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment: paragraphs split by blank lines, list items by ``- ``."""
    parser = _TextHTML()
    parser.feed(html)
    parser.close()
    return parser.text()


class _TextHTML(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._blocks: list[str] = []
        self._current: list[str] = []
        self._skip = 0
        self._cell = False
        # One entry per open list: its next number, or None for a bulleted list.
        self._lists: list[int | None] = []

    def _end_block(self) -> None:
        line = " ".join("".join(self._current).split())
        if line and not self._marker_only():  # a marker alone is no block
            self._blocks.append(line)
        self._current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style", "template", "head"}:
            self._skip += 1
        elif tag in _BLOCKS:
            # A paragraph inside a list item (a "loose" list) keeps the item's marker.
            if not (tag == "p" and self._marker_only()):
                self._end_block()
            if tag in {"ul", "ol"}:
                self._lists.append(1 if tag == "ol" else None)
            elif tag == "li":
                self._current.append(self._marker())
            elif tag in _HEADINGS:
                self._current.append("## ")
        elif tag in {"td", "th"}:
            if self._cell:
                self._current.append(" | ")
            self._cell = True
        elif tag == "br":
            self._end_block()

    def _marker_only(self) -> bool:
        text = "".join(self._current).strip()
        return text in {"-", "##"} or bool(re.fullmatch(r"\d+\.", text))

    def _marker(self) -> str:
        number = self._lists[-1] if self._lists else None
        if number is None:
            return "- "
        self._lists[-1] = number + 1
        return f"{number}. "

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style", "template", "head"}:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCKS:
            if not (tag == "p" and self._marker_only()):
                self._end_block()
            if tag == "tr":
                self._cell = False
            elif tag in {"ul", "ol"} and self._lists:
                self._lists.pop()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._current.append(data)

    def text(self) -> str:
        self._end_block()
        return "\n\n".join(self._blocks)


class _ArticleHTML(_TextHTML):
    """Like ``_TextHTML`` but also reads the page's title, meta tags and canonical link."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.first_heading = ""
        self.meta: dict[str, str] = {}
        self._in_title = False
        self._in_h1 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "title":
            self._in_title = True
        elif tag == "meta" and values.get("name", "").startswith("kb-"):
            self.meta[values["name"][3:]] = values.get("content", "")
        elif tag == "link" and "canonical" in values.get("rel", "").split():
            self.meta["url"] = values.get("href", "")
        elif tag == "h1" and not self.first_heading:
            self._in_h1 = True
        if tag != "title":
            super().handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "h1":
            self._in_h1 = False
        super().handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if self._in_h1:
            self.first_heading += data
        super().handle_data(data)


@dataclass
class ImportSummary:
    """Counts of one import: ``files`` imported, their articles ``added``, ``updated``
    or ``unchanged``; ``errors`` one line per file that failed."""

    files: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


def import_files(kb: KnowledgeBase, files: list[Path],
                 on_file: Callable[[Path], None] | None = None) -> ImportSummary:
    """Import ``files`` into ``kb`` one by one; a bad file is reported, not fatal.

    A file is stored whole or not at all. One whose content cannot be read, or that
    repeats an id already read in this run (in it or an earlier file), is counted in
    ``errors``, naming both places. ``EmbeddingError`` (the service is down: every
    file would fail) ends the run.
    """
    summary = ImportSummary()
    seen: dict[str, str] = {}  # id -> where it was read, among the files imported
    for path in files:
        try:
            result = read_file(path)
            _check_unique(result, seen)
            counts = kb.upsert(result.articles)
        except ArticleError as exc:
            summary.errors.append(str(exc))
        except RecursionError:
            summary.errors.append(f"{path}: nested too deeply to read")
        except (ValueError, UnicodeError) as exc:  # a parser's own refusal, not a bug here
            summary.errors.append(f"{path}: cannot import ({exc})")
        else:
            seen.update(zip((a.id for a in result.articles), result.places, strict=True))
            summary.files += 1
            summary.added += counts.added
            summary.updated += counts.updated
            summary.unchanged += counts.unchanged
        if on_file is not None:
            on_file(path)
    return summary


def _check_unique(result: FileResult, seen: dict[str, str]) -> None:
    """Refuse a file with an id read before in this run: two articles under one id
    would overwrite each other, whichever came last winning on every run."""
    here: dict[str, str] = {}
    for article, place in zip(result.articles, result.places, strict=True):
        first = here.get(article.id) or seen.get(article.id)
        if first is not None:
            raise ArticleError(f"{place}: duplicate id {article.id!r} (also at {first}); "
                               "ids must be unique, so this file was not imported")
        here[article.id] = place
