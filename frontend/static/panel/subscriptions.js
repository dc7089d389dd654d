// Subscribing a notification channel to its topics, one refusal never costing the
// others. Genesys refuses a topic the user's role has no permission for; asked with
// ignoreErrors=true it subscribes the rest and lists each topic with its state
// ("Permitted" or "Rejected", then rejectionReason and missingPermissions). A
// platform that refuses the whole request anyway (400/403) is asked again one topic
// at a time, so the answer is the same either way.

// What each kind of topic needs, for a refusal that does not say.
const KNOWN_PERMISSIONS = [
  [/^v2\.conversations\.[^.]+\.transcription$/, "conversation:transcription:view"],
];

function permissionsFor(topic) {
  const known = KNOWN_PERMISSIONS.find(([pattern]) => pattern.test(topic));
  return known ? [known[1]] : [];
}

function refusal(topic, entity = {}) {
  const missing = Array.isArray(entity.missingPermissions)
    ? entity.missingPermissions.filter((p) => typeof p === "string" && p)
    : [];
  return {
    id: topic,
    reason: typeof entity.rejectionReason === "string" ? entity.rejectionReason : "",
    missingPermissions: missing.length ? missing : permissionsFor(topic),
  };
}

const isRefusal = (error) => error && (error.status === 400 || error.status === 403);

// Reads a ChannelTopicEntityListing for the topics asked: a topic listed without a
// state, or with "Permitted", is subscribed; "Rejected" or left out is refused.
export function readTopicStates(answer, topics) {
  const listed = new Map();
  for (const entity of (answer && Array.isArray(answer.entities) && answer.entities) || []) {
    if (entity && typeof entity.id === "string") listed.set(entity.id, entity);
  }
  const permitted = [];
  const refused = [];
  for (const topic of topics) {
    const entity = listed.get(topic);
    if (entity && (entity.state === undefined || entity.state === "Permitted")) {
      permitted.push(topic);
    } else {
      refused.push(refusal(topic, entity));
    }
  }
  return { permitted, refused };
}

// request(method, path, body) -> Promise of the parsed answer (throws with .status).
// Replaces the channel's topics with those of `topics` the user may have; resolves
// to {permitted: [topic], refused: [{id, reason, missingPermissions}]}. Other
// errors (401, 404, 5xx, network) reject as they came.
export async function subscribeTopics(request, channelId, topics) {
  const path = `/api/v2/notifications/channels/${encodeURIComponent(channelId)}/subscriptions`;
  const body = topics.map((id) => ({ id }));
  try {
    return readTopicStates(await request("PUT", `${path}?ignoreErrors=true`, body), topics);
  } catch (error) {
    if (!isRefusal(error) || topics.length < 2) {
      if (isRefusal(error)) return { permitted: [], refused: topics.map((t) => refusal(t)) };
      throw error;
    }
  }
  // One by one: the channel starts empty (the PUT changed nothing), each POST adds.
  const permitted = [];
  const refused = [];
  for (const topic of topics) {
    try {
      const answer = await request("POST", `${path}?ignoreErrors=true`, [{ id: topic }]);
      const state = readTopicStates(answer, [topic]);
      permitted.push(...state.permitted);
      refused.push(...state.refused);
    } catch (error) {
      if (!isRefusal(error)) throw error;
      refused.push(refusal(topic));
    }
  }
  return { permitted, refused };
}
