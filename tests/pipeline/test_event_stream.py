"""The event-stream parser the openai generator reads the model with."""

from __future__ import annotations

import pytest

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
