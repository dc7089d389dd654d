// Genesys sign-in with the implicit grant: redirect to authorize, read the token
// from the URL fragment on the way back, then clear the fragment.
import { panelQuery } from "./config.js";
import { getItem, persistent, removeItem, setItem } from "./store.js";

const STATE_PREFIX = "assist-panel.state.";
const TOKEN_KEY = "assist-panel.token";

function randomState() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function encodeState(nonce, config) {
  const json = JSON.stringify({ n: nonce, c: config });
  return nonce + "." + btoa(String.fromCharCode(...new TextEncoder().encode(json)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeState(state) {
  const [nonce, packed = ""] = state.split(".", 2);
  try {
    const binary = atob(packed.replace(/-/g, "+").replace(/_/g, "/"));
    const decoded = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
    return decoded.n === nonce ? { nonce, config: decoded.c } : null;
  } catch {
    return null;
  }
}

// Sends the browser to the Genesys authorize endpoint. The redirect URI must
// match exactly, so the panel's own values (conversation, host) ride in `state`;
// where storage works, the nonce is also kept to check the answer against.
export function beginSignIn(config) {
  const nonce = randomState();
  const state = encodeState(nonce, config);
  setItem(STATE_PREFIX + nonce, "1");
  const url = new URL("/oauth/authorize", config.loginBase);
  url.searchParams.set("response_type", "token");
  url.searchParams.set("client_id", config.clientId);
  url.searchParams.set("redirect_uri", config.redirectUri);
  url.searchParams.set("state", state);
  window.location.assign(url.toString());
}

// Reads a sign-in answer from the fragment, if there is one.
// Returns null, {error}, or {config, token}.
export function completeSignIn() {
  const hash = window.location.hash.slice(1);
  if (!hash) return null;
  const params = new URLSearchParams(hash);
  if (!params.has("access_token") && !params.has("error")) return null;
  const decoded = decodeState(params.get("state") || "");
  const started = decoded && getItem(STATE_PREFIX + decoded.nonce);
  if (decoded) removeItem(STATE_PREFIX + decoded.nonce);
  // Without storage (blocked in a third-party frame) the nonce cannot be checked
  // here; the server-signed state of the sign-in issue closes that gap.
  if (!decoded || (persistent && !started)) {
    history.replaceState(null, "", window.location.pathname);
    return { error: "The sign-in answer did not match a sign-in this panel started." };
  }
  const config = decoded.config;
  // Never leave the token in the address bar or history.
  history.replaceState(null, "", window.location.pathname + "?" + panelQuery(config));
  if (params.has("error")) {
    return { error: params.get("error_description") || params.get("error"), config };
  }
  const expiresIn = Number(params.get("expires_in") || "0");
  const token = {
    accessToken: params.get("access_token"),
    expiresAt: Date.now() + Math.max(0, expiresIn) * 1000,
  };
  setItem(TOKEN_KEY, JSON.stringify(token));
  return { config, token };
}

export function storedToken() {
  try {
    const token = JSON.parse(getItem(TOKEN_KEY) || "null");
    if (token && token.accessToken && token.expiresAt > Date.now() + 30_000) return token;
  } catch {
    // a damaged entry is as good as none
  }
  return null;
}

export function forgetToken() {
  removeItem(TOKEN_KEY);
}
