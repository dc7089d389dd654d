function positiveInt(value, fallback) {
  const number = Number.parseInt(value, 10);
  return Number.isFinite(number) && number > 0 ? number : fallback;
}

// The panel's configuration, read from data-* attributes of the root element.
export function readConfig(root) {
  const d = root.dataset;
  return {
    conversationId: d.conversationId || "",
    gcHostOrigin: d.gcHostOrigin || "",
    gcTargetEnv: d.gcTargetEnv || "",
    langTag: d.langTag || "en-US",
    popupSignIn: d.popupSignIn === "true",
    clientAppSdk: d.clientAppSdk || "",
    stateUrl: d.stateUrl || "/auth/state",
    sessionUrl: d.sessionUrl || "/api/session",
    renewUrl: d.renewUrl || "/api/session/renew",
    streamUrl: d.streamUrl || "/api/assist/stream",
    feedbackUrl: d.feedbackUrl || "/api/feedback",
    // No byte on a suggestion stream for this long: the connection is dead (the
    // server sends a keep-alive comment every ASSIST_SSE_PING_S, 15 s by default).
    stallMs: positiveInt(d.stallMs, 20_000),
  };
}

// The Genesys URL variables, to put back in the address bar after sign-in.
export function panelQuery(config) {
  const q = new URLSearchParams();
  if (config.conversationId) q.set("conversationId", config.conversationId);
  if (config.gcHostOrigin) q.set("gcHostOrigin", config.gcHostOrigin);
  if (config.gcTargetEnv) q.set("gcTargetEnv", config.gcTargetEnv);
  if (config.langTag) q.set("langTag", config.langTag);
  if (config.popupSignIn) q.set("gcUsePopupAuth", "true");
  return q.toString();
}
