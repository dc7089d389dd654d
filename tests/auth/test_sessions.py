"""Session tokens: bound to user, org, conversation and expiry; checked with the secret alone."""

from __future__ import annotations

import time

import pytest

from server.auth.sessions import Session, SessionCodec
from server.errors import InvalidSession, SessionExpired, WrongConversation

SECRET = "session-secret-0123456789"


def test_session_round_trips_with_its_binding() -> None:
    codec = SessionCodec(SECRET, clock=lambda: 100.0)
    session = Session("user-1", "org-1", "conv-1", 200.0)
    assert codec.verify(codec.issue(session)) == session
    # Another codec with the same secret (another worker or replica) agrees.
    assert SessionCodec(SECRET, clock=lambda: 100.0).verify(codec.issue(session)) == session


def test_expired_session_is_refused() -> None:
    value = SessionCodec(SECRET).issue(Session("u", "o", "c", 200.0))
    with pytest.raises(SessionExpired):
        SessionCodec(SECRET, clock=lambda: 200.0).verify(value)


@pytest.mark.parametrize("value", ["", "garbage", "a.b", "eyJ1IjoxfQ.sig"])
def test_garbage_is_an_invalid_session(value: str) -> None:
    with pytest.raises(InvalidSession):
        SessionCodec(SECRET).verify(value)


def test_session_signed_with_another_secret_or_edited_is_refused() -> None:
    session = Session("u", "o", "c", 10**10)
    with pytest.raises(InvalidSession):
        SessionCodec(SECRET).verify(SessionCodec("another-secret-0123456789").issue(session))
    value = SessionCodec(SECRET).issue(session)
    payload, signature = value.rsplit(".", 1)
    with pytest.raises(InvalidSession):
        SessionCodec(SECRET).verify(payload + "x." + signature)


def test_session_is_for_one_conversation() -> None:
    session = Session("u", "o", "conv-1", 10**10)
    session.require_conversation("conv-1")
    with pytest.raises(WrongConversation):
        session.require_conversation("conv-2")


def test_the_token_expiry_travels_in_the_session_and_older_sessions_still_verify() -> None:
    codec = SessionCodec("a-secret-long-enough-for-tests")
    end = time.time() + 600
    with_token = Session("u", "o", "c", end, token_expires_at=end + 60)
    assert codec.verify(codec.issue(with_token)).token_expires_at == round(end + 60, 3)
    without = Session("u", "o", "c", end)  # the implicit grant's: Genesys never said
    assert codec.verify(codec.issue(without)).token_expires_at is None


def test_a_verified_value_is_checked_once_and_still_expires(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    codec = SessionCodec(SECRET, clock=lambda: now[0])
    value = codec.issue(Session("u", "o", "c", 200.0))
    checked: list[str] = []
    loads = codec._serializer.loads

    def counted(text: str) -> object:
        checked.append(text)
        return loads(text)

    monkeypatch.setattr(codec._serializer, "loads", counted)
    first = codec.verify(value)
    assert codec.verify(value) is first
    assert checked == [value]
    now[0] = 200.0  # the cached session ends when the signed one does
    with pytest.raises(SessionExpired):
        codec.verify(value)


def test_a_forged_value_is_refused_every_time_and_never_kept() -> None:
    codec = SessionCodec(SECRET)
    forged = SessionCodec("another-secret-0123456789").issue(Session("u", "o", "c", 10**10))
    for _ in range(3):
        with pytest.raises(InvalidSession):
            codec.verify(forged)
    assert forged not in codec._verified


def test_the_verified_values_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("server.auth.sessions._VERIFIED_KEPT", 8)
    codec = SessionCodec(SECRET)
    values = [codec.issue(Session(f"u{i}", "o", "c", 10**10)) for i in range(20)]
    for i, value in enumerate(values):
        assert codec.verify(value).user_id == f"u{i}"
        assert len(codec._verified) <= 8
