"""Words: which words of a text carry its topic, and their stems.

Shared by the query builder (what to search), the store (what FTS5 matches) and the
extractive generator (which sentences answer). The stemmer is Snowball's Porter, the
algorithm FTS5's ``porter`` tokenizer uses, so a stem here is a term there.
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

# Words that carry no topic: dropped from queries so ranking works on content words.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been
    before being below between both but by can could did do does doing down during
    each few for from further had has have having he her here hers herself him
    himself his how i if in into is it its itself just me more most my myself no nor
    not now of off on once only or other our ours ourselves out over own same she
    should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves hi
    hello hey yes yeah okay ok please thanks thank um uh like just get got im ive
    dont cant wont""".split()
)

# What people say on a call around the point: dropped too (agents and customers both).
FILLER = frozenset(
    """well right sure alright actually basically really kind sort gonna wanna gotta
    guess mean know think thought said say saying tell told want wanted need needed
    trying try tried help thing things stuff something anything everything someone
    somebody anyone anybody also even still maybe probably let lets see look looking
    oh ah hmm mm mhm yep yup nope hold sec okay ok yeah
    hear there now going go went come came make made way lot bit little today guys
    im youre thats theres whats ill ive id weve theyre isnt doesnt didnt wasnt
    arent havent hasnt couldnt wouldnt shouldnt ma am sir madam thank thanks
    appreciate great perfect awesome cool fine good nice wonderful"""
    .split()
)

# Words of pure small talk ("okay, thanks", "can you hear me?", "hold on a sec").
SMALL_TALK = frozenset(
    """ok okay alright right sure yes yeah yep yup no nope thanks thank you so much very
    perfect great cool awesome fine good got it hold on a an sec second moment minute one
    can hear me now are still there hello hi hey bye goodbye have nice day wonderful
    appreciate that thats is correct sounds mm mhm hmm uh um ah oh wait just please
    let check for your help that's i im i'm understand see all set done that'll do
    will be lovely brilliant much again too kind sorry pardon what repeat say could
    you again speak up loud louder line bad connection""".split()
)
# A turn with one of these asks something, even without a content word ("so what now?").
QUESTION_WORDS = frozenset("what how why when where which who whats hows".split())

_REPEAT = frozenset("what sorry pardon say that again repeat come could can you".split())
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
_stemmer = Stemmer.Stemmer("porter")


def words(text: str) -> list[str]:
    """The words of ``text``, lowercased, apostrophes dropped ("don't" -> "dont")."""
    return [w.replace("'", "") for w in _WORD.findall(text.lower())]


def query_terms(text: str) -> list[str]:
    """The distinct content words of ``text``, lowercased, in order of appearance."""
    seen: dict[str, None] = {}
    for word in words(text):
        if word not in STOPWORDS and word not in FILLER and (len(word) > 1 or word.isdigit()):
            seen.setdefault(word, None)
    return list(seen)


@lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """The Porter stem of a lowercased word, as FTS5's porter tokenizer makes it: a
    word under 3 characters or over 64 is its own stem ("us" stays "us", where
    Snowball makes "u", and would miss the index's term)."""
    if len(word) < 3 or len(word) > 64:
        return word
    return str(_stemmer.stemWord(word))


def stems(text: str) -> set[str]:
    """The stems of every word of ``text`` (stopwords included: callers intersect)."""
    return {stem(w) for w in words(text)}


def is_small_talk(text: str) -> bool:
    """True for a turn that is only courtesy, acknowledgement or line checks."""
    tokens = words(text)
    if not tokens:
        return True
    if any(t in QUESTION_WORDS for t in tokens):
        # "what?" / "sorry, say that again?" asks for a repeat, not the knowledge base;
        # "so what now?" asks what to do.
        return all(t in _REPEAT for t in tokens)
    return all(t in SMALL_TALK for t in tokens)
