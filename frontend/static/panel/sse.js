// Reading a text/event-stream from a fetch response (EventSource cannot POST or
// send headers). Yields {event, id, data} for each message, data parsed as JSON.
// onChunk(byteLength) is called for every chunk read off the wire, keep-alive
// comments included: the caller's stall watchdog feeds on it.

export class StreamError extends Error {
  constructor(status, body, retryAfter = null) {
    super((body && body.message) || `The server answered ${status}`);
    this.status = status;
    this.code = body && body.error;
    this.retryAfter = retryAfter; // seconds, from Retry-After on a 429 or 503
  }
}

function parseBlock(block) {
  const message = { event: "message", id: "", data: "" };
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // comments are keep-alive pings
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") message.event = value;
    else if (field === "id") message.id = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  message.data = JSON.parse(data.join("\n"));
  return message;
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
  const decoder = new TextDecoder();
  let buffer = "";
  let carriage = ""; // a "\r" at the end of a chunk may be half of a "\r\n"
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (onChunk) onChunk(value.byteLength);
      let text = carriage + decoder.decode(value, { stream: true });
      carriage = text.endsWith("\r") ? "\r" : "";
      if (carriage) text = text.slice(0, -1);
      buffer += text.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const message = parseBlock(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (message) yield message;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
