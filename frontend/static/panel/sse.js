// Reading a text/event-stream from a fetch response (EventSource cannot POST or
// send headers). Yields {event, id, data} for each message, data parsed as JSON.
// onChunk(byteLength) is called for every chunk read off the wire, keep-alive
// comments included: the caller's stall watchdog feeds on it.
//
// The parsing itself is EventStreamParser: bytes in, messages out, no I/O.

export class StreamError extends Error {
  constructor(status, body, retryAfter = null) {
    super((body && body.message) || `The server answered ${status}`);
    this.status = status;
    this.code = body && body.error;
    this.retryAfter = retryAfter; // seconds, from Retry-After on a 429 or 503
  }
}

const LINE_END = /\r\n|\r|\n/g;
const COLON = 58;
const SPACE = 32;

// The event-stream format (WHATWG HTML, "Server-sent events: parsing an event
// stream"), from chunks cut anywhere: inside a line, between the "\r" and "\n" of a
// line end, inside a multi-byte UTF-8 character. Lines end with "\r\n", "\n" or
// "\r"; a blank line ends a message; lines starting with ":" are comments (the
// server's keep-alive pings). A message is dispatched only if it has a data line;
// one the stream ends in the middle of (no blank line after it) is dropped, as
// the standard says. `retry` and unknown fields are ignored.
export class EventStreamParser {
  constructor() {
    this.decoder = new TextDecoder(); // drops a leading BOM, keeps split characters
    this.partial = ""; // the start of a line whose end has not come yet
    this.afterCarriage = false; // the last line ended with a "\r" that ended its chunk
    this.event = "";
    this.id = "";
    this.data = [];
  }

  // chunk: bytes (a Uint8Array off the wire) or text. Answers the messages it
  // completed, in order: [{event, id, data}], event "message" when the message
  // named none, id the message's own id field ("" when none), data its text.
  push(chunk) {
    let text = typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    const messages = [];
    if (!text) return messages; // e.g. the first byte of a split character
    if (this.afterCarriage) {
      this.afterCarriage = false;
      if (text.charCodeAt(0) === 10) text = text.slice(1); // the "\n" of a split "\r\n"
    }
    let start = 0;
    LINE_END.lastIndex = 0;
    for (let end = LINE_END.exec(text); end; end = LINE_END.exec(text)) {
      let line = text.slice(start, end.index);
      if (this.partial) {
        line = this.partial + line;
        this.partial = "";
      }
      start = LINE_END.lastIndex;
      this.line(line, messages);
    }
    if (start < text.length) this.partial += text.slice(start);
    else this.afterCarriage = text.charCodeAt(text.length - 1) === 13;
    return messages;
  }

  line(line, messages) {
    if (!line) { // a blank line: dispatch
      if (this.data.length) {
        messages.push({ event: this.event || "message", id: this.id, data: this.data.join("\n") });
      }
      this.event = "";
      this.id = "";
      this.data = [];
      return;
    }
    if (line.charCodeAt(0) === COLON) return; // a comment: a keep-alive ping
    const colon = line.indexOf(":");
    let field = line;
    let value = "";
    if (colon !== -1) {
      field = line.slice(0, colon);
      value = line.slice(line.charCodeAt(colon + 1) === SPACE ? colon + 2 : colon + 1);
    }
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }
}

export async function* postEventStream(url, body, { headers = {}, signal, onChunk } = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream", ...headers },
    body: JSON.stringify(body),
    signal,
  });
  if (onChunk) onChunk(0); // the headers are bytes too
  if (!response.ok) {
    const retryAfter = Number.parseFloat(response.headers.get("Retry-After"));
    throw new StreamError(response.status, await response.json().catch(() => null),
      Number.isFinite(retryAfter) ? retryAfter : null);
  }
  const reader = response.body.getReader();
  const parser = new EventStreamParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (onChunk) onChunk(value.byteLength);
      for (const message of parser.push(value)) {
        yield { event: message.event, id: message.id, data: JSON.parse(message.data) };
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
