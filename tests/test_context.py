from __future__ import annotations

from server.context import Utterance, build_context

C, A = "customer", "agent"


def _u(*pairs: tuple[str, str]) -> tuple[Utterance, ...]:
    return tuple(Utterance(s, t) for s, t in pairs)  # type: ignore[arg-type]


def test_window_keeps_last_n_and_query_is_last_customer_utterance() -> None:
    utterances = _u(*[(C if i % 2 == 0 else A, f"line {i}") for i in range(10)])
    ctx = build_context(utterances, trigger="utterance", query=None, max_utterances=6,
                        max_chars=2000)
    assert [u.text for u in ctx.utterances] == [f"line {i}" for i in range(4, 10)]
    assert ctx.query == "line 8"
    assert ctx.search_text == "line 8 line 6"


def test_size_cap_drops_oldest_first_and_cuts_a_single_long_utterance() -> None:
    utterances = _u((C, "a" * 50), (A, "b" * 50), (C, "c" * 50))
    ctx = build_context(utterances, trigger="utterance", query=None, max_utterances=6,
                        max_chars=120)
    assert [u.text[0] for u in ctx.utterances] == ["b", "c"]
    long = build_context(_u((C, "x" * 90 + " end")), trigger="utterance", query=None,
                         max_utterances=6, max_chars=20)
    assert long.query.endswith(" end") and len(long.query) <= 20


def test_manual_query_is_the_agents_question_alone() -> None:
    ctx = build_context(_u((C, "my phone is broken")), trigger="manual",
                        query="  restocking   fee? ", max_utterances=6, max_chars=2000)
    assert ctx.query == ctx.search_text == "restocking fee?"
    assert ctx.utterances == _u((C, "my phone is broken"))


def test_whitespace_is_normalised_and_empty_utterances_dropped() -> None:
    ctx = build_context(_u((C, " hi \n there "), (A, "   ")), trigger="utterance", query=None,
                        max_utterances=6, max_chars=2000)
    assert ctx.utterances == _u((C, "hi there"))
