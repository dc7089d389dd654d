// Test-only harness for /static/panel/transcript.js. Reads its settings from the
// query (api, conversation, user, timing as JSON) and the first token from the
// fragment; reports statuses, utterances, auth requests, the media and refused
// topics as list items.
import { watchConversation } from "/static/panel/transcript.js";

const params = new URLSearchParams(window.location.search);
let token = new URLSearchParams(window.location.hash.slice(1)).get("token") || "";
window.history.replaceState(null, "", window.location.pathname + window.location.search);

let lives = 0; // how many times the feed became live: tags each utterance
let pendingAuth = null;

function append(listId, text, data = {}) {
  const item = document.createElement("li");
  item.textContent = text;
  Object.assign(item.dataset, data);
  document.getElementById(listId).append(item);
}

const watcher = watchConversation({
  apiBase: params.get("api"),
  conversationId: params.get("conversation"),
  userId: params.get("user") || undefined,
  getToken: () => token,
  timing: JSON.parse(params.get("timing") || "{}"),
  onUtterance(utterance) {
    append("utterances", utterance.text, {
      id: utterance.id, speaker: utterance.speaker, media: utterance.media, live: String(lives),
    });
  },
  onStatus(state) {
    if (state === "live") lives += 1;
    append("statuses", state);
    const status = document.getElementById("status");
    status.dataset.state = state;
    status.textContent = state;
  },
  onMedia(media) {
    append("media", media);
  },
  onRefused(refused) {
    append("refusals", JSON.stringify(refused));
  },
  onAuthExpired() {
    return new Promise((resolve, reject) => {
      pendingAuth = { resolve, reject };
      append("auth-requests", "expired");
    });
  },
});

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = document.getElementById("token-input").value;
  if (pendingAuth) pendingAuth.resolve();
  pendingAuth = null;
});
document.getElementById("token-refuse").addEventListener("click", () => {
  if (pendingAuth) pendingAuth.reject(new Error("refused by the test"));
  pendingAuth = null;
});
document.getElementById("close").addEventListener("click", () => watcher.close());
