// One suggestion stream into one card, with the page's own stall watchdog.
//
// The server ends every stream with "done" and runs its own stall watchdog on the
// model; this one is for the connection: when no byte at all (keep-alive comments
// included, which the server sends every ASSIST_SSE_PING_S) has arrived for
// stallMs, the connection is taken for dead: the fetch is aborted and the card
// shows the top source of its "suggestion" event as the fallback article, keeping
// any partial text. A stream that closes without "done" is treated the same way.
import { postEventStream } from "./sse.js";

export const DEFAULT_STALL_MS = 20_000;

// card: a feed handle ({event(name, data), lost(reason)}). Resolves to the "done"
// event's data (null when the stream was lost or ended by `signal`). Rejects only
// when the stream failed before its first event (e.g. an HTTP error: StreamError,
// with .status), so that the caller can renew a session and try again. `signal`
// ends the stream from outside (the desktop stopped the panel): the card is left
// as it is.
export async function streamSuggestion(card, {
  url, body, headers = {}, stallMs = DEFAULT_STALL_MS, signal,
}) {
  const controller = new AbortController();
  if (signal) {
    if (signal.aborted) return null;
    signal.addEventListener("abort", () => controller.abort(), { once: true });
  }
  let timer = 0;
  let stalled = false;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      controller.abort();
    }, stallMs);
  };
  let started = false;
  let ended = null;
  arm();
  try {
    const stream = postEventStream(url, body, { headers, signal: controller.signal, onChunk: arm });
    for await (const message of stream) {
      started = true;
      card.event(message.event, message.data);
      if (message.event === "done") {
        ended = message.data || {};
        break;
      }
    }
  } catch (error) {
    if (signal && signal.aborted) return null;
    if (!stalled && !started) throw error;
  } finally {
    clearTimeout(timer);
  }
  if (!ended && signal && signal.aborted) return null;
  if (!ended) card.lost(stalled ? "stalled" : "disconnected");
  return ended;
}
