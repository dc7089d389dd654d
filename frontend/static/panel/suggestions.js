// The panel's suggestion requests: one card and one stream each (assist.js), asked
// once more after a 401 (with a fresh session), a 429 or 503 whose Retry-After is
// short enough for a live call, or a server's shutdown.
//
// The newest automatic suggestion (from the customer's words) supersedes the one
// before it, here as on the server: the older stream is aborted and its card ends
// as the server's supersede ends it, and a superseded request is never asked
// again. The server stops it too, but across replicas only with Redis, and a
// request the page still held (waiting out a Retry-After, or about to ask again
// after a shutdown) would otherwise open after the newer one and supersede it.
// Questions the agent typed are never superseded.
import { streamSuggestion } from "./assist.js";
import { t } from "./i18n.js";

const MAX_RETRY_WAIT_S = 10;
// What the server's own supersede sends as "done".
const SUPERSEDED = { outcome: "cancelled", stop_reason: "superseded" };

function newRequestId() {
  return "rq-" + crypto.randomUUID();
}

// A 429 or 503 worth one more try: it says when, and soon enough for a live call.
function isBusy(error) {
  return (error.status === 429 || error.status === 503) && error.retryAfter != null
    && error.retryAfter <= MAX_RETRY_WAIT_S;
}

// Resolves after `ms`, or at once when `signal` aborts.
function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

export class Suggestions {
  // feed: {addCard({trigger, query})} (feed.js). options(): {conversationId, url,
  // stallMs, session}, read for each request (the session changes). renew(): a fresh
  // session; rejects to give up. stream and wait: assist.js's streamSuggestion and
  // pause(ms, signal), replaced by unit tests.
  constructor({ feed, options, renew, stream = streamSuggestion, wait = pause }) {
    this.feed = feed;
    this.options = options;
    this.renew = renew;
    this.stream = stream;
    this.wait = wait;
    this.open = new Set(); // AbortControllers of the requests not finished yet
    this.latest = null; // {controller, card}: the newest automatic request, while open
    this.stopped = false;
  }

  async ask({ trigger, query, utterances = [], retried = false }) {
    if (this.stopped) return;
    const { conversationId } = this.options();
    const card = this.feed.addCard({ trigger, query });
    const body = { conversationId, trigger, requestId: newRequestId() };
    if (trigger === "manual") body.query = query;
    if (utterances.length) body.utterances = utterances;
    const controller = new AbortController();
    const { signal } = controller;
    this.open.add(controller);
    if (trigger !== "manual") this.supersede({ controller, card });
    const stream = () => {
      const { url, stallMs, session } = this.options();
      return this.stream(card, {
        url, body, headers: { Authorization: `Bearer ${session}` }, stallMs, signal,
      });
    };
    let done = null;
    try {
      try {
        done = await stream();
      } catch (error) {
        if (error.status === 401) {
          await this.renew(); // the session ran out: renew, then ask once more
        } else if (!isBusy(error)) {
          throw error;
        } else {
          await this.wait(error.retryAfter * 1000, signal); // wait as told, once
        }
        if (!signal.aborted) done = await stream();
      }
    } catch (error) {
      if (!signal.aborted) card.fail(error.message || t("card.error"));
    } finally {
      this.open.delete(controller);
      if (this.latest && this.latest.controller === controller) this.latest = null;
    }
    // The server was shutting down: ask again (another replica, or the restarted one).
    if (done && done.stop_reason === "shutdown" && !retried && !signal.aborted) {
      this.ask({ trigger, query, utterances, retried: true });
    }
  }

  // A new automatic request: the one before it (if still open) is superseded.
  supersede(next) {
    const previous = this.latest;
    this.latest = next;
    if (!previous) return;
    previous.controller.abort();
    // As the server's "done" would end it: a shown card says it was replaced, one
    // not shown yet (no "suggestion" event) is dropped.
    previous.card.event("done", SUPERSEDED);
  }

  // Ends every open stream (the server sees the disconnect and stops the model);
  // nothing new starts. Their cards are left as they are.
  stop() {
    this.stopped = true;
    for (const controller of this.open) controller.abort();
    this.open.clear();
    this.latest = null;
  }
}
