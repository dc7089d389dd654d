// The live transcript from the Genesys Notifications API: open a channel,
// subscribe to the conversation's transcription topic, read final utterances,
// and open a new channel when the socket drops.

const HEARTBEAT_GRACE_MS = 75_000;

export class GenesysError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function callApi(apiBase, token, method, path, body) {
  const response = await fetch(new URL(path, apiBase), {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new GenesysError(response.status, `Genesys answered ${response.status}`);
  return response.json();
}

// Calls onUtterance({id, speaker, text}) for each final utterance and
// onStatus("connecting" | "live" | "reconnecting" | "ended" | "unauthorized").
export function watchTranscript({ apiBase, token, conversationId, onUtterance, onStatus }) {
  const topic = `v2.conversations.${conversationId}.transcription`;
  const seen = new Set();
  let socket = null;
  let closed = false;
  let attempt = 0;
  let timer = 0;
  let lastFrame = 0;

  function scheduleReconnect() {
    if (closed) return;
    onStatus("reconnecting");
    const delay = Math.min(30_000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
    attempt += 1;
    clearTimeout(timer);
    timer = setTimeout(connect, delay);
  }

  function handleFrame(frame) {
    lastFrame = Date.now();
    if (frame.topicName !== topic || !frame.eventBody) return;
    const body = frame.eventBody;
    for (const t of body.transcripts || []) {
      if (!t.isFinal || seen.has(t.utteranceId)) continue;
      seen.add(t.utteranceId);
      const text = ((t.alternatives || [])[0] || {}).transcript || "";
      if (text.trim()) {
        onUtterance({
          id: t.utteranceId,
          speaker: t.channel === "EXTERNAL" ? "customer" : "agent",
          text,
        });
      }
    }
    if (body.status && body.status.status === "SESSION_ENDED") onStatus("ended");
  }

  async function connect() {
    if (closed) return;
    onStatus(attempt ? "reconnecting" : "connecting");
    let channel;
    try {
      channel = await callApi(apiBase, token, "POST", "/api/v2/notifications/channels");
      await callApi(apiBase, token, "PUT",
        `/api/v2/notifications/channels/${encodeURIComponent(channel.id)}/subscriptions`,
        [{ id: topic }]);
    } catch (error) {
      if (error instanceof GenesysError && error.status === 401) {
        closed = true;
        onStatus("unauthorized");
        return;
      }
      scheduleReconnect();
      return;
    }
    socket = new WebSocket(channel.connectUri);
    socket.addEventListener("open", () => {
      attempt = 0;
      lastFrame = Date.now();
      onStatus("live");
    });
    socket.addEventListener("message", (event) => {
      try {
        handleFrame(JSON.parse(event.data));
      } catch {
        // one unreadable frame must not end the feed
      }
    });
    socket.addEventListener("close", () => {
      socket = null;
      scheduleReconnect();
    });
  }

  // A channel that has gone quiet past its heartbeats is dead even if the socket looks open.
  const watchdog = setInterval(() => {
    if (socket && lastFrame && Date.now() - lastFrame > HEARTBEAT_GRACE_MS) socket.close();
  }, 15_000);

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(watchdog);
      if (socket) socket.close();
    },
  };
}
