// Follows a conversation's live input through the Genesys Notifications API:
// one channel subscribed to what the interaction needs (a call: the conversation's
// transcription topic, plus the agent's conversations topic to see it end;
// messaging: the agent's conversations topic only), renewed before it expires and
// whenever the page has a new token (a channel stops delivering when its token
// expires, maybe without a word). When its socket closes, errors or goes silent past
// its heartbeats, the socket connects again to the channel (resubscribed) while it
// has life left, once; then, or when its token expires, a new channel replaces it.
// A topic the agent's role may not have is reported and the rest kept. Utterances are deduplicated by id across
// channels; messaging catches up on messages missed meanwhile.
import { GenesysError, genesysApi } from "./genesys-api.js";
import { customerLeft, followMessages, hasMessages } from "./messaging.js";
import { subscribeTopics } from "./subscriptions.js";
import {
  SocketClosed, TopicsRefused, failureKind, hasCalls, liveStatus, readFrame, readTranscription,
  refusalKey, renewDelay, retryDelay, topicsFor,
} from "./transcript-logic.js";

export { GenesysError };

const DEFAULT_TIMING = {
  heartbeatTimeoutMs: 75_000, // Genesys sends a heartbeat every 30 s
  pingAfterMs: 40_000, // silent this long: ask for a pong
  watchdogEveryMs: 5_000,
  socketOpenTimeoutMs: 20_000,
  stableAfterMs: 10_000, // live this long: the backoff starts over
  firstRetryMaxMs: 500,
  backoffBaseMs: 1_000,
  backoffMaxMs: 30_000,
  renewBeforeExpiryMs: 60_000,
  minChannelLifeMs: 30_000,
  voiceEndGraceMs: 15_000, // the call ended without SESSION_ENDED: wait for late finals
  maxAuthRenewals: 3, // onAuthExpired calls in a row without a stable channel
};
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const LOG = "Assist Panel live transcript:";

// watchConversation({apiBase, conversationId, userId, getToken, onUtterance, onStatus,
//                    onAuthExpired, onMedia, onRefused, timing}) -> {close()}
//   getToken(): the current Genesys access token, read for each request and channel;
//     when it changes, the live channel is replaced by one made with the new token.
//   userId: the agent's user id (messaging events come on their conversations topic);
//     without it only the voice transcript is followed.
//   onUtterance({id, speaker: "customer" | "agent", text, media: "voice" | "message"}):
//     once per final utterance or message, in order, never twice for one id. For
//     messaging, the messages already written when the watch starts come first.
//   onStatus("connecting" | "live" | "restricted" | "reconnecting" | "ended" |
//     "unauthorized" | "offline"): "unauthorized" and "offline" are final (the watcher
//     has stopped). "ended" is not: the watcher keeps its channel until close(), and
//     goes back to "live" if the conversation carries on (a transfer, a new
//     transcription session). "restricted": connected, but Genesys refused the
//     transcript of this call or the text of these messages (onRefused says why);
//     the conversation's end is still seen.
//   onMedia("voice" | "message"): what the conversation is, once known (and again if
//     it changes).
//   onRefused([{id, reason, missingPermissions}]): topics Genesys refused, each time
//     the refused set changes (not on every reconnection); and once, with the id
//     "messages", when it refuses to give a messaging conversation's text.
//   onAuthExpired(): Genesys answered 401 or closed a socket for its token. Resolve
//     once getToken() gives a fresh token (a new channel is opened), reject to stop.
//   timing: overrides of DEFAULT_TIMING (tests use short ones).
export function watchConversation({
  apiBase, conversationId, userId, getToken, onUtterance, onStatus, onAuthExpired, onMedia,
  onRefused, timing: tuning,
}) {
  const timing = { ...DEFAULT_TIMING, ...tuning };
  const request = genesysApi(apiBase);
  const aborter = new AbortController();
  const voiceTopic = `v2.conversations.${conversationId}.transcription`;
  const userTopic = userId ? `v2.users.${userId}.conversations` : "";
  const conversationPath = `/api/v2/conversations/${encodeURIComponent(conversationId)}`;
  const seenUtterances = new Set();
  const timers = new Set();
  let stopped = false;
  let status = "";
  let current = null; // the newest channel session (being opened, or live)
  let previous = null; // the live session a renewal will replace
  let failures = 0; // consecutive failures, for the backoff
  let retryTimer = 0;
  let authRenewals = 0;
  let authPending = false;
  let notFoundBefore = false;
  // The channel of a session whose socket dropped, to connect to again: Genesys keeps
  // at most 20 channels a user and app and drops the oldest for a 21st, which may be
  // the live one of another interaction, so a drop does not spend a channel.
  let reusable = null;
  let media = ""; // "voice" | "message" once known
  let refusedKey = ""; // the refused topics last reported
  let voiceRefused = false; // Genesys refused the transcription topic
  let messagesRefused = false; // Genesys refused the messages' text
  let ended = false; // the conversation ended (it may still come back: a replay, a transfer)
  let endTimer = 0;

  const api = (method, path, token, body) =>
    request(method, path, { token, body, signal: aborter.signal });
  const messages = followMessages({
    conversationId,
    // A refusal carries the token its request was made with: a late 401 for a token
    // already replaced must not count against the fresh one.
    async fetchJson(method, path, body) {
      const token = getToken();
      try {
        return await api(method, path, token, body);
      } catch (error) {
        if (error && typeof error === "object") error.token = token;
        throw error;
      }
    },
    onUtterance: emit,
    onEnded: markEnded,
    onAuthError: (error) => authExpired(error.token),
    onRefused: noteMessagesRefused,
    backoff: { baseMs: timing.backoffBaseMs, maxMs: timing.backoffMaxMs },
  });

  function later(fn, ms) {
    const id = setTimeout(() => {
      timers.delete(id);
      fn();
    }, Math.min(Math.max(0, ms), MAX_TIMEOUT_MS));
    timers.add(id);
    return id;
  }

  function cancel(id) {
    clearTimeout(id);
    timers.delete(id);
  }

  function safely(callback, ...args) {
    if (typeof callback !== "function") return undefined;
    try {
      return callback(...args);
    } catch (error) {
      console.error(LOG, "a callback threw", error && error.name);
      return undefined;
    }
  }

  function setStatus(state) {
    if (state === status) return;
    status = state;
    safely(onStatus, state);
  }

  function setMedia(value) {
    if (value === media) return;
    media = value;
    safely(onMedia, value);
    if (!stopped && !ended && (isLive(current) || isLive(previous))) setStatus(liveState());
  }

  // What a live channel shows: a call whose transcript was refused is "restricted".
  const liveState = () => liveStatus({ ended, voiceRefused, messagesRefused, media });

  // Before the first subscription: is this a call or messaging? (Unknown when the
  // conversation cannot be read or has neither yet: then both topics are asked.)
  async function detectMedia(token) {
    let participants;
    try {
      const conversation = await api("GET", conversationPath, token);
      participants = (conversation && conversation.participants) || [];
    } catch (error) {
      if (error.status === 401 || (aborter.signal.aborted)) throw error;
      return;
    }
    if (hasMessages(participants)) setMedia("message");
    else if (hasCalls(participants)) setMedia("voice");
  }

  function noteRefusals(refused) {
    voiceRefused = refused.some((r) => r.id === voiceTopic);
    const key = refusalKey(refused);
    if (key === refusedKey) return;
    refusedKey = key;
    if (refused.length) {
      console.warn(LOG, "Genesys refused topics for missing permissions:",
        refused.flatMap((r) => r.missingPermissions).join(", ") || "(not named)");
    }
    safely(onRefused, refused);
  }

  // Messaging whose text Genesys refused: told as a refused topic is.
  function noteMessagesRefused(missingPermissions) {
    messagesRefused = true;
    console.warn(LOG, "Genesys refused the messages' text for missing permissions:",
      missingPermissions.join(", ") || "(not named)");
    safely(onRefused, [{ id: "messages", reason: "", missingPermissions }]);
    if (!stopped && !ended && (isLive(current) || isLive(previous))) setStatus(liveState());
  }

  function emit(utterance) {
    if (stopped || seenUtterances.has(utterance.id)) return;
    seenUtterances.add(utterance.id);
    safely(onUtterance, utterance);
  }

  // Sessions ---------------------------------------------------------------

  function kill(session) {
    if (!session || session.dead) return;
    session.dead = true;
    cancel(session.renewTimer);
    cancel(session.stableTimer);
    if (session.socket) {
      try {
        session.socket.close(1000, "Closed by the panel");
      } catch {
        // already closing
      }
    }
  }

  function markEnded() {
    cancel(endTimer);
    ended = true;
    if (!stopped && (isLive(current) || isLive(previous))) setStatus("ended");
  }

  function markActive() {
    cancel(endTimer);
    endTimer = 0;
    if (!ended) return;
    ended = false;
    if (!stopped && (isLive(current) || isLive(previous))) setStatus(liveState());
  }

  // "offline" and "unauthorized" are final: the watcher stops.
  function finish(state) {
    if (stopped) return;
    setStatus(state);
    stop();
  }

  function stop() {
    stopped = true;
    kill(current);
    kill(previous);
    current = previous = null;
    timers.forEach(clearTimeout);
    timers.clear();
    clearInterval(watchdog);
    window.removeEventListener("online", onOnline);
    messages.close();
    aborter.abort();
  }

  const isLive = (session) => Boolean(session && !session.dead && session.phase === "live");

  // Opens a new channel; a live one (renewal) is kept until the new one is live.
  function connect() {
    retryTimer = 0;
    if (stopped) return;
    if (isLive(current)) previous = current;
    else if (!isLive(previous)) setStatus(status ? "reconnecting" : "connecting");
    const token = getToken();
    // Once, with the token it was made with: a channel that fails again is given up.
    const channel = reusable && reusable.token === token ? reusable.channel : null;
    reusable = null;
    current = { token, phase: "channel", lastFrame: 0, pinged: false, channel,
      reused: Boolean(channel) };
    open(current);
  }

  async function open(session) {
    try {
      if (!session.token) throw new GenesysError(401, "no token");
      if (!media) await detectMedia(session.token);
      if (session.dead) return;
      const channel = session.channel
        || await api("POST", "/api/v2/notifications/channels", session.token);
      session.channel = channel;
      if (session.dead) return;
      session.phase = "socket";
      await openSocket(session, channel.connectUri);
      if (session.dead) return;
      session.phase = "subscribe";
      const subscribe = (method, path, body) => api(method, path, session.token, body);
      const { permitted, refused } = await subscribeTopics(subscribe, channel.id,
        topicsFor(media, voiceTopic, userTopic));
      if (session.dead) return;
      noteRefusals(refused);
      if (!permitted.length) throw new TopicsRefused();
      becomeLive(session, channel);
    } catch (error) {
      if (!stopped && !session.dead) failed(session, error);
    }
  }

  function openSocket(session, uri) {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(uri);
      session.socket = socket;
      const openTimer = later(() => reject(new SocketClosed(4001, "open timed out")),
        timing.socketOpenTimeoutMs);
      socket.addEventListener("open", () => {
        cancel(openTimer);
        session.lastFrame = Date.now();
        resolve();
      });
      socket.addEventListener("message", (event) => onFrame(session, event.data));
      socket.addEventListener("close", (event) => {
        const error = new SocketClosed(event.code, event.reason);
        cancel(openTimer);
        if (session.phase === "socket") reject(error);
        else if (!session.dead && !stopped) failed(session, error);
      });
    });
  }

  function becomeLive(session, channel) {
    session.phase = "live";
    notFoundBefore = false;
    if (previous) kill(previous);
    previous = null;
    setStatus(liveState());
    session.stableTimer = later(() => {
      failures = 0;
      authRenewals = 0;
    }, timing.stableAfterMs);
    const renewIn = renewDelay(channel.expires, Date.now(), timing);
    if (renewIn !== null) {
      session.renewTimer = later(() => session === current && !authPending && connect(), renewIn);
    }
    catchUp();
  }

  function failed(session, error) {
    kill(session);
    if (session === previous) {
      previous = null; // the channel a renewal was replacing: the new one is on its way
      if (!isLive(current)) setStatus("reconnecting");
      return;
    }
    if (session !== current) return;
    current = null;
    const live = isLive(previous);
    const kind = failureKind(error, notFoundBefore);
    if (kind === "auth") return authExpired(session.token);
    if (kind === "refused") {
      console.warn(LOG, "Genesys refused every topic this conversation needs; not retrying");
      return finish("offline");
    }
    // A channel connected to again that is gone (expired, or dropped for a newer one):
    // a new one, as after any failure, and no count towards giving up on 404s.
    const gone = session.reused && error.status === 404;
    if (kind === "forbidden" && !gone) {
      console.warn(LOG, `Genesys refused the subscription (${error.status}); not retrying`);
      return finish("offline");
    }
    if (!session.reused && session.phase !== "channel" && hasLifeLeft(session.channel)) {
      reusable = { channel: session.channel, token: session.token };
    }
    notFoundBefore = error.status === 404 && !gone;
    failures += 1;
    if (!live) setStatus("reconnecting");
    scheduleRetry();
  }

  // Whether a channel has life enough left to be connected to again.
  function hasLifeLeft(channel) {
    const left = Date.parse((channel && channel.expires) || "") - Date.now();
    return left > timing.renewBeforeExpiryMs + timing.minChannelLifeMs;
  }

  function scheduleRetry() {
    // The first retry comes quickly; then 1 s, 2 s, 4 s... up to 30 s, with jitter.
    const delay = retryDelay(failures, timing);
    cancel(retryTimer);
    retryTimer = later(connect, delay);
  }

  function onOnline() {
    if (retryTimer && !authPending) {
      cancel(retryTimer);
      connect();
    }
  }

  // Tokens -----------------------------------------------------------------

  async function authExpired(tokenUsed) {
    if (stopped || authPending) return;
    const fresh = getToken();
    if (fresh && fresh !== tokenUsed && current && current.token === fresh) {
      // A late answer to a request made with an older token: the channel has a fresh one.
      if (isLive(current)) catchUp();
      return;
    }
    kill(current);
    kill(previous);
    current = previous = null;
    cancel(retryTimer);
    retryTimer = 0;
    if (fresh && fresh !== tokenUsed) {
      connect(); // main.js already has a new token
      return;
    }
    if (typeof onAuthExpired !== "function" || authRenewals >= timing.maxAuthRenewals) {
      finish("unauthorized");
      return;
    }
    authRenewals += 1;
    authPending = true;
    setStatus("reconnecting");
    try {
      await onAuthExpired();
    } catch {
      authPending = false;
      finish("unauthorized");
      return;
    }
    authPending = false;
    connect();
  }

  // Frames -----------------------------------------------------------------

  function onFrame(session, data) {
    if (session.dead || stopped) return;
    session.lastFrame = Date.now();
    session.pinged = false;
    const frame = readFrame(data); // null: a heartbeat, or unreadable
    if (!frame) return;
    const { topic, body } = frame;
    if (topic === voiceTopic) onTranscription(body);
    else if (userTopic && topic === userTopic && body.id === conversationId) onConversation(body);
  }

  function onTranscription(body) {
    setMedia("voice");
    const { finals, active, ended: sessionEnded } = readTranscription(body);
    if (active) markActive();
    for (const { id, speaker, text } of finals) {
      if (text) emit({ id, speaker, text, media: "voice" });
      else seenUtterances.add(id);
    }
    if (sessionEnded) markEnded();
  }

  function onConversation(body) {
    const participants = Array.isArray(body.participants) ? body.participants : [];
    if (hasMessages(participants)) {
      setMedia("message");
      if (!customerLeft(participants)) markActive();
      messages.sync(participants);
    } else if (hasCalls(participants)) {
      if (!media) setMedia("voice");
      if (!ended && !endTimer && customerLeft(participants)) {
        // No SESSION_ENDED (transcription off?): end once late finals had their chance.
        endTimer = later(markEnded, timing.voiceEndGraceMs);
      }
    }
  }

  // After each (re)subscription: messages no channel delivered (and what media this is).
  async function catchUp() {
    if (media === "voice") return;
    const participants = await messages.refresh();
    if (!participants || stopped) return;
    if (hasMessages(participants)) setMedia("message");
    else if (customerLeft(participants)) markEnded();
    else if (hasCalls(participants) && !media) setMedia("voice");
  }

  // The page has a new token (it signed in again before the old one ended): move the
  // live channel to it, the old one kept until the new one is live.
  function followToken() {
    if (stopped || authPending || !isLive(current)) return;
    const token = getToken();
    if (token && token !== current.token) connect();
  }

  // A socket that has gone quiet past its heartbeats is dead even if it looks open.
  function checkSilence() {
    for (const session of [current, previous]) {
      if (!session || session.dead || !session.lastFrame) continue;
      const silent = Date.now() - session.lastFrame;
      if (silent > timing.heartbeatTimeoutMs) {
        failed(session, new SocketClosed(4000, "no heartbeat"));
      } else if (silent > timing.pingAfterMs && !session.pinged
                 && session.socket.readyState === WebSocket.OPEN) {
        session.pinged = true;
        session.socket.send(JSON.stringify({ message: "ping" }));
      }
    }
  }

  const watchdog = setInterval(() => {
    checkSilence();
    followToken();
  }, timing.watchdogEveryMs);
  window.addEventListener("online", onOnline);
  connect();
  return { close: stop };
}
