"""What a turn says about where its meaning lives (server/pipeline/turns.py)."""

from __future__ import annotations

import pytest

from server.pipeline.redaction import redact
from server.pipeline.turns import (
    affirms,
    answered_question,
    changes_topic,
    reads_out_details,
    without_denials,
    without_placeholders,
)

EITHER = ("Great! Do you want me to walk you through activating it with eSIM, or moving "
          "your photos and contacts over from the old phone?")


def test_an_ordinal_picks_the_option_of_an_either_or_question() -> None:
    assert answered_question(EITHER, "the first one please") == (
        "Do you want me to walk you through activating it with eSIM")
    assert answered_question(EITHER, "the second one") == (
        "moving your photos and contacts over from the old phone")
    rather = ("I can help with that. Would you like to set up AutoPay, or would you rather "
              "ask for a payment extension on this month's bill?")
    assert answered_question(rather, "the second one") == (
        "ask for a payment extension on this month's bill")
    # No third option: nothing is made up.
    assert answered_question(EITHER, "the third one") is None


def test_yes_to_a_yes_no_question_means_the_question() -> None:
    asked = "Okay. Is this the order that shows delivered on Monday but you never got it?"
    assert answered_question(asked, "yeah that's right") == (
        "Is this the order that shows delivered on Monday but you never got it?")
    assert answered_question("Is that the charge you want to dispute?", "correct") == (
        "Is that the charge you want to dispute?")


@pytest.mark.parametrize(("question", "answer"), [
    # An open question is answered by a detail, not a topic.
    ("What is the ZIP code on the account?", "yes"),
    # No question at all.
    ("I have reset that for you.", "yes"),
    # A question with too little to search.
    ("Is that it?", "yes"),
    # An answer with words of its own is searched by them.
    ("Is this about the order that never came?", "yes and also my screen cracked badly"),
    # A detail read out is not an answer to search.
    ("Is your number the one ending in 0199?", "yes it's [phone]"),
    # Regression: one word of its own was read as a plain yes.
    ("Is there anything else I can help you with on your account today?", "yes, roaming"),
    ("Do you want me to check the delivery status of the order?", "sure, cancel it"),
    ("Do you want me to check the delivery status of the order?", "please just cancel it"),
    ("Can you restart the phone for me now?", "right now it won't turn on"),
])
def test_answers_that_do_not_take_the_agents_question(question: str, answer: str) -> None:
    assert answered_question(question, answer) is None


def test_details_read_out_are_not_a_topic() -> None:
    assert reads_out_details(redact("yeah it's 415-555-0199"))
    assert reads_out_details(redact("sure, my email is maria.delgado@gmail.com"))
    assert reads_out_details("nine oh two one oh")
    # A detail beside a question is a question.
    assert not reads_out_details(redact(
        "my card is 4111 1111 1111 1111 and the autopay keeps failing with it"))
    assert not reads_out_details("my phone won't charge")
    assert not reads_out_details("two phones")  # numbers, but nothing read out


def test_a_change_of_subject_needs_a_marker_and_words_of_its_own() -> None:
    assert changes_topic("okay. also I wanted to ask about adding my son to my plan")
    assert changes_topic("one more thing, how do I set up autopay on my account?")
    assert not changes_topic("also, thanks")
    assert not changes_topic("my password for the app stopped working")
    # Regression: a marker inside a sentence goes on with the same subject.
    assert not changes_topic("it also shuts down randomly at night after charging")
    assert not changes_topic("I also can't log in to the app on my phone")


def test_yes_and_more_affirms_a_yes_no_question() -> None:
    asked = "Welcome! Are you keeping your current number?"
    assert affirms(asked, "Yes please. Do I need to cancel with them first?")
    assert not affirms(asked, "no, I want a new one")
    assert not affirms("What is your current number?", "yes it is")


def test_placeholders_are_taken_out() -> None:
    assert without_placeholders("call me at [phone] or  [email] please") == (
        "call me at or please")
    assert without_placeholders("[card]") == ""


@pytest.mark.parametrize(("said", "searched"), [
    ("I don't want to cancel the order, I just need to change where it's being delivered",
     "I just need to change where it's being delivered"),
    ("no not the home internet, my mobile phone itself has had no service",
     "my mobile phone itself has had no service"),
    ("I didn't lose my phone and nobody stole it, it just doesn't get any signal at home",
     "it just doesn't get any signal at home"),
])
def test_a_denial_before_the_request_is_not_searched(said: str, searched: str) -> None:
    # Regression: "not" is a stopword, so "I don't want to cancel the order" was a
    # search for cancelling the order.
    assert without_denials(said) == searched


@pytest.mark.parametrize("said", [
    "my phone won't charge, I tried another cable",  # a symptom, not a denial
    # Regression: what the customer did not do can be the very topic.
    "I didn't order this phone case, but I was charged for it on my bill",
    "it's not the first time my payment was declined, autopay keeps failing",
    "I don't want to pay the late fee",  # nothing after it: the denial is the topic
    "I don't want to cancel, ok?",  # too little after it to search alone
])
def test_what_is_not_a_denial_before_a_request_stays(said: str) -> None:
    assert without_denials(said) == said
