"""The HTTP/2 client's reading of its connection: plain DATA frames of open streams read
here, every other frame by the h2 library, in the order they came.

A streamed answer is nearly all DATA frames, one a token for each stream, and h2 turns
each into a frame object, two state machines' steps and an event: about 8 µs a frame on
the benchmark machine, where reading it here takes about one. h2 stays the authority
on the connection's state: a DATA frame is read here only when h2 would have made
nothing of it but a ``DataReceived`` (the connection open, no END_STREAM, no padding,
its stream open and its response's headers in, no content-length to count against,
within both receive windows), and the windows it takes from are h2's own, so
``acknowledge_received_data`` hands them back as before. Any other frame goes to h2
whole, the frames before it having been read; a DATA frame not yet whole waits here,
so h2's own buffer holds nothing across reads but an unfinished header block (while
one is open every frame is h2's), the start of another kind of frame, or a frame
longer than allowed: while it holds one, what comes is h2's.

This reads attributes h2 keeps private (its window managers, its streams' state
machines and content-length): the dependency is pinned to the minor version they were
read from, and tests/web/test_upstream_h2_frames.py checks the events and windows
against h2's own reading of the same bytes.
"""

from __future__ import annotations

import h2.connection
import h2.events
import h2.stream

_HEADER = 9
_DATA = 0x0
_OPEN = h2.connection.ConnectionState.CLIENT_OPEN
_RECEIVING = (h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_LOCAL)


class FrameReader:
    """Turns what a connection receives into h2's events, reading DATA frames past h2
    where it would have read them the same."""

    __slots__ = ("_h2", "_rest")

    def __init__(self, connection: h2.connection.H2Connection) -> None:
        self._h2 = connection
        self._rest = b""  # the start of a frame not yet whole

    def feed(self, data: bytes) -> list[h2.events.Event]:
        """The events of ``data`` and of what came before it unfinished, in order.
        Raises h2's ``ProtocolError`` as ``H2Connection.receive_data`` does (h2 then
        has the GOAWAY to send)."""
        conn = self._h2
        if conn.incoming_buffer._data:
            return conn.receive_data(data)  # the rest of a frame h2 holds the start of
        if self._rest:
            data = self._rest + data
            self._rest = b""
        events: list[h2.events.Event] = []
        end = len(data)
        given = 0  # data[given:pos] is whole frames h2 has yet to read
        pos = 0
        while end - pos >= _HEADER:
            length = int.from_bytes(data[pos:pos + 3])
            if length > conn.max_inbound_frame_size:
                # h2 refuses it once it is whole: until then what comes is h2's.
                events.extend(conn.receive_data(data[given:]))
                return events
            stop = pos + _HEADER + length
            if stop > end:
                break
            if data[pos + 3] == _DATA and data[pos + 4] == 0:
                if given < pos:  # h2's frames first: they may change the stream's state
                    events.extend(conn.receive_data(data[given:pos]))
                    given = pos
                stream_id = int.from_bytes(data[pos + 5:pos + 9]) & 0x7FFFFFFF
                if self._consumed(stream_id, length):
                    events.append(h2.events.DataReceived(
                        stream_id=stream_id, data=data[pos + _HEADER:stop],
                        flow_controlled_length=length))
                    given = stop
            pos = stop
        if pos < end and (end - pos < _HEADER or (
                data[pos + 3] == _DATA and int.from_bytes(data[pos + 5:pos + 9]) & 0x7FFFFFFF)):
            # A DATA frame's start (h2 finds nothing wrong in its header alone), or
            # less than a header: it waits here for the rest.
            self._rest = data[pos:]
            end = pos
        if given < end:  # h2's frames, and another's start: h2 may refuse its header
            events.extend(conn.receive_data(data[given:end]))
        return events

    def _consumed(self, stream_id: int, length: int) -> bool:
        """Whether a DATA frame of ``length`` on ``stream_id`` is read here: when it is,
        both receive windows are taken from as h2 would."""
        conn = self._h2
        if conn.state_machine.state is not _OPEN or conn.incoming_buffer._headers_buffer:
            # Closed, where h2 refuses frames; or only a CONTINUATION may come now.
            return False
        stream = conn.streams.get(stream_id)
        if stream is None:
            return False
        machine = stream.state_machine
        if (machine.state not in _RECEIVING or not machine.headers_received
                or stream._expected_content_length is not None):
            return False
        window = conn._inbound_flow_control_window_manager
        own = stream._inbound_window_manager
        if length > window.current_window_size or length > own.current_window_size:
            return False  # h2 raises the flow-control error
        window.window_consumed(length)
        own.window_consumed(length)
        return True
