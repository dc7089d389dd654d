// The Genesys Client App SDK, when the panel runs inside Agent Desktop: lifecycle
// hooks (bootstrap, focus, blur, stop) and toasts for what the agent must know.
// The server names the vendored SDK only for a real Agent Desktop host origin;
// elsewhere (dev mode, tests, a bare browser) every call here is a no-op.

const NONE = Object.freeze({ available: false, toast() {}, stopped() {} });

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.addEventListener("load", resolve, { once: true });
    script.addEventListener("error", () => reject(new Error("Client App SDK did not load")),
      { once: true });
    document.head.append(script);
  });
}

// Resolves to {available, toast(title, message, type), stopped()}, plus
// insert(text) when the SDK is there: the text goes into the agent's reply box at
// the cursor (only ever call it from the agent's own action).
// handlers: {onFocus, onBlur, onStop} (all optional).
export async function startClientApp(config, handlers = {}) {
  if (!config.clientAppSdk || !config.gcHostOrigin || window.parent === window) return NONE;
  let app;
  try {
    await loadScript(config.clientAppSdk);
    const ClientApp = window.purecloud && window.purecloud.apps && window.purecloud.apps.ClientApp;
    if (!ClientApp) return NONE;
    app = new ClientApp({ gcHostOrigin: config.gcHostOrigin, gcTargetEnv: config.gcTargetEnv });
  } catch (error) {
    console.warn("Assist Panel: Client App SDK unavailable:", error.message);
    return NONE;
  }
  const lifecycle = app.lifecycle;
  lifecycle.addBootstrapListener(() => lifecycle.bootstrapped());
  lifecycle.addFocusListener(() => handlers.onFocus && handlers.onFocus());
  lifecycle.addBlurListener(() => handlers.onBlur && handlers.onBlur());
  lifecycle.addStopListener(() => {
    if (handlers.onStop) handlers.onStop();
    lifecycle.stopped();
  });
  return {
    available: true,
    toast(title, message, type = "error") {
      app.alerting.showToastPopup(title, message, { type, timeout: 8, showCloseButton: true });
    },
    stopped() {
      lifecycle.stopped();
    },
    insert(text) {
      app.conversations.proposeInteractionMessage("insert", text);
    },
  };
}
