"""The HTTP/2 client's frame reader (``server.web.upstream_h2_frames``) against h2's own
reading of the same bytes: two client connections in the same state, one fed through
``H2Connection.receive_data``, one through the reader, must give the same events, the
same receive windows, the same frames to send back and the same errors, however the
bytes are cut into reads."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame
import pytest

from server.web.upstream_h2_frames import FrameReader

STREAMS = (1, 3, 5)
REQUEST = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"model"),
           (b":path", b"/v1/chat/completions")]
TOKEN = b'data: {"choices":[{"delta":{"content":" word"}}]}\n\n'


def _client() -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    conn.increment_flow_control_window(2**31 - 1 - 65_535)  # as the client does
    for stream_id in STREAMS:
        conn.send_headers(stream_id, REQUEST, end_stream=True)
    return conn


class Side:
    """One client connection in the state both start from: its requests sent, the
    server's preamble read."""

    def __init__(self, hello: bytes) -> None:
        self.conn = _client()
        self.reader = FrameReader(self.conn)
        self.conn.receive_data(hello)
        self.conn.data_to_send()
        self.given = 0  # bytes h2 was handed

        receive = self.conn.receive_data

        def counted(data: Any) -> list[h2.events.Event]:
            self.given += len(data)
            return receive(data)

        self.conn.receive_data = counted  # type: ignore[method-assign]

    def state(self) -> tuple[object, ...]:
        conn = self.conn
        windows = tuple(
            (stream_id, stream.state_machine.state,
             stream._inbound_window_manager.current_window_size)
            for stream_id, stream in sorted(conn.streams.items()))
        return (conn.state_machine.state,
                conn._inbound_flow_control_window_manager.current_window_size, windows)


def server() -> tuple[h2.connection.H2Connection, bytes]:
    """The server's connection, the client's requests read, and its preamble."""
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None))
    conn.initiate_connection()
    conn.receive_data(_client().data_to_send())
    return conn, conn.data_to_send()


def norm(value: Any) -> Any:
    """An event as plain values, nested events too, for comparing."""
    if isinstance(value, h2.events.Event) and dataclasses.is_dataclass(value):
        return (type(value).__name__,
                {field.name: norm(getattr(value, field.name))
                 for field in dataclasses.fields(value)})
    if isinstance(value, h2.events.Event):
        return repr(value)  # a few are not dataclasses: their repr says all
    return value


def outcome(side: Side, reads: list[bytes],
            feed: Callable[[Side, bytes], list[h2.events.Event]]) -> tuple[object, ...]:
    events: list[Any] = []
    error: object = None
    try:
        for data in reads:
            events.extend(norm(event) for event in feed(side, data))
    except h2.exceptions.ProtocolError as exc:
        error = type(exc).__name__
    return events, error, side.state(), side.conn.data_to_send()


def by_h2(side: Side, data: bytes) -> list[h2.events.Event]:
    return side.conn.receive_data(data)


def by_reader(side: Side, data: bytes) -> list[h2.events.Event]:
    return side.reader.feed(data)


def cuts(data: bytes) -> Iterator[list[bytes]]:
    """``data`` whole, in two reads cut at every place, and a byte a read (past 4 KiB:
    cut every 97 bytes, and in reads of 1,000)."""
    yield [data]
    small = len(data) <= 4096
    for at in range(1, len(data), 1 if small else 97):
        yield [data[:at], data[at:]]
    step = 1 if small else 1000
    yield [data[at:at + step] for at in range(0, len(data), step)]


def same_as_h2(hello: bytes, data: bytes) -> Side:
    """Asserts the reader's outcome is h2's for the same reads, for every way ``data``
    may be cut; returns
    the reader's side after reading it whole."""
    for reads in cuts(data):
        assert outcome(Side(hello), reads, by_reader) == outcome(Side(hello), reads, by_h2), \
            [len(r) for r in reads]
    side = Side(hello)
    outcome(side, [data], by_reader)
    return side


def respond(conn: h2.connection.H2Connection, *stream_ids: int,
            headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    for stream_id in stream_ids:
        conn.send_headers(stream_id, [(b":status", b"200"), *headers])


def data_frame(stream_id: int, data: bytes, flags: tuple[str, ...] = ()) -> bytes:
    return bytes(hyperframe.frame.DataFrame(stream_id, data=data, flags=flags).serialize())


def test_a_conversation_of_every_kind_of_frame_reads_as_h2_reads_it() -> None:
    conn, hello = server()
    respond(conn, *STREAMS)
    for index in range(3):
        for stream_id in STREAMS:
            conn.send_data(stream_id, TOKEN + bytes([48 + index]))
    conn.ping(b"12345678")
    conn.send_data(3, TOKEN, pad_length=7)  # padded: h2's
    conn.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 50})
    conn.increment_flow_control_window(1000, stream_id=1)
    conn.send_data(1, TOKEN, end_stream=True)  # its end: h2's
    conn.reset_stream(5, h2.errors.ErrorCodes.INTERNAL_ERROR)
    conn.send_data(3, TOKEN)
    conn.send_headers(3, [(b"x-trailer", b"1")], end_stream=True)
    data = conn.data_to_send()

    side = same_as_h2(hello, data)

    plain = 3 * len(STREAMS) + 1
    assert side.given == len(data) - plain * (9 + len(TOKEN) + 1) + 1, \
        "the plain DATA frames of open streams were read past h2"


def test_a_stream_of_plain_data_frames_never_reaches_h2_and_takes_from_its_windows() -> None:
    conn, hello = server()
    respond(conn, 1)
    first = conn.data_to_send()
    for _ in range(20):
        conn.send_data(1, TOKEN)
    data = conn.data_to_send()
    side = Side(hello)
    side.conn.receive_data(first)
    side.given = 0

    events = side.reader.feed(data)

    assert side.given == 0
    assert [(e.stream_id, e.data, e.flow_controlled_length) for e in events
            if isinstance(e, h2.events.DataReceived)] == [(1, TOKEN, len(TOKEN))] * 20
    stream = side.conn.streams[1]
    assert stream._inbound_window_manager.current_window_size == 65_535 - 20 * len(TOKEN)
    side.conn.acknowledge_received_data(20 * len(TOKEN), 1)
    assert side.conn.data_to_send() == b"", "under half a window: no WINDOW_UPDATE yet"


def test_more_data_than_the_streams_window_is_h2s_flow_control_error() -> None:
    conn, hello = server()
    respond(conn, 1)
    data = conn.data_to_send() + data_frame(1, b"x" * 16_384) * 4 + data_frame(1, b"x" * 100)

    same_as_h2(hello, data)

    side = Side(hello)
    with pytest.raises(h2.exceptions.FlowControlError):
        side.reader.feed(data)


def test_data_before_the_responses_headers_is_h2s_protocol_error() -> None:
    _, hello = server()
    same_as_h2(hello, data_frame(1, TOKEN))


def test_data_on_a_stream_the_client_reset_is_answered_as_h2_answers_it() -> None:
    conn, hello = server()
    respond(conn, 1, 3)
    data = conn.data_to_send() + data_frame(1, TOKEN) + data_frame(3, TOKEN)
    expected = Side(hello)
    actual = Side(hello)
    for side in (expected, actual):
        side.conn.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
        side.conn.data_to_send()

    assert outcome(actual, [data], by_reader) == outcome(expected, [data], by_h2)
    assert actual.conn.data_to_send() == b""  # the RST_STREAM was in the outcome


def test_data_amid_a_header_block_is_h2s_protocol_error() -> None:
    conn, hello = server()
    block = conn.encoder.encode([(b":status", b"200"), (b"x-long", b"y" * 40)])
    headers = hyperframe.frame.HeadersFrame(1, data=block[:10]).serialize()
    rest = hyperframe.frame.ContinuationFrame(1, data=block[10:],
                                              flags=("END_HEADERS",)).serialize()

    same_as_h2(hello, bytes(headers) + data_frame(1, TOKEN) + bytes(rest))
    same_as_h2(hello, bytes(headers) + bytes(rest) + data_frame(1, TOKEN))
    respond(conn, 3)  # and amid another stream's block
    opened = conn.data_to_send() + bytes(headers) + data_frame(3, TOKEN)
    same_as_h2(hello, opened + bytes(rest))


def test_data_after_a_streams_end_is_h2s_error() -> None:
    conn, hello = server()
    respond(conn, 1, 3)
    conn.send_data(1, TOKEN, end_stream=True)
    data = conn.data_to_send()
    same_as_h2(hello, data + data_frame(1, TOKEN) + data_frame(3, TOKEN))


def test_data_counted_against_a_content_length_is_h2s() -> None:
    conn, hello = server()
    respond(conn, 1, headers=((b"content-length", b"10"),))
    same_as_h2(hello, conn.data_to_send() + data_frame(1, b"x" * 8) + data_frame(1, b"x" * 8))


def test_data_on_stream_zero_or_one_never_opened_is_h2s() -> None:
    conn, hello = server()
    respond(conn, 1)
    head = conn.data_to_send()
    same_as_h2(hello, head + data_frame(1, TOKEN) + b"\x00\x00\x02\x00\x00\x00\x00\x00\x00ab")
    same_as_h2(hello, head + data_frame(7, TOKEN))


def test_a_frame_over_the_size_allowed_is_h2s_error_once_whole() -> None:
    conn, hello = server()
    respond(conn, 1)
    head = conn.data_to_send()
    too_long = data_frame(1, b"x" * 16_385)
    same_as_h2(hello, head + too_long[:20])
    same_as_h2(hello, head + too_long + data_frame(1, TOKEN))


def test_data_after_the_client_closed_the_connection_is_h2s() -> None:
    conn, hello = server()
    respond(conn, 1)
    head = conn.data_to_send()
    data = data_frame(1, TOKEN)
    expected = Side(hello)
    actual = Side(hello)
    for side in (expected, actual):
        side.conn.receive_data(head)
        side.conn.close_connection()
        side.conn.data_to_send()

    assert outcome(actual, [data], by_reader) == outcome(expected, [data], by_h2)
