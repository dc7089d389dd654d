// The page's event-stream parser (frontend/static/panel/sse.js, EventStreamParser)
// against eventsource-parser, the npm library (installed by scripts/setup --test into
// frontend/node_modules for this comparison only): the same cases for correctness,
// then speed on a 10 MB stream of the server's events in random chunk sizes.
//
//   node bench/page_parser.mjs [--mb 10] [--rounds 7] [--out bench/results/page_parser.json]
//
// Prints a table and writes the figures as JSON (docs/panel.md quotes them).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { createParser } from "../frontend/node_modules/eventsource-parser/dist/index.js";
import { EventStreamParser } from "../frontend/static/panel/sse.js";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const LIBRARY_VERSION = JSON.parse(readFileSync(
  join(ROOT, "frontend/node_modules/eventsource-parser/package.json"), "utf8")).version;

const { values: args } = parseArgs({ options: {
  mb: { type: "string", default: "10" },
  rounds: { type: "string", default: "7" },
  out: { type: "string", default: join(ROOT, "bench/results/page_parser.json") },
} });

// Both parsers behind one interface: push(bytes) -> [{event, id, data}].
const PARSERS = {
  page: () => new EventStreamParser(),
  "eventsource-parser": () => {
    const decoder = new TextDecoder();
    let out = [];
    const parser = createParser({ onEvent: (e) => out.push({ event: e.event || "message",
      id: e.id ?? "", data: e.data }) });
    return {
      push(chunk) {
        parser.feed(typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true }));
        const messages = out;
        out = [];
        return messages;
      },
    };
  },
};

// A small deterministic PRNG (mulberry32), so every run parses the same bytes.
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const encode = (text) => new TextEncoder().encode(text);

function cutAt(data, offsets) {
  const chunks = [];
  let start = 0;
  for (const offset of [...offsets, data.length]) {
    chunks.push(data.subarray(start, offset));
    start = offset;
  }
  return chunks;
}

function run(make, chunks) {
  const parser = make();
  const messages = [];
  for (const chunk of chunks) for (const m of parser.push(chunk)) messages.push(m);
  return messages;
}

const msg = (data, event = "message", id = "") => ({ event, id, data });
const SERVER = "id: s.1\r\nevent: delta\r\ndata: {\"text\":\"Caf\u00e9 \u20ac \ud83d\ude00\"}\r\n\r\n"
  + ": ping - 2025-01-01\r\n\r\nid: s.2\r\nevent: done\r\ndata: {}\r\n\r\n";
const SERVER_OUT = [msg("{\"text\":\"Caf\u00e9 \u20ac \ud83d\ude00\"}", "delta", "s.1"),
  msg("{}", "done", "s.2")];

// [name, chunks, expected messages]: the cases of frontend/tests/sse.test.js.
function correctnessCases() {
  const cases = [];
  for (const [name, eol] of [["LF", "\n"], ["CRLF", "\r\n"], ["CR", "\r"]]) {
    cases.push([`${name} line ends`, [encode(`id: 1${eol}event: delta${eol}data: a${eol}${eol}`
      + `data: b${eol}${eol}`)], [msg("a", "delta", "1"), msg("b")]]);
  }
  cases.push(
    ["mixed line ends", [encode("id: 1\r\nevent: delta\rdata: a\n\r\ndata: b\r\r")],
      [msg("a", "delta", "1"), msg("b")]],
    ["multi-line data", [encode("data: one\ndata:two\ndata:  three\ndata\ndata:\n\n")],
      [msg("one\ntwo\n three\n\n")]],
    ["comments (pings)", [encode(": ping\n\nevent: delta\n: ping\ndata: x\n\n")],
      [msg("x", "delta")]],
    ["ids per message", [encode("id: a\ndata: 1\n\ndata: 2\n\nid: b\0c\ndata: 3\n\n")],
      [msg("1", "message", "a"), msg("2"), msg("3")]],
    ["empty event name", [encode("event: x\nevent:\ndata: y\n\n")], [msg("y")]],
    ["last message without blank line", [encode("data: 1\n\ndata: 2\n")], [msg("1")]],
    ["blank line on a trailing CR", [encode("data: 1\r\r")], [msg("1")]],
    ["leading BOM", [Uint8Array.of(0xef, 0xbb), encode("\u00bfdata: x\n\n").subarray(1)],
      [msg("x")]],
  );
  const data = encode(SERVER);
  for (let a = 0; a <= data.length; a += 1) {
    cases.push([`server stream cut at byte ${a}`, cutAt(data, [a]), SERVER_OUT]);
  }
  cases.push(["server stream byte by byte", [...data].map((b) => Uint8Array.of(b)), SERVER_OUT]);
  return cases;
}

function correctness() {
  const cases = correctnessCases();
  const result = {};
  for (const [name, make] of Object.entries(PARSERS)) {
    const failed = [];
    for (const [label, chunks, expected] of cases) {
      if (JSON.stringify(run(make, chunks)) !== JSON.stringify(expected)) failed.push(label);
    }
    result[name] = { cases: cases.length, passed: cases.length - failed.length, failed };
  }
  return result;
}

// About `mb` megabytes of what the server sends: suggestions (a source list), deltas of
// 20-200 characters (some outside ASCII), done, and keep-alive pings between.
function serverStream(mb, eol, rand) {
  const words = ["voicemail", "set", "up", "the", "caf\u00e9", "r\u00e9sum\u00e9", "\u20ac5",
    "\ud83d\ude00", "Einstellungen", "\u00fcber", "account", "press", "[1]", "**bold**"];
  // One suggestion's stream: [text, how many events].
  const suggestion = (s) => {
    const id = `sg${s}`;
    const sources = Array.from({ length: 3 }, (_, i) => ({ id: `kb-${i}`, title: `Article ${i}`,
      url: `https://kb.example.com/${s}/${i}`, snippet: "x".repeat(120), score: 0.5 }));
    const parts = [];
    const event = (name, data) => parts.push(
      `id: ${id}.${parts.length + 1}${eol}event: ${name}${eol}data: ${JSON.stringify(data)}${eol}${eol}`);
    event("suggestion", { id, sources, confident: true });
    const deltas = 10 + Math.floor(rand() * 40);
    for (let d = 0; d < deltas; d += 1) {
      const length = 20 + Math.floor(rand() * 180);
      let text = "";
      while (text.length < length) text += `${words[Math.floor(rand() * words.length)]} `;
      event("delta", { id, text });
    }
    event("done", { id, outcome: "completed", stop_reason: "end" });
    const events = parts.length;
    const ping = `: ping - 2025-01-01 00:00:00${eol}${eol}`;
    for (let at = parts.length - 1; at > 0; at -= 1) if (rand() < 0.05) parts.splice(at, 0, ping);
    return [parts.join(""), events];
  };
  const chunks = [];
  let size = 0;
  let events = 0;
  for (let s = 0; size < mb * 1024 * 1024; s += 1) {
    const [text, count] = suggestion(s);
    chunks.push(text);
    size += Buffer.byteLength(text);
    events += count;
  }
  return { data: encode(chunks.join("")), events };
}

// Chunk sizes drawn log-uniformly between 1 and `max` bytes.
function randomChunks(data, max, rand) {
  const offsets = [];
  for (let at = 0; ;) {
    at += Math.max(1, Math.floor(Math.exp(rand() * Math.log(max))));
    if (at >= data.length) break;
    offsets.push(at);
  }
  return cutAt(data, offsets);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function speed(name, data, chunks, events, rounds) {
  const row = { workload: name, bytes: data.length, chunks: chunks.length, events };
  for (const [parser, make] of Object.entries(PARSERS)) {
    run(make, chunks); // warm up
    const times = [];
    let count = 0;
    for (let r = 0; r < rounds; r += 1) {
      const start = process.hrtime.bigint();
      count = run(make, chunks).length;
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    if (count !== events) throw new Error(`${parser} read ${count} events of ${events} (${name})`);
    const ms = median(times);
    row[parser] = { median_ms: Number(ms.toFixed(1)),
      mb_per_s: Number((data.length / 1024 / 1024 / (ms / 1000)).toFixed(1)) };
  }
  return row;
}

const mb = Number(args.mb);
const rounds = Number(args.rounds);
const rand = random(17);
const checks = correctness();
const rows = [];
for (const [label, eol] of [["CRLF (the server's)", "\r\n"], ["LF", "\n"]]) {
  const { data, events } = serverStream(mb, eol, rand);
  for (const max of [16384, 64]) {
    rows.push(speed(`${mb} MB, ${label}, chunks 1-${max} B`, data, randomChunks(data, max, rand),
      events, rounds));
  }
}
// One message of 1 MB in 64-byte chunks: a parser that rescans its buffer is quadratic.
const big = encode(`data: ${"y".repeat(1024 * 1024)}\r\n\r\n`);
rows.push(speed("one 1 MB message, 64 B chunks", big, cutAt(big,
  Array.from({ length: Math.floor(big.length / 64) }, (_, i) => (i + 1) * 64)), 1, rounds));

const result = {
  date: new Date().toISOString(),
  node: process.version,
  cpu: `${os.cpus()[0].model} x${os.cpus().length}`,
  libraries: { "eventsource-parser": LIBRARY_VERSION },
  rounds,
  correctness: checks,
  speed: rows,
};

for (const [parser, c] of Object.entries(checks)) {
  console.log(`${parser}: ${c.passed}/${c.cases} correctness cases`
    + (c.failed.length ? ` (failed: ${c.failed.join("; ")})` : ""));
}
console.log(`\nmedian of ${rounds} rounds, MB/s (ms); node ${process.version}, ${result.cpu}`);
for (const row of rows) {
  const cells = Object.keys(PARSERS).map((p) => `${p} ${row[p].mb_per_s} MB/s (${row[p].median_ms} ms)`);
  console.log(`${row.workload}, ${row.chunks} chunks, ${row.events} events: ${cells.join(", ")}`);
}
mkdirSync(dirname(args.out), { recursive: true });
writeFileSync(args.out, `${JSON.stringify(result, null, 2)}\n`);
console.log(`\nwritten to ${args.out}`);
