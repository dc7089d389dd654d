// The suggestion feed: a virtualized list of cards (virtual-list.js) whose state
// lives in plain objects (card.js), so a card scrolled out of the DOM re-renders
// exactly when it comes back, streaming or not. Stream events only change state
// and mark the card dirty; DOM writes happen once per animation frame, followed in
// the same frame by the list's measuring, pinning and anchoring.
//
// A question the agent asked gets its card at once. An automatic suggestion (from
// the customer's words) joins the feed only when its "suggestion" event says the
// server has a confident answer: when it has none ("confident": false) the agent
// sees nothing at all, so there is never a card to take back out of the list, the
// live region, the "New suggestions" button or keyboard focus.
//
// One delegated click listener handles every card's buttons (data-action); one
// keydown listener moves focus between cards (ArrowUp/ArrowDown, Home/End).
import { Announcer } from "./announcer.js";
import {
  CardView, applyDelta, applyDone, applyError, applyFallback, applyLost, applySuggestion,
  cardPlainText, createCardState,
} from "./card.js";
import { t } from "./i18n.js";
import { VirtualList } from "./virtual-list.js";

const EVENTS = { suggestion: applySuggestion, delta: applyDelta, fallback: applyFallback,
  done: applyDone };
const MOVES = { ArrowDown: 1, ArrowUp: -1, PageDown: 1, PageUp: -1 };

// An automatic card not in the feed yet, after an event: "show" it (its suggestion
// came with an answer on the way, or it failed and the agent should know), "drop"
// it (no confident answer, or it ended before its suggestion), or "wait".
function verdict(card) {
  if (card.abstained) return "drop";
  if (card.suggestionId || card.fallback || card.state === "error") return "show";
  return card.final ? "drop" : "wait";
}

export class Feed {
  // container: the scroll container (.ap-feed). actions: {copy(text), insert(text) or
  // null, feedback({suggestionId, rating, copied, inserted})}, each may return a promise.
  constructor(container, { actions = {}, root = container.parentElement, listOptions = {} } = {}) {
    this.container = container;
    this.actions = { copy: null, insert: null, feedback: null, ...actions };
    this.cards = [];
    this.byKey = new Map();
    this.views = new Map(); // key -> CardView, mounted cards only
    this.dirty = new Set();
    this.frame = 0;
    this.counter = 0;
    this.streaming = 0;
    this.pending = 0; // automatic suggestions waiting for their "suggestion" event
    // role="feed" from the first card on: a feed must hold articles, and before the
    // first card it holds only the "suggestions appear here" line.
    this.feedRole = !container.hasAttribute("role");
    container.dataset.streaming = "0";
    container.dataset.pending = "0";
    container.dataset.count = "0";
    this.list = new VirtualList(container, {
      ...listOptions,
      create: (key, index) => this.mount(key, index),
      destroy: (key) => this.views.delete(key),
      onPinnedChange: (pinned) => this.onPinnedChange(pinned),
    });
    this.marker = document.createElement("button");
    this.marker.type = "button";
    this.marker.className = "ap-feed__new";
    this.marker.dataset.action = "jump-newest";
    this.marker.textContent = t("feed.new");
    this.marker.hidden = true;
    root.append(this.marker);
    this.announcer = new Announcer(root);
    container.addEventListener("click", (event) => this.onClick(event));
    container.addEventListener("keydown", (event) => this.onKeyDown(event));
    this.marker.addEventListener("click", () => this.jumpToNewest());
  }

  // A new card at the end of the feed: at once for a question the agent asked, at its
  // "suggestion" event for an automatic one (see above). Answers the handle its
  // stream reports to: {key, event(name, data), lost(reason), fail(message)}.
  addCard(init) {
    const key = `c${++this.counter}`;
    const card = createCardState(key, init);
    let shown = false;
    let dropped = false;
    if (card.trigger === "manual") {
      this.show(card);
      shown = true;
    } else {
      this.setPending(1);
    }
    const apply = (change, ...args) => {
      if (dropped) return;
      const wasFinal = card.final;
      const announce = change(card, ...args);
      if (!shown) {
        const next = verdict(card);
        if (next === "wait") return;
        this.setPending(-1);
        if (next === "drop") {
          dropped = true;
          return;
        }
        this.show(card);
        shown = true;
      } else if (card.final && !wasFinal) {
        this.setStreaming(-1);
      }
      if (announce === "suggestion") this.announcer.say(t("announce.suggestion", { query: card.query }));
      if (announce === "abstained") this.announcer.say(t("announce.abstained", { query: card.query }));
      if (announce === "fallback") {
        this.announcer.say(t("announce.fallback", { title: card.fallback.article.title }));
      }
      this.schedule(card);
    };
    return {
      key,
      event: (name, data) => { if (EVENTS[name]) apply(EVENTS[name], data || {}); },
      lost: (reason) => apply(applyLost, reason),
      fail: (message) => apply(applyError, message),
    };
  }

  // Puts a card at the end of the feed.
  show(card) {
    this.cards.push(card);
    this.byKey.set(card.key, card);
    const empty = this.container.querySelector(".ap-feed__empty");
    if (empty) empty.remove();
    if (this.feedRole) this.container.setAttribute("role", "feed");
    this.container.dataset.count = String(this.cards.length);
    if (!card.final) this.setStreaming(1);
    this.list.append(card.key);
    if (!this.list.pinned) this.marker.hidden = false;
    this.schedule(card);
  }

  // Shows or hides every card's Insert button (the Client App SDK may come later).
  setInsert(insert) {
    this.actions.insert = typeof insert === "function" ? insert : null;
    for (const view of this.views.values()) view.setCanInsert(Boolean(this.actions.insert));
  }

  mount(key, index) {
    const card = this.byKey.get(key);
    const view = new CardView(card, { canInsert: Boolean(this.actions.insert) });
    this.views.set(key, view);
    view.root.setAttribute("aria-posinset", String(index + 1));
    view.root.setAttribute("aria-setsize", String(this.cards.length));
    return view.root;
  }

  schedule(card) {
    this.dirty.add(card.key);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  // Once per frame: the dirty cards' DOM, then the list's geometry.
  flush() {
    this.frame = 0;
    for (const key of this.dirty) {
      const view = this.views.get(key);
      if (view) view.update(this.byKey.get(key));
    }
    this.dirty.clear();
    const size = String(this.cards.length);
    for (const view of this.views.values()) {
      if (view.root.getAttribute("aria-setsize") !== size) view.root.setAttribute("aria-setsize", size);
    }
    this.list.update();
  }

  setStreaming(delta) {
    this.streaming += delta;
    this.container.dataset.streaming = String(this.streaming);
  }

  setPending(delta) {
    this.pending += delta;
    this.container.dataset.pending = String(this.pending);
  }

  onPinnedChange(pinned) {
    if (pinned) this.marker.hidden = true;
  }

  jumpToNewest() {
    this.list.scrollToEnd();
    this.marker.hidden = true;
    const last = this.cards[this.cards.length - 1];
    const element = last && this.list.element(last.key);
    if (element) element.focus({ preventScroll: true });
  }

  // Focuses the card at `index`, mounting it and scrolling it into view first.
  focusCard(index) {
    const element = this.list.reveal(Math.max(0, Math.min(index, this.cards.length - 1)));
    if (element) element.focus({ preventScroll: true });
  }

  onKeyDown(event) {
    const element = event.target;
    if (!element.classList || !element.classList.contains("ap-card")) return;
    const index = this.list.indexOf(element.dataset.key);
    if (index < 0) return;
    let next;
    if (event.key in MOVES) next = index + MOVES[event.key];
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = this.cards.length - 1;
    else return;
    event.preventDefault();
    if (next >= 0 && next < this.cards.length && next !== index) this.focusCard(next);
  }

  onClick(event) {
    const button = event.target.closest("button[data-action]");
    const element = button && button.closest(".ap-card");
    const card = element && this.byKey.get(element.dataset.key);
    if (!card) return;
    const action = button.dataset.action;
    if (action === "copy") this.copy(card);
    else if (action === "insert") this.insert(card);
    else if (action === "rate-up" || action === "rate-down") this.rate(card, action.slice(5));
  }

  async copy(card) {
    const text = cardPlainText(card);
    if (!text || !this.actions.copy) return;
    try {
      await this.actions.copy(text);
    } catch (error) {
      console.warn("Assist Panel: copy failed:", error.message);
      return;
    }
    card.copied = true;
    this.schedule(card);
  }

  insert(card) {
    const text = cardPlainText(card);
    if (!text || !this.actions.insert) return;
    this.actions.insert(text);
    card.inserted = true;
    this.schedule(card);
  }

  async rate(card, rating) {
    if (!card.suggestionId || !this.actions.feedback) return;
    const before = card.rating;
    card.rating = rating;
    this.schedule(card);
    try {
      await this.actions.feedback({ suggestionId: card.suggestionId, rating,
        copied: card.copied, inserted: card.inserted });
    } catch (error) {
      console.warn("Assist Panel: feedback not sent:", error.message);
      // Not recorded: the card must not thank the agent for it, and the button stays
      // there to press again (unless a later rating has taken its place meanwhile).
      if (card.rating === rating) {
        card.rating = before;
        this.schedule(card);
      }
    }
  }
}
