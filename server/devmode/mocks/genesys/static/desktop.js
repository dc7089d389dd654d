// Mock Agent Desktop (dev): starts and ends scripted conversations, shows their
// live transcript (or messages), frames the Assist Panel the way Genesys Agent
// Desktop does (speaking the Client App SDK's lifecycle protocol to it: see
// lifecycle.js), and drives the mock platform's switches (the Platform section).
// Configuration comes from data-* attributes on #md-root; text from the server
// or the panel is only ever inserted with textContent.

import { createLifecycle, createToasts } from './lifecycle.js';

// How long a conversation's panel gets to answer the stop hook before the desktop
// goes on (ending it, or opening the next conversation) without the answer.
const STOP_TIMEOUT_MS = 3000;
const DEFAULT_BOOTSTRAP_TIMEOUT_S = 10;

const SPEAKER_LABELS = Object.freeze({ customer: 'Customer', agent: 'Agent' });
const STATUS_TEXT = Object.freeze({
  voice: Object.freeze({
    waiting: 'Waiting for the panel to subscribe to the transcript…',
    playing: 'Conversation in progress',
    ended: 'Transcript ended',
  }),
  message: Object.freeze({
    waiting: "Waiting for the panel to subscribe to the agent's conversations…",
    playing: 'Messaging in progress',
    ended: 'All messages sent',
  }),
});
const DISCONNECTED_TEXT = 'Conversation ended';

async function sendJson(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(payload.message || `HTTP ${response.status}`);
  }
  return payload;
}

const postJson = (url, body) => sendJson('POST', url, body);

function websocketUrl(path) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

function setupDesktop(root) {
  const conversationsUrl = root.dataset.conversationsUrl;
  const els = {
    script: root.querySelector('#md-script'),
    direct: root.querySelector('#md-direct'),
    start: root.querySelector('#md-start'),
    replay: root.querySelector('#md-replay'),
    end: root.querySelector('#md-end'),
    status: root.querySelector('#md-status'),
    description: root.querySelector('#md-description'),
    transcript: root.querySelector('#md-transcript'),
    conversationId: root.querySelector('#md-conversation-id'),
    reply: root.querySelector('#md-reply'),
  };
  const replyArea = els.reply.closest('.md-reply');
  let conversationId = null;
  let media = 'voice';
  let feed = null;

  // Genesys puts a proposed message into the reply box of a messaging interaction,
  // at the cursor; a call has no reply box, so there it does nothing.
  const insertReply = (text) => {
    const box = els.reply;
    box.setRangeText(text, box.selectionStart, box.selectionEnd, 'end');
  };

  const showToast = createToasts(root.querySelector('#md-toasts'));
  const bootstrapTimeoutS = Number(root.dataset.bootstrapTimeoutS);
  const lifecycle = createLifecycle(
    {
      frame: root.querySelector('#md-panel'),
      widget: root.querySelector('#md-widget'),
      loading: root.querySelector('#md-panel-loading'),
      note: root.querySelector('#md-lifecycle-note'),
      log: root.querySelector('#md-app-log'),
    },
    {
      panelOrigin: root.dataset.panelOrigin,
      bootstrapTimeoutMs:
        1000 * (bootstrapTimeoutS > 0 ? bootstrapTimeoutS : DEFAULT_BOOTSTRAP_TIMEOUT_S),
      stopTimeoutMs: STOP_TIMEOUT_MS,
      onAppMessage: (data) => {
        if (data.action === 'showToast') {
          showToast(data);
        } else if (
          data.action === 'proposeInteractionMessage' &&
          data.mode === 'insert' &&
          typeof data.message === 'string' &&
          media === 'message'
        ) {
          insertReply(data.message);
        }
      },
    },
  );

  const setStatus = (text) => {
    els.status.textContent = text;
  };

  const appendLine = (speaker, text) => {
    const line = document.createElement('div');
    line.className = `md-line md-line--${speaker}`;
    line.dataset.speaker = speaker;
    const who = document.createElement('span');
    who.className = 'md-speaker';
    who.textContent = SPEAKER_LABELS[speaker];
    const said = document.createElement('span');
    said.className = 'md-text';
    said.textContent = text;
    line.append(who, said);
    els.transcript.append(line);
    els.transcript.scrollTop = els.transcript.scrollHeight;
  };

  const onFeedMessage = (data) => {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.type === 'status') {
      if (message.status === 'disconnected') {
        setStatus(DISCONNECTED_TEXT);
        return;
      }
      setStatus((STATUS_TEXT[media] ?? STATUS_TEXT.voice)[message.status] ?? '');
    } else if (message.type === 'reset') {
      els.transcript.replaceChildren();
    } else if (
      message.type === 'line' &&
      Object.hasOwn(SPEAKER_LABELS, message.speaker) &&
      typeof message.text === 'string'
    ) {
      appendLine(message.speaker, message.text);
    }
  };

  const closeFeed = () => {
    if (feed) {
      const socket = feed;
      feed = null;
      socket.close();
    }
  };

  const openFeed = (id) => {
    closeFeed();
    const socket = new WebSocket(
      websocketUrl(`${conversationsUrl}/${encodeURIComponent(id)}/feed`),
    );
    feed = socket;
    socket.addEventListener('message', (event) => {
      if (feed === socket) onFeedMessage(event.data);
    });
    socket.addEventListener('close', () => {
      if (feed === socket) {
        feed = null;
        setStatus('Transcript feed disconnected');
      }
    });
  };

  const startConversation = async () => {
    els.start.disabled = true;
    setStatus('Starting…');
    try {
      // The conversation open so far leaves the widget: its panel is stopped first.
      await lifecycle.stop();
      // A direct call (dialled straight to the agent, no queue) is a voice thing only.
      const option = els.script.selectedOptions[0];
      const direct = els.direct.checked && (!option || option.dataset.media === 'voice');
      const created = await postJson(conversationsUrl, { script: els.script.value, direct });
      conversationId = created.conversationId;
      media = created.media === 'message' ? 'message' : 'voice';
      els.transcript.replaceChildren();
      els.conversationId.textContent = conversationId;
      els.replay.disabled = false;
      els.end.disabled = false;
      els.reply.value = '';
      replyArea.hidden = media !== 'message';
      openFeed(conversationId);
      lifecycle.open(conversationId, created.panelUrl);
    } catch (error) {
      setStatus(`Could not start the conversation: ${error.message}`);
    } finally {
      els.start.disabled = false;
    }
  };

  // The agent ends the conversation: the platform ends it, then its panel is stopped.
  const endConversation = async () => {
    if (!conversationId) return;
    els.end.disabled = true;
    try {
      await postJson(`${conversationsUrl}/${encodeURIComponent(conversationId)}/end`);
      els.replay.disabled = true;
      setStatus(DISCONNECTED_TEXT);
      await lifecycle.stop();
    } catch (error) {
      els.end.disabled = false;
      setStatus(`Could not end the conversation: ${error.message}`);
    }
  };

  const replay = async () => {
    if (!conversationId) return;
    els.replay.disabled = true;
    try {
      await postJson(`${conversationsUrl}/${encodeURIComponent(conversationId)}/play`);
      if (!feed) openFeed(conversationId);
    } catch (error) {
      setStatus(`Could not replay: ${error.message}`);
    } finally {
      els.replay.disabled = false;
    }
  };

  els.script.addEventListener('change', () => {
    els.description.textContent = els.script.selectedOptions[0]?.dataset.description ?? '';
  });
  els.start.addEventListener('click', startConversation);
  els.replay.addEventListener('click', replay);
  els.end.addEventListener('click', endConversation);
}

// The Platform section: sign-in mode, framing, user, agent role and token expiry
// switches, and expiries.
function setupPlatform(root) {
  const els = {
    mode: root.querySelector('#md-signin-mode'),
    user: root.querySelector('#md-signin-user'),
    role: root.querySelector('#md-agent-role'),
    tokenExpiry: root.querySelector('#md-token-expiry'),
    frameable: root.querySelector('#md-frameable'),
    expireTokens: root.querySelector('#md-expire-tokens'),
    expireChannels: root.querySelector('#md-expire-channels'),
    status: root.querySelector('#md-platform-status'),
  };
  if (!els.mode) return;
  const { settingsUrl, tokensExpireUrl, channelsExpireUrl } = root.dataset;

  const show = (settings) => {
    els.mode.value = settings.signInMode;
    els.user.value = settings.signInUserId;
    els.role.value = settings.agentRole;
    els.tokenExpiry.value = settings.tokenExpiry;
    els.frameable.checked = settings.loginFrameable;
  };

  const save = async (change) => {
    try {
      show(await sendJson('PUT', settingsUrl, change));
      els.status.textContent = 'Saved';
    } catch (error) {
      els.status.textContent = `Not saved: ${error.message}`;
      // Show what the mock really uses now.
      fetch(settingsUrl).then((r) => r.json()).then(show, () => {});
    }
  };

  const expire = async (button, url, what) => {
    button.disabled = true;
    try {
      const answer = await postJson(url);
      els.status.textContent = `Expired ${answer.expired} ${what}`;
    } catch (error) {
      els.status.textContent = `Could not expire ${what}: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  };

  els.mode.addEventListener('change', () => save({ signInMode: els.mode.value }));
  els.user.addEventListener('change', () => save({ signInUserId: els.user.value }));
  els.role.addEventListener('change', () => save({ agentRole: els.role.value }));
  els.tokenExpiry.addEventListener('change', () => save({ tokenExpiry: els.tokenExpiry.value }));
  els.frameable.addEventListener('change', () => save({ loginFrameable: els.frameable.checked }));
  els.expireTokens.addEventListener('click', () => expire(els.expireTokens, tokensExpireUrl, 'tokens'));
  els.expireChannels.addEventListener('click', () =>
    expire(els.expireChannels, channelsExpireUrl, 'channels'),
  );
}

const desktopRoot = document.getElementById('md-root');
if (desktopRoot) {
  setupDesktop(desktopRoot);
  setupPlatform(desktopRoot);
}
