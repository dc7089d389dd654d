from __future__ import annotations

from server.pipeline.context import Context, QueryPart, SearchQuery, Utterance, build_context

C, A = "customer", "agent"


def _u(*pairs: tuple[str, str]) -> tuple[Utterance, ...]:
    return tuple(Utterance(s, t) for s, t in pairs)  # type: ignore[arg-type]


def _ctx(*pairs: tuple[str, str], max_utterances: int = 10) -> Context:
    return build_context(_u(*pairs), trigger="utterance", query=None,
                         max_utterances=max_utterances, max_chars=2000)


def _weights(ctx: Context) -> dict[str, float]:
    return dict(ctx.search.terms)


def test_window_keeps_last_n_and_query_is_last_customer_utterance() -> None:
    utterances = _u(*[(C if i % 2 == 0 else A, f"line {i}") for i in range(10)])
    ctx = build_context(utterances, trigger="utterance", query=None, max_utterances=6,
                        max_chars=2000)
    assert [u.text for u in ctx.utterances] == [f"line {i}" for i in range(4, 10)]
    assert ctx.query == "line 8"
    assert ctx.search.parts[0] == QueryPart("line 8", 1.0)


def test_size_cap_drops_oldest_first_and_cuts_a_single_long_utterance() -> None:
    utterances = _u((C, "a" * 50), (A, "b" * 50), (C, "c" * 50))
    ctx = build_context(utterances, trigger="utterance", query=None, max_utterances=6,
                        max_chars=120)
    assert [u.text[0] for u in ctx.utterances] == ["b", "c"]
    long = build_context(_u((C, "x" * 90 + " end")), trigger="utterance", query=None,
                         max_utterances=6, max_chars=20)
    assert long.query.endswith(" end") and len(long.query) <= 20


def test_manual_query_is_the_agents_question() -> None:
    ctx = build_context(_u((C, "my phone is broken")), trigger="manual",
                        query="  restocking   fee? ", max_utterances=6, max_chars=2000)
    assert ctx.query == "restocking fee?"
    assert ctx.search.parts[0] == QueryPart("restocking fee?", 1.0)
    assert ctx.utterances == _u((C, "my phone is broken"))


def test_whitespace_is_normalised_and_empty_utterances_dropped() -> None:
    ctx = build_context(_u((C, " hi \n there "), (A, "   ")), trigger="utterance", query=None,
                        max_utterances=6, max_chars=2000)
    assert ctx.utterances == _u((C, "hi there"))


def test_the_newest_customer_turn_weighs_one_and_its_terms_come_first() -> None:
    ctx = _ctx((C, "I was charged a late fee on my bill"),
               (A, "I can see the late fee from March"),
               (C, "can you waive the restocking charge for my tablet"),
               (A, "let me look into the restocking policy"))
    assert ctx.query == "can you waive the restocking charge for my tablet"
    assert ctx.search.parts[0] == QueryPart(ctx.query, 1.0)
    assert ctx.search.words[:4] == ["waive", "restocking", "charge", "tablet"]
    weights = _weights(ctx)
    assert all(weights[t] == 1.0 for t in ["waive", "restocking", "charge", "tablet"])
    assert all(0 < weights[t] < 1.0 for t in ["late", "fee", "bill", "march", "policy"])
    assert ctx.search.small_talk is False


def test_terms_are_heaviest_first_with_the_weight_of_their_heaviest_turn() -> None:
    ctx = _ctx((C, "my eSIM will not activate"), (A, "the eSIM download failed"),
               (C, "what about a physical SIM card"))
    weights = [w for _, w in ctx.search.terms]
    assert weights == sorted(weights, reverse=True)
    # "esim" is in two earlier turns: it keeps the heavier weight, the agent's nearer one.
    assert _weights(ctx)["esim"] == _weights(ctx)["download"]
    assert len(ctx.search.words) == len(set(ctx.search.words))


def test_earlier_customer_turns_weigh_less_the_further_back_they_are() -> None:
    ctx = _ctx((C, "refund card"), (C, "late fee bill"), (C, "esim download"),
               (C, "roaming charges abroad"))
    weights = _weights(ctx)
    assert weights["roaming"] == 1.0
    assert 1.0 > weights["esim"] > weights["late"] > weights["refund"] > 0


def test_agent_turns_count_less_the_further_back_they_are() -> None:
    ctx = _ctx((A, "your autopay discount ended"), (C, "hmm, my bill went up"),
               (A, "I see an international roaming charge"),
               (C, "why is my monthly payment higher this month"))
    weights = _weights(ctx)
    assert weights["payment"] == 1.0
    assert 1.0 > weights["roaming"] > weights["autopay"] > 0


def test_the_agents_words_after_the_customers_last_turn_count_too() -> None:
    ctx = _ctx((C, "my package says delivered but it never came"),
               (A, "the tracking shows it was left at the front desk"))
    assert ctx.query == "my package says delivered but it never came"
    weights = _weights(ctx)
    assert weights["package"] == 1.0
    assert 0 < weights["tracking"] < 1.0


def test_turns_far_back_add_nothing() -> None:
    ctx = _ctx((C, "hotspot throttling"), (A, "one"), (C, "two"), (A, "three"), (C, "four"),
               (A, "five"), (C, "six seven"))
    assert "hotspot" not in ctx.search.words
    assert "hotspot throttling" not in [p.text for p in ctx.search.parts]


def test_a_vague_newest_turn_still_searches_the_earlier_turns() -> None:
    history = ((C, "my new phone's eSIM will not activate"),
               (A, "I can see the eSIM download failed three times"))
    vague = _ctx(*history, (C, "Yeah, so what now?"))
    assert vague.query == "Yeah, so what now?"
    assert vague.search.small_talk is False
    assert {"esim", "download", "failed", "activate"} <= set(vague.search.words)
    assert all(0 < w < 1.0 for w in _weights(vague).values())
    # It leans on them more than a newest turn that says what it is about.
    specific = _ctx(*history, (C, "can I get a physical SIM card mailed instead"))
    assert _weights(vague)["download"] > _weights(specific)["download"]


def test_small_talk_as_the_newest_customer_turn_is_marked() -> None:
    for text in ["okay, thanks", "can you hear me?", "hold on a sec",
                 "perfect, thank you so much"]:
        ctx = _ctx((C, "my phone was stolen"), (A, "I have suspended your line"), (C, text))
        assert ctx.query == text
        assert ctx.search.small_talk is True, text
        # Nothing from the earlier turns is searched for either.
        assert [p.text for p in ctx.search.parts] == [text]
        assert "stolen" not in ctx.search.words


def test_small_talk_earlier_turns_add_nothing() -> None:
    ctx = _ctx((C, "my bill has a late fee"), (A, "perfect, thank you so much"),
               (C, "hold on a sec"), (C, "can you waive it"))
    texts = [p.text for p in ctx.search.parts]
    assert "perfect, thank you so much" not in texts
    assert "hold on a sec" not in texts
    assert "much" not in ctx.search.words
    assert "late" in ctx.search.words


def test_without_a_customer_turn_nothing_is_searched() -> None:
    ctx = _ctx((A, "thanks for calling Brightwave, how can I help"))
    assert ctx.query == ""
    assert ctx.search.parts == ()
    assert ctx.search.terms == ()
    assert ctx.search.small_talk is True


def test_manual_question_weighs_one_and_the_conversation_far_less() -> None:
    ctx = build_context(
        _u((C, "I returned my tablet last week"), (A, "I see the return was received"),
           (C, "so when do I get my money back")),
        trigger="manual", query="restocking fee for an opened tablet",
        max_utterances=6, max_chars=2000)
    assert ctx.query == "restocking fee for an opened tablet"
    weights = _weights(ctx)
    assert ctx.search.words[:4] == ["restocking", "fee", "opened", "tablet"]
    assert all(weights[t] == 1.0 for t in ["restocking", "fee", "opened", "tablet"])
    conversation = {t: w for t, w in weights.items()
                    if t not in {"restocking", "fee", "opened", "tablet"}}
    assert {"returned", "money", "received"} <= conversation.keys()
    assert all(0 < w <= 0.2 for w in conversation.values())
    assert ctx.search.small_talk is False


def test_manual_question_of_small_talk_words_is_still_searched() -> None:
    # The agent asked for it: a typed question is never treated as small talk.
    ctx = build_context(_u((C, "okay thanks")), trigger="manual", query="hold on",
                        max_utterances=6, max_chars=2000)
    assert ctx.search.small_talk is False


def test_manual_trigger_without_a_question_works_from_the_conversation() -> None:
    pairs = ((C, "my phone was stolen"), (A, "I am sorry to hear that"))
    manual = build_context(_u(*pairs), trigger="manual", query="   ", max_utterances=6,
                           max_chars=2000)
    assert manual.query == "my phone was stolen"
    assert manual.search == _ctx(*pairs).search


def test_search_query_of_a_text_is_one_part_of_weight_one() -> None:
    search = SearchQuery.of("  How much is the\n restocking fee for a phone? ")
    assert search.parts == (QueryPart("How much is the restocking fee for a phone?", 1.0),)
    assert search.words == ["much", "restocking", "fee", "phone"]
    assert all(w == 1.0 for _, w in search.terms)
    assert search.small_talk is False


def test_search_query_of_filler_has_no_terms() -> None:
    search = SearchQuery.of("okay thanks")
    assert search.terms == ()
    assert search.words == []


# -- where a turn's meaning lives (server/pipeline/turns.py) --------------------------------


def test_yes_to_the_agents_question_is_searched_by_the_question() -> None:
    # Regression: "yes" was small talk, so nothing was suggested for it, though the
    # agent had just named the topic.
    ctx = _ctx((C, "hi, my phone is a mess right now"),
               (A, "Are you asking about getting it unlocked so you can use another carrier?"),
               (C, "yes"))
    assert not ctx.search.small_talk
    assert ctx.query == ("Are you asking about getting it unlocked so you can use another "
                         "carrier?")
    weights = _weights(ctx)
    assert weights["unlocked"] == 1.0 and weights["carrier"] == 1.0
    assert weights["phone"] < 1.0  # the earlier turn still counts, less


def test_the_second_one_searches_the_second_option_alone() -> None:
    # Regression: the first option (named first, in the agent's turn) won.
    ctx = _ctx((C, "my new phone came today"),
               (A, "Great! Do you want me to walk you through activating it with eSIM, or "
                   "moving your photos and contacts over from the old phone?"),
               (C, "the second one"))
    weights = _weights(ctx)
    assert weights["photos"] == 1.0 and weights["contacts"] == 1.0
    assert "esim" not in weights and "activating" not in weights


def test_a_new_subject_leans_on_the_turns_before_it_only_faintly() -> None:
    # Regression: the old topic's words (from the agent's reply too) outweighed the new
    # question, and its article came first. They stay, faintly: "also, will my phone
    # work there?" may still mean the trip named before.
    ctx = _ctx((C, "my package says delivered but it is not here"),
               (A, "I've opened a claim for the missing package."),
               (C, "ok. different question, there's a ten dollar late fee on my bill, can "
                   "that be waived?"))
    weights = _weights(ctx)
    assert weights["package"] <= 0.2 and weights["claim"] <= 0.2
    assert weights["fee"] == 1.0
    same = _ctx((C, "my phone keeps overheating when I charge it"), (A, "Let me check."),
                (C, "it also shuts down randomly at night"))
    assert _weights(same)["overheating"] > 0.2  # "also" inside a turn changes nothing


def test_yes_with_words_of_its_own_is_searched_by_them_and_the_question() -> None:
    # Regression: "yes, roaming" became the agent's question alone (and nothing was
    # confident enough); "Yes please. Do I need to cancel with them first?" needs the
    # question it says yes to as much as its own words.
    roaming = _ctx((A, "Is there anything else I can help you with on your account today?"),
                   (C, "yes, roaming"))
    assert roaming.query == "yes, roaming" and _weights(roaming)["roaming"] == 1.0
    switching = _ctx((C, "I'm switching from MetroCell over to you guys."),
                     (A, "Welcome! Are you keeping your current number?"),
                     (C, "Yes please. Do I need to cancel with them first?"))
    weights = _weights(switching)
    assert weights["cancel"] == 1.0 and weights["number"] == 1.0
    assert weights["metrocell"] < 1.0


def test_redaction_placeholders_are_never_searched() -> None:
    # Regression: "[phone]" was searched as the word "phone" and found the phone articles.
    ctx = _ctx((A, "What's the best callback number for you?"), (C, "yeah it's [phone]"))
    assert ctx.search.small_talk
    asked = _ctx((C, "my email is [email] and I never get the code to reset my password"))
    assert not asked.search.small_talk
    assert "email" in _weights(asked)  # the customer's own word stays
    assert all("[" not in p.text for p in asked.search.parts)
    manual = build_context((), trigger="manual", query="refund to [card]?", max_utterances=6,
                           max_chars=2000)
    assert "card" not in _weights(manual) and manual.query == "refund to [card]?"
