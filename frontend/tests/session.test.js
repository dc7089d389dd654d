// Unit tests of static/panel/session.js: when the page takes its Genesys token to end,
// which decides when it signs in again before the live transcript falls silent; and
// renewals that get no answer or a busy server (timed out, tried again, bounded).
import assert from "node:assert/strict";
import { test } from "node:test";

import { REQUEST_TIMEOUT_MS } from "../static/panel/auth.js";
import { Sessions, isTransient, retryDelay, tokenEnd } from "../static/panel/session.js";

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

// Renewal requests: a fetch the test answers, and AbortSignal.timeout() replaced by
// signals the test fires (the request's timeout, without waiting for it).
function fakeNetwork(t) {
  const requests = [];
  const timeouts = [];
  const realFetch = globalThis.fetch;
  const realTimeout = AbortSignal.timeout;
  AbortSignal.timeout = (ms) => {
    const controller = new AbortController();
    timeouts.push({ ms, fire: () => controller.abort(new DOMException("timed out", "TimeoutError")) });
    return controller.signal;
  };
  globalThis.fetch = (url, init) => new Promise((resolve, reject) => {
    requests.push({ url, init, resolve });
    init.signal.addEventListener("abort", () => reject(init.signal.reason), { once: true });
  });
  t.after(() => {
    globalThis.fetch = realFetch;
    AbortSignal.timeout = realTimeout;
  });
  t.mock.timers.enable({ apis: ["setTimeout"] });
  return { requests, timeouts };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

function signedIn() {
  const sessions = new Sessions({ conversationId: "c", renewUrl: "/renew" });
  const now = Date.now();
  sessions.keep(answer("t1", now + HOUR), { saidMs: now + 2 * HOUR });
  return sessions;
}

function jsonResponse(status, body, headers = {}) {
  return new Response(JSON.stringify(body), { status,
    headers: { "Content-Type": "application/json", ...headers } });
}

test("a renewal that gets no answer times out, is tried a few times, then fails", async (t) => {
  const { requests, timeouts } = fakeNetwork(t);
  const sessions = signedIn();
  const renewal = sessions.renew();
  const failed = assert.rejects(renewal, (error) => error.code === "unreachable"
    && error.status === 0 && isTransient(error));
  for (let attempt = 0; attempt < 4; attempt += 1) {
    await settle();
    assert.equal(requests.length, attempt + 1);
    assert.equal(timeouts[attempt].ms, REQUEST_TIMEOUT_MS);
    timeouts[attempt].fire(); // the network dropped: no answer comes
    await settle();
    t.mock.timers.tick(30_000);
  }
  await failed;
  await settle();
  assert.equal(requests.length, 4); // bounded
  assert.equal(sessions.renewing, null); // the next renewal asks again
  sessions.renew().catch(() => {});
  await settle();
  assert.equal(requests.length, 5);
  timeouts[4].fire();
});

test("a busy server is asked again after its Retry-After, and the answer is kept", async (t) => {
  const { requests } = fakeNetwork(t);
  const sessions = signedIn();
  const renewal = sessions.renew();
  await settle();
  requests[0].resolve(jsonResponse(503, { error: "genesys_unavailable", message: "busy" },
    { "Retry-After": "3" }));
  await settle();
  t.mock.timers.tick(2_999);
  await settle();
  assert.equal(requests.length, 1);
  t.mock.timers.tick(1);
  await settle();
  assert.equal(requests.length, 2);
  requests[1].resolve(jsonResponse(200, answer("t1", Date.now() + HOUR)));
  const result = await renewal;
  assert.equal(result.genesys.accessToken, "t1");
});

test("a refusal that no retry can change fails at once", async (t) => {
  const { requests } = fakeNetwork(t);
  const sessions = signedIn();
  const renewal = sessions.renew();
  await settle();
  requests[0].resolve(jsonResponse(403, { error: "org_not_allowed", message: "no" }));
  await assert.rejects(renewal, (error) => error.code === "org_not_allowed"
    && !isTransient(error));
  assert.equal(requests.length, 1);
});

test("retry pauses grow, follow a Retry-After, and are bounded", () => {
  assert.deepEqual([0, 1, 2].map((n) => retryDelay({}, n)), [1_000, 2_000, 4_000]);
  assert.equal(retryDelay({ retryAfter: 7 }, 0), 7_000);
  assert.equal(retryDelay({ retryAfter: 3_600 }, 0), 30_000);
  assert.equal(retryDelay({ retryAfter: null }, 10), 30_000);
});
