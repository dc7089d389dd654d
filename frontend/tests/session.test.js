// Unit tests of static/panel/session.js: when the page takes its Genesys token to end,
// which decides when it signs in again before the live transcript falls silent.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Sessions, tokenEnd } from "../static/panel/session.js";

const HOUR = 3_600_000;

function answer(token, genesysExpiresAt) {
  return { session: "s", expiresAt: genesysExpiresAt, genesys: { accessToken: token,
    expiresAt: genesysExpiresAt }, context: {} };
}

test("the sign-in's own word first, then the same token's known end, then the server's", () => {
  assert.equal(tokenEnd({ saidMs: 5, sameToken: true, previous: 7, server: 9 }), 5);
  assert.equal(tokenEnd({ sameToken: true, previous: 7, server: 9 }), 7);
  assert.equal(tokenEnd({ sameToken: false, previous: 7, server: 9 }), 9);
  assert.equal(tokenEnd({ sameToken: true, previous: 0, server: 9 }), 9);
});

test("an implicit token's end outlives the short sessions renewed with it", () => {
  // Regression: with the implicit grant the page planned by genesys.expiresAt, which is
  // only the session's end (at most 5 minutes), never the token's.
  const sessions = new Sessions({ conversationId: "c" });
  const now = Date.now();
  sessions.keep(answer("t1", now + 300_000), { saidMs: now + 2 * HOUR });
  assert.equal(sessions.tokenExpiresAt, now + 2 * HOUR);
  sessions.keep(answer("t1", now + 600_000)); // renewed with the same token
  assert.equal(sessions.tokenExpiresAt, now + 2 * HOUR);
  sessions.keep(answer("t2", now + 900_000)); // a code exchange's new token
  assert.equal(sessions.tokenExpiresAt, now + 900_000);
});

test("a token near its end is not used for a renewal, whatever the session says", () => {
  const sessions = new Sessions({ conversationId: "c" });
  const now = Date.now();
  sessions.keep(answer("t1", now + HOUR), { saidMs: now + 30_000 });
  assert.equal(sessions.tokenUsable, false);
  sessions.keep(answer("t2", now + HOUR), { saidMs: now + 2 * HOUR });
  assert.equal(sessions.tokenUsable, true);
});
