from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from server.errors import EmbeddingError
from server.kb.embedders import Embedder, WordLlamaEmbedder, normalize

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def embedder() -> WordLlamaEmbedder:
    return WordLlamaEmbedder()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every attempt to reach the network is recorded and refused."""
    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{what} {args[:2]!r}")
            raise OSError(f"network access in a test: {what}")
        return call

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.setattr(requests, "get", refuse("requests.get"))
    monkeypatch.setattr(requests.Session, "request", refuse("requests.Session.request"))
    yield attempts


def _cos(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float(a @ b)


def test_loads_from_the_package_without_the_network(no_network: list[str]) -> None:
    fresh = WordLlamaEmbedder()
    vectors = fresh.embed(["my phone was stolen"])
    assert vectors.shape == (1, 128)
    assert no_network == []


def test_loading_leaves_an_unconfigured_root_logger_as_it_was() -> None:
    # WordLlama calls logging.basicConfig(level=INFO) at import: the benchmark's process
    # then logged a line per HTTP request, inside the latency it measured.
    script = ("import logging\n"
              "from server.kb.embedders import WordLlamaEmbedder\n"
              "WordLlamaEmbedder().embed(['my phone was stolen'])\n"
              "root = logging.getLogger()\n"
              "print(root.level, len(root.handlers))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.split() == [str(logging.WARNING), "0"]


def test_a_size_whose_weights_are_not_shipped_fails_instead_of_downloading(
        no_network: list[str]) -> None:
    missing = WordLlamaEmbedder(dim=1024)
    with pytest.raises(EmbeddingError, match="wordllama/l2_supercat-1024"):
        missing.embed(["anything"])
    assert no_network == []


def test_name_is_stable_and_says_model_and_size() -> None:
    assert WordLlamaEmbedder().name == "wordllama/l2_supercat-256:128"
    assert WordLlamaEmbedder().name == WordLlamaEmbedder().name
    assert WordLlamaEmbedder(dim=64).name == "wordllama/l2_supercat-64"
    assert WordLlamaEmbedder(truncate=None).name == "wordllama/l2_supercat-256"


def test_it_is_an_embedder() -> None:
    embedder: Embedder = WordLlamaEmbedder()  # mypy checks the protocol
    assert embedder.name


def test_embed_returns_float32_unit_rows_of_dim_128(embedder: WordLlamaEmbedder) -> None:
    texts = ["my phone was stolen", "Report a lost or stolen phone", "late fee on my bill"]
    vectors = embedder.embed(texts)
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(vectors).all()


def test_embed_of_no_texts_is_an_empty_matrix(embedder: WordLlamaEmbedder) -> None:
    vectors = embedder.embed([])
    assert vectors.shape == (0, 128)
    assert vectors.dtype == np.float32


def test_embed_is_deterministic_and_row_order_follows_input(
        embedder: WordLlamaEmbedder) -> None:
    one = embedder.embed(["late fee on my bill", "my phone was stolen"])
    again = embedder.embed(["my phone was stolen", "late fee on my bill"])
    np.testing.assert_allclose(one, again[::-1], atol=1e-6)


def test_related_texts_score_higher_than_unrelated_ones(embedder: WordLlamaEmbedder) -> None:
    query, related, unrelated = embedder.embed(
        ["my phone was stolen", "Report a lost or stolen phone", "late fee on my bill"])
    assert _cos(query, related) > _cos(query, unrelated) + 0.2


def test_related_texts_without_shared_words_still_score_higher(
        embedder: WordLlamaEmbedder) -> None:
    query, related, unrelated = embedder.embed(
        ["how much does it cost to send my handset back",
         "Restocking fee for returned devices",
         "Wi-Fi calling during a network outage"])
    assert _cos(query, related) > _cos(query, unrelated)


async def test_aembed_equals_embed(embedder: WordLlamaEmbedder) -> None:
    texts = ["my phone was stolen", "Report a lost or stolen phone"]
    np.testing.assert_array_equal(await embedder.aembed(texts), embedder.embed(texts))
    assert (await embedder.aembed([])).shape == (0, 128)


def test_normalize_scales_rows_to_unit_length_as_float32() -> None:
    vectors = normalize(np.array([[3.0, 4.0], [0.0, 2.0]], dtype=np.float64))
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, [[0.6, 0.8], [0.0, 1.0]], atol=1e-6)


def test_normalize_leaves_zero_rows_zero() -> None:
    vectors = normalize(np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]))
    np.testing.assert_array_equal(vectors[0], [0.0, 0.0, 0.0])
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors[1]), 1.0, atol=1e-6)


def test_normalize_keeps_an_empty_matrix() -> None:
    assert normalize(np.zeros((0, 8))).shape == (0, 8)


@pytest.mark.parametrize("shape", [(4,), (2, 2, 2), ()])
def test_normalize_refuses_anything_but_a_matrix(shape: tuple[int, ...]) -> None:
    with pytest.raises(EmbeddingError, match="2-D"):
        normalize(np.ones(shape))


def test_truncated_vectors_are_the_full_vectors_first_dimensions_renormalised() -> None:
    text = ["my phone was stolen on the train"]
    full = WordLlamaEmbedder(truncate=None).embed(text)[0]
    short = WordLlamaEmbedder(truncate=128).embed(text)[0]
    assert full.shape == (256,) and short.shape == (128,)
    prefix = full[:128] / np.linalg.norm(full[:128])
    assert np.allclose(short, prefix, atol=1e-5)


def test_a_few_texts_embed_as_a_batch_of_many_does(embedder: WordLlamaEmbedder) -> None:
    # A query's few turns are averaged here, not through WordLlama's padded batch: the
    # vectors must be the ones the passages were embedded with.
    texts = ["How long does a refund take to reach my card?", "", "eSIM",
             "Somebody grabbed my phone right out of my bag on the train " * 12,
             "返金 😀 café", "   ", "1-800-555-0142", "ok"]
    few = embedder.embed(texts)
    many = embedder.embed([*texts, *texts])  # over the few: WordLlama's own path
    np.testing.assert_allclose(few, many[: len(texts)], rtol=1e-6, atol=1e-7)


def test_one_text_embeds_to_the_same_bits_as_in_a_few(embedder: WordLlamaEmbedder) -> None:
    # A query (one text) takes a shorter path, which must give the very vector the
    # path of a few texts gives it: retrieval's scores, and so the answer benchmark's
    # figures, are computed from it.
    texts = ["How long does a refund take to reach my card?", "", "eSIM",
             "Somebody grabbed my phone right out of my bag on the train " * 12,
             "返金 😀 café", "   ", "1-800-555-0142", "ok"]
    few = embedder.embed(texts)
    for i, text in enumerate(texts):
        one = embedder.embed([text])
        assert one.shape == (1, 128) and one.dtype == np.float32
        assert one.tobytes() == few[i : i + 1].tobytes(), text


def _texts_of_the_sample_and_the_benchmark() -> list[str]:
    from server.paths import sample_kb_dir

    texts = [path.read_text(encoding="utf-8") for path in sorted(sample_kb_dir().rglob("*.md"))]
    cases = Path(__file__).parents[2] / "bench" / "quality" / "cases.jsonl"
    texts += [json.dumps(json.loads(line)) for line in cases.read_text().splitlines() if line]
    return texts


def test_token_ids_word_by_word_are_the_tokenizers_own(embedder: WordLlamaEmbedder) -> None:
    # The cache of words is only right while a word's ids never depend on its
    # neighbours: every text of the sample and the benchmark, as typed and with its
    # spaces made single (the form the cache takes), against the tokenizer's ids.
    model = embedder._load()
    assert embedder._word_ids is not None  # the shipped tokenizer cuts at spaces
    tricky = ["<s> refund", "a</s>b c", "two  spaces", " leading", "trailing ", "tab\there x",
              "line\nbreak and more", "\u2581marked word", "返金 😀 café ok", "x", "", " ",
              "1-800-555-0142 call", "don't won't", "e-SIM/eSIM", "ÉCLAIR Ünïcödé"]
    texts = tricky + _texts_of_the_sample_and_the_benchmark()
    checked = 0
    for text in texts:
        for form in (text, " ".join(text.split())):
            expected = model.tokenizer.encode(form, add_special_tokens=False).ids
            assert embedder._ids(model, form) == expected, form[:80]
            assert embedder._ids(model, form) == expected, form[:80]  # from the cache too
            checked += 1
    assert checked > 100 and len(embedder._word_ids) > 1000


def test_words_are_kept_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.kb.embedders import local

    monkeypatch.setattr(local, "_WORDS_KEPT", 5)
    small = WordLlamaEmbedder()
    model = small._load()
    text = "one two three four five six seven eight nine ten"
    assert small._ids(model, text) == model.tokenizer.encode(
        text, add_special_tokens=False).ids
    assert small._word_ids is not None and 0 < len(small._word_ids) <= 5


_LLAMA = {"normalizer": {"type": "Sequence", "normalizers": [
    {"type": "Prepend", "prepend": "\u2581"},
    {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "pre_tokenizer": None,
    "model": {"type": "BPE", "dropout": None,
              "vocab": {"\u2581a": 0, "b": 1, "\u2581\u2581": 2}}}


def _changed(**parts: Any) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(json.dumps(_LLAMA))
    for key, value in parts.items():
        if key == "vocab":
            spec["model"]["vocab"] = value
        elif key == "dropout":
            spec["model"]["dropout"] = value
        else:
            spec[key] = value
    return spec


def test_words_are_tokenized_alone_only_where_no_merge_crosses_a_space() -> None:
    from server.kb.embedders.local import _splits_at_spaces

    assert _splits_at_spaces(_LLAMA)
    # A token that would join two words, a pre-tokenizer, another normalizer, dropout:
    # each sends every text to the tokenizer whole.
    assert not _splits_at_spaces(_changed(vocab={"\u2581a": 0, "a\u2581b": 1}))
    assert not _splits_at_spaces(_changed(pre_tokenizer={"type": "Whitespace"}))
    assert not _splits_at_spaces(_changed(normalizer={"type": "NFKC"}))
    assert not _splits_at_spaces(_changed(dropout=0.1))
    assert not _splits_at_spaces({})
