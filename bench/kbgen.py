"""Deterministic contact-center help articles and customer queries for benchmarks.

Articles are markdown files in the importer's format (front matter, then a ``#``
title heading, ``##`` sections, paragraphs and lists), one folder per category
like ``kb/sample``. Each mixes a main topic with, sometimes, a second one, so
the FTS index has shared, common and rare terms rather than 16 clones.
Everything comes from one ``random.Random(seed)``: the same seed gives the same
bytes.
"""

from __future__ import annotations

import functools
import random
import re
import string
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class _Topic:
    category: str
    subjects: tuple[str, ...]  # noun phrases ("store credit")
    actions: tuple[str, ...]  # imperative phrases ("request a refund")
    problems: tuple[str, ...]  # clauses ("your refund has not arrived")
    terms: tuple[str, ...]  # details used in bodies and specific queries


def _topic(category: str, subjects: str, actions: str, problems: str, terms: str) -> _Topic:
    def split(text: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in text.split("|"))

    return _Topic(category, split(subjects), split(actions), split(problems), split(terms))


_TOPICS = (
    _topic("refunds", "refund|store credit|partial refund|refund request|return label",
           "request a refund|check your refund status|cancel a refund request|swap a refund "
           "for store credit", "your refund has not arrived|a refund was denied|the refund "
           "amount looks wrong", "original payment method|restocking fee|receipt|bank "
           "statement|refund window|chargeback"),
    _topic("billing", "bill|invoice|late fee|proration|billing cycle|autopay discount",
           "read your bill|change your billing date|dispute a charge|download an invoice",
           "you were charged twice|your bill is higher than usual|a late fee appeared",
           "taxes and surcharges|due date|statement credit|itemized charges|account "
           "balance|paperless billing"),
    _topic("passwords", "password|PIN|security question|two-step verification|sign-in code",
           "reset your password|change your account PIN|turn on two-step verification|"
           "recover a locked account", "you cannot sign in|the verification code never "
           "arrives|your account is locked", "reset link|authenticator app|recovery "
           "email|login attempts|temporary password|identity check"),
    _topic("shipping", "shipment|tracking number|delivery|courier|package|signature",
           "track your order|change a delivery address|schedule a redelivery|pick up at a "
           "store", "your package is late|the tracking number does not work|a delivery "
           "was marked delivered but missing", "carrier|estimated delivery date|overnight "
           "shipping|depot|proof of delivery|customs"),
    _topic("sim-cards", "SIM card|eSIM|SIM tray|ICCID|PUK code|nano SIM",
           "activate an eSIM|replace a damaged SIM card|transfer your eSIM to a new phone|"
           "unlock a SIM with a PUK code", "your phone says no SIM|the eSIM QR code fails|"
           "the SIM card is blocked", "QR code|activation code|IMEI|carrier lock|SIM "
           "ejector|profile download"),
    _topic("devices", "phone|tablet|smartwatch|charger|screen|battery|software update",
           "set up a new phone|back up your phone|install a software update|factory reset "
           "a device", "your battery drains fast|the screen is cracked|the phone keeps "
           "restarting", "warranty|repair center|safe mode|storage space|Bluetooth|"
           "diagnostic test"),
    _topic("plans", "plan|data allowance|unlimited plan|prepaid plan|family plan|add-on",
           "change your plan|add a line|remove a line|compare plans", "your data is slow|"
           "you ran out of data|the plan change did not apply", "hotspot allowance|"
           "throttling|multi-line discount|contract|priority data|upgrade fee"),
    _topic("outages", "outage|signal|coverage|network|cell tower|dropped call",
           "check for an outage|report a coverage problem|improve indoor signal|reset "
           "network settings", "you have no signal|calls keep dropping|mobile data stopped "
           "working", "coverage map|maintenance window|signal booster|Wi-Fi Calling|"
           "airplane mode|service credit"),
    _topic("roaming", "roaming|international calling|travel pass|roaming charges",
           "turn on international roaming|buy a travel pass|call abroad|avoid roaming "
           "charges", "your phone does not work abroad|you got unexpected roaming charges"
           "|texts fail while travelling", "destination country|daily rate|partner "
           "network|cruise ship|in-flight|data roaming toggle"),
    _topic("payments", "payment|credit card|debit card|payment method|payment plan",
           "make a one-time payment|update your payment method|set up a payment plan|"
           "turn on autopay", "your payment was declined|a payment is pending|autopay "
           "did not run", "card expiry|billing address|bank transfer|payment "
           "confirmation|installments|processing time"),
    _topic("home-internet", "router|home internet|Wi-Fi network|modem|fiber|installation",
           "set up your router|change the Wi-Fi password|book an installation|move home "
           "internet to a new address", "the internet is slow|the router light is red|"
           "Wi-Fi keeps disconnecting", "ethernet cable|mesh extender|speed test|"
           "technician visit|5 GHz band|parental controls"),
    _topic("voicemail", "voicemail|greeting|visual voicemail|call forwarding|missed call",
           "set up voicemail|change your greeting|turn on call forwarding|reset the "
           "voicemail password", "voicemail is full|you cannot hear messages|calls skip "
           "voicemail", "mailbox|star code|transcription|voicemail PIN|busy "
           "signal|ring time"),
    _topic("number-transfer", "phone number|number transfer|port-out PIN|account number",
           "transfer your number to us|get a port-out PIN|keep your number when "
           "switching", "the number transfer is stuck|your old carrier rejected the port|"
           "the number transfer failed", "previous carrier|transfer PIN|porting window|"
           "account holder name|temporary number|port request"),
    _topic("privacy", "personal data|privacy settings|marketing emails|data request",
           "download your data|delete your personal data|opt out of marketing|update "
           "privacy settings", "you receive spam texts|someone used your account|you "
           "never agreed to marketing", "consent|data retention|identity theft|spam "
           "filter|call blocking|privacy notice"),
    _topic("trade-in", "trade-in|trade-in credit|device value|upgrade offer",
           "trade in your old phone|check your trade-in value|send a trade-in device",
           "the trade-in credit is missing|the trade-in value was reduced|the trade-in "
           "kit never came", "prepaid shipping kit|device condition|activation lock|"
           "bill credits|promo code|inspection"),
    _topic("insurance", "device protection|insurance claim|deductible|screen repair",
           "file an insurance claim|cancel device protection|book a screen repair",
           "your claim was denied|the replacement device is late|you lost your phone",
           "theft report|service fee|replacement device|accidental damage|claim "
           "number|authorized repair"),
)

_QUALIFIERS = ("iPhone", "Android phone", "Galaxy", "Pixel", "tablet", "prepaid line",
               "family plan", "business account", "smartwatch line", "second line")
_DAYS = ("2", "3", "5", "7", "10", "14", "15", "30")
_SECTIONS = ("Before you start", "Step by step", "If that did not work", "Good to know",
             "Fees and timing", "Who can do this", "Related questions")
_TITLES = ("How to {action}", "{Action} on your {qualifier}", "What to do if {problem}",
           "Why {problem}", "{Subject} and {subject2}", "{Subject} FAQ for {qualifier} "
           "customers", "Troubleshooting: {problem}", "{Subject}: {action}")
_SENTENCES = (
    "To {action}, open the My Brightwave app and go to **Account > {Subject}**.",
    "If {problem}, check the {term} first, then try again after {n} minutes.",
    "Most customers can {action} on their own, without calling Customer Care.",
    "Changes to your {subject} usually show up within {n} business days.",
    "The {term} is listed on the {subject} page of your online account.",
    "On your {qualifier}, you may need the {term} before you can {action}.",
    "If {problem} after {n} days, contact Customer Care and mention the {term}.",
    "Account owners can {action}; authorized users need the owner's approval.",
    "There is no charge to {action}, but the {term} may affect your {subject2}.",
    "We send a text and an email when your {subject} is updated.",
    "Keep your {term} handy: our agents ask for it to confirm your identity.",
    "This also affects your {subject2}, so review it before you {action}.",
)
_STEPS = ("Sign in to the My Brightwave app", "Choose the line you want to change",
          "Tap **{Subject}**", "Select **{Action}** and follow the prompts",
          "Confirm with your {term}", "Wait for the confirmation text",
          "Restart your {qualifier} if the change does not appear")
_BULLETS = ("**{Term}**: required for {qualifier} customers",
            "**{Subject2}**: may change when you {action}",
            "**Timing**: allow up to {n} business days",
            "**{Term}**: see the {subject} page for details")
# Off-topic words that no generated article contains: these queries must find nothing.
_OFF_TOPIC = ("when does the pizza place near the stadium close",
              "can you recommend a kayak rental for the lake",
              "is the violin concert on saturday sold out",
              "my telescope lens is foggy", "lasagna recipe with no ricotta")
_EMPTY = ("hi there", "okay thanks", "yes please", "hello?", "um, hi")
_QUERIES = ("hi I have a question about my {subject}", "{problem}",
            "can someone help me {action}", "I want to {action} on my {qualifier}",
            "I'm trying to {action} but {problem2}", "{problem} and the {term} is wrong",
            "how do I {action}? also {problem2}", "what is the {term} for my {subject}",
            "I was told {problem}. how long does that take?")


@functools.cache
def _slots(template: str) -> tuple[str, ...]:
    """The slot names of ``template``, lowercased ("{Subject}" -> "subject"), in order."""
    return tuple(name.lower() for _, name, _, _ in string.Formatter().parse(template) if name)


def _fill(template: str, rng: random.Random, main: _Topic, other: _Topic) -> str:
    """``template`` with its slots filled from ``main`` (``*2`` slots from ``other``)."""
    pools = {"subject": main.subjects, "action": main.actions, "problem": main.problems,
             "term": main.terms, "subject2": other.subjects, "problem2": other.problems,
             "qualifier": _QUALIFIERS, "n": _DAYS}
    values: dict[str, str] = {}
    # Draw only the slots the template names, once each, so a "{subject}" repeated in
    # a sentence reads the same both times.
    for name in _slots(template):
        if name not in values:
            value = rng.choice(pools[name])
            values[name] = value
            values[name[0].upper() + name[1:]] = value[0].upper() + value[1:]
    return template.format(**values)


def _pick_topics(rng: random.Random) -> tuple[_Topic, _Topic]:
    main = rng.choice(_TOPICS)
    # A third of articles mix in a second topic; the rest stay on their own topic.
    other = rng.choice(_TOPICS) if rng.random() < 0.35 else main
    return main, other


def _body(rng: random.Random, main: _Topic, other: _Topic) -> list[str]:
    """3-8 blocks (paragraphs and lists), with an occasional ``##`` section heading."""
    blocks: list[str] = []
    for index in range(rng.randint(3, 8)):
        if index and rng.random() < 0.3:
            blocks.append("## " + rng.choice(_SECTIONS))
        kind = rng.random()
        if kind < 0.6:
            count = rng.randint(2, 4)
            blocks.append(" ".join(_fill(t, rng, main, other)
                                   for t in rng.sample(_SENTENCES, count)))
        elif kind < 0.8:
            steps = rng.sample(_STEPS, rng.randint(3, 5))
            blocks.append("\n".join(f"{i}. {_fill(s, rng, main, other)}"
                                    for i, s in enumerate(steps, start=1)))
        else:
            bullets = rng.sample(_BULLETS, rng.randint(2, 4))
            blocks.append("\n".join("- " + _fill(b, rng, main, other) for b in bullets))
    return blocks


def _slug(text: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
    return "-".join(words[:8])


def generate_articles(n: int, out_dir: Path, seed: int = 7) -> list[Path]:
    """Write ``n`` markdown help articles under ``out_dir/<category>/``; their paths, in order.

    Titles are unique (a clash gets a numbered "(part N)" suffix) and ids end in
    the article's index, so every file imports as a distinct article.
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    paths: list[Path] = []
    for index in range(n):
        main, other = _pick_topics(rng)
        title = _fill(rng.choice(_TITLES), rng, main, other)
        title = title[0].upper() + title[1:]
        if title in seen:
            title = f"{title} (part {index})"
        seen.add(title)
        article_id = f"{main.category}-{_slug(title)}-{index:05d}"
        text = (
            f"---\nid: {article_id}\ntitle: {title}\n"
            f"url: https://help.brightwave.example/{main.category}/{article_id}\n"
            f"category: {main.category}\n---\n# {title}\n\n"
            + "\n\n".join(_body(rng, main, other)) + "\n"
        )
        folder = out_dir / main.category
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{article_id}.md"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def generate_queries(n: int, seed: int = 7) -> list[str]:
    """``n`` customer utterances over the articles' vocabulary.

    About 80% are on topic (broad ones matching many articles, specific ones
    mixing two topics' terms), 10% off topic (no article matches) and 10% have
    no content words at all (the store answers them without a query).
    """
    rng = random.Random(seed * 7919 + 1)  # distinct stream from the articles' of one seed
    queries: list[str] = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.1:
            queries.append(rng.choice(_OFF_TOPIC))
        elif roll < 0.2:
            queries.append(rng.choice(_EMPTY))
        else:
            main, other = rng.choice(_TOPICS), rng.choice(_TOPICS)
            queries.append(_first_person(_fill(rng.choice(_QUERIES), rng, main, other)))
    return queries


_PERSON = {"you were": "I was", "you": "I", "your": "my", "yours": "mine"}
_PERSON_RE = re.compile(r"\b(you were|yours|your|you)\b")


def _first_person(text: str) -> str:
    """The customer's voice: the articles' "you cannot sign in" becomes "I cannot sign in"."""
    return _PERSON_RE.sub(lambda m: _PERSON[m.group(1)], text)
