"""The SSE framing of the pipeline's events: sse-starlette's bytes, written out."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from sse_starlette import ServerSentEvent

from server.assist.sse import encode
from server.pipeline import events


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
