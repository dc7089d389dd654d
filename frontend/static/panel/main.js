// Boot: read the configuration, sign in to Genesys, follow the conversation live,
// and stream a suggestion card for each final customer utterance or question.
import { copyText, sendFeedback } from "./actions.js";
import { readCallback, relayCallback, signInByRedirect } from "./auth.js";
import { connectClientApp, loadClientApp } from "./clientapp.js";
import { panelQuery, readConfig } from "./config.js";
import { Feed } from "./feed.js";
import { setLanguage, t, translateDocument } from "./i18n.js";
import { Sessions, isTransient } from "./session.js";
import { Suggestions } from "./suggestions.js";
import { watchConversation } from "./transcript.js";

const CONTEXT_UTTERANCES = 6;
const RENEW_BEFORE_MS = 90_000;

// How long a framed panel waits for the desktop's "bootstrap" before a sign-in sends
// the frame away (a desktop whose integration has no bootstrap hook never sends it).
const HANDSHAKE_WAIT_MS = 3_000;

function pause(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class Panel {
  // clientApp: the Client App SDK handle, connected at page load (see boot()).
  constructor(root, config, clientApp) {
    this.root = root;
    this.config = config;
    this.feed = new Feed(root.querySelector(".ap-feed"), {
      root,
      actions: {
        copy: copyText,
        insert: null, // once the Client App SDK is up (inside Genesys only)
        feedback: (payload) => sendFeedback(this.config.feedbackUrl, this.sessions.value, payload),
      },
    });
    this.status = root.querySelector(".ap-status");
    this.notice = root.querySelector(".ap-notice");
    this.signIn = root.querySelector(".ap-signin");
    this.utterances = [];
    this.latestCustomer = null;
    this.started = false;
    this.watcher = null; // the live transcript's watcher, while it runs
    this.watcherEnded = ""; // the final status it stopped with, until it runs again
    this.renewTimer = 0;
    this.waitingForSignIn = [];
    this.clientApp = clientApp;
    this.media = ""; // "voice" | "message" once the watcher knows
    this.refusalsShown = new Set(); // missing permissions already told to the agent
    this.stopped = false;
    this.sessions = new Sessions(config, { onChange: (result) => this.onSession(result) });
    this.suggestions = new Suggestions({
      feed: this.feed,
      options: () => ({ conversationId: this.config.conversationId, url: this.config.streamUrl,
        stallMs: this.config.stallMs, session: this.sessions.value }),
      renew: () => this.renewSession(),
    });
    root.querySelector(".ap-ask").addEventListener("submit", (event) => this.onAsk(event));
    root.addEventListener("click", (event) => {
      if (event.target.closest("[data-action='sign-in']")) this.onSignInClick();
    });
  }

  setStatus(state) {
    this.status.dataset.state = state;
    this.status.querySelector(".ap-status__text").textContent = t(`status.${state}`);
  }

  showNotice(message) {
    this.notice.textContent = message;
    this.notice.hidden = !message;
  }

  // Something the agent must act on: in the panel, and as a desktop toast in Genesys.
  alert(message) {
    this.showNotice(message);
    this.clientApp.toast(t("panel.title"), message);
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
    if (utterance.speaker !== "customer") return;
    // Messages arrive in bursts when the panel catches up on a chat (opened late, or
    // back from a dropped channel): one suggestion, for the newest, with the rest as
    // context. Voice utterances come one at a time, each in its own task.
    const first = !this.latestCustomer;
    this.latestCustomer = { query: utterance.text, utterances: [...this.utterances] };
    if (!first) return;
    setTimeout(() => {
      const latest = this.latestCustomer;
      this.latestCustomer = null;
      this.suggest({ trigger: "utterance", ...latest });
    }, 0);
  }

  suggest(request) {
    if (!this.config.conversationId) {
      this.showNotice(t("notice.no-conversation"));
      return;
    }
    this.suggestions.ask(request);
  }

  // A fresh session without leaving the page. If the agent has to act (popup
  // sign-in, or the server could not be reached however often it was tried), this
  // waits until they have.
  async renewSession({ tokenExpired = false } = {}) {
    try {
      await this.sessions.renew({ tokenExpired });
    } catch (error) {
      if (error.code === "needs_interaction") {
        await this.askToSignIn(error.message);
      } else if (isTransient(error)) {
        await this.askToSignIn(t("signin.failed", { reason: error.message }));
      } else {
        this.alert(t("signin.failed", { reason: error.message }));
        throw error;
      }
    }
  }

  askToSignIn(message = t("signin.prompt")) {
    this.signIn.querySelector(".ap-signin__text").textContent = message;
    this.signIn.hidden = false;
    this.setStatus("unauthorized");
    this.clientApp.toast(t("panel.title"), message, "info");
    return new Promise((resolve) => this.waitingForSignIn.push(resolve));
  }

  async onSignInClick() {
    const text = this.signIn.querySelector(".ap-signin__text");
    try {
      await this.sessions.signInWithPopup();
    } catch (error) {
      text.textContent = t("signin.unfinished", { reason: error.message });
      return;
    }
    this.signedIn();
  }

  // A good session after the sign-in button was shown (its click, or a renewal that
  // got through after all): what waited for it goes on, and a live transcript that
  // stopped for want of one starts again.
  signedIn() {
    this.signIn.hidden = true;
    this.showNotice("");
    const waiting = this.waitingForSignIn.splice(0);
    waiting.forEach((resolve) => resolve());
    if (!this.started) this.start();
    else if (this.watcherEnded === "unauthorized") this.watch();
  }

  onSession(result) {
    this.scheduleRenewal(result);
    if (!this.signIn.hidden) this.signedIn();
  }

  scheduleRenewal(result) {
    clearTimeout(this.renewTimer);
    // The session's end, or the Genesys token's if sooner: a new token before it ends
    // (the live transcript's channel moves to it; on the old one it would fall silent).
    const left = Math.min(result.expiresAt, this.sessions.tokenExpiresAt || Infinity)
      - Date.now();
    // Well before the end; halfway through for sessions too short for the margin.
    const delay = Math.max(5_000, left > 2 * RENEW_BEFORE_MS ? left - RENEW_BEFORE_MS : left / 2);
    this.renewTimer = setTimeout(() => {
      this.sessions.renew().catch(() => {}); // a failure shows at the next request
    }, delay);
  }

  // Back from a sign-in that sent the whole panel away: hand the answer over.
  async finishRedirect(answer) {
    if (answer.error) {
      this.setStatus("offline");
      this.alert(t("signin.failed", { reason: answer.description || answer.error }));
      return;
    }
    this.setStatus("signing-in");
    try {
      const result = await this.sessions.accept(answer);
      this.config = { ...this.config, ...result.context };
      history.replaceState(null, "", `${window.location.pathname}?${panelQuery(this.config)}`);
      // The callback URL carries no langTag: the agent's language comes back with the
      // sign-in's context.
      setLanguage(this.config.langTag);
      translateDocument(this.root);
      this.setStatus("signing-in");
    } catch (error) {
      this.setStatus("offline");
      this.alert(t("signin.failed", { reason: error.message }));
      return;
    }
    this.start();
  }

  // The Client App SDK's hooks, for connectClientApp() and loadClientApp().
  hooks() {
    return {
      onStop: () => this.stop(),
      onFocus: () => { this.root.dataset.focused = "true"; },
      onBlur: () => { this.root.dataset.focused = "false"; },
    };
  }

  // Insert goes to the agent's reply box: messaging only (on a call it does nothing).
  onMedia(media) {
    this.media = media;
    this.feed.setInsert(media === "message" ? this.clientApp.insert : null);
  }

  // Genesys refused part of the live feed: say once which permission the admin
  // must add; the ask box keeps working.
  onRefused(refused) {
    const missing = [...new Set(refused.flatMap((r) => r.missingPermissions))];
    const fresh = missing.filter((p) => !this.refusalsShown.has(p));
    if (!refused.length || (missing.length && !fresh.length)) return;
    if (missing.length) {
      missing.forEach((p) => this.refusalsShown.add(p));
      this.showNotice(t("notice.missing-permission", { permissions: missing.join(", ") }));
    } else if (!this.refusalsShown.has("")) {
      this.refusalsShown.add("");
      this.showNotice(t("notice.topics-refused"));
    }
  }

  async start() {
    if (this.stopped || this.started) return;
    this.started = true;
    this.scheduleRenewal(this.sessions.current);
    if (!this.clientApp.available && this.config.clientAppSdk) {
      // Back from a redirect sign-in: the callback page had no desktop to talk to.
      this.clientApp = await loadClientApp(this.config, this.hooks());
    }
    this.watch();
  }

  // Follows the conversation live. "unauthorized" and "offline" stop the watcher:
  // it is let go, and after "unauthorized" the agent is offered the sign-in that
  // starts it again.
  watch() {
    if (this.stopped || this.watcher) return;
    const session = this.sessions.current;
    this.watcherEnded = "";
    const watcher = watchConversation({
      apiBase: session.genesys.apiBase,
      conversationId: this.config.conversationId,
      userId: session.user.id,
      getToken: () => this.sessions.genesysToken,
      onUtterance: (u) => this.onUtterance(u),
      onStatus: (state) => {
        if (state === "unauthorized" || state === "offline") this.watchEnded(watcher, state);
        else this.setStatus(state);
      },
      onAuthExpired: () => this.renewSession({ tokenExpired: true }),
      onMedia: (media) => this.onMedia(media),
      onRefused: (refused) => this.onRefused(refused),
    });
    this.watcher = watcher;
  }

  watchEnded(watcher, state) {
    if (this.watcher !== watcher) return;
    this.watcher = null;
    this.watcherEnded = state;
    this.setStatus(state);
    if (state === "unauthorized" && this.signIn.hidden) this.askToSignIn();
  }

  // Agent Desktop's "stop": the interaction is going away. Close the notification
  // channel, end every open stream (the server sees the disconnect and stops the
  // model), and start nothing new.
  stop() {
    this.stopped = true;
    clearTimeout(this.renewTimer);
    if (this.watcher) this.watcher.close();
    this.watcher = null;
    this.suggestions.stop();
    this.setStatus("idle");
  }
}

async function boot() {
  const root = document.getElementById("ap-root");
  const config = readConfig(root);
  setLanguage(config.langTag);
  translateDocument(root);
  const answer = readCallback();
  if (answer && relayCallback(answer)) {
    root.dataset.mode = "sign-in-callback"; // a popup or frame: the panel takes it from here
    return;
  }
  // The lifecycle handshake first: a desktop waits for "bootstrapped" after the frame
  // loads, whatever sign-in is about to do (send the whole frame away, or wait for
  // the agent to click).
  let panel = null;
  const hooks = {
    onStop: () => panel && panel.hooks().onStop(),
    onFocus: () => panel && panel.hooks().onFocus(),
    onBlur: () => panel && panel.hooks().onBlur(),
  };
  panel = new Panel(root, config, connectClientApp(config, hooks));
  if (answer) {
    await panel.finishRedirect(answer);
  } else if (!config.conversationId) {
    panel.setStatus("idle");
  } else if (config.popupSignIn) {
    await panel.askToSignIn();
  } else {
    panel.setStatus("signing-in");
    try {
      // Answer the desktop before leaving: the page that comes back is another load.
      if (panel.clientApp.available) {
        await Promise.race([panel.clientApp.handshake, pause(HANDSHAKE_WAIT_MS)]);
      }
      await signInByRedirect(config);
    } catch (error) {
      panel.setStatus("offline");
      panel.alert(t("signin.failed", { reason: error.message }));
    }
  }
}

boot();
