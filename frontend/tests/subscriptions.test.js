// Unit tests of static/panel/subscriptions.js: which topics Genesys subscribed and
// which it refused, from each shape of answer the platform gives.
import assert from "node:assert/strict";
import { test } from "node:test";

import { readTopicStates, subscribeTopics } from "../static/panel/subscriptions.js";

const VOICE = "v2.conversations.c1.transcription";
const USER = "v2.users.u1.conversations";

class Refused extends Error {
  constructor(status) {
    super(`Genesys answered ${status}`);
    this.status = status;
  }
}

// A stand-in for genesysApi's request: records the calls, answers from `answers`.
function platform(answers) {
  const calls = [];
  const request = async (method, path, body) => {
    calls.push({ method, path, topics: body.map((t) => t.id) });
    const answer = answers.shift();
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { calls, request };
}

test("each topic's state is read from the listing", () => {
  const answer = { entities: [
    { id: VOICE, state: "Rejected", rejectionReason: "Missing permission",
      missingPermissions: ["conversation:transcription:view"] },
    { id: USER, state: "Permitted" },
  ] };
  assert.deepEqual(readTopicStates(answer, [VOICE, USER]), {
    permitted: [USER],
    refused: [{ id: VOICE, reason: "Missing permission",
      missingPermissions: ["conversation:transcription:view"] }],
  });
});

test("a listing without states (an older platform) means subscribed", () => {
  const answer = { entities: [{ id: VOICE }, { id: USER }] };
  assert.deepEqual(readTopicStates(answer, [VOICE, USER]),
    { permitted: [VOICE, USER], refused: [] });
});

test("a topic left out of the answer is refused, with the permission it is known to need", () => {
  const state = readTopicStates({ entities: [{ id: USER, state: "Permitted" }] }, [VOICE, USER]);
  assert.deepEqual(state.refused,
    [{ id: VOICE, reason: "", missingPermissions: ["conversation:transcription:view"] }]);
  assert.deepEqual(readTopicStates(null, [USER]).refused,
    [{ id: USER, reason: "", missingPermissions: [] }]);
});

test("unexpected values in a refusal are dropped, not passed on", () => {
  const answer = { entities: [{ id: VOICE, state: "Rejected", rejectionReason: 42,
    missingPermissions: ["", null, "conversation:transcription:view"] }] };
  assert.deepEqual(readTopicStates(answer, [VOICE]).refused,
    [{ id: VOICE, reason: "", missingPermissions: ["conversation:transcription:view"] }]);
});

test("the topics are asked in one PUT with ignoreErrors", async () => {
  const { calls, request } = platform([{ entities: [
    { id: VOICE, state: "Permitted" }, { id: USER, state: "Permitted" }] }]);
  const result = await subscribeTopics(request, "ch/1", [VOICE, USER]);
  assert.deepEqual(result, { permitted: [VOICE, USER], refused: [] });
  assert.deepEqual(calls, [{ method: "PUT",
    path: "/api/v2/notifications/channels/ch%2F1/subscriptions?ignoreErrors=true",
    topics: [VOICE, USER] }]);
});

test("a platform refusing the whole request is asked one topic at a time", async () => {
  const { calls, request } = platform([
    new Refused(403),
    new Refused(403),
    { entities: [{ id: USER, state: "Permitted" }] },
  ]);
  const result = await subscribeTopics(request, "ch", [VOICE, USER]);
  assert.deepEqual(result, { permitted: [USER], refused: [
    { id: VOICE, reason: "", missingPermissions: ["conversation:transcription:view"] }] });
  assert.deepEqual(calls.map((c) => [c.method, c.topics]),
    [["PUT", [VOICE, USER]], ["POST", [VOICE]], ["POST", [USER]]]);
});

test("one refused topic alone is refused without asking again", async () => {
  const { calls, request } = platform([new Refused(400)]);
  const result = await subscribeTopics(request, "ch", [USER]);
  assert.deepEqual(result,
    { permitted: [], refused: [{ id: USER, reason: "", missingPermissions: [] }] });
  assert.equal(calls.length, 1);
});

test("errors that are not refusals reach the caller", async () => {
  for (const status of [401, 404, 500, 0]) {
    const { request } = platform([new Refused(status)]);
    await assert.rejects(subscribeTopics(request, "ch", [VOICE, USER]), { status });
  }
  const { request } = platform([new Refused(403), new Refused(401)]);
  await assert.rejects(subscribeTopics(request, "ch", [VOICE, USER]), { status: 401 });
});
