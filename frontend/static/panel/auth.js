// Genesys sign-in mechanics. The server signs a single-use `state` and builds the
// authorize URL (implicit grant or PKCE, by its config); the answer comes back to
// this same page, in the fragment (token) or the query (code). Three ways there:
// - redirect: the panel itself goes to the login host and comes back (first sign-in);
// - frame: a hidden frame inside the panel, so the feed stays (silent re-sign-in);
// - popup: a window of its own, for identity providers that refuse to be framed.
// A callback page inside a frame or popup hands the answer to the panel that
// opened it with postMessage, to this origin only, and goes no further.

const MESSAGE = "assist-panel.sign-in";
// A sign-in or renewal request with no answer by then is given up (a network that
// dropped mid-request would leave it, and every renewal queued behind it, waiting
// for ever).
export const REQUEST_TIMEOUT_MS = 15_000;

export class SignInError extends Error {
  // status: the HTTP status; 0 when no answer came (network error, timeout); null
  // when no request failed (the sign-in window's own answer). retryAfter: seconds,
  // from a 429's or 503's Retry-After, else null.
  constructor(code, message, { status = null, retryAfter = null } = {}) {
    super(message || code);
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function postJson(url, body, headers = {}) {
  let response;
  let text;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), // bounds the body's reading too
    });
    text = await response.text();
  } catch {
    throw new SignInError("unreachable", "The server did not answer", { status: 0 });
  }
  let data = null;
  try {
    data = JSON.parse(text);
  } catch {
    // not JSON: an error page of a proxy, say
  }
  if (!response.ok) {
    const retryAfter = Number.parseFloat(response.headers.get("Retry-After"));
    throw new SignInError((data && data.error) || `http_${response.status}`,
      (data && data.message) || `The server answered ${response.status}`,
      { status: response.status, retryAfter: Number.isFinite(retryAfter) ? retryAfter : null });
  }
  return data;
}

// Asks the server for a signed state and the authorize URL for this panel.
export function startSignIn(config) {
  return postJson(config.stateUrl, {
    conversationId: config.conversationId,
    gcHostOrigin: config.gcHostOrigin,
    gcTargetEnv: config.gcTargetEnv,
    langTag: config.langTag,
  });
}

// Hands a sign-in answer to the server; resolves to the session answer.
export function handOff(sessionUrl, body) {
  return postJson(sessionUrl, body);
}

// A new session for the current one's holder, with the Genesys token the page holds
// (checked with Genesys again); resolves to the session answer.
export function renewSession(config, session, accessToken) {
  return postJson(config.renewUrl, {
    accessToken,
    gcHostOrigin: config.gcHostOrigin,
    gcTargetEnv: config.gcTargetEnv,
    langTag: config.langTag,
  }, { Authorization: `Bearer ${session}` });
}

// The sign-in answer in this page's URL, or null:
// {state, accessToken, expiresIn} | {state, code} | {state, error, description}.
export function readCallback() {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const query = new URLSearchParams(window.location.search);
  const params = fragment.has("state") ? fragment : query.has("state") ? query : null;
  if (!params || !(params.has("access_token") || params.has("code") || params.has("error"))) {
    return null;
  }
  const answer = { state: params.get("state") };
  if (params.has("error")) {
    answer.error = params.get("error");
    answer.description = params.get("error_description") || "";
  } else if (params.has("access_token")) {
    answer.accessToken = params.get("access_token");
    answer.expiresIn = Math.max(1, Number(params.get("expires_in") || "0") || 1);
  } else {
    answer.code = params.get("code");
  }
  // Never leave a token or code in the address bar or the history.
  history.replaceState(null, "", window.location.pathname);
  return answer;
}

function sameOrigin(win) {
  try {
    return Boolean(win) && win !== window && win.location.origin === window.location.origin;
  } catch {
    return false; // a cross-origin window: Agent Desktop itself
  }
}

// In a sign-in popup or frame: pass the answer to the panel and return true.
export function relayCallback(answer) {
  const target = sameOrigin(window.opener) ? window.opener
    : sameOrigin(window.parent) ? window.parent : null;
  if (!target) return false;
  target.postMessage({ type: MESSAGE, answer }, window.location.origin);
  if (target === window.opener) window.close();
  return true;
}

function waitForAnswer(source, { timeoutMs, isClosed }) {
  return new Promise((resolve, reject) => {
    let timer = 0;
    let poll = 0;
    function finish(fn, value) {
      window.removeEventListener("message", onMessage);
      clearTimeout(timer);
      clearInterval(poll);
      fn(value);
    }
    function onMessage(event) {
      if (event.origin !== window.location.origin || event.source !== source()) return;
      if (!event.data || event.data.type !== MESSAGE) return;
      const answer = event.data.answer || {};
      if (answer.error) finish(reject, new SignInError(answer.error, answer.description));
      else finish(resolve, answer);
    }
    window.addEventListener("message", onMessage);
    if (timeoutMs) {
      timer = setTimeout(() => finish(reject, new SignInError("timeout",
        "Sign-in did not finish")), timeoutMs);
    }
    if (isClosed) {
      poll = setInterval(() => {
        if (isClosed()) finish(reject, new SignInError("closed", "The sign-in window was closed"));
      }, 500);
    }
  });
}

// Sends the whole panel to the login host; the answer comes back to a fresh page.
export async function signInByRedirect(config) {
  const { authorizeUrl } = await startSignIn(config);
  window.location.assign(authorizeUrl);
  return new Promise(() => {}); // the page is going away
}

// Signs in in a hidden frame (silent when the agent is signed in to Genesys).
export async function signInInFrame(config, { timeoutMs = 10_000, container = document.body } = {}) {
  const { authorizeUrl } = await startSignIn(config);
  const frame = document.createElement("iframe");
  frame.className = "ap-signin-frame";
  frame.title = "Genesys Cloud sign-in";
  frame.hidden = true;
  const answer = waitForAnswer(() => frame.contentWindow, { timeoutMs });
  frame.src = authorizeUrl;
  container.append(frame);
  try {
    return await answer;
  } finally {
    frame.remove();
  }
}

// Signs in in a popup. Call it from a click: browsers block popups opened otherwise.
export async function signInInPopup(config) {
  // Open first, synchronously inside the click, then point it at the login host.
  const popup = window.open("about:blank", "assist-panel-sign-in", "popup,width=520,height=680");
  if (!popup) throw new SignInError("popup_blocked", "The browser blocked the sign-in window");
  try {
    const { authorizeUrl } = await startSignIn(config);
    const answer = waitForAnswer(() => popup, { isClosed: () => popup.closed });
    popup.location.href = authorizeUrl;
    return await answer;
  } catch (error) {
    if (!popup.closed) popup.close();
    throw error;
  }
}
