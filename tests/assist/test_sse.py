"""The SSE framing of the pipeline's events: sse-starlette's bytes, written out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from hypothesis import given
from hypothesis import strategies as st
from sse_starlette import ServerSentEvent

from server.assist.sse import as_sse, encode
from server.pipeline import events
from server.pipeline.events import Event


@given(text=st.text(), number=st.integers(min_value=1, max_value=10**6))
def test_an_event_is_framed_as_sse_starlette_frames_it(text: str, number: int) -> None:
    # Any text a model sends: line breaks of every kind, U+2028, quotes, emoji.
    for event in (events.delta("sg_abc", text), events.fallback(
            "sg_abc", "stalled", {"title": text, "url": "https://kb.example/a"})):
        data = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
        event_id = f"{event.data['id']}.{number}"
        expected = ServerSentEvent(data=data, event=event.name, id=event_id).encode()
        assert encode(event.name, event_id, data) == expected


def test_text_with_line_breaks_stays_one_data_line() -> None:
    data = json.dumps({"text": "a\nb\r\nc\rd"}, separators=(",", ":"))
    message = encode("delta", "sg_1.2", data)
    assert message == b'id: sg_1.2\r\nevent: delta\r\ndata: {"text":"a\\nb\\r\\nc\\rd"}\r\n\r\n'


@given(text=st.text(), score=st.floats(min_value=0, max_value=1),
       tokens=st.integers(min_value=0, max_value=2**53))
def test_events_are_written_as_json_dumps_writes_them(text: str, score: float,
                                                      tokens: int) -> None:
    # as_sse writes the JSON with orjson; the reference is json.dumps, compact, UTF-8.
    stream = [
        events.suggestion("sg_abc", "manual", text, [{"id": "a", "title": text,
                                                      "score": round(score, 4)}], True),
        events.delta("sg_abc", text),
        events.done("sg_abc", "completed", "stop", {"tokens": tokens, "ttft_ms": None}),
    ]

    async def pipeline() -> AsyncIterator[Event]:
        for event in stream:
            yield event

    async def written() -> list[bytes]:
        return [message async for message in as_sse(pipeline())]

    expected = [encode(e.name, f"sg_abc.{n}",
                       json.dumps(e.data, ensure_ascii=False, separators=(",", ":")))
                for n, e in enumerate(stream, 1)]
    assert asyncio.run(written()) == expected
