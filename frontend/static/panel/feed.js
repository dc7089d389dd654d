// The suggestion feed: one card per suggestion, updated from its stream events.
// Text from the stream is buffered and written to the DOM once per animation frame.
import { appendAnswer, renderablePrefix, safeUrl } from "./answer.js";

const STATUS_TEXT = {
  generating: "Generating…",
  done: "Answer complete",
  truncated: "Answer cut short",
  fallback: "The answer stalled: here is the best article",
  cancelled: "Replaced by a newer suggestion",
  error: "Could not get a suggestion",
};

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function link(className, url, text) {
  const href = safeUrl(url);
  const node = el(href ? "a" : "span", className, text);
  if (href) {
    node.href = href;
    node.target = "_blank";
    node.rel = "noopener noreferrer";
  }
  return node;
}

class Card {
  constructor(feed, { trigger, query }) {
    this.feed = feed;
    this.sources = [];
    this.text = "";
    this.rendered = 0;
    this.final = false;
    this.root = el("article", "ap-card");
    this.root.dataset.state = "generating";
    const header = el("p", "ap-card__trigger");
    header.append(el("span", "ap-card__who", trigger === "manual" ? "You asked: " : "Customer: "));
    header.append(el("q", "ap-card__query", query));
    this.answer = el("div", "ap-card__answer");
    this.answer.dataset.placeholder = STATUS_TEXT.generating;
    this.fallback = el("div", "ap-card__fallback");
    this.fallback.hidden = true;
    this.sourceList = el("ol", "ap-card__sources");
    this.status = el("p", "ap-card__status", STATUS_TEXT.generating);
    this.root.append(header, this.answer, this.fallback, this.sourceList, this.status);
  }

  setState(state, detail) {
    this.root.dataset.state = state;
    this.status.textContent = detail || STATUS_TEXT[state] || state;
  }

  onSuggestion(data) {
    this.root.dataset.suggestionId = data.id;
    this.sources = data.sources || [];
    for (const source of this.sources) {
      const item = el("li");
      item.append(link("ap-card__source", source.url, source.title));
      this.sourceList.append(item);
    }
  }

  onDelta(data) {
    this.text += data.text;
    this.feed.schedule(this);
  }

  onFallback(data) {
    const article = data.article || {};
    this.fallback.replaceChildren(
      el("p", "ap-card__fallback-label", "Suggested article"),
      link("ap-card__fallback-link", article.url, article.title || "Knowledge base"),
      el("p", "ap-card__fallback-excerpt", article.excerpt || ""),
    );
    this.fallback.hidden = false;
    if (this.text) this.root.dataset.partial = "true";
  }

  onDone(data) {
    this.final = true;
    this.feed.schedule(this);
    const state = { completed: "done", truncated: "truncated", fallback: "fallback" }[data.outcome];
    this.setState(state || data.outcome);
    this.answer.dataset.placeholder = "";
  }

  fail(message) {
    this.final = true;
    this.feed.schedule(this);
    this.setState("error", message);
    this.answer.dataset.placeholder = "";
  }

  // Called by the feed inside an animation frame.
  flush() {
    const upto = renderablePrefix(this.text, this.final);
    if (upto > this.rendered) {
      appendAnswer(this.answer, this.text.slice(this.rendered, upto), this.sources);
      this.rendered = upto;
    }
  }
}

export class Feed {
  constructor(container) {
    this.container = container;
    this.dirty = new Set();
    this.frame = 0;
  }

  addCard(init) {
    const card = new Card(this, init);
    const empty = this.container.querySelector(".ap-feed__empty");
    if (empty) empty.remove();
    const pinned = this.isPinned();
    this.container.append(card.root);
    if (pinned) this.container.scrollTop = this.container.scrollHeight;
    return card;
  }

  isPinned() {
    const c = this.container;
    return c.scrollHeight - c.scrollTop - c.clientHeight < 40;
  }

  schedule(card) {
    this.dirty.add(card);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    const pinned = this.isPinned();
    for (const card of this.dirty) card.flush();
    this.dirty.clear();
    if (pinned) this.container.scrollTop = this.container.scrollHeight;
  }
}
