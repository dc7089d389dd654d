"""What one turn of a conversation says about where its meaning lives.

Customers answer agents: "yes", "the second one", "sure, it's [phone]". Such a turn
has no topic of its own: the agent's question before it has it ("Is this the order
that shows delivered but never came?"), or nothing has (a detail read out to
verify an account). And customers change the subject ("one more thing, how do I
set up autopay?"): the turns before such a turn are about something else.

Read by the context builder (``server/pipeline/context.py``).
"""

from __future__ import annotations

import re

from server.pipeline.redaction import KINDS
from server.pipeline.terms import SMALL_TALK, query_terms, words

# The redactor's placeholders: what stood there (a number, an address) is no topic,
# and "[phone]" searched as the word "phone" finds the phone articles.
PLACEHOLDER = re.compile(r"\[(?:" + "|".join(KINDS) + r")\]")

# Words around a detail read out ("yeah it's [phone]", "my email is [email]").
_DETAIL_WORDS = frozenset(
    """its it is my the and number email address card phone account zip code on file
    ends ending in with at dot""".split()
)
# A number read out word by word ("nine oh two one oh"), which the redactor leaves.
_NUMBER_WORDS = frozenset(
    "zero oh o one two three four five six seven eight nine ten double triple".split()
)
_SPOKEN_DIGITS = 3

# "yes" and its kin, at the start of a turn; "right", "sure" and "please" only alone
# or before a pause ("right now it won't turn on" says no yes).
_AFFIRM = re.compile(
    r"^\W*(?:(?:yes|yeah|yep|yup|yea|correct|exactly|uh[- ]huh|mhm|"
    r"that'?s (?:right|correct|it|the one))\b|(?:right|sure|please)(?=\W*$|\s*[,.!;]))",
    re.IGNORECASE)
# "the second one", "first", "the last one".
_ORDINAL = re.compile(r"\b(first|second|third|last)\b(?:\s+one)?", re.IGNORECASE)
_ORDINALS = {"first": 0, "second": 1, "third": 2, "last": -1}
# A question answered by yes or no starts with its verb.
_YES_NO = re.compile(
    r"^\W*(?:is|are|do|does|did|would|should|can|could|was|were|have|has|will|shall|"
    r"may|want)\b", re.IGNORECASE)
# Where the options of an either/or question part ("..., or would you rather ...").
_OR = re.compile(
    r",?\s+or\s+(?:would you (?:rather|like to|prefer to)\s+|do you want (?:me )?to\s+|"
    r"rather\s+)?", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# A turn that takes up another subject, said where a sentence or clause starts ("ok
# great. different question, ..."): what came before it is about something else. Not
# "it also shuts down", which goes on with the same subject.
_SHIFT = re.compile(
    r"(?:^|[.!?,;]\s*)(?:(?:a )?different (?:question|thing|issue)|"
    r"another (?:thing|question|issue)|one more (?:thing|question)|while i have you|"
    r"separate (?:thing|question|issue)|"
    r"unrelated|by the way|on another note|oh and|also)\b", re.IGNORECASE)
# Content words a turn needs for a change of subject to stand on its own.
_SHIFT_TERMS = 3
# What the customer says they do not mean: a denial, not a symptom ("it won't charge").
_DENIAL = re.compile(
    r"\b(?:(?:do not|don'?t|not|never|wasn'?t|am not|i'?m not) (?:want|wanting|need|trying|"
    r"asking|calling|looking|mean|talking)|(?:it'?s|is|was) not (?:that|about)|"
    r"isn'?t (?:that|about)|no,? not|didn'?t (?:lose|want|ask|mean))\b", re.IGNORECASE)
# Where a turn's clauses part.
_CLAUSE = re.compile(r"[,;.!?]+\s*|\s+(?:but|instead|rather)\s+", re.IGNORECASE)
# Content words the rest of a turn needs for a denial before it to be left out.
_DENIAL_REST = 2


def without_denials(text: str) -> str:
    """``text`` without the clauses that say what the customer does not mean ("I don't
    want to cancel the order, I just need to change the address"): "not" is a
    stopword, so such a clause would be searched as what it denies. Kept whole when
    no later clause says enough to search on its own."""
    clauses = [c for c in _CLAUSE.split(text) if c and c.strip(" ,;")]
    kept = list(clauses)
    for index, clause in enumerate(clauses[:-1]):
        later = " ".join(clauses[index + 1:])
        if _DENIAL.search(clause) and len(query_terms(later)) >= _DENIAL_REST:
            kept.remove(clause)
    return " ".join(c.strip(" ,;") for c in kept) if len(kept) < len(clauses) else text


def without_placeholders(text: str) -> str:
    """``text`` without the redactor's placeholders, its spaces made single."""
    return " ".join(PLACEHOLDER.sub(" ", text).split())


def reads_out_details(text: str) -> bool:
    """True for a turn that is a detail read out and courtesy alone: "sure, it's
    [email]", "nine oh two one oh". Nothing in the knowledge base answers it."""
    tokens = words(PLACEHOLDER.sub(" ", text))
    spoken = sum(1 for t in tokens if t in _NUMBER_WORDS or t.isdigit())
    if not PLACEHOLDER.search(text) and spoken < _SPOKEN_DIGITS:
        return False
    return all(t in SMALL_TALK or t in _DETAIL_WORDS or t in _NUMBER_WORDS or t.isdigit()
               for t in tokens)


def answered_question(question: str, answer: str) -> str | None:
    """What ``answer`` means when it answers the agent's ``question``, or None.

    "the second one" after "Do you want X, or Y?" means Y; "yes" after "Is this
    the order that shows delivered?" means the question itself. None when the
    answer has words of its own to search, or the question is not one of those two
    kinds (an open "what is the ZIP code?" is answered by a detail, not a topic).
    """
    # Only an answer with no word of its own to search: "yes, roaming" and "sure,
    # cancel it" are searched by their own words.
    own = _ORDINAL.sub(" ", _AFFIRM.sub(" ", answer, count=1))
    if query_terms(own) or PLACEHOLDER.search(answer):
        return None
    asked = _last_question(question)
    if asked is None or len(query_terms(asked)) < 2:
        return None
    options = [o.strip(" ,?") for o in _OR.split(asked) if o.strip(" ,?")]
    ordinal = _ORDINAL.search(answer)
    if ordinal is not None and len(options) >= 2:
        index = _ORDINALS[ordinal[1].lower()]
        if index < len(options) and len(query_terms(options[index])) >= 1:
            return options[index]
        return None
    if _AFFIRM.match(answer) and (_YES_NO.match(asked) or len(options) >= 2):
        return asked
    return None


def affirms(question: str, answer: str) -> bool:
    """True when ``answer`` starts by saying yes to the agent's yes/no or either/or
    ``question`` ("Yes please. Do I need to cancel with them first?" after "Are you
    keeping your current number?"): the question is then the answer's context, as
    much as its own words."""
    asked = _last_question(question)
    if asked is None or len(query_terms(asked)) < 2 or not _AFFIRM.match(answer):
        return False
    return bool(_YES_NO.match(asked)) or len(_OR.split(asked)) >= 2


def changes_topic(text: str) -> bool:
    """True for a turn that takes up another subject in words of its own ("one more
    thing, how do I set up autopay?")."""
    return _SHIFT.search(text) is not None and len(query_terms(text)) >= _SHIFT_TERMS


def _last_question(text: str) -> str | None:
    sentences = [s for s in _SENTENCE.split(text.strip()) if s]
    for sentence in reversed(sentences):
        if sentence.rstrip().endswith("?"):
            return sentence.strip()
    return None
