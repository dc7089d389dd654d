// Unit tests of static/panel/suggestions.js: the newest automatic suggestion
// supersedes the one before it on the page itself, and a superseded request is never
// asked again (after a Retry-After pause or a server's shutdown).
import assert from "node:assert/strict";
import { test } from "node:test";

import { Suggestions } from "../static/panel/suggestions.js";

const SUPERSEDED = { outcome: "cancelled", stop_reason: "superseded" };

// A feed whose cards record what the requests told them.
function fakeFeed() {
  const cards = [];
  return {
    cards,
    addCard(init) {
      const card = { ...init, events: [], failed: null,
        event(name, data) { this.events.push([name, data]); },
        fail(message) { this.failed = message; } };
      cards.push(card);
      return card;
    },
  };
}

// Streams the test answers: each call is kept, with its card, options and resolvers.
// Like assist.js, an aborted one answers null, unless `late`: then only the test
// answers it (a "done" that was on its way when the abort came).
function fakeStreams(late) {
  const calls = [];
  const stream = (card, options) => new Promise((resolve, reject) => {
    calls.push({ card, options, resolve, reject });
    if (!late) options.signal.addEventListener("abort", () => resolve(null), { once: true });
  });
  return { calls, stream };
}

function setup({ wait, late = false } = {}) {
  const feed = fakeFeed();
  const streams = fakeStreams(late);
  const waits = [];
  const suggestions = new Suggestions({
    feed,
    options: () => ({ conversationId: "c1", url: "/s", stallMs: 1000, session: "sess" }),
    renew: async () => {},
    stream: streams.stream,
    // A pause the test ends, or the abort does (as the page's own).
    wait: wait || ((ms, signal) => new Promise((resolve) => {
      waits.push({ ms, resolve });
      signal.addEventListener("abort", resolve, { once: true });
    })),
  });
  return { suggestions, feed, calls: streams.calls, waits };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

function busy(status, retryAfter) {
  return Object.assign(new Error(`The server answered ${status}`), { status, retryAfter });
}

test("a newer automatic suggestion aborts the older one and ends its card as superseded", async () => {
  const { suggestions, feed, calls } = setup();
  const first = suggestions.ask({ trigger: "utterance", query: "my phone broke" });
  suggestions.ask({ trigger: "manual", query: "restocking fee?" });
  suggestions.ask({ trigger: "utterance", query: "it fell in water" });
  await first;
  assert.equal(calls.length, 3);
  assert.equal(calls[0].options.signal.aborted, true);
  assert.deepEqual(feed.cards[0].events, [["done", SUPERSEDED]]);
  assert.equal(feed.cards[0].failed, null);
  // The agent's question is never superseded, and never supersedes.
  suggestions.ask({ trigger: "manual", query: "and a refund?" });
  assert.equal(calls[1].options.signal.aborted, false);
  assert.equal(calls[2].options.signal.aborted, false);
  assert.deepEqual(feed.cards[2].events, []);
  assert.equal(calls[2].options.body.trigger, "utterance");
  assert.equal(calls[2].options.headers.Authorization, "Bearer sess");
});

test("a finished automatic suggestion is not touched by the next one", async () => {
  const { suggestions, feed, calls } = setup();
  const first = suggestions.ask({ trigger: "utterance", query: "one" });
  calls[0].resolve({ outcome: "completed", stop_reason: "stop" });
  await first;
  suggestions.ask({ trigger: "utterance", query: "two" });
  assert.equal(calls[0].options.signal.aborted, false);
  assert.deepEqual(feed.cards[0].events, []);
});

test("a superseded request waiting out a Retry-After is never sent again", async () => {
  const { suggestions, calls, waits } = setup();
  const first = suggestions.ask({ trigger: "utterance", query: "one" });
  calls[0].reject(busy(429, 2));
  await settle();
  assert.deepEqual(waits.map((w) => w.ms), [2000]);
  suggestions.ask({ trigger: "utterance", query: "two" });
  await first;
  assert.equal(calls.length, 2); // "one" once, "two" once
  assert.equal(calls[1].options.body.trigger, "utterance");
});

test("a request not superseded is asked again once its Retry-After has passed", async () => {
  const { suggestions, feed, calls, waits } = setup();
  const first = suggestions.ask({ trigger: "utterance", query: "one" });
  calls[0].reject(busy(503, 1));
  await settle();
  waits[0].resolve();
  await settle();
  assert.equal(calls.length, 2);
  assert.equal(calls[1].card, feed.cards[0]);
  calls[1].resolve({ outcome: "completed" });
  await first;
});

test("a superseded request is not asked again after a shutdown", async () => {
  const { suggestions, calls } = setup({ late: true });
  const first = suggestions.ask({ trigger: "utterance", query: "one" });
  suggestions.ask({ trigger: "utterance", query: "two" });
  assert.equal(calls[0].options.signal.aborted, true);
  calls[0].resolve({ outcome: "cancelled", stop_reason: "shutdown" }); // already under way
  await first;
  await settle();
  assert.equal(calls.length, 2);

  // Not superseded, the same "done" asks once more, on a new card.
  const { suggestions: other, feed, calls: otherCalls } = setup();
  const lone = other.ask({ trigger: "utterance", query: "alone" });
  otherCalls[0].resolve({ outcome: "cancelled", stop_reason: "shutdown" });
  await lone;
  assert.equal(otherCalls.length, 2);
  assert.equal(feed.cards.length, 2);
});

test("stop ends every open request and starts nothing new", async () => {
  const { suggestions, feed, calls } = setup();
  suggestions.ask({ trigger: "utterance", query: "one" });
  suggestions.ask({ trigger: "manual", query: "two" });
  suggestions.stop();
  assert.ok(calls.every((call) => call.options.signal.aborted));
  suggestions.ask({ trigger: "manual", query: "three" });
  assert.equal(feed.cards.length, 2);
  await settle();
  assert.ok(feed.cards.every((card) => card.failed === null));
});
