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
    streamUrl: d.streamUrl || "/api/assist/stream",
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
