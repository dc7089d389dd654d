// Unit tests of static/panel/config.js: the panel's settings from its data-*
// attributes, and the Genesys URL variables put back after sign-in.
import assert from "node:assert/strict";
import { test } from "node:test";

import { panelQuery, readConfig } from "../static/panel/config.js";

const root = (dataset) => ({ dataset });

test("defaults when the template sets nothing", () => {
  assert.deepEqual(readConfig(root({})), {
    conversationId: "",
    gcHostOrigin: "",
    gcTargetEnv: "",
    langTag: "en-US",
    popupSignIn: false,
    clientAppSdk: "",
    stateUrl: "/auth/state",
    sessionUrl: "/api/session",
    renewUrl: "/api/session/renew",
    streamUrl: "/api/assist/stream",
    feedbackUrl: "/api/feedback",
    stallMs: 20_000,
  });
});

test("the template's values, as the dataset gives them (strings)", () => {
  const config = readConfig(root({
    conversationId: "c-1", gcHostOrigin: "https://apps.mypurecloud.ie", gcTargetEnv: "prod-euw1",
    langTag: "fr-CA", popupSignIn: "true", clientAppSdk: "/static/vendor/sdk.js",
    streamUrl: "/s", stallMs: "30000",
  }));
  assert.equal(config.conversationId, "c-1");
  assert.equal(config.langTag, "fr-CA");
  assert.equal(config.popupSignIn, true);
  assert.equal(config.clientAppSdk, "/static/vendor/sdk.js");
  assert.equal(config.streamUrl, "/s");
  assert.equal(config.stallMs, 30_000);
});

test("popup sign-in only for exactly \"true\"; a stall time only when a positive integer", () => {
  for (const value of ["1", "TRUE", "yes", ""]) {
    assert.equal(readConfig(root({ popupSignIn: value })).popupSignIn, false, value);
  }
  for (const value of ["0", "-5", "abc", "", "NaN"]) {
    assert.equal(readConfig(root({ stallMs: value })).stallMs, 20_000, value);
  }
  assert.equal(readConfig(root({ stallMs: "1500.9" })).stallMs, 1500);
});

test("panelQuery: the Genesys URL variables that are set, popup sign-in as gcUsePopupAuth", () => {
  assert.equal(panelQuery(readConfig(root({}))), "langTag=en-US");
  const config = readConfig(root({ conversationId: "c 1&x", gcHostOrigin: "https://apps.x",
    gcTargetEnv: "prod", langTag: "de", popupSignIn: "true" }));
  const query = new URLSearchParams(panelQuery(config));
  assert.deepEqual([...query], [["conversationId", "c 1&x"], ["gcHostOrigin", "https://apps.x"],
    ["gcTargetEnv", "prod"], ["langTag", "de"], ["gcUsePopupAuth", "true"]]);
});
