// Unit tests of static/panel/genesys-api.js: a refusal carries the platform's error
// code and the permissions its body names, and nothing else of the body.
import assert from "node:assert/strict";
import { test } from "node:test";

import { genesysApi, readRefusal } from "../static/panel/genesys-api.js";

test("readRefusal: the code and the named permissions, only what looks like them", () => {
  const body = { code: "missing.any.permissions", status: 403, message: "no",
    messageParams: { permissions: "conversation:message:view, conversation:webmessaging:view" } };
  assert.deepEqual(readRefusal(JSON.stringify(body)), { code: "missing.any.permissions",
    permissions: ["conversation:message:view", "conversation:webmessaging:view"] });
  const hostile = { code: "<b>x</b>", messageParams: { permissions: "<img>, a:b:c, nocolon" } };
  assert.deepEqual(readRefusal(JSON.stringify(hostile)), { code: "", permissions: ["a:b:c"] });
  for (const text of ["", "not json", "null", "[]", JSON.stringify({ messageParams: 5 })]) {
    assert.deepEqual(readRefusal(text), { code: "", permissions: [] }, text);
  }
});

test("a 403 is thrown with its code and permissions", async (t) => {
  const realFetch = globalThis.fetch;
  t.after(() => { globalThis.fetch = realFetch; });
  globalThis.fetch = async () => new Response(JSON.stringify({
    code: "missing.any.permissions", messageParams: { permissions: "conversation:message:view" },
  }), { status: 403 });
  const request = genesysApi("https://api.example.test");
  await assert.rejects(request("GET", "/api/v2/x", { token: "t" }), (error) =>
    error.status === 403 && error.code === "missing.any.permissions"
    && error.permissions.join() === "conversation:message:view");
});
