"""PII redaction: card numbers, US SSNs, emails and phone numbers in transcript text.

Why: what a customer says is sent to a language model and can end up in logs;
neither needs the customer's card number. ``redact`` is for transcript text on its
way to either, and errs on the side of redacting.

How: emails are one regex. Numbers are found in two steps: one regex cuts the text
into *runs* (digit groups joined by a single space, dash or dot, with an optional
leading ``+`` and ``(area)`` groups), then plain Python looks at windows of at most
19 digits inside each run. Every repetition in the patterns is either bounded or
unambiguous, so nothing backtracks more than a constant amount per character and
the work is linear in the text, adversarial input included. Card numbers must pass
the Luhn check and start like a card network's number; SSNs follow the SSA's rules.
Measured false positives and negatives, and the known limits: docs/privacy.md.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

Kind = Literal["card", "ssn", "email", "phone"]
KINDS: tuple[Kind, ...] = ("card", "ssn", "email", "phone")


@dataclass(frozen=True)
class Match:
    kind: Kind
    start: int
    end: int


_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+@\]-])[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}"
    r"(?![A-Za-z0-9_%+@\[-])"
)
_FILE_EXTENSIONS = set("png jpg jpeg gif svg webp pdf txt csv log json".split())
_IBAN_COUNTRIES = set(
    "AD AE AL AT AZ BA BE BG BH BR BY CH CR CY CZ DE DK DO EE EG ES FI FO FR GB GE GI GL "
    "GR GT HR HU IE IL IQ IS IT JO KW KZ LB LC LI LT LU LV MC MD ME MK MR MT MU NL NO PK "
    "PL PS PT QA RO RS SA SC SE SI SK SM ST SV TL TN TR UA VA VG XK".split()
)
# Shape only: the digits of an IBAN are a bank account, not a card or a phone.
_IBAN = re.compile(r"\b([A-Z]{2})\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
# A run: groups of ASCII digits, each after one separator, or "(123)" groups; "+" first.
_RUN = re.compile(
    r"(?:\+ ?)?(?:\(\d{1,4}\)|\d+)(?:[ .\-]?\(\d{1,4}\)|(?:[ .\-]|(?<=\)))\d+)*", re.ASCII
)
_ATOM = re.compile(r"\+|\(\d+\)|\d+|[ .\-]", re.ASCII)
_DIGIT = re.compile(r"\d")  # any script's digits, as _IBAN's \d
_WORD = re.compile(r"\[[a-z]+\]|([A-Za-z]+)")  # placeholders are not words

# The closest of these words in the few before a number decides what it is.
_ID_LABELS = set(
    "order orders ticket case invoice account acct tracking confirmation code reference ref "
    "booking reservation transaction serial model part sku po claim policy member membership "
    "loyalty rewards receipt incident rma pnr id customer imei meid iccid routing".split()
)
_PHONE_CUES = set(
    "phone cell mobile call text reach fax tel telephone contact callback landline sms".split()
)
_DEVICE_LABELS = {"imei", "meid", "iccid", "esn"}
_CARD_CUES = set("card visa mastercard amex discover credit debit cc".split())
_SSN_CUES = {"ssn", "ss", "social", "security"}
_CARD_WORDS = _DEVICE_LABELS | _CARD_CUES
_PHONE_WORDS = _ID_LABELS | _PHONE_CUES
_CURRENCY = "$€£¥₹"
_LUHN_DOUBLE = bytes.maketrans(b"0123456789", b"0246813579")
_PRIORITY: dict[Kind, int] = {"email": 1, "card": 2, "ssn": 3, "phone": 4}


@dataclass(frozen=True)
class _Group:
    digits: str
    start: int
    end: int
    sep: str  # what joins it to the group before: " ", "-", "." or "" (next to a paren)
    paren: bool
    plus: bool


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check of a string of digits."""
    rev = digits[::-1].encode()
    doubled = rev[1::2].translate(_LUHN_DOUBLE)  # each digit doubled, its digits summed
    return (sum(rev[0::2]) + sum(doubled) - 48 * len(rev)) % 10 == 0


def _card_ok(digits: str) -> bool:
    # Issuer prefixes of the networks agents see: 2221-2720 (and Mir 2200-2204)
    # Mastercard, 3 Amex/Diners/JCB, 4 Visa, 5 Mastercard/Maestro, 6 Discover/UnionPay.
    network = digits[0] in "3456" or 2200 <= int(digits[:4]) <= 2720
    return 13 <= len(digits) <= 19 and network and luhn_ok(digits)


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """SSA rules: no area 000, 666 or 900-999, no group 00, no serial 0000."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _nanp_ok(area: str, exchange: str) -> bool:
    return all(p[0] in "23456789" and p[1:] != "11" for p in (area, exchange))


class _Words:
    """The words of a text, to find the nearest of a few before a number.

    Neither placeholders nor emails are words: what redacting removes does not
    count, so that redacting twice changes nothing.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.ends: list[int] = []
        self.words: list[str] = []
        self._read = False

    def closest(self, pos: int, vocab: set[str]) -> str | None:
        """The nearest of the five words before ``pos`` that is in ``vocab``."""
        if not self._read:  # read at the first number that needs it, most texts never
            text = _EMAIL.sub(lambda m: " " * len(m[0]), self.text)
            found = [(m.end(), m[1].lower()) for m in _WORD.finditer(text) if m[1]]
            self.ends = [end for end, _ in found]
            self.words = [word for _, word in found]
            self._read = True
        k = bisect.bisect_right(self.ends, pos)
        return next((w for w in reversed(self.words[max(0, k - 5) : k]) if w in vocab), None)


def _free(text: str, start: int, end: int) -> tuple[bool, bool]:
    """Whether the run ``text[start:end]`` stands free of a word or code on each side.

    Glued: a letter or digit next to it, or "-", "." or "=" then one ("v2.1",
    "SKU-1"); but "x12" after it is an extension. A placeholder's bracket counts
    as what it replaced, so that redacting twice changes nothing.
    """

    def glued(c: str, beyond: str, bracket: str) -> bool:
        word = c.isalnum() or c in ("_", bracket)
        return word or (c in "-.=" and (beyond.isalnum() or beyond in ("_", bracket)))

    before, after = text[max(0, start - 2) : start].rjust(2), text[end : end + 2].ljust(2)
    left = not (glued(before[1], before[0], "]") or before[1] in _CURRENCY)
    extension = after[0] in "xX" and after[1].isdigit()  # "415-555-0132x12"
    return left, extension or not (glued(after[0], after[1], "[") or after[0] == "%")


def _groups(text: str, start: int, end: int) -> list[_Group]:
    groups: list[_Group] = []
    sep, plus = "", -1
    for a in _ATOM.finditer(text, start, end):
        tok = a.group()
        if tok == "+":
            plus = a.start()
        elif tok in " .-":
            sep = tok
        else:
            begin = plus if plus >= 0 else a.start()
            groups.append(_Group(tok.strip("()"), begin, a.end(), sep, tok[0] == "(", plus >= 0))
            sep, plus = "", -1
    return groups


def _nanp_end(g: list[_Group], i: int) -> int | None:
    """Index of the last group of a North American number starting at ``g[i]``."""
    first, k, d = g[i], i, g[i].digits
    if d == "1" and not first.paren and k + 1 < len(g) and (g[k + 1].sep or g[k + 1].paren):
        k += 1  # "1-800-...", "+1 415 ...", "+1(415)..."
    elif first.plus:
        ok = len(d) == 11 and d[0] == "1" and _nanp_ok(d[1:4], d[4:7])
        return i if ok else None  # "+14155550132"
    elif not first.paren and (len(d) == 10 or (len(d) == 11 and d[0] == "1")):
        return i if _nanp_ok(d[-10:-7], d[-7:-4]) else None  # "4155550132"
    if k + 2 >= len(g):
        return None
    area, exch, line = g[k], g[k + 1], g[k + 2]
    shape = (len(area.digits), len(exch.digits), len(line.digits)) == (3, 3, 4)
    joined = bool(exch.sep or area.paren) and bool(line.sep) and not (exch.paren or line.paren)
    return k + 2 if shape and joined and _nanp_ok(area.digits, exch.digits) else None


def _ssn_end(g: list[_Group], i: int, words: _Words) -> int | None:
    """"123-45-6789", "123 45 6789", or nine digits after "SSN" or "social security"."""
    three = g[i : i + 3]
    if any(x.paren or x.plus for x in three):
        return None
    if [len(x.digits) for x in three] == [3, 2, 4] and three[1].sep in (" ", "-"):
        ok = three[2].sep == three[1].sep and ssn_ok(*(x.digits for x in three))
        return i + 2 if ok else None
    d = g[i].digits
    if len(d) == 9 and ssn_ok(d[:3], d[3:5], d[5:]) and words.closest(g[i].start, _SSN_CUES):
        return i
    return None


def _card_ends(g: list[_Group], i: int, ends: Callable[[int], bool]) -> Iterator[int]:
    """Last groups of the card numbers starting at ``g[i]``: 13-19 digits, one separator."""
    digits = ""
    if g[i].digits[0] not in "23456":
        return
    for j in range(i, len(g)):
        if g[j].paren or (g[j].plus and j > i):
            return
        if j > i and (g[j].sep not in (" ", "-") or g[j].sep != g[i + 1].sep):
            return
        digits += g[j].digits
        if len(digits) > 19:
            return
        if ends(j) and _card_ok(digits):
            yield j


def _scan_run(text: str, start: int, end: int, words: _Words) -> Iterator[Match]:
    """Every candidate in one run; they may overlap (``find_pii`` keeps the longest)."""
    g = _groups(text, start, end)
    n, (left, right) = len(g), _free(text, start, end)

    def starts(i: int) -> bool:
        return left if i == 0 else g[i].sep == " "

    def ends(j: int) -> bool:
        return right if j == n - 1 else g[j + 1].sep == " "

    if left and g[0].plus and g[0].digits[0] not in "01":  # international: "+44 20 ..."
        total = 0
        for j in range(n):
            total += len(g[j].digits)
            if total > 15:
                break
            if total >= 8 and ends(j):
                yield Match("phone", g[0].start, g[j].end)
    for i in range(n):
        if not starts(i):
            continue
        gi = g[i]
        cards = [] if gi.paren else list(_card_ends(g, i, ends))
        if cards and words.closest(gi.start, _CARD_WORDS) not in _DEVICE_LABELS:
            yield from (Match("card", gi.start, g[j].end) for j in cards)
        last = _ssn_end(g, i, words)
        if last is not None and ends(last):
            yield Match("ssn", gi.start, g[last].end)
        last = _nanp_end(g, i)
        if last is None or not ends(last):
            continue
        bare = last == i and not gi.plus
        if bare and words.closest(gi.start, _PHONE_WORDS) in _ID_LABELS:
            continue  # "order 4155550132"
        yield Match("phone", gi.start, g[last].end)


def find_pii(text: str) -> list[Match]:
    """The PII in ``text``: non-overlapping, in order.

    Where candidates overlap, an email wins over a card, a card over an SSN, an
    SSN over a phone, then the earlier, then the longer; digits inside an IBAN
    are none of them.
    """
    # Every kind holds a digit but an email, which holds an "@": most utterances have
    # neither, and are done here.
    if "@" not in text and not _DIGIT.search(text):
        return []
    found: list[tuple[int, int, int, Kind | None]] = []  # priority, start, end, kind
    for m in _IBAN.finditer(text):
        if m.group(1) in _IBAN_COUNTRIES:
            found.append((0, m.start(), m.end(), None))
    for m in _EMAIL.finditer(text):
        if m[0].rsplit(".", 1)[1].lower() not in _FILE_EXTENSIONS:  # not "logo@2x.png"
            found.append((1, m.start(), m.end(), "email"))
    words = _Words(text)
    for run in _RUN.finditer(text):
        for c in _scan_run(text, run.start(), run.end(), words):
            found.append((_PRIORITY[c.kind], c.start, c.end, c.kind))
    claimed = bytearray(len(text))
    kept: list[Match] = []
    for _, s, e, kind in sorted(found, key=lambda c: (c[0], c[1], -c[2])):
        if claimed.find(1, s, e) < 0:
            claimed[s:e] = b"\1" * (e - s)
            if kind is not None:
                kept.append(Match(kind, s, e))
    return sorted(kept, key=lambda m: m.start)


def redact(text: str) -> str:
    """``text`` with its PII replaced by ``[card]``, ``[ssn]``, ``[email]``, ``[phone]``."""
    parts: list[str] = []
    pos = 0
    for m in find_pii(text):
        parts += [text[pos : m.start], f"[{m.kind}]"]
        pos = m.end
    parts.append(text[pos:])
    return "".join(parts)



