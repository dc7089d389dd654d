// Unit tests of static/panel/actions.js: feedback that gets no answer is given up
// when its timeout fires, rather than left waiting for ever.
import assert from "node:assert/strict";
import { test } from "node:test";

import { FEEDBACK_TIMEOUT_MS, sendFeedback } from "../static/panel/actions.js";

test("feedback with no answer fails when its timeout fires", async (t) => {
  const realFetch = globalThis.fetch;
  const realTimeout = AbortSignal.timeout;
  const timeouts = [];
  const sent = [];
  AbortSignal.timeout = (ms) => {
    const controller = new AbortController();
    timeouts.push({ ms, controller });
    return controller.signal;
  };
  globalThis.fetch = (url, init) => new Promise((resolve, reject) => {
    sent.push({ url, body: JSON.parse(init.body), auth: init.headers.Authorization });
    init.signal.addEventListener("abort", () => reject(init.signal.reason), { once: true });
  });
  t.after(() => {
    globalThis.fetch = realFetch;
    AbortSignal.timeout = realTimeout;
  });
  const sending = sendFeedback("/api/feedback", "sess", { suggestionId: "sg", rating: "up",
    copied: true });
  assert.deepEqual(sent, [{ url: "/api/feedback", auth: "Bearer sess",
    body: { suggestionId: "sg", rating: "up", copied: true } }]);
  assert.equal(timeouts.length, 1);
  assert.equal(timeouts[0].ms, FEEDBACK_TIMEOUT_MS);
  timeouts[0].controller.abort(new DOMException("timed out", "TimeoutError"));
  await assert.rejects(sending, { name: "TimeoutError" });
});
