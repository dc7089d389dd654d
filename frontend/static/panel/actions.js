// What the agent can do with a card: copy its answer, insert it into the reply
// (Client App SDK, inside Genesys only), and rate it.

// Feedback with no answer by then is given up (the button can be pressed again).
export const FEEDBACK_TIMEOUT_MS = 15_000;

export async function copyText(text) {
  await navigator.clipboard.writeText(text);
}

// POST /api/feedback: {suggestionId, rating: "up"|"down", copied?, inserted?}.
export async function sendFeedback(url, session, { suggestionId, rating, copied, inserted }) {
  const body = { suggestionId, rating };
  if (copied) body.copied = true;
  if (inserted) body.inserted = true;
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${session}` },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(FEEDBACK_TIMEOUT_MS),
  });
  if (!response.ok) throw new Error(`The server answered ${response.status}`);
}
