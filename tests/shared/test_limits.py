"""The limits shared on a real redis-server: exact across replicas, and each replica on
its own again (counted) while Redis does not answer."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.assist.ratelimit import RateLimiter
from server.errors import InvalidState, RateLimited
from server.shared.limits import SharedRateLimiter, SharedStates
from server.shared.link import RETRY_S, RedisLink
from tests.factories import SECRET
from tests.redis_server import running_redis
from tests.serve_process import free_port

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Replica:
    """What one replica holds: its own link, its own per-process limiter behind it."""

    def __init__(self, url: str, per_minute: int, scope: str = "streams",
                 secret: str = SECRET) -> None:
        self.clock = Clock()
        self.states: list[str] = []
        self.fallbacks: list[str] = []
        # Not the app's 0.25 s bound: on a machine busy with the whole suite a command can
        # miss it, and these tests are about sharing, not that bound. A stopped Redis
        # still refuses at once.
        self.link = RedisLink(url, on_change=self.states.append, clock=self.clock,
                              timeout_s=10.0)
        self.limiter = SharedRateLimiter(RateLimiter(per_minute, clock=self.clock), self.link,
                                         scope, secret=secret,
                                         on_fallback=self.fallbacks.append)
        self.signin_states = SharedStates(self.link, secret=secret,
                                          on_fallback=self.fallbacks.append)


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[tuple[Replica, Replica]]:
    a, b = Replica(redis_url, 3), Replica(redis_url, 3)
    await a.link.client.flushdb()
    yield a, b
    await a.link.close()
    await b.link.close()


async def test_the_rate_limit_is_exact_across_replicas(replicas: tuple[Replica, Replica]
                                                       ) -> None:
    a, b = replicas
    await a.limiter.check("user-1")
    await b.limiter.check("user-1")
    await a.limiter.check("user-1")
    with pytest.raises(RateLimited) as refused:
        await b.limiter.check("user-1")  # the fourth in the minute, wherever it lands
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 20
    await b.limiter.check("user-2")  # another user's bucket is full
    assert a.fallbacks == b.fallbacks == []


async def test_keys_hold_a_hash_never_the_user_id(replicas: tuple[Replica, Replica]) -> None:
    a, _ = replicas
    await a.limiter.check("agent-5f1c@example.com")
    keys = [key.decode() async for key in a.link.client.scan_iter("*")]
    assert keys and not any("agent-5f1c" in key or "example" in key for key in keys)


async def test_an_address_cannot_be_found_again_by_hashing_every_address(
        redis_url: str) -> None:
    """Regression: a sign-in bucket's key was the plain SHA-256 of the client's address,
    so anyone reading Redis found every address by hashing the 2^32 of IPv4. The keys
    are an HMAC under the session secret, as long as before, and shared by replicas."""
    address = "10.20.30.40"
    a, b = Replica(redis_url, 5, "signin"), Replica(redis_url, 5, "signin")
    other = Replica(redis_url, 5, "signin", secret="another-secret-0123456789")
    await a.link.client.flushdb()
    await a.limiter.check(address)
    await b.limiter.check(address)
    keys = [key.decode() async for key in a.link.client.scan_iter("*rate:signin*")]
    assert len(keys) == 1  # one bucket for both replicas
    held = keys[0].rsplit(":", 1)[1]
    assert len(held) == 32 and address not in keys[0]
    assert held not in {hashlib.sha256(value.encode()).hexdigest()[:32]
                        for value in (address, f"signin:{address}")}
    assert 55 < await a.link.client.ttl(keys[0]) <= 61  # full again in a minute, as before
    await other.limiter.check(address)  # another secret: another key
    assert len([key async for key in a.link.client.scan_iter("*rate:signin*")]) == 2
    with pytest.raises(ValueError, match="session secret"):
        SharedStates(a.link)  # never a plain hash by default
    for replica in (a, b, other):
        await replica.link.close()


async def test_a_sign_in_state_is_used_once_across_replicas(
        replicas: tuple[Replica, Replica]) -> None:
    a, b = replicas
    expires = time.time() + 600  # a state's expiry is wall-clock time, as Redis keeps it
    await a.signin_states.claim("nonce-1", expires)
    with pytest.raises(InvalidState, match="already been used"):
        await b.signin_states.claim("nonce-1", expires)
    keys = [key async for key in a.link.client.scan_iter("*state*")]
    assert len(keys) == 1 and 590 < await a.link.client.ttl(keys[0]) <= 600  # until it expires
    await b.signin_states.claim("nonce-2", expires)


async def test_without_redis_each_replica_keeps_its_own_limit_and_counts_it(
        tmp_path: Path) -> None:
    port = free_port()
    with running_redis(tmp_path, port) as url:
        a, b = Replica(url, 2), Replica(url, 2)
        await a.limiter.check("user-1")
        await b.limiter.check("user-1")
    # Redis has gone away: each replica goes on from its own bucket, and says so.
    await a.limiter.check("user-1")
    with pytest.raises(RateLimited):
        await a.limiter.check("user-1")  # a's own bucket: 2 a minute, refused without Redis
    await b.limiter.check("user-1")
    await b.signin_states.claim("nonce-3", time.time() + 600)  # its own replay cache only
    assert a.states == ["down"] and a.link.state == "down"
    assert a.fallbacks == ["streams"]
    assert b.fallbacks == ["streams", "signin_state"]

    # Within RETRY_S a down link fails at once; after it, one call tries Redis again.
    with running_redis(tmp_path, port):
        await a.limiter.check("user-9")
        assert a.link.state == "down" and a.fallbacks[-1] == "streams"
        a.clock.now += RETRY_S + 0.1
        await a.limiter.check("user-9")
        assert a.states == ["down", "up"]  # the link says so as it changes
        assert len(a.fallbacks) == 2
    await a.link.close()
    await b.link.close()


async def test_a_limit_of_zero_asks_nothing_of_redis(redis_url: str) -> None:
    replica = Replica(redis_url, 0)
    for _ in range(100):
        await replica.limiter.check("user-1")
    assert [key async for key in replica.link.client.scan_iter("*rate*")] == []
    await replica.link.close()


async def test_a_refusal_by_the_shared_bucket_costs_the_process_nothing(redis_url: str) -> None:
    a, b = Replica(redis_url, 2), Replica(redis_url, 2)
    await a.link.client.flushdb()
    await b.limiter.check("user-1")
    await b.limiter.check("user-1")
    with pytest.raises(RateLimited):
        await a.limiter.check("user-1")  # the shared bucket is empty; a's own is not
    # a's own bucket still holds both requests: had it been charged for the refused
    # one, it would refuse before the shared bucket did once that refills.
    assert a.limiter.local.retry_after("user-1") is None
    assert a.limiter.local.retry_after("user-1") is None
    assert a.limiter.local.retry_after("user-1") is not None
    await a.link.close()
    await b.link.close()
