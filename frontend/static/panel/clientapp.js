// The Genesys Client App SDK, when a desktop frames the panel: the lifecycle
// handshake (bootstrap, focus, blur, stop), toasts for what the agent must know, and
// Insert into the reply box. The server names the vendored SDK only when the panel
// is framed by a desktop it allows (a region's Agent Desktop, or dev mode's mock
// one) and the page's template then loads it with a classic script tag, ahead of
// the modules: so the handshake is answered at page load, before any sign-in, on
// every path. Elsewhere (a bare browser, the sign-in callback) every call is a no-op.

const NONE = Object.freeze({
  available: false, handshake: Promise.resolve(), toast() {}, stopped() {}, insert: null,
});

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

// The SDK's own environment table may not know the host (a region newer than the
// vendored file, or the mock desktop): the server has checked the origin against
// the configured desktops, so it is named directly then.
function createApp(ClientApp, config) {
  try {
    return new ClientApp({ gcHostOrigin: config.gcHostOrigin, gcTargetEnv: config.gcTargetEnv });
  } catch {
    return new ClientApp({ pcOrigin: config.gcHostOrigin });
  }
}

function sdkClass() {
  const apps = window.purecloud && window.purecloud.apps;
  return (apps && apps.ClientApp) || null;
}

// The handle: {available, handshake, toast(title, message, type), stopped(),
// insert(text) or null}. handshake resolves once "bootstrapped" has been answered. insert puts the text into the agent's reply box at the cursor: call it only
// from the agent's own action. handlers: {onStop, onFocus, onBlur}, read when each
// hook arrives (so they may be set after the handshake). onStop may return a promise:
// "stopped" is answered once it settles.
export function connectClientApp(config, handlers = {}) {
  const ClientApp = sdkClass();
  if (!ClientApp || !config.clientAppSdk || !config.gcHostOrigin || window.parent === window) {
    return NONE;
  }
  let app;
  try {
    app = createApp(ClientApp, config);
  } catch (error) {
    console.warn("Assist Panel: Client App SDK unavailable:", error.message);
    return NONE;
  }
  const lifecycle = app.lifecycle;
  let answered;
  const handshake = new Promise((resolve) => { answered = resolve; });
  lifecycle.addBootstrapListener(() => {
    lifecycle.bootstrapped();
    answered();
  });
  lifecycle.addFocusListener(() => handlers.onFocus && handlers.onFocus());
  lifecycle.addBlurListener(() => handlers.onBlur && handlers.onBlur());
  lifecycle.addStopListener(() => {
    let stopping;
    try {
      stopping = handlers.onStop && handlers.onStop();
    } catch (error) {
      console.warn("Assist Panel: stopping failed:", error && error.name);
    }
    Promise.resolve(stopping).catch(() => {}).then(() => lifecycle.stopped());
  });
  return {
    available: true,
    handshake,
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

// For a page that learns late that a desktop frames it (back from a sign-in that
// sent the whole panel away, whose callback URL carries no desktop): loads the SDK,
// then connects as above. Never rejects.
export async function loadClientApp(config, handlers = {}) {
  if (!config.clientAppSdk || !config.gcHostOrigin || window.parent === window) return NONE;
  if (!sdkClass()) {
    try {
      await loadScript(config.clientAppSdk);
    } catch (error) {
      console.warn("Assist Panel: Client App SDK unavailable:", error.message);
      return NONE;
    }
  }
  return connectClientApp(config, handlers);
}
