// The live transcript's decisions, with no timers, sockets or requests: what a
// notification frame carries, which utterances a transcription event holds, which
// topics to ask, what status a live channel shows, how long to wait before a retry
// or a renewal, and what a failure means. transcript.js does the rest.

const SPEAKER_BY_CHANNEL = new Map([["EXTERNAL", "customer"], ["INTERNAL", "agent"]]);
const TOKEN_CLOSE = /token/i;

// Genesys refused every topic the conversation needs: retrying cannot help.
export class TopicsRefused extends Error {
  constructor() {
    super("Genesys refused every topic");
    this.status = 0;
  }
}

export class SocketClosed extends Error {
  constructor(code, reason) {
    super(`The channel socket closed (${code})`);
    this.status = 0;
    this.code = code;
    this.reason = reason || "";
  }
}

// Whether the participants show a call.
export const hasCalls = (participants) =>
  participants.some((p) => Array.isArray(p.calls) && p.calls.length > 0);

// A notification socket's frame (text): {topic, body}, or null for anything without
// an event body (heartbeats, pongs, unreadable frames).
export function readFrame(data) {
  let frame;
  try {
    frame = JSON.parse(data);
  } catch {
    return null; // one unreadable frame must not end the feed
  }
  const body = frame && frame.eventBody;
  if (!body || typeof body !== "object") return null;
  return { topic: frame.topicName, body };
}

// A transcription event's body: its final utterances in order ({id, speaker, text};
// text "" for one with nothing said, which is never shown), whether it shows the
// conversation going on (it carries transcripts and did not end the session), and
// whether it ended the transcription session.
export function readTranscription(body) {
  const transcripts = Array.isArray(body.transcripts) ? body.transcripts : [];
  const ended = Boolean(body.status && body.status.status === "SESSION_ENDED");
  const finals = [];
  for (const t of transcripts) {
    const speaker = SPEAKER_BY_CHANNEL.get(t && t.channel);
    if (!t || !t.isFinal || !t.utteranceId || !speaker) continue;
    const text = String(((t.alternatives || [])[0] || {}).transcript || "").trim();
    finals.push({ id: t.utteranceId, speaker, text });
  }
  return { finals, active: transcripts.length > 0 && !ended, ended };
}

// Only what the interaction needs (media "voice" | "message" | "" not known yet): one
// refused permission never costs the other. Without the agent's topic, the voice one.
export function topicsFor(media, voiceTopic, userTopic) {
  if (media === "message") return userTopic ? [userTopic] : [voiceTopic];
  return userTopic ? [voiceTopic, userTopic] : [voiceTopic];
}

// What a live channel shows: "ended", or "restricted" for a call whose transcript
// Genesys refused (or messaging whose text it refused), else "live".
export function liveStatus({ ended, voiceRefused, messagesRefused = false, media }) {
  if (ended) return "ended";
  const refused = media === "message" ? messagesRefused : voiceRefused;
  return refused ? "restricted" : "live";
}

// The refused topics as one comparable value, to report only changes.
export const refusalKey = (refused) => refused.map((r) => r.id).sort().join(" ");

// The wait before retry number `failures` (1, 2, ...): the first comes quickly (up to
// firstRetryMaxMs); then 1 s, 2 s, 4 s... up to backoffMaxMs, each with jitter (half
// to all of it). random(): a number in [0, 1).
export function retryDelay(failures, timing, random = Math.random) {
  const grown = timing.backoffBaseMs * 2 ** Math.max(0, failures - 2);
  return failures <= 1
    ? random() * timing.firstRetryMaxMs
    : Math.min(timing.backoffMaxMs, grown) * (0.5 + random() / 2);
}

// When to replace a channel that expires at `expires` (its ISO time): renewBeforeExpiryMs
// before, but never sooner than minChannelLifeMs; null when it does not say or has
// expired already.
export function renewDelay(expires, now, timing) {
  const left = Date.parse(expires || "") - now;
  if (!(left > 0)) return null;
  return Math.max(timing.minChannelLifeMs, left - timing.renewBeforeExpiryMs);
}

// What a failed channel means: "auth" (a 401, or a socket closed for its token: get a
// fresh token), "refused" (every topic refused), "forbidden" (403, 400, or a second
// 404 in a row: retrying cannot help), else "retry".
export function failureKind(error, notFoundBefore) {
  if (error.status === 401) return "auth";
  if (error instanceof SocketClosed && TOKEN_CLOSE.test(error.reason)) return "auth";
  if (error instanceof TopicsRefused) return "refused";
  if (error.status === 403 || error.status === 400 || (error.status === 404 && notFoundBefore)) {
    return "forbidden";
  }
  return "retry";
}
