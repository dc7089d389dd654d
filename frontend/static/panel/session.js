// The panel session: what POST /api/session answered, kept in memory only (never in
// storage another script of the origin could read later): a reload signs in again,
// silently where the login host allows it.
// Renewal never navigates away, so the feed survives it: while the Genesys token
// is still good, the server checks it with Genesys again and signs a new session
// for the current one's holder (POST /api/session/renew); once the token has
// expired or been revoked, a hidden-frame sign-in gets a new one; if that cannot
// work (the login host refuses frames, or wants the agent to type),
// `needsInteraction` is set and the page offers a popup sign-in from a click.
// A renewal that fails for want of an answer (network, timeout) or of a free server
// (429, 502, 503, 504) is tried again a few times, after growing pauses.
import { handOff, renewSession, signInInFrame, signInInPopup } from "./auth.js";

const MARGIN_MS = 60_000;
const RENEW_RETRIES = 3;
const RETRY_BASE_MS = 1_000; // 1 s, 2 s, 4 s; a Retry-After instead when there is one
const RETRY_MAX_MS = 30_000;
const BUSY = new Set([429, 502, 503, 504]);
// Renewal answers after which only a new sign-in helps.
const SIGN_IN_AGAIN = new Set(["genesys_token_rejected", "session_expired", "invalid_session",
  "token_mismatch"]);

// A failure that may pass by itself: no answer, or a server too busy to give one.
export function isTransient(error) {
  return Boolean(error) && (error.status === 0 || BUSY.has(error.status));
}

export function retryDelay(error, attempt) {
  const said = error && error.retryAfter != null ? error.retryAfter * 1000 : null;
  return Math.min(RETRY_MAX_MS, said ?? RETRY_BASE_MS * 2 ** attempt);
}

export class SessionError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

// When a Genesys token ends, as far as the page knows: what the sign-in said (the
// implicit grant's expires_in: the browser's own word, good enough to plan by), else
// for a renewal with the same token what was known before, else the server's
// `genesys.expiresAt` (Genesys's own word at a code exchange; with the implicit grant
// only the session's end).
export function tokenEnd({ saidMs = 0, sameToken = false, previous = 0, server = 0 }) {
  if (saidMs > 0) return saidMs;
  if (sameToken && previous > 0) return previous;
  return server;
}

export class Sessions {
  constructor(config, { onChange = () => {} } = {}) {
    this.config = config;
    this.onChange = onChange;
    this.current = null;
    this.renewing = null;
    this.tokenExpiresAt = 0; // tokenEnd(): when the current Genesys token ends
  }

  get value() {
    return this.current ? this.current.session : "";
  }

  get genesysToken() {
    return this.current ? this.current.genesys.accessToken : "";
  }

  get tokenUsable() {
    const end = Math.min(this.current ? this.current.genesys.expiresAt : 0,
      this.tokenExpiresAt || Infinity);
    return Boolean(this.current) && end > Date.now() + MARGIN_MS;
  }

  // Hands a sign-in answer to the server and keeps the session it answers.
  async accept(answer) {
    const body = answer.code ? { state: answer.state, code: answer.code }
      : { state: answer.state, accessToken: answer.accessToken, expiresIn: answer.expiresIn };
    const seconds = Number(answer.expiresIn);
    const saidMs = seconds > 0 ? Date.now() + seconds * 1000 : 0;
    return this.keep(await handOff(this.config.sessionUrl, body), { saidMs });
  }

  keep(result, { saidMs = 0 } = {}) {
    this.tokenExpiresAt = tokenEnd({
      saidMs,
      sameToken: Boolean(this.current)
        && this.current.genesys.accessToken === result.genesys.accessToken,
      previous: this.tokenExpiresAt,
      server: result.genesys.expiresAt,
    });
    this.current = result;
    if (!this.config.conversationId) this.config = { ...this.config, ...result.context };
    this.onChange(result);
    return result;
  }

  // A fresh session without leaving the page; one renewal at a time. Rejects with
  // the last error when transient failures outlast the retries (isTransient()).
  renew({ tokenExpired = false } = {}) {
    if (!this.renewing) {
      this.renewing = this.renewRetrying(tokenExpired).finally(() => { this.renewing = null; });
    }
    return this.renewing;
  }

  async renewRetrying(tokenExpired) {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await this.renewOnce(tokenExpired);
      } catch (error) {
        if (!isTransient(error) || attempt >= RENEW_RETRIES) throw error;
        await new Promise((resolve) => setTimeout(resolve, retryDelay(error, attempt)));
      }
    }
  }

  async renewOnce(tokenExpired) {
    if (!tokenExpired && this.tokenUsable) {
      try {
        return this.keep(await renewSession(this.config, this.value, this.genesysToken));
      } catch (error) {
        if (!SIGN_IN_AGAIN.has(error.code)) throw error;
        // Revoked early, or the session ran out: fall through to a real sign-in.
      }
    }
    if (this.config.popupSignIn) {
      throw new SessionError("needs_interaction", "Sign in again to keep getting suggestions.");
    }
    try {
      return await this.accept(await signInInFrame(this.config));
    } catch (error) {
      if (error.code === "timeout" || error.code === "login_required"
          || error.code === "interaction_required" || error.code === "access_denied") {
        throw new SessionError("needs_interaction", "Sign in again to keep getting suggestions.");
      }
      throw error;
    }
  }

  // The popup sign-in; call from a click.
  async signInWithPopup() {
    return this.accept(await signInInPopup(this.config));
  }
}
