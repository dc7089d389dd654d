"""A newer automatic suggestion ends the older one on any replica (Redis).

Within a process, ``StreamRegistry`` already stops the owner's previous automatic
stream for the conversation. Across replicas, each automatic stream takes the next
number of its (owner, conversation) from Redis, which announces it on one channel in
the same step (a Lua script: the numbers are announced in the order they are given).
Every replica listens; when it hears a number for a key whose open automatic stream
holds a lower one, it stops that stream (``done``: ``cancelled``/``superseded``).

A number heard while a stream's own is on its way back is remembered, so a stream
that was already outnumbered stops as soon as it learns its number. What was heard
for the key before the stream asked is forgotten first: a counter that started over
(Redis restarted, or the key expired) gives numbers below it, and they are new.

Two automatic streams of one key that overlap here are ordered here: the older one
is stopped when the newer opens, whatever numbers Redis gives them. Their numbers
can come back the other way round (the older one's command reached Redis second), so
the number of a stream replaced here never stops a stream of this process; and while
an older local stream's number is on its way, what was heard waits for it.

Redis down: no number, the stream is superseded within its process only (counted as
a fallback). Announcements missed while the subscription was down are caught up once
it is made again: each open numbered stream's counter is read, and the newest number
it holds is as good as hearing it. The subscription tells the link whether Redis
answers (made: up; failed: down), which logs the change once. Nothing depends on
this for correctness: the page drops a superseded card's stream itself.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from server.assist.streams import StreamControl, StreamRegistry
from server.errors import SharedStoreDown
from server.shared.link import RETRY_S, RedisLink

log = logging.getLogger("assist_panel.shared")

PREFIX = "assist-panel"
CHANNEL = f"{PREFIX}:supersede"
#: How long a key's counter lives after its last automatic stream.
COUNTER_TTL_S = 3600
#: Keys numbered here that are remembered (the oldest forgotten first).
REMEMBERED = 10_000
#: Numbers heard for one key that are kept (the lowest dropped first): one a suggestion
#: of that agent and conversation, fleet-wide, within a stream's life.
HEARD = 16
#: A subscription that has heard nothing for this long is pinged, and one that does not
#: answer within as long again is made anew: a peer that vanished without a word (a
#: node lost, a network cut) gives a reading socket no error for many minutes.
SILENCE_S = 30.0

# KEYS[1]: the key's counter. ARGV[1]: the channel; ARGV[2]: the key's digest;
# ARGV[3]: the counter's time to live, in seconds.
_NEXT = """
local number = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. number)
return number
"""


def digest(key: tuple[str, str]) -> str:
    """The key as Redis sees it: a hash, never the user id or conversation id."""
    return hashlib.sha256("\x00".join(key).encode("utf-8")).hexdigest()[:32]


@dataclass
class _Numbered:
    """What this process knows of one key it has numbered a stream of."""

    key: tuple[str, str]
    #: Numbers announced for the key since the newest stream here asked for its own.
    heard: set[int] = field(default_factory=set)
    #: Numbers given to streams of this process that a newer one here had replaced.
    replaced: set[int] = field(default_factory=set)
    #: Streams of this process whose numbers are on their way back.
    asking: int = 0


class SharedSupersede:
    """Numbers automatic streams across replicas and stops the outnumbered ones."""

    def __init__(self, link: RedisLink, streams: StreamRegistry, *,
                 on_fallback: Callable[[str], None] | None = None,
                 on_subscribed: Callable[[], None] | None = None) -> None:
        """``on_subscribed`` is called each time the subscription is (re)made."""
        self.link = link
        self.streams = streams
        self.on_fallback = on_fallback
        self.on_subscribed = on_subscribed
        self._script = link.client.register_script(_NEXT)
        # By digest: every replica hears every announcement of the fleet, and hashing
        # each open stream's key for each one grew with the fleet's size times the
        # streams open here. An announcement for a key never numbered here is dropped.
        self._numbered: OrderedDict[str, _Numbered] = OrderedDict()

    async def announce(self, control: StreamControl) -> None:
        """Give a new automatic stream its number, and tell every replica."""
        if control.key is None:
            return
        key_digest = digest(control.key)
        entry = self._numbered.pop(key_digest, None) or _Numbered(control.key)
        self._numbered[key_digest] = entry  # the newest; the oldest are long gone (15 s)
        while len(self._numbered) > REMEMBERED:
            self._numbered.popitem(last=False)
        # Only numbers heard from now on can be newer than the one about to be given;
        # the numbers of streams replaced here matter while any of theirs is on its way.
        entry.heard.clear()
        if not entry.asking:
            entry.replaced.clear()
        entry.asking += 1
        script = self._script
        number: int | None = None
        try:
            number = int(await self.link.call(lambda client: script(
                keys=[f"{CHANNEL}:{key_digest}"], args=[CHANNEL, key_digest, COUNTER_TTL_S],
                client=client)))
        except SharedStoreDown:
            if self.on_fallback is not None:
                self.on_fallback("supersede")
        finally:
            entry.asking -= 1
        if number is not None:
            control.number = number
            if self.streams.automatic(control.key) is not control:
                # Replaced here while its number was on its way: whatever Redis gave
                # it, the stream that replaced it is the newer one.
                entry.replaced.add(number)
        self._settle(entry)

    def on_message(self, data: bytes | str) -> None:
        """One announcement: ``"<digest> <number>"``."""
        text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
        key_digest, _, raw = text.partition(" ")
        entry = self._numbered.get(key_digest)
        if entry is None:
            return
        try:
            number = int(raw)
        except ValueError:
            return
        entry.heard.add(number)
        if len(entry.heard) > HEARD:
            entry.heard.discard(min(entry.heard))
        self._settle(entry)

    def _settle(self, entry: _Numbered) -> None:
        """Stop the key's open automatic stream here if a number past its own was heard
        that is not one of a stream replaced here; wait while any number is on its way
        (its own, or an older local stream's that may be the one heard)."""
        control = self.streams.automatic(entry.key)
        if control is None or control.number is None or entry.asking:
            return
        if any(n > control.number and n not in entry.replaced for n in entry.heard):
            control.stop("superseded")

    async def listen(self) -> None:
        """Follow the announcements until cancelled, subscribing again after a failure."""
        while True:
            try:
                async with self.link.subscriber.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    # Subscribed first: what is announced from now on waits in the
                    # subscription while what was missed is read.
                    await self.catch_up()
                    self.link.mark_up()
                    if self.on_subscribed is not None:
                        self.on_subscribed()
                    await self._follow(pubsub)
            except (RedisError, OSError, TimeoutError, SharedStoreDown) as exc:
                # The link logs the change (once, not at every try); /readyz and
                # assist_redis_up follow it even on a replica that checks no limits.
                self.link.mark_down(type(exc).__name__)
                log.debug("supersede announcements unavailable (%s); retrying in %gs",
                          type(exc).__name__, RETRY_S)
            await anyio.sleep(RETRY_S)

    async def _follow(self, pubsub: PubSub) -> None:
        """Hand each announcement on until the subscription fails or falls silent."""
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=SILENCE_S)
            if message is None:
                if pinged:
                    raise TimeoutError(f"no answer from Redis to a ping in {SILENCE_S:g}s")
                await pubsub.ping()
                pinged = True
                continue
            pinged = False
            if message.get("type") == "message":
                self.on_message(message["data"])

    async def catch_up(self) -> None:
        """Stop the open automatic streams a number was given past while nobody here
        listened: their counters hold the newest numbers. ``SharedStoreDown`` when they
        cannot be read: the subscription is then made again, and this with it."""
        numbered = [(key, control) for key in self.streams.automatic_keys()
                    if (control := self.streams.automatic(key)) is not None
                    and control.number is not None]
        if not numbered:
            return
        names = [f"{CHANNEL}:{digest(key)}" for key, _ in numbered]
        # Even within the link's pause after a failure: the subscription just made
        # shows Redis answering, and what was missed is read now or never.
        values = await self.link.call(lambda client: client.mget(names), now=True)
        for (key, _), value in zip(numbered, values, strict=True):
            if value is not None:
                self.on_message(f"{digest(key)} {int(value)}")
