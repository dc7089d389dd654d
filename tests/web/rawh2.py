"""The server's side of an HTTP/2 connection, frame by frame (the h2 library's), for
the HTTP/2 client's tests: each test answers the way real servers misbehave."""

from __future__ import annotations

import asyncio

import h2.config
import h2.connection
import h2.events
import h2.settings


class Peer:
    """An HTTP/2 server connection over a raw stream pair: read its events, write."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 *, max_streams: int = 100) -> None:
        self.reader = reader
        self.writer = writer
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.h2.initiate_connection()
        self.h2.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams})
        self._events: list[h2.events.Event] = []
        self.flush()

    def flush(self) -> None:
        if data := self.h2.data_to_send():
            self.writer.write(data)

    async def event(self) -> h2.events.Event | None:
        """The next event from the client (None once it has closed the connection)."""
        while not self._events:
            data = await self.reader.read(65536)
            if not data:
                return None
            self._events.extend(self.h2.receive_data(data))
            self.flush()
        return self._events.pop(0)

    async def request(self) -> h2.events.RequestReceived | None:
        """The next request's headers (other events skipped)."""
        while (event := await self.event()) is not None:
            if isinstance(event, h2.events.RequestReceived):
                return event
        return None

    def respond(self, stream_id: int, status: int = 200, body: bytes | None = None,
                headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        """Headers, and ``body`` with the stream's end when given."""
        fields = [(b":status", str(status).encode()), *headers]
        self.h2.send_headers(stream_id, fields, end_stream=body == b"")
        if body:
            self.h2.send_data(stream_id, body, end_stream=True)
        self.flush()
