// Mock Agent Desktop (dev): starts scripted conversations, shows their live
// transcript, and frames the Assist Panel the way Genesys Agent Desktop does.
// Configuration comes from data-* attributes on #md-root; text from the server
// is only ever inserted with textContent.

const SPEAKER_LABELS = Object.freeze({ customer: 'Customer', agent: 'Agent' });
const STATUS_TEXT = Object.freeze({
  waiting: 'Waiting for the panel to subscribe to the transcript…',
  playing: 'Conversation in progress',
  ended: 'Transcript ended',
});

async function postJson(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(payload.message || `HTTP ${response.status}`);
  }
  return payload;
}

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
      setStatus(STATUS_TEXT[message.status] ?? '');
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

const desktopRoot = document.getElementById('md-root');
if (desktopRoot) setupDesktop(desktopRoot);
