// Unit tests of static/panel/transcript-logic.js: the live transcript's decisions
// (frames, transcription events, topics, status, backoff, renewal, failures).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  SocketClosed, TopicsRefused, failureKind, hasCalls, liveStatus, readFrame, readTranscription,
  refusalKey, renewDelay, retryDelay, topicsFor,
} from "../static/panel/transcript-logic.js";

const VOICE = "v2.conversations.c1.transcription";
const USER = "v2.users.u1.conversations";
const TIMING = { firstRetryMaxMs: 500, backoffBaseMs: 1_000, backoffMaxMs: 30_000,
  renewBeforeExpiryMs: 60_000, minChannelLifeMs: 30_000 };

test("readFrame: the topic and event body; null for heartbeats and garbage", () => {
  const body = { id: "c1", participants: [] };
  assert.deepEqual(readFrame(JSON.stringify({ topicName: USER, eventBody: body })),
    { topic: USER, body });
  const heartbeat = { topicName: "channel.metadata", eventBody: { message: "WebSocket Heartbeat" } };
  assert.deepEqual(readFrame(JSON.stringify(heartbeat)), // not a topic of ours: dropped later
    { topic: "channel.metadata", body: heartbeat.eventBody });
  for (const data of ["{not json", "null", "42", "\"text\"", JSON.stringify({ topicName: VOICE }),
    JSON.stringify({ topicName: VOICE, eventBody: "x" }), JSON.stringify({ eventBody: null })]) {
    assert.equal(readFrame(data), null, data);
  }
});

function transcript(utteranceId, channel, text, isFinal = true) {
  return { utteranceId, channel, isFinal, alternatives: [{ transcript: text }] };
}

test("readTranscription: final utterances in order, the customer and the agent", () => {
  const read = readTranscription({ transcripts: [
    transcript("u1", "EXTERNAL", "  I need voicemail  "),
    transcript("u2", "INTERNAL", "Sure."),
    transcript("u3", "EXTERNAL", "still talk", false),
  ] });
  assert.deepEqual(read, { finals: [
    { id: "u1", speaker: "customer", text: "I need voicemail" },
    { id: "u2", speaker: "agent", text: "Sure." },
  ], active: true, ended: false });
});

test("readTranscription: nothing said is kept (never shown); malformed entries skipped", () => {
  const { finals } = readTranscription({ transcripts: [
    transcript("u1", "EXTERNAL", "   "),
    { utteranceId: "u2", channel: "EXTERNAL", isFinal: true },
    { utteranceId: "u3", channel: "EXTERNAL", isFinal: true, alternatives: [] },
    null,
    transcript("", "EXTERNAL", "no id"),
    transcript("u4", "UNKNOWN", "who?"),
    transcript("u5", "constructor", "not a speaker"),
    transcript("u6", "EXTERNAL", 42),
  ] });
  assert.deepEqual(finals, [
    { id: "u1", speaker: "customer", text: "" },
    { id: "u2", speaker: "customer", text: "" },
    { id: "u3", speaker: "customer", text: "" },
    { id: "u6", speaker: "customer", text: "42" },
  ]);
});

test("readTranscription: SESSION_ENDED ends, and is not activity", () => {
  assert.deepEqual(readTranscription({ status: { status: "SESSION_ENDED" },
    transcripts: [transcript("u9", "EXTERNAL", "bye")] }),
  { finals: [{ id: "u9", speaker: "customer", text: "bye" }], active: false, ended: true });
  assert.deepEqual(readTranscription({ status: { status: "SESSION_ONGOING" } }),
    { finals: [], active: false, ended: false });
  assert.deepEqual(readTranscription({ transcripts: "nope" }),
    { finals: [], active: false, ended: false });
});

test("topicsFor: a call or unknown asks both; messaging only the agent's", () => {
  assert.deepEqual(topicsFor("", VOICE, USER), [VOICE, USER]);
  assert.deepEqual(topicsFor("voice", VOICE, USER), [VOICE, USER]);
  assert.deepEqual(topicsFor("message", VOICE, USER), [USER]);
  assert.deepEqual(topicsFor("message", VOICE, ""), [VOICE]);
  assert.deepEqual(topicsFor("voice", VOICE, ""), [VOICE]);
});

test("liveStatus: ended, restricted (a call without its transcript), else live", () => {
  assert.equal(liveStatus({ ended: true, voiceRefused: true, media: "voice" }), "ended");
  assert.equal(liveStatus({ ended: false, voiceRefused: true, media: "voice" }), "restricted");
  assert.equal(liveStatus({ ended: false, voiceRefused: true, media: "" }), "restricted");
  assert.equal(liveStatus({ ended: false, voiceRefused: true, media: "message" }), "live");
  assert.equal(liveStatus({ ended: false, voiceRefused: false, media: "voice" }), "live");
  // Messaging whose text Genesys refused is restricted too; a call is not, for that.
  assert.equal(liveStatus({ ended: false, voiceRefused: false, messagesRefused: true,
    media: "message" }), "restricted");
  assert.equal(liveStatus({ ended: false, voiceRefused: false, messagesRefused: true,
    media: "voice" }), "live");
});

test("refusalKey: the same refused set, in any order, is the same key", () => {
  assert.equal(refusalKey([{ id: USER }, { id: VOICE }]), refusalKey([{ id: VOICE }, { id: USER }]));
  assert.equal(refusalKey([]), "");
});

test("retryDelay: quick first, then doubling from the base to the cap, with jitter", () => {
  const at = (failures, r) => retryDelay(failures, TIMING, () => r);
  assert.equal(at(0, 0.5), 250);
  assert.equal(at(1, 0), 0);
  assert.equal(at(1, 0.999), 499.5);
  // Failures 2, 3, 4...: 1 s, 2 s, 4 s... times 0.5 to 1.
  assert.deepEqual([2, 3, 4, 5].map((f) => at(f, 0)), [500, 1_000, 2_000, 4_000]);
  assert.deepEqual([2, 3, 4, 5].map((f) => at(f, 1)), [1_000, 2_000, 4_000, 8_000]);
  assert.equal(at(7, 1), 30_000);
  assert.equal(at(50, 0), 15_000);
  for (let i = 0; i < 100; i += 1) {
    const delay = retryDelay(3, TIMING);
    assert.ok(delay >= 1_000 && delay <= 2_000, String(delay));
  }
});

test("renewDelay: a minute before expiry, never under the minimum life, null without one", () => {
  const now = Date.parse("2025-01-01T00:00:00Z");
  assert.equal(renewDelay("2025-01-02T00:00:00Z", now, TIMING), 86_400_000 - 60_000);
  assert.equal(renewDelay("2025-01-01T00:01:10Z", now, TIMING), 30_000);
  for (const expires of ["2024-12-31T23:59:59Z", "2025-01-01T00:00:00Z", "", undefined, "soon"]) {
    assert.equal(renewDelay(expires, now, TIMING), null, String(expires));
  }
});

test("failureKind: a token problem, every topic refused, refused for good, or retry", () => {
  const status = (s) => Object.assign(new Error("x"), { status: s });
  assert.equal(failureKind(status(401), false), "auth");
  assert.equal(failureKind(new SocketClosed(4002, "Token expired"), false), "auth");
  assert.equal(failureKind(new SocketClosed(1006, ""), false), "retry");
  assert.equal(failureKind(new SocketClosed(4000, "no heartbeat"), false), "retry");
  assert.equal(failureKind(new TopicsRefused(), false), "refused");
  assert.equal(failureKind(status(403), false), "forbidden");
  assert.equal(failureKind(status(400), false), "forbidden");
  assert.equal(failureKind(status(404), false), "retry");
  assert.equal(failureKind(status(404), true), "forbidden");
  assert.equal(failureKind(status(500), true), "retry");
  assert.equal(failureKind(new TypeError("Failed to fetch"), false), "retry");
});

test("hasCalls: a participant with at least one call", () => {
  assert.equal(hasCalls([{ calls: [] }, { messages: [{}] }]), false);
  assert.equal(hasCalls([{ purpose: "customer", calls: [{ state: "connected" }] }]), true);
  assert.equal(hasCalls([]), false);
});
