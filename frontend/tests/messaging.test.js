// Unit tests of static/panel/messaging.js's followMessages: a refused request goes to
// onAuthError with its own error, so the watcher knows which token was refused; a
// message read refused for good is told once and not retried; transient ones are.
import assert from "node:assert/strict";
import { test } from "node:test";

import { followMessages, isTransient, refusedPermissions } from "../static/panel/messaging.js";

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

// A refusal as genesys-api.js throws it: the status, the platform's code and the
// permissions its body named.
class Denied extends Error {
  constructor(status, code = "", permissions = []) {
    super(`Genesys answered ${status}`);
    this.status = status;
    this.code = code;
    this.permissions = permissions;
  }
}

const CHAT = (customerLeft = false) => [
  { purpose: "customer", ...(customerLeft ? { endTime: "2026-01-01T00:01:00.000Z" } : {}),
    messages: [{ messages: [{ messageId: "m1", messageTime: "2026-01-01T00:00:00.000Z" }] }] },
  { purpose: "agent", messages: [{ messages: [] }] },
];

const settle = () => new Promise((resolve) => setImmediate(resolve));

// followMessages on mocked timers, its message reads answered by `answer(call)`.
function watched(t, answer) {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const reads = [];
  const told = { refused: [], ended: 0, utterances: [] };
  const messages = followMessages({
    conversationId: "c1",
    async fetchJson(method, path) {
      if (!path.includes("/messages/")) return { participants: CHAT() };
      reads.push(path);
      return answer(reads.length);
    },
    onUtterance: (u) => told.utterances.push(u.text),
    onEnded: () => { told.ended += 1; },
    onAuthError: () => assert.fail("no 401 here"),
    onRefused: (permissions) => told.refused.push(permissions),
    backoff: { baseMs: 1_000, maxMs: 30_000 },
  });
  t.after(() => messages.close());
  return { messages, reads, told };
}

test("a message read refused for missing permissions says which, once, and is not retried",
  async (t) => {
    const named = ["conversation:message:view", "conversation:webmessaging:view"];
    const { messages, reads, told } = watched(t, () => {
      throw new Denied(403, "missing.any.permissions", named);
    });
    messages.sync(CHAT());
    await settle();
    assert.deepEqual(told.refused, [named]);
    t.mock.timers.tick(10 * 60_000); // long past every backoff
    await settle();
    messages.sync(CHAT()); // the next event does not ask again either
    await messages.refresh();
    await settle();
    assert.equal(reads.length, 1);
    assert.deepEqual(told.refused, [named]);
    messages.sync(CHAT(true)); // the customer's leaving is still seen
    assert.equal(told.ended, 1);
  });

test("what a refusal names: its permissions, else those a message read needs, none for scopes",
  () => {
    assert.deepEqual(refusedPermissions(new Denied(403, "missing.permissions", ["a:b:c"])),
      ["a:b:c"]);
    assert.deepEqual(refusedPermissions(new Denied(403)),
      ["conversation:message:view", "conversation:webmessaging:view"]);
    assert.deepEqual(refusedPermissions(new Denied(403, "missing.any.scopes")), []);
  });

test("only transient failures are retried: no answer, timeouts, busy, server errors", () => {
  for (const status of [0, 408, 429, 500, 502, 503, 504]) {
    assert.ok(isTransient(new Denied(status)), String(status));
  }
  for (const status of [400, 403, 404, 409]) assert.ok(!isTransient(new Denied(status)));
});
