// Unit tests of static/panel/sse.js: the event-stream parser, from bytes cut
// anywhere, and the fetch reader around it (with a stand-in fetch).
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { EventStreamParser, StreamError, postEventStream } from "../static/panel/sse.js";

const bytes = (text) => new TextEncoder().encode(text);

// Parses `chunks` (strings or bytes) with one parser; answers every message.
function parse(chunks) {
  const parser = new EventStreamParser();
  return chunks.flatMap((chunk) => parser.push(chunk));
}

// The stream's bytes cut at the given offsets.
function cut(data, offsets) {
  const chunks = [];
  let start = 0;
  for (const offset of [...offsets, data.length]) {
    chunks.push(data.subarray(start, offset));
    start = offset;
  }
  return chunks;
}

const message = (data, event = "message", id = "") => ({ event, id, data });

// As the server writes them (sse-starlette): CRLF, an id on each event, pings between.
const SERVER_STREAM = [
  ": ping - 2025-01-01 00:00:00\r\n\r\n",
  "id: s1.1\r\nevent: suggestion\r\ndata: {\"id\":\"s1\",\"sources\":[]}\r\n\r\n",
  "id: s1.2\r\nevent: delta\r\ndata: {\"text\":\"Caf\u00e9 \u20ac5 \ud83d\ude00\"}\r\n\r\n",
  ": ping - 2025-01-01 00:00:15\r\n\r\n",
  "id: s1.3\r\nevent: done\r\ndata: {\"outcome\":\"completed\"}\r\n\r\n",
].join("");
const SERVER_MESSAGES = [
  message("{\"id\":\"s1\",\"sources\":[]}", "suggestion", "s1.1"),
  message("{\"text\":\"Caf\u00e9 \u20ac5 \ud83d\ude00\"}", "delta", "s1.2"),
  message("{\"outcome\":\"completed\"}", "done", "s1.3"),
];

test("LF, CRLF and CR line ends, alone or mixed, read the same", () => {
  const expected = [message("a", "delta", "1"), message("b")];
  for (const eol of ["\n", "\r\n", "\r"]) {
    const stream = `id: 1${eol}event: delta${eol}data: a${eol}${eol}data: b${eol}${eol}`;
    assert.deepEqual(parse([stream]), expected, JSON.stringify(eol));
  }
  assert.deepEqual(parse(["id: 1\r\nevent: delta\rdata: a\n\r\ndata: b\r\r"]), expected);
});

test("data lines join with newlines; one space after the colon is dropped", () => {
  assert.deepEqual(parse(["data: one\ndata:two\ndata:  three\ndata\ndata:\n\n"]),
    [message("one\ntwo\n three\n\n")]);
  assert.deepEqual(parse(["data: a: b\n\n"]), [message("a: b")]);
});

test("comments (the server's pings) are skipped, also between a message's fields", () => {
  assert.deepEqual(parse([": ping\n\n:\n\n"]), []);
  assert.deepEqual(parse(["event: delta\n: ping\ndata: x\n:another\n\n"]), [message("x", "delta")]);
});

test("a message without data is not dispatched; its event and id do not carry over", () => {
  assert.deepEqual(parse(["event: delta\nid: 7\n\ndata: x\n\n"]), [message("x")]);
});

test("ids belong to their message; an id with NUL is ignored", () => {
  assert.deepEqual(parse(["id: a\ndata: 1\n\ndata: 2\n\nid\ndata: 3\n\nid: b\0c\ndata: 4\n\n"]),
    [message("1", "message", "a"), message("2"), message("3"), message("4")]);
});

test("an empty event name is a message; retry and unknown fields are ignored", () => {
  assert.deepEqual(parse(["event: x\nevent:\nretry: 10\nfoo: bar\nDATA: no\ndata: y\n\n"]),
    [message("y")]);
});

test("a last message without its blank line is dropped, as the standard says", () => {
  assert.deepEqual(parse(["data: 1\n\ndata: 2\n"]), [message("1")]);
  assert.deepEqual(parse(["data: 1\r\n\r\ndata: 2"]), [message("1")]);
});

test("a message is dispatched as soon as its blank line ends, even on a trailing CR", () => {
  const parser = new EventStreamParser();
  assert.deepEqual(parser.push("data: 1\r\r"), [message("1")]);
  // That "\r" may have been half of a "\r\n": the "\n" is not another blank line.
  assert.deepEqual(parser.push("\ndata: 2\r\n\r"), [message("2")]);
  assert.deepEqual(parser.push("\n"), []);
  assert.deepEqual(parser.push("data: 3\r\n\r\n"), [message("3")]);
});

test("the server's stream, cut at any one byte: inside a CRLF, inside a UTF-8 character", () => {
  const data = bytes(SERVER_STREAM);
  assert.deepEqual(parse([data]), SERVER_MESSAGES);
  for (let at = 0; at <= data.length; at += 1) {
    assert.deepEqual(parse(cut(data, [at])), SERVER_MESSAGES, `cut at ${at}`);
  }
});

test("any stream cut at any two bytes, and byte by byte, reads as it does whole", () => {
  const streams = [
    "data: \u00e9\r\n\r\ndata: a\r\rdata: \ud83d\ude00\n\n: c\r\n\r\n",
    "id: 1\revent: e\r\ndata: \u20ac\n\r\ndata: x\r\n\r\ndata: y\r\r",
  ];
  for (const stream of streams) {
    const data = bytes(stream);
    const whole = parse([data]);
    assert.equal(whole.length, 3);
    for (let a = 0; a <= data.length; a += 1) {
      for (let b = a; b <= data.length; b += 1) {
        assert.deepEqual(parse(cut(data, [a, b])), whole, `cut at ${a} and ${b}`);
      }
    }
    assert.deepEqual(parse([...data].map((byte) => Uint8Array.of(byte))), whole);
  }
});

test("a UTF-8 byte order mark at the start is dropped", () => {
  assert.deepEqual(parse([Uint8Array.of(0xef, 0xbb), bytes("\u00bfdata: x\n\n").subarray(1)]),
    [message("x")]);
});

// postEventStream, with fetch answered by `respond(url, init)`.
const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
});

function streamOf(chunks) {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(bytes(chunk));
      controller.close();
    },
  });
}

test("postEventStream POSTs JSON, yields data parsed as JSON, reports each chunk", async () => {
  const calls = [];
  globalThis.fetch = async (url, init) => {
    calls.push({ url, init });
    return new Response(streamOf([SERVER_STREAM.slice(0, 50), SERVER_STREAM.slice(50)]),
      { headers: { "Content-Type": "text/event-stream" } });
  };
  const seen = [];
  const messages = [];
  for await (const m of postEventStream("/s", { q: 1 }, { headers: { Authorization: "Bearer t" },
    onChunk: (n) => seen.push(n) })) messages.push(m);
  assert.deepEqual(messages, SERVER_MESSAGES.map((m) => ({ ...m, data: JSON.parse(m.data) })));
  assert.deepEqual(seen, [0, 50, bytes(SERVER_STREAM).length - 50]);
  assert.equal(calls[0].init.method, "POST");
  assert.equal(calls[0].init.body, "{\"q\":1}");
  assert.deepEqual(calls[0].init.headers, { "Content-Type": "application/json",
    Accept: "text/event-stream", Authorization: "Bearer t" });
});

test("an HTTP error is a StreamError: status, the body's error, Retry-After", async () => {
  globalThis.fetch = async () => new Response(JSON.stringify({ error: "busy", message: "Busy" }),
    { status: 503, headers: { "Retry-After": "2.5" } });
  await assert.rejects(postEventStream("/s", {}).next(), (error) => {
    assert.ok(error instanceof StreamError);
    assert.deepEqual([error.status, error.code, error.message, error.retryAfter],
      [503, "busy", "Busy", 2.5]);
    return true;
  });
  globalThis.fetch = async () => new Response("not json", { status: 500 });
  await assert.rejects(postEventStream("/s", {}).next(),
    { status: 500, message: "The server answered 500", retryAfter: null });
});
