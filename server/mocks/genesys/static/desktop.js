// Mock Agent Desktop (dev): starts scripted conversations, shows their live
// transcript (or messages), frames the Assist Panel the way Genesys Agent
// Desktop does, and drives the mock platform's switches (the Platform section).
// Configuration comes from data-* attributes on #md-root; text from the server
// is only ever inserted with textContent.

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
    start: root.querySelector('#md-start'),
    replay: root.querySelector('#md-replay'),
    status: root.querySelector('#md-status'),
    description: root.querySelector('#md-description'),
    transcript: root.querySelector('#md-transcript'),
    conversationId: root.querySelector('#md-conversation-id'),
    panel: root.querySelector('#md-panel'),
  };
  let conversationId = null;
  let media = 'voice';
  let feed = null;

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
      const created = await postJson(conversationsUrl, { script: els.script.value });
      conversationId = created.conversationId;
      media = created.media === 'message' ? 'message' : 'voice';
      els.transcript.replaceChildren();
      els.conversationId.textContent = conversationId;
      els.replay.disabled = false;
      openFeed(conversationId);
      els.panel.src = created.panelUrl;
    } catch (error) {
      setStatus(`Could not start the conversation: ${error.message}`);
    } finally {
      els.start.disabled = false;
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
}

// The Platform section: sign-in mode, framing and user switches, and expiries.
function setupPlatform(root) {
  const els = {
    mode: root.querySelector('#md-signin-mode'),
    user: root.querySelector('#md-signin-user'),
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
