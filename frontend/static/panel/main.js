// Boot: read the configuration, sign in to Genesys, follow the live transcript,
// and stream a suggestion card for each final customer utterance or question.
import { beginSignIn, completeSignIn, storedToken } from "./auth.js";
import { readConfig } from "./config.js";
import { Feed } from "./feed.js";
import { postEventStream } from "./sse.js";
import { watchTranscript } from "./transcript.js";

const CONTEXT_UTTERANCES = 6;
const STATUS_LABELS = {
  idle: "No conversation",
  connecting: "Connecting…",
  live: "Live transcript",
  reconnecting: "Reconnecting…",
  ended: "Conversation ended",
  unauthorized: "Signed out",
  offline: "Offline",
};

function newRequestId() {
  return "rq-" + crypto.randomUUID();
}

class Panel {
  constructor(root, config) {
    this.root = root;
    this.config = config;
    this.feed = new Feed(root.querySelector(".ap-feed"));
    this.status = root.querySelector(".ap-status");
    this.notice = root.querySelector(".ap-notice");
    this.utterances = [];
    root.querySelector(".ap-ask").addEventListener("submit", (event) => this.onAsk(event));
  }

  setStatus(state) {
    this.status.dataset.state = state;
    this.status.querySelector(".ap-status__text").textContent = STATUS_LABELS[state] || state;
  }

  showNotice(message) {
    this.notice.textContent = message;
    this.notice.hidden = false;
  }

  onAsk(event) {
    event.preventDefault();
    const input = event.target.elements.query;
    const query = input.value.trim();
    if (!query) return;
    input.value = "";
    this.suggest({ trigger: "manual", query });
  }

  onUtterance(utterance) {
    this.utterances.push({ speaker: utterance.speaker, text: utterance.text });
    this.utterances = this.utterances.slice(-CONTEXT_UTTERANCES);
    if (utterance.speaker === "customer") {
      this.suggest({ trigger: "utterance", query: utterance.text, utterances: [...this.utterances] });
    }
  }

  async suggest({ trigger, query, utterances = [] }) {
    if (!this.config.conversationId) {
      this.showNotice("Open the panel from a conversation to get suggestions.");
      return;
    }
    const card = this.feed.addCard({ trigger, query });
    const body = { conversationId: this.config.conversationId, trigger, requestId: newRequestId() };
    if (trigger === "manual") body.query = query;
    if (utterances.length) body.utterances = utterances;
    try {
      for await (const message of postEventStream(this.config.streamUrl, body)) {
        if (message.event === "suggestion") card.onSuggestion(message.data);
        else if (message.event === "delta") card.onDelta(message.data);
        else if (message.event === "fallback") card.onFallback(message.data);
        else if (message.event === "done") card.onDone(message.data);
      }
    } catch (error) {
      card.fail(error.message || "Could not get a suggestion");
    }
  }

  start(token) {
    if (!this.config.conversationId || !this.config.apiBase) {
      this.setStatus("idle");
      return;
    }
    watchTranscript({
      apiBase: this.config.apiBase,
      token: token.accessToken,
      conversationId: this.config.conversationId,
      onUtterance: (u) => this.onUtterance(u),
      onStatus: (state) => {
        this.setStatus(state);
        if (state === "unauthorized") beginSignIn(this.config);
      },
    });
  }
}

function boot() {
  const root = document.getElementById("ap-root");
  let config = readConfig(root);
  const signIn = completeSignIn();
  if (signIn && signIn.config) config = { ...signIn.config, redirectUri: config.redirectUri };
  const panel = new Panel(root, config);
  if (signIn && signIn.error) {
    panel.showNotice(`Sign-in failed: ${signIn.error}`);
    panel.setStatus("offline");
    return;
  }
  const token = (signIn && signIn.token) || storedToken();
  if (token) {
    panel.start(token);
  } else if (config.conversationId && config.loginBase && config.clientId) {
    beginSignIn(config);
  } else {
    panel.setStatus("idle");
  }
}

boot();
