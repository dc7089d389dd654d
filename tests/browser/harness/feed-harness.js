// Test-only harness for the panel's feed. Settings from the query: stallMs (the
// page watchdog), stream (the URL the ask box streams from), insert=1 (pretend the
// Client App SDK is there), countChunks=1 (body data-chunks: the chunks of response
// bodies the page has read, so a test can wait for a keep-alive to have arrived).
// window.harness lets tests add cards and feed them events; the ask box streams a real
// suggestion through assist.js.
import { copyText, sendFeedback } from "/static/panel/actions.js";
import { streamSuggestion } from "/static/panel/assist.js";
import { readConfig } from "/static/panel/config.js";
import { Feed } from "/static/panel/feed.js";

const params = new URLSearchParams(window.location.search);
const root = document.getElementById("ap-root");
if (params.has("stallMs")) root.dataset.stallMs = params.get("stallMs");
if (params.has("stream")) root.dataset.streamUrl = params.get("stream");
const config = readConfig(root);
if (params.get("countChunks") === "1") countChunks();
const inserted = [];
const feed = new Feed(root.querySelector(".ap-feed"), {
  root,
  actions: {
    copy: copyText,
    insert: params.get("insert") === "1" ? (text) => inserted.push(text) : null,
    feedback: (payload) => sendFeedback(config.feedbackUrl, "harness-session", payload),
  },
});
const handles = new Map();

root.querySelector(".ap-ask").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = event.target.elements.query;
  const query = input.value;
  input.value = "";
  const card = feed.addCard({ trigger: "manual", query });
  handles.set(card.key, card);
  streamSuggestion(card, { url: config.streamUrl, body: { query }, stallMs: config.stallMs })
    .catch((error) => card.fail(error.message));
});

window.harness = {
  feed,
  inserted,
  config,
  add(init) {
    const card = feed.addCard(init);
    handles.set(card.key, card);
    return card.key;
  },
  // events: [[name, data], ...] applied in order to the card `key`.
  send(key, events) {
    const card = handles.get(key);
    for (const [name, data] of events) card.event(name, data);
  },
  lost(key, reason) {
    handles.get(key).lost(reason);
  },
  // The card's state; null for an automatic suggestion that is not in the feed (yet).
  state(key) {
    const card = feed.byKey.get(key);
    return card ? JSON.parse(JSON.stringify(card)) : null;
  },
};
document.body.dataset.ready = "true";

// Each response body passes through a stream that counts a chunk as it hands it to
// the reader (pulled only when read: highWaterMark 0), so once the count shows, the
// page's own handling of that chunk (microtasks) is done.
function countChunks() {
  const realFetch = window.fetch.bind(window);
  let chunks = 0;
  document.body.dataset.chunks = "0";
  window.fetch = async (...args) => {
    const response = await realFetch(...args);
    if (!response.body) return response;
    const reader = response.body.getReader();
    const counted = new ReadableStream({
      async pull(controller) {
        const { value, done } = await reader.read();
        if (done) {
          controller.close();
          return;
        }
        controller.enqueue(value);
        chunks += 1;
        document.body.dataset.chunks = String(chunks);
      },
      cancel: (reason) => reader.cancel(reason),
    }, { highWaterMark: 0 });
    return new Response(counted, { status: response.status, headers: response.headers });
  };
}
