"""Signed sign-in state: single use, time limit, tamper-proofing, and the PKCE verifier."""

from __future__ import annotations

import pytest

from server.auth.oauth_state import ReplayCache, StateCodec, pkce_challenge
from server.errors import InvalidState

SECRET = "state-secret-0123456789"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def issue(codec: StateCodec, conversation: str = "c-1") -> str:
    return codec.issue(conversation_id=conversation, host_origin="https://apps.mypurecloud.com",
                       target_env="prod", lang_tag="en-US", grant="pkce")[0]


def test_state_round_trips_once() -> None:
    codec = StateCodec(SECRET, 600)
    value = issue(codec)
    state = codec.consume(value)
    assert (state.conversation_id, state.host_origin, state.target_env, state.grant) == (
        "c-1", "https://apps.mypurecloud.com", "prod", "pkce")
    with pytest.raises(InvalidState, match="already been used"):
        codec.consume(value)


def test_state_expires() -> None:
    clock = Clock()
    codec = StateCodec(SECRET, 600, clock=clock)
    value = issue(codec)
    clock.now += 600
    with pytest.raises(InvalidState, match="expired"):
        codec.consume(value)


def test_state_from_another_secret_or_altered_is_refused() -> None:
    value = issue(StateCodec("another-secret-0123456789", 600))
    with pytest.raises(InvalidState, match="not one this server issued"):
        StateCodec(SECRET, 600).consume(value)
    mine = issue(StateCodec(SECRET, 600))
    payload, signature = mine.rsplit(".", 1)
    # Regression: always replacing the last character with "A" left the state unaltered
    # whenever it already ended in "A", and the test failed now and then.
    altered = payload[:-1] + ("B" if payload.endswith("A") else "A")
    with pytest.raises(InvalidState):
        StateCodec(SECRET, 600).consume(altered + "." + signature)


def test_any_process_with_the_secret_accepts_a_state() -> None:
    """No store: a state issued by one replica is good on another (once per replica)."""
    value = issue(StateCodec(SECRET, 600))
    assert StateCodec(SECRET, 600).consume(value).conversation_id == "c-1"


def test_pkce_challenge_matches_rfc_7636_appendix_b() -> None:
    assert (pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
            == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")


def test_pkce_verifier_is_per_nonce_per_secret_and_well_formed() -> None:
    codec = StateCodec(SECRET, 600)
    verifier = codec.pkce_verifier("nonce-1")
    assert verifier == StateCodec(SECRET, 600).pkce_verifier("nonce-1")
    assert verifier != codec.pkce_verifier("nonce-2")
    assert verifier != StateCodec("another-secret-0123456789", 600).pkce_verifier("nonce-1")
    # RFC 7636: 43-128 characters of [A-Za-z0-9-._~].
    assert len(verifier) == 43
    assert set(verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_replay_cache_forgets_expired_nonces_and_stays_bounded() -> None:
    cache = ReplayCache(capacity=3)
    assert cache.add("a", expires_at=10, now=0)
    assert not cache.add("a", expires_at=10, now=5)
    assert cache.add("a", expires_at=30, now=10)  # the first one expired at 10
    for nonce in "bcde":
        assert cache.add(nonce, expires_at=40, now=11)
    assert len(cache._seen) == 3
