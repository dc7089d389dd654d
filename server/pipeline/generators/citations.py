"""Citations checked against the prompt: a model's ``[n]`` that names no article it
was given is dropped from the streamed text, even when split across chunks."""

from __future__ import annotations

_MAX_DIGITS = 3


class CitationFilter:
    """Passes text through, holding back a possible ``[n`` until it is complete."""

    def __init__(self, articles: int) -> None:
        self.articles = articles
        self._pending = ""
        self.dropped = 0

    def feed(self, text: str) -> str:
        """The part of ``text`` (with what was held back) that is safe to send now."""
        out: list[str] = []
        for char in text:
            if self._pending:
                if char.isdigit() and len(self._pending) <= _MAX_DIGITS:
                    self._pending += char
                    continue
                if char == "]" and len(self._pending) > 1:
                    number = int(self._pending[1:])
                    if 1 <= number <= self.articles:
                        out.append(self._pending + char)
                    else:
                        self.dropped += 1
                    self._pending = ""
                    continue
                out.append(self._pending)
                self._pending = ""
            if char == "[":
                self._pending = char
            else:
                out.append(char)
        return "".join(out)

    def flush(self) -> str:
        """What is still held back, at the end of the stream."""
        rest, self._pending = self._pending, ""
        return rest
