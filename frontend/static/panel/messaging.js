// Messaging conversations: the platform's conversation events list every message
// by id (participants[].messages[].messages[]); the text has to be fetched. This
// module turns participant lists (from events or a conversation snapshot) into
// utterances: each message id once, texts fetched one by one or in bulk, emitted
// in messageTime order, retried with backoff when a fetch fails for a while (no
// answer, a busy or failing platform); a refusal is not retried.

const SPEAKERS = { customer: "customer", agent: "agent" };
const BULK_LIMIT = 100;
const MAX_RETRIES = 6;
const ENDED_STATES = new Set(["disconnected", "terminated"]);
// Reading a message's text needs either of these (a refusal that does not say).
const MESSAGE_PERMISSIONS = ["conversation:message:view", "conversation:webmessaging:view"];
const LOG = "Assist Panel messaging:";

// A failure that may pass by itself: no answer, a timeout, busy, or a server error.
export const isTransient = (error) => error.status === 0 || error.status === 408
  || error.status === 429 || error.status >= 500;

// The permissions a refused message read (403) names; if it names none, those the
// read needs, unless the refusal is the OAuth client's (a missing scope).
export function refusedPermissions(error) {
  if (error.permissions && error.permissions.length) return [...error.permissions];
  return /scopes/.test(error.code || "") ? [] : [...MESSAGE_PERMISSIONS];
}

const NO_TIME = Number.MAX_SAFE_INTEGER;

function timeOf(value) {
  const time = Date.parse(value || "");
  return Number.isNaN(time) ? NO_TIME : time;
}

// textBody is on every message; normalizedMessage only when the platform adds it.
function textOf(messageData) {
  const data = messageData || {};
  const body = typeof data.textBody === "string" ? data.textBody.trim() : "";
  if (body) return body;
  const normalized = data.normalizedMessage || {};
  return typeof normalized.text === "string" ? normalized.text.trim() : "";
}

function messageCommunications(participant) {
  return Array.isArray(participant.messages) ? participant.messages : [];
}

const COMMUNICATION_KINDS = ["calls", "messages", "chats", "emails", "callbacks", "videos"];

function communications(participant) {
  return COMMUNICATION_KINDS.flatMap((kind) =>
    Array.isArray(participant[kind]) ? participant[kind] : []);
}

// Whether the participants show a messaging conversation.
export function hasMessages(participants) {
  return (participants || []).some((p) => messageCommunications(p).length > 0);
}

// Whether every customer participant has left (endTime set, or all their
// communications disconnected or terminated).
export function customerLeft(participants) {
  const customers = (participants || []).filter((p) => p.purpose === "customer");
  return customers.length > 0 && customers.every((p) => {
    const all = communications(p);
    return Boolean(p.endTime) || (all.length > 0 && all.every((c) => ENDED_STATES.has(c.state)));
  });
}

// fetchJson(method, path, body) -> Promise of the parsed answer (throws GenesysError).
// onUtterance({id, speaker, text, media: "message"}).
function createMessageFeed({ conversationId, fetchJson, onUtterance }) {
  const base = `/api/v2/conversations/messages/${encodeURIComponent(conversationId)}/messages`;
  const done = new Set(); // emitted, or known to have no text
  const pending = new Map(); // id -> {id, speaker, time, order}: listed, not out yet
  const claimed = new Set(); // queued or being fetched
  const waitingBatches = new Set(); // queued or being fetched, in order
  let queue = Promise.resolve();

  // Remembers the messages listed here, and claims every pending one not being
  // fetched (a failed fetch gives its messages back: the next call takes them).
  function collect(participants) {
    for (const participant of participants || []) {
      const speaker = SPEAKERS[participant.purpose];
      if (!speaker) continue;
      for (const communication of messageCommunications(participant)) {
        for (const detail of communication.messages || []) {
          const id = detail && detail.messageId;
          if (!id || done.has(id) || pending.has(id)) continue;
          pending.set(id, { id, speaker, time: timeOf(detail.messageTime), order: pending.size });
        }
      }
    }
    const found = [...pending.values()].filter((m) => !claimed.has(m.id));
    found.forEach((m) => claimed.add(m.id));
    return found;
  }

  async function fetchOne(id) {
    try {
      return await fetchJson("GET", `${base}/${encodeURIComponent(id)}`);
    } catch (error) {
      if (error.status === 404) return null; // gone: nothing to show
      throw error;
    }
  }

  async function fetchTexts(ids) {
    const byId = new Map();
    if (ids.length === 1) {
      byId.set(ids[0], await fetchOne(ids[0]));
      return byId;
    }
    for (let start = 0; start < ids.length; start += BULK_LIMIT) {
      const chunk = ids.slice(start, start + BULK_LIMIT);
      const answer = await fetchJson("POST", `${base}/bulk`, chunk);
      for (const entity of (answer && answer.entities) || []) {
        if (entity && entity.id) byId.set(entity.id, entity);
      }
    }
    for (const id of ids) {
      if (!byId.has(id)) byId.set(id, await fetchOne(id)); // the bulk answer left it out
    }
    return byId;
  }

  function release(batch) {
    batch.cancelled = true;
    batch.items.forEach((m) => claimed.delete(m.id));
  }

  async function emit(batch) {
    if (batch.cancelled) return;
    let texts;
    try {
      texts = await fetchTexts(batch.items.map((m) => m.id));
    } catch (error) {
      // Give back this batch and every batch queued behind it, so that the next
      // update collects them all again and keeps messageTime order.
      for (const waiting of [...waitingBatches]) release(waiting);
      waitingBatches.clear();
      throw error;
    } finally {
      waitingBatches.delete(batch);
    }
    const ordered = batch.items
      .map((m) => ({ ...m, data: texts.get(m.id) }))
      .map((m) => (m.time === NO_TIME && m.data ? { ...m, time: timeOf(m.data.timestamp) } : m))
      .sort((a, b) => a.time - b.time || a.order - b.order);
    for (const message of ordered) {
      claimed.delete(message.id);
      pending.delete(message.id);
      done.add(message.id);
      const text = textOf(message.data);
      if (text) onUtterance({ id: message.id, speaker: message.speaker, text, media: "message" });
    }
  }

  return {
    // Emit the messages of these participants (and any earlier ones given back by a
    // failed fetch) not emitted yet. Resolves once they are out; rejects with the
    // fetch error (those messages are taken again by the next call).
    update(participants) {
      const items = collect(participants);
      if (!items.length) return queue;
      const batch = { items, cancelled: false };
      waitingBatches.add(batch);
      const run = queue.then(() => emit(batch));
      queue = run.catch(() => undefined);
      return run;
    },
  };
}

// Follows one messaging conversation for watchConversation(): sync(participants)
// for each conversation event, refresh() after each (re)subscription to catch up
// on messages no channel delivered. A 401 goes to onAuthError(error); transient
// failures are retried with backoff; any other is not: a refused message read (403)
// goes to onRefused(permissions) once, and no message is fetched again (what
// retrying cannot change). onEnded() once the customer has left and every message
// is out (or, refused, once the customer has left).
export function followMessages({
  conversationId, fetchJson, onUtterance, onEnded, onAuthError, onRefused = () => {}, backoff,
}) {
  const feed = createMessageFeed({ conversationId, fetchJson, onUtterance });
  const path = `/api/v2/conversations/${encodeURIComponent(conversationId)}`;
  let synced = false;
  let customerGone = false;
  let retries = 0;
  let retryTimer = 0;
  let closed = false;
  let refused = false; // the messages' text: Genesys will not give it

  // reading: the failure was a message read (not the conversation's).
  function failed(error, reading = false) {
    if (closed || error.name === "AbortError") return;
    if (error.status === 401) {
      onAuthError(error);
      return;
    }
    if (!isTransient(error)) {
      console.warn(LOG, `Genesys refused the ${reading ? "messages" : "conversation"}`
        + ` (${error.status}${error.code ? ` ${error.code}` : ""}); not retrying`);
      if (reading && !refused) {
        refused = true;
        clearTimeout(retryTimer);
        if (error.status === 403) onRefused(refusedPermissions(error));
        if (customerGone) onEnded();
      }
      return;
    }
    retries += 1;
    if (retries > MAX_RETRIES) return; // the next event tries again
    const delay = Math.min(backoff.maxMs, backoff.baseMs * 2 ** retries);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => (synced ? settle(feed.update([])) : refresh()),
      delay * (0.5 + Math.random() / 2));
  }

  function settle(update) {
    update.then(() => {
      retries = 0;
      if (customerGone && !closed) onEnded();
    }, (error) => failed(error, true));
  }

  function sync(participants) {
    if (closed) return;
    synced = true;
    customerGone = customerGone || customerLeft(participants);
    if (!refused) settle(feed.update(participants));
    else if (customerGone) onEnded();
  }

  // Reads the conversation, syncs its messages; resolves to its participants (null on failure).
  async function refresh() {
    let participants;
    try {
      const conversation = await fetchJson("GET", path);
      participants = (conversation && conversation.participants) || [];
    } catch (error) {
      failed(error);
      return null;
    }
    if (!closed && hasMessages(participants)) sync(participants);
    return participants;
  }

  return {
    sync,
    refresh,
    close() {
      closed = true;
      clearTimeout(retryTimer);
    },
  };
}
