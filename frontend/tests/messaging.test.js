// Unit tests of static/panel/messaging.js's followMessages: a refused request goes to
// onAuthError with its own error, so the watcher knows which token was refused.
import assert from "node:assert/strict";
import { test } from "node:test";

import { followMessages } from "../static/panel/messaging.js";

class Refused extends Error {
  constructor(status, token) {
    super(`Genesys answered ${status}`);
    this.status = status;
    this.token = token;
  }
}

function follow(fetchJson) {
  const refusals = [];
  const messages = followMessages({
    conversationId: "c1",
    fetchJson,
    onUtterance: () => {},
    onEnded: () => {},
    onAuthError: (error) => refusals.push(error),
    backoff: { baseMs: 1, maxMs: 1 },
  });
  return { messages, refusals };
}

test("a 401 reaches onAuthError with the error of the request refused", async () => {
  const { messages, refusals } = follow(async () => { throw new Refused(401, "old-token"); });
  assert.equal(await messages.refresh(), null);
  assert.equal(refusals.length, 1);
  assert.equal(refusals[0].token, "old-token");
  messages.close();
});

test("other failures are not auth errors", async () => {
  const { messages, refusals } = follow(async () => { throw new Refused(503, "t"); });
  assert.equal(await messages.refresh(), null);
  assert.deepEqual(refusals, []);
  messages.close();
});
