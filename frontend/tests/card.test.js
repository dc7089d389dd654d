// Unit tests of static/panel/card.js, the card's state: what each stream event does
// to it, what it announces, and the text Copy and Insert use.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  applyDelta, applyDone, applyError, applyFallback, applyLost, applySuggestion, cardPlainText,
  createCardState,
} from "../static/panel/card.js";

const SOURCES = [
  { id: "kb-1", title: "Voicemail", url: "https://kb.example.com/vm", snippet: "Press 1", score: 0.9 },
  { id: "kb-2", title: "Transfers", url: "https://kb.example.com/tr", snippet: "Hold", score: 0.5 },
];

function card(init = { trigger: "manual", query: "voicemail?" }) {
  return createCardState("c1", init);
}

function answered(text = "") {
  const state = card();
  applySuggestion(state, { id: "s1", sources: SOURCES, confident: true });
  if (text) applyDelta(state, { text });
  return state;
}

test("a new card is generating, with its trigger and query", () => {
  const state = card({ trigger: "manual", query: "How?" });
  assert.equal(state.key, "c1");
  assert.equal(state.trigger, "manual");
  assert.equal(state.query, "How?");
  assert.equal(state.state, "generating");
  assert.equal(state.final, false);
  assert.equal(card({ trigger: "anything", query: null }).trigger, "utterance");
  assert.equal(card({ trigger: "utterance", query: 42 }).query, "42");
});

test("suggestion: the id and sources once; confident false abstains", () => {
  const state = card();
  assert.equal(applySuggestion(state, { id: "s1", sources: [SOURCES[0], null, "x", SOURCES[1]] }),
    "suggestion"); // an older server sends no "confident": it answers
  assert.equal(state.suggestionId, "s1");
  assert.deepEqual(state.sources, SOURCES);
  assert.equal(applySuggestion(state, { id: "s2", sources: [] }), "");
  assert.equal(state.suggestionId, "s1");

  const abstained = card();
  assert.equal(applySuggestion(abstained, { id: "s3", sources: "nope", confident: false }), "abstained");
  assert.equal(abstained.abstained, true);
  assert.deepEqual(abstained.sources, []);
});

test("delta: appends text, until the card is final or abstained", () => {
  const state = answered("Hello");
  applyDelta(state, { text: ", world" });
  applyDelta(state, {});
  applyDelta(state, null);
  assert.equal(state.text, "Hello, world");
  applyDone(state, { outcome: "completed" });
  applyDelta(state, { text: " more" });
  assert.equal(state.text, "Hello, world");

  const abstained = card();
  applySuggestion(abstained, { id: "s", sources: [], confident: false });
  applyDelta(abstained, { text: "no" });
  assert.equal(abstained.text, "");
});

test("fallback: the article once, partial when text had come", () => {
  const state = answered("Half an");
  assert.equal(applyFallback(state, { reason: "stalled", article: { title: "Voicemail",
    url: "https://kb.example.com/vm", excerpt: "Press 1" } }), "fallback");
  assert.deepEqual(state.fallback, { reason: "stalled", article: { title: "Voicemail",
    url: "https://kb.example.com/vm", excerpt: "Press 1" } });
  assert.equal(state.partial, true);
  assert.equal(applyFallback(state, { reason: "again", article: {} }), "");
  assert.equal(state.fallback.reason, "stalled");

  const bare = answered();
  applyFallback(bare, null);
  assert.deepEqual(bare.fallback, { reason: "", article: { title: "", url: "", excerpt: "" } });
  assert.equal(bare.partial, false);
});

test("done: each outcome's state", () => {
  const done = (outcome, extra = {}, text = "Answer") => {
    const state = answered(text);
    applyDone(state, { outcome, ...extra });
    return state.state;
  };
  assert.equal(done("completed"), "done");
  assert.equal(done("truncated"), "truncated");
  assert.equal(done("fallback"), "fallback");
  assert.equal(done("cancelled"), "cancelled");
  assert.equal(done("cancelled", { stop_reason: "shutdown" }), "interrupted");
  assert.equal(done("something new"), "done");
  assert.equal(done(undefined), "done");
  assert.equal(done("abstained", { stop_reason: "low_confidence" }, ""), "abstained");
  assert.equal(done("abstained", {}, "Text came after all"), "done");
});

test("done: abstained without text but with a fallback is not an abstention", () => {
  const state = answered();
  applyFallback(state, { reason: "timeout", article: { title: "T" } });
  applyDone(state, { outcome: "abstained" });
  assert.equal(state.abstained, false);
  assert.equal(state.state, "done");
});

test("done: only the first counts", () => {
  const state = answered("x");
  applyDone(state, { outcome: "truncated" });
  applyDone(state, { outcome: "completed" });
  assert.equal(state.state, "truncated");
  assert.equal(state.final, true);
});

test("lost: the top source becomes the fallback; without sources an error", () => {
  const state = answered("Partial");
  assert.equal(applyLost(state, "stalled"), "fallback");
  assert.equal(state.state, "fallback");
  assert.deepEqual(state.fallback, { reason: "stalled", article: { title: "Voicemail",
    url: "https://kb.example.com/vm", excerpt: "Press 1" } });
  assert.equal(state.partial, true);
  assert.equal(applyLost(state, "again"), "");

  const early = card();
  assert.equal(applyLost(early, "disconnected"), "");
  assert.equal(early.state, "error");
});

test("lost: a fallback already shown stays, without a second announcement", () => {
  const state = answered();
  applyFallback(state, { reason: "upstream", article: { title: "Server's pick" } });
  assert.equal(applyLost(state, "disconnected"), "");
  assert.equal(state.state, "fallback");
  assert.equal(state.fallback.article.title, "Server's pick");
});

test("lost: an abstained card stays abstained with its articles", () => {
  const state = card();
  applySuggestion(state, { id: "s", sources: SOURCES, confident: false });
  assert.equal(applyLost(state, "disconnected"), "");
  assert.equal(state.state, "abstained");
  assert.equal(state.fallback, null);
});

test("error: once, unless the card is already final", () => {
  const state = card();
  applyError(state, "The server answered 500");
  assert.equal(state.state, "error");
  assert.equal(state.error, "The server answered 500");
  applyError(state, "later");
  assert.equal(state.error, "The server answered 500");
  const done = answered("x");
  applyDone(done, { outcome: "completed" });
  applyError(done, "late");
  assert.equal(done.state, "done");
  assert.equal(done.error, "");
  // Shown on the card as text: kept to a line or two.
  const long = card();
  applyError(long, ` ${"x".repeat(500)} `);
  assert.equal(long.error.length, 160);
  assert.ok(long.error.endsWith("…"));
});

test("plain text: the answer, else the fallback article, never for an abstention", () => {
  assert.equal(cardPlainText(answered("**Press** 1 [1]")), "Press 1");
  const fallback = answered();
  applyFallback(fallback, { article: { title: "Voicemail", url: "https://kb.example.com/vm" } });
  assert.equal(cardPlainText(fallback), "Voicemail\nhttps://kb.example.com/vm");
  const untitled = answered();
  applyFallback(untitled, { article: { url: "https://kb.example.com/vm" } });
  assert.equal(cardPlainText(untitled), "");
  const abstained = card();
  applySuggestion(abstained, { id: "s", sources: SOURCES, confident: false });
  assert.equal(cardPlainText(abstained), "");
  assert.equal(cardPlainText(card()), "");
});

test("suggestion: a customer's 'yes' shows what was searched; their own words do not", () => {
  const yes = card({ trigger: "utterance", query: "yes" });
  applySuggestion(yes, { id: "s", sources: SOURCES, confident: true,
    query: "Are you asking about getting it unlocked?" });
  assert.equal(yes.about, "Are you asking about getting it unlocked?");
  // The customer's turn echoed: normalised, redacted, or cut to its end.
  for (const [said, echoed] of [
    ["My  phone won't CHARGE!", "My phone won't charge!"],
    ["my card is 4111 1111 1111 1111 and autopay fails", "my card is [card] and autopay fails"],
    ["write to jo@example.com please", "write to [email] please"],
    ["so a long story and then my phone broke", "and then my phone broke"],
  ]) {
    const own = card({ trigger: "utterance", query: said });
    applySuggestion(own, { id: "s", sources: SOURCES, confident: true, query: echoed });
    assert.equal(own.about, "", said);
  }
  // A typed question is the agent's own: never annotated; nor is a missing query.
  const typed = card({ trigger: "manual", query: "voicemail?" });
  applySuggestion(typed, { id: "s", sources: SOURCES, confident: true, query: "other words" });
  assert.equal(typed.about, "");
  const old = card({ trigger: "utterance", query: "yes" });
  applySuggestion(old, { id: "s", sources: SOURCES, confident: true });
  assert.equal(old.about, "");
});
