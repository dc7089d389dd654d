// A tiny fetch wrapper for the Genesys Cloud REST API: bearer token, JSON in and
// out, and errors that say what happened (the HTTP status, or 0 when the network
// failed; for a refusal, the platform's error code and the permissions it names)
// without ever carrying the token or a response body.

const REQUEST_TIMEOUT_MS = 20_000;
const CODE = /^[a-z][a-z.]{0,63}$/;
const PERMISSION = /^[A-Za-z0-9_*-]+(:[A-Za-z0-9_*-]+){1,3}$/;

// An error body's code ("missing.any.permissions"...) and the permissions its
// messageParams name (a comma-separated string): only what looks like either.
export function readRefusal(text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    return { code: "", permissions: [] };
  }
  const code = body && typeof body.code === "string" && CODE.test(body.code) ? body.code : "";
  const named = body && body.messageParams && body.messageParams.permissions;
  const permissions = typeof named === "string"
    ? named.split(",").map((p) => p.trim()).filter((p) => PERMISSION.test(p)) : [];
  return { code, permissions };
}

export class GenesysError extends Error {
  // status: the HTTP status, or 0 when no answer came (network error, timeout).
  constructor(status, message, { code = "", permissions = [] } = {}) {
    super(message);
    this.name = "GenesysError";
    this.status = status;
    this.code = code;
    this.permissions = permissions;
  }

  get isAuth() {
    return this.status === 401;
  }

  get isNetwork() {
    return this.status === 0;
  }
}

function abortAny(signals) {
  const live = signals.filter(Boolean);
  return live.length > 1 ? AbortSignal.any(live) : live[0];
}

// request(method, path, {token, body, signal}) -> parsed JSON (null when empty).
export function genesysApi(apiBase) {
  return async function request(method, path, { token, body, signal } = {}) {
    let response;
    try {
      response = await fetch(new URL(path, apiBase), {
        method,
        headers: {
          Authorization: `Bearer ${token}`,
          Accept: "application/json",
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: abortAny([signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (error) {
      if (signal && signal.aborted) throw error;
      throw new GenesysError(0, `${method} ${path.split("?")[0]} failed: no answer`);
    }
    if (!response.ok) {
      const refusal = response.status === 403
        ? readRefusal(await response.text().catch(() => "")) : undefined;
      throw new GenesysError(response.status, `Genesys answered ${response.status}`, refusal);
    }
    let text;
    try {
      text = await response.text();
    } catch (error) {
      if (signal && signal.aborted) throw error;
      throw new GenesysError(0, `${method} ${path.split("?")[0]} failed: the answer broke off`);
    }
    try {
      return text ? JSON.parse(text) : null;
    } catch {
      throw new GenesysError(502, "Genesys answered with unreadable JSON");
    }
  };
}
