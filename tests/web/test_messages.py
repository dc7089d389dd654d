"""The panel's UI text (frontend/static/panel/messages.js): every language is complete.

messages.js is one object literal of string tables. It is read here by turning that
literal into JSON (bare keys quoted, trailing commas dropped) and parsing it strictly,
so a syntax the converter does not know fails loudly instead of passing silently.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from server.paths import frontend_dir

LANGUAGES = ("en", "es", "fr", "de", "pt-BR", "ja")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:  # JavaScript keeps the last silently; a test should not
        raise ValueError(f"duplicate keys: {duplicates}")
    return dict(pairs)


def load_messages() -> dict[str, dict[str, str]]:
    """``MESSAGES`` from messages.js, as Python dicts."""
    source = (frontend_dir() / "static" / "panel" / "messages.js").read_text(encoding="utf-8")
    lines = [line for line in source.splitlines() if not line.lstrip().startswith("//")]
    text = "\n".join(lines).strip()
    match = re.fullmatch(r"export const MESSAGES = (\{.*\});", text, re.DOTALL)
    assert match, "messages.js should be `export const MESSAGES = {...};` and comments"
    literal = re.sub(r"^(\s*)([A-Za-z_]\w*):", r'\1"\2":', match.group(1), flags=re.MULTILINE)
    literal = re.sub(r",(\s*\})", r"\1", literal)
    tables: dict[str, dict[str, str]] = json.loads(literal, object_pairs_hook=_no_duplicates)
    return tables


@pytest.fixture(scope="module")
def messages() -> dict[str, dict[str, str]]:
    return load_messages()


def test_the_languages(messages: dict[str, dict[str, str]]) -> None:
    assert tuple(messages) == LANGUAGES


@pytest.mark.parametrize("lang", LANGUAGES[1:])
def test_each_language_has_exactly_the_english_keys(messages: dict[str, dict[str, str]],
                                                    lang: str) -> None:
    english, table = set(messages["en"]), set(messages[lang])
    assert not english - table, f"{lang} lacks {sorted(english - table)}"
    assert not table - english, f"{lang} has unknown keys {sorted(table - english)}"


@pytest.mark.parametrize("lang", LANGUAGES[1:])
def test_each_text_keeps_the_english_placeholders(messages: dict[str, dict[str, str]],
                                                  lang: str) -> None:
    for key, english in messages["en"].items():
        text = messages[lang].get(key, "")
        assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(english)), \
            (lang, key, text)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_texts_are_plain_and_not_empty(messages: dict[str, dict[str, str]], lang: str) -> None:
    for key, text in messages[lang].items():
        assert isinstance(text, str) and text.strip(), (lang, key)
        assert text == text.strip(), (lang, key)
        # Text goes in with textContent, but markup in a table would be a mistake anyway.
        assert "<" not in text and ">" not in text, (lang, key)
        # Braces only as whole {placeholders}.
        assert "{" not in PLACEHOLDER.sub("", text) and "}" not in PLACEHOLDER.sub("", text), \
            (lang, key)


def test_translated_tables_are_translated(messages: dict[str, dict[str, str]]) -> None:
    """A table copied from English by mistake would pass the key checks."""
    for lang in LANGUAGES[1:]:
        same = [k for k, v in messages[lang].items() if v == messages["en"][k]]
        assert len(same) <= len(messages["en"]) // 5, (lang, same)


def test_the_templates_keys_exist(messages: dict[str, dict[str, str]]) -> None:
    template = (frontend_dir() / "templates" / "panel.html").read_text(encoding="utf-8")
    keys = set(re.findall(r'data-i18n(?:-[a-z-]+)?="([^"]+)"', template))
    assert keys, "panel.html marks no text for translation"
    assert keys <= set(messages["en"]), sorted(keys - set(messages["en"]))
