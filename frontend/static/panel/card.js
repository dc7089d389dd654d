// One suggestion card: its state as a plain object (what the feed keeps for every
// card, mounted or not) and its view (the DOM of a mounted card, rendered from that
// state and then updated in place as the stream goes on).
import { AnswerWriter, externalLink, plainText } from "./answer.js";
import { t } from "./i18n.js";

// A failed card shows why, in the server's words (its JSON error's message, which
// names no secret), cut to a line or two.
const MAX_ERROR_CHARS = 160;
const OUTCOME_STATE = { completed: "done", truncated: "truncated", fallback: "fallback",
  cancelled: "cancelled", abstained: "abstained" };

export function createCardState(key, { trigger, query }) {
  return {
    key,
    trigger: trigger === "manual" ? "manual" : "utterance",
    query: String(query || ""),
    // What the server searched, when not the customer's own words: a "yes" or "the
    // second one" is searched by the agent's question it answers (the suggestion's query).
    about: "",
    suggestionId: "",
    sources: [], // [{id, title, url, snippet, score}], from the suggestion event
    text: "", // the raw answer text so far
    state: "generating", // generating | done | truncated | fallback | cancelled | interrupted | abstained | error
    final: false, // no more text will come
    // The server found nothing relevant enough to answer ("confident": false, or a
    // "done" whose outcome is "abstained"): no text comes, the sources are only the
    // nearest articles.
    abstained: false,
    fallback: null, // {reason, article: {id, title, url, excerpt}}
    partial: false, // text had arrived when the answer stalled
    error: "",
    copied: false,
    inserted: false,
    rating: "", // "" | "up" | "down"
  };
}

// The stream's events, applied to a card's state. Each returns what to announce
// ("suggestion", "abstained", "fallback") or "".

export function applySuggestion(card, data) {
  if (card.suggestionId) return "";
  card.suggestionId = String(data.id || "");
  card.sources = Array.isArray(data.sources) ? data.sources.filter((s) => s && typeof s === "object") : [];
  // An older server sends no "confident": it always answers.
  card.abstained = data.confident === false;
  const searched = typeof data.query === "string" ? data.query.trim() : "";
  if (card.trigger === "utterance" && searched && !saidIn(searched, card.query)) {
    card.about = searched;
  }
  return card.abstained ? "abstained" : "suggestion";
}

// The redactor's placeholders: the server echoes the customer's turn redacted.
const PLACEHOLDER = /\[(?:card|ssn|email|phone)\]/g;

// Whether every word of what the server searched is the customer's own (their turn,
// echoed normalised, redacted, or cut to its end), case and punctuation aside.
function saidIn(searched, said) {
  const words = (text) => String(text).toLowerCase().match(/[\p{L}\p{N}]+/gu) || [];
  const own = new Set(words(said));
  return words(searched.replace(PLACEHOLDER, " ")).every((word) => own.has(word));
}

export function applyDelta(card, data) {
  if (!card.final && !card.abstained && data && data.text) card.text += String(data.text);
  return "";
}

export function applyFallback(card, data) {
  if (card.fallback || card.abstained) return "";
  const article = (data && data.article) || {};
  card.fallback = { reason: String((data && data.reason) || ""), article: {
    title: String(article.title || ""), url: String(article.url || ""),
    excerpt: String(article.excerpt || "") } };
  card.partial = card.text.length > 0;
  return "fallback";
}

export function applyDone(card, data) {
  if (card.final) return "";
  card.final = true;
  // A server going down ends its streams "cancelled" too; the panel asks again.
  const outcome = data && data.outcome;
  const interrupted = outcome === "cancelled" && data.stop_reason === "shutdown";
  if (outcome === "abstained" && !card.text && !card.fallback) card.abstained = true;
  let state = OUTCOME_STATE[outcome] || "done";
  if (interrupted) state = "interrupted";
  else if (card.abstained) state = "abstained";
  else if (state === "abstained") state = "done"; // text came after all: an answer
  card.state = state;
  return "";
}

// The stream died (no bytes for too long, or it closed before "done"): show the top
// source as the fallback article, as the server would have.
export function applyLost(card, reason) {
  if (card.final) return "";
  card.final = true;
  if (card.abstained) { // nothing was coming anyway: the nearest articles are shown already
    card.state = "abstained";
    return "";
  }
  let announce = "";
  if (!card.fallback && card.sources.length) {
    const top = card.sources[0];
    announce = applyFallback(card, { reason, article: { title: top.title, url: top.url,
      excerpt: top.snippet } });
  }
  card.state = card.fallback ? "fallback" : "error";
  return announce;
}

export function applyError(card, message) {
  if (card.final) return "";
  card.final = true;
  card.state = "error";
  const text = String(message || "").trim();
  card.error = text.length > MAX_ERROR_CHARS ? `${text.slice(0, MAX_ERROR_CHARS - 1)}…` : text;
  return "";
}

// What Copy and Insert use: the answer as plain text, else the fallback article;
// nothing for a card without an answer ("abstained").
export function cardPlainText(card) {
  if (card.abstained) return "";
  const text = plainText(card.text);
  if (text) return text;
  if (card.fallback && card.fallback.article.title) {
    return [card.fallback.article.title, card.fallback.article.url].filter(Boolean).join("\n");
  }
  return "";
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function button(action, label) {
  const node = el("button", "ap-action", label);
  node.type = "button";
  node.dataset.action = action;
  return node;
}

export class CardView {
  constructor(card, { canInsert = false } = {}) {
    const root = el("article", "ap-card");
    root.tabIndex = 0;
    root.dataset.key = card.key;
    const triggerId = `ap-card-${card.key}-trigger`;
    root.setAttribute("aria-labelledby", triggerId);
    const trigger = el("p", "ap-card__trigger");
    trigger.id = triggerId;
    trigger.append(el("span", "ap-card__who", t(card.trigger === "manual" ? "card.agent" : "card.customer")),
      " ", el("q", "ap-card__query", card.query));
    // "About: <the agent's question>" under a customer's "yes".
    this.about = el("p", "ap-card__about");
    this.about.hidden = true;
    this.answer = el("div", "ap-card__answer");
    // No confident answer: said where the answer would be, the nearest articles below.
    this.abstain = el("div", "ap-card__abstain");
    this.abstain.hidden = true;
    this.partial = el("p", "ap-card__incomplete", t("card.incomplete"));
    this.partial.hidden = true;
    this.fallback = el("div", "ap-card__fallback");
    this.fallback.hidden = true;
    this.sourcesLabel = el("p", "ap-card__sources-label", t("card.might-help"));
    this.sourcesLabel.hidden = true;
    this.sourceList = el("ol", "ap-card__sources");
    this.sourceList.setAttribute("aria-label", t("card.sources"));
    this.sourceList.hidden = true;
    this.status = el("p", "ap-card__status");
    this.reason = el("p", "ap-card__error");
    this.reason.hidden = true;
    this.actions = el("div", "ap-card__actions");
    this.actions.hidden = true;
    this.copy = button("copy", t("card.copy"));
    this.insert = button("insert", t("card.insert"));
    this.canInsert = canInsert;
    this.abstained = false;
    this.insert.hidden = !canInsert;
    this.up = button("rate-up", t("card.helpful"));
    this.down = button("rate-down", t("card.not-helpful"));
    this.thanks = el("span", "ap-card__thanks", t("card.thanks"));
    this.thanks.hidden = true;
    this.actions.append(this.copy, this.insert, this.up, this.down, this.thanks);
    root.append(trigger, this.about, this.answer, this.abstain, this.partial, this.fallback, this.sourcesLabel,
      this.sourceList, this.status, this.reason, this.actions);
    this.root = root;
    this.writer = null;
    this.fed = 0; // how much of card.text the writer has had
    this.ended = false;
    this.update(card);
  }

  setCanInsert(canInsert) {
    this.canInsert = canInsert;
    this.insert.hidden = !canInsert || this.abstained; // nothing to insert without an answer
  }

  // Brings the DOM up to the state: appends new text, and touches nothing else that
  // is already right.
  update(card) {
    const root = this.root;
    if (card.suggestionId && root.dataset.suggestionId !== card.suggestionId) {
      root.dataset.suggestionId = card.suggestionId;
    }
    if (!this.writer && (card.sources.length || card.text || card.final)) {
      this.renderSources(card.sources);
      this.writer = new AnswerWriter(this.answer, card.sources);
    }
    if (this.writer && card.text.length > this.fed) {
      this.writer.write(card.text.slice(this.fed));
      this.fed = card.text.length;
    }
    if (this.writer && card.final && !this.ended) {
      this.writer.end();
      this.ended = true;
    }
    if (card.about && this.about.hidden) {
      this.about.textContent = t("card.about", { query: card.about });
      this.about.hidden = false;
    }
    if (root.dataset.state !== card.state) root.dataset.state = card.state;
    const placeholder = card.state === "generating" ? t("card.generating") : "";
    if (this.answer.dataset.placeholder !== placeholder) this.answer.dataset.placeholder = placeholder;
    if (card.abstained && !this.abstained) this.renderAbstained(card.sources);
    // "Generating…" shows in the empty answer until the first text, then here. An
    // abstained card says what happened in its own words, above the articles.
    const waiting = card.state === "generating" && !card.text;
    const quiet = waiting || card.abstained;
    setText(this.status, quiet ? "" : t(`card.${card.state}`));
    this.status.hidden = quiet;
    if (card.error && this.reason.hidden) {
      this.reason.textContent = card.error;
      this.reason.hidden = false;
    }
    if (card.fallback && this.fallback.hidden) this.renderFallback(card.fallback.article);
    if (card.partial && !root.dataset.partial) {
      root.dataset.partial = "true";
      this.partial.hidden = false;
    }
    this.actions.hidden = !card.final || !card.suggestionId;
    this.copy.hidden = !cardPlainText(card);
    this.insert.hidden = !this.canInsert || this.abstained;
    setText(this.copy, t(card.copied ? "card.copied" : "card.copy"));
    this.insert.disabled = this.copy.hidden;
    setText(this.insert, t(card.inserted ? "card.inserted" : "card.insert"));
    this.up.setAttribute("aria-pressed", String(card.rating === "up"));
    this.down.setAttribute("aria-pressed", String(card.rating === "down"));
    this.thanks.hidden = !card.rating;
  }

  renderSources(sources) {
    for (const source of sources) {
      const item = el("li");
      item.append(externalLink("ap-card__source", source.url, String(source.title || source.url || "")));
      this.sourceList.append(item);
    }
    this.sourceList.hidden = sources.length === 0;
  }

  // Once: the card will have no answer. The sources become the nearest articles,
  // under "Might help" instead of "Sources".
  renderAbstained(sources) {
    this.abstained = true;
    this.answer.hidden = true;
    this.abstain.replaceChildren(el("p", "ap-card__abstain-title", t("card.abstained")));
    if (sources.length) this.abstain.append(el("p", "ap-card__abstain-hint", t("card.abstained-hint")));
    this.abstain.hidden = false;
    this.sourcesLabel.hidden = sources.length === 0;
    this.sourceList.setAttribute("aria-label", t("card.might-help"));
  }

  renderFallback(article) {
    this.fallback.replaceChildren(
      el("p", "ap-card__fallback-label", t("card.suggested-article")),
      externalLink("ap-card__fallback-link", article.url, article.title || article.url),
      el("p", "ap-card__fallback-excerpt", article.excerpt),
    );
    this.fallback.hidden = false;
  }
}
