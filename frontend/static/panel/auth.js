// Genesys sign-in with the implicit grant: redirect to authorize, read the token
// from the URL fragment on the way back, then clear the fragment.
import { panelQuery } from "./config.js";

const STATE_PREFIX = "assist-panel.state.";
const TOKEN_KEY = "assist-panel.token";

function randomState() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Sends the browser to the Genesys authorize endpoint; the config rides in
// sessionStorage under the state, since the redirect URI must match exactly.
export function beginSignIn(config) {
  const state = randomState();
  sessionStorage.setItem(STATE_PREFIX + state, JSON.stringify(config));
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
  const state = params.get("state") || "";
  const saved = sessionStorage.getItem(STATE_PREFIX + state);
  sessionStorage.removeItem(STATE_PREFIX + state);
  if (!saved) {
    history.replaceState(null, "", window.location.pathname);
    return { error: "The sign-in answer did not match a sign-in this panel started." };
  }
  const config = JSON.parse(saved);
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
  sessionStorage.setItem(TOKEN_KEY, JSON.stringify(token));
  return { config, token };
}

export function storedToken() {
  try {
    const token = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || "null");
    if (token && token.accessToken && token.expiresAt > Date.now() + 30_000) return token;
  } catch {
    // a damaged entry is as good as none
  }
  return null;
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}
