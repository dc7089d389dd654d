"""The event-stream parser the openai generator reads the model with."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.pipeline.generators.event_stream import EventStreamParser


def _feed_all(*chunks: bytes) -> list[list[str]]:
    parser = EventStreamParser()
    return [parser.feed(chunk) for chunk in chunks]


def test_each_read_returns_the_events_it_completes() -> None:
    assert _feed_all(b"data: a\n\ndata: b\n\nda", b"ta: c\n", b"\n") == [["a", "b"], [], ["c"]]


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_ends_a_line(end: bytes) -> None:
    body = b"data: one" + end + end + b"data: two" + end + end
    assert _feed_all(body) == [["one", "two"]]


def test_a_crlf_split_across_two_reads_is_one_line_end() -> None:
    # Read as two line ends, the LF would be a blank line: an event dispatched early.
    assert _feed_all(b"data: a\r", b"\ndata: b\r\n\r\n") == [[], ["a\nb"]]


def test_data_lines_are_joined_and_other_fields_and_comments_ignored() -> None:
    body = (b": keep-alive\nevent: message\nid: 7\nretry: 100\n"
            b"data: first\ndata:second\ndata\n\n")
    assert _feed_all(body) == [["first\nsecond\n"]]


def test_an_event_without_data_is_not_dispatched() -> None:
    assert _feed_all(b"event: ping\n\n: comment\n\ndata: x\n\n") == [["x"]]


def test_a_character_split_across_reads_is_decoded_whole() -> None:
    euro = "data: 5 €\n\n".encode()
    split = euro.index("€".encode()) + 1
    assert _feed_all(euro[:split], euro[split:]) == [[], ["5 €"]]


def test_a_leading_byte_order_mark_is_dropped_and_bad_bytes_replaced() -> None:
    assert _feed_all(b"\xef\xbb\xbfdata: a\xff\n\n") == [["a\ufffd"]]


def test_an_event_cut_off_by_the_end_of_the_stream_is_never_returned() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"data: complete\n\ndata: cut") == ["complete"]


def _reference(stream: bytes) -> list[str]:
    """The WHATWG rules written plainly, for the whole stream at once."""
    text = stream.decode("utf-8", errors="replace").removeprefix("\ufeff")
    events: list[str] = []
    data: list[str] | None = None
    *lines, _unfinished = re.split(r"\r\n|\r|\n", text)
    for line in lines:
        if not line:
            if data is not None:
                events.append("\n".join(data))
            data = None
        elif line.startswith("data"):
            field, _, value = line.partition(":")
            if field == "data":
                data = (data or []) + [value[1:] if value.startswith(" ") else value]
    return events


@given(parts=st.lists(st.sampled_from(
    ["data", "data:", " ", "x", "é", "\u2028", ":", "\r", "\n", "\r\n", "event: e"]),
    max_size=60), cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_any_stream_cut_into_any_reads_gives_the_events_of_the_whole(
        parts: list[str], cuts: list[int]) -> None:
    stream = "".join(parts).encode()
    parser = EventStreamParser()
    got: list[str] = []
    start = 0
    for cut in [*sorted(min(c, len(stream)) for c in cuts), len(stream)]:
        got += parser.feed(stream[start:cut])
        start = cut
    assert got == _reference(stream)
