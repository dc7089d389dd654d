// The host side of the Genesys Client App SDK's postMessage protocol, as Agent
// Desktop speaks it to an interaction widget: lifecycle hooks for the panel's
// frame, and the app's requests (toasts, messages proposed for the reply box).
//
// Host -> app: {purecloudEventType: "appLifecycleHook", hook, protocol} posted to
// the frame's window with the panel's origin as targetOrigin, so the browser drops
// it while the frame shows anything else.
// App -> host: {action, protocol, protocolAgentName, protocolAgentVersion, ...}
// posted to its parent; accepted only from the frame's window and the panel's
// origin. Text from the app is only ever inserted with textContent.

export const PROTOCOL = 'purecloud-client-apps';
const TOAST_TYPES = new Set(['info', 'error', 'success']);
// The lifecycle states a conversation's widget goes through (data-lifecycle):
// idle (no conversation) -> loading -> ready | timed-out -> stopping ->
// stopped | stop-timed-out.
const LIVE = new Set(['loading', 'ready', 'timed-out']);

// els: {frame, widget, loading, note, log}. onAppMessage(data) gets every accepted
// message other than bootstrapped and stopped.
export function createLifecycle(els, { panelOrigin, bootstrapTimeoutMs, stopTimeoutMs, onAppMessage }) {
  // One session per conversation shown in the frame. A session never goes back to
  // "loading": the panel's sign-in may take the frame to the mock login host and
  // back (each a load event), and that must not undo a bootstrap already answered.
  let session = null;

  const show = (current, state, text = '') => {
    current.state = state;
    if (session !== current) return;
    els.widget.dataset.lifecycle = state;
    els.loading.hidden = state !== 'loading';
    els.note.textContent = text;
    els.note.hidden = !text;
  };

  const post = (hook) => {
    els.frame.contentWindow?.postMessage(
      { purecloudEventType: 'appLifecycleHook', hook, protocol: PROTOCOL },
      panelOrigin,
    );
  };

  // The frame may only show this page's origin (the mock's login host, during the
  // panel's sign-in) or the panel's: the page's CSP (frame-src) allows no other.
  // This page can read the location of the former only, so a location it cannot
  // read is the panel's.
  const frameOnPanelOrigin = () => {
    try {
      return typeof els.frame.contentWindow.location.href !== 'string';
    } catch {
      return true;
    }
  };

  els.frame.addEventListener('load', () => {
    const current = session;
    if (!current || (current.state !== 'loading' && current.state !== 'ready')) return;
    // The wait starts with the frame's first load, wherever it is.
    if (current.state === 'loading' && !current.bootstrapTimer) {
      current.bootstrapTimer = setTimeout(() => {
        if (current.state !== 'loading') return;
        const seconds = bootstrapTimeoutMs / 1000;
        show(current, 'timed-out',
          `Assist Panel did not answer the bootstrap hook within ${seconds} s; shown anyway.`);
      }, bootstrapTimeoutMs);
    }
    // Every load of the panel is a new page that waits for its hook: send it again
    // (a "ready" session stays ready; a page elsewhere never gets it).
    if (frameOnPanelOrigin()) post('bootstrap');
  });

  const logMessage = (data) => {
    const item = document.createElement('li');
    item.dataset.action = data.action;
    let text;
    try {
      text = JSON.stringify(data);
    } catch {
      text = String(data.action);
    }
    item.textContent = text;
    els.log.append(item);
    els.log.scrollTop = els.log.scrollHeight;
  };

  const finishStop = (current, state, text = '') => {
    if (current.state !== 'stopping') return;
    clearTimeout(current.stopTimer);
    show(current, state, text);
    current.resolveStop();
  };

  window.addEventListener('message', (event) => {
    if (event.source !== els.frame.contentWindow || event.origin !== panelOrigin) return;
    const data = event.data;
    if (!data || typeof data !== 'object' || Array.isArray(data)) return;
    if (data.protocol !== PROTOCOL || typeof data.action !== 'string') return;
    logMessage(data);
    const current = session;
    if (data.action === 'bootstrapped') {
      // Only an awaited answer counts: after a timeout the desktop stopped waiting.
      if (current && current.state === 'loading') {
        clearTimeout(current.bootstrapTimer);
        show(current, 'ready');
      }
    } else if (data.action === 'stopped') {
      if (current) finishStop(current, 'stopped');
    } else {
      onAppMessage(data);
    }
  });

  return {
    // Show a conversation's panel URL in the frame; its bootstrap is sent on load.
    // A stop still awaited for the previous conversation ends on its own timer.
    open(conversationId, url) {
      if (session) clearTimeout(session.bootstrapTimer);
      session = { conversationId, state: 'idle', bootstrapTimer: 0, stopTimer: 0, stopping: null };
      show(session, 'loading');
      els.frame.src = url;
    },

    // Send stop to the open conversation's panel; resolves on its stopped answer or
    // after stopTimeoutMs (never waits forever). Resolves at once without one.
    stop() {
      const current = session;
      if (!current) return Promise.resolve();
      if (current.stopping) return current.stopping;
      if (!LIVE.has(current.state)) return Promise.resolve();
      clearTimeout(current.bootstrapTimer);
      current.stopping = new Promise((resolve) => {
        current.resolveStop = resolve;
      });
      show(current, 'stopping');
      current.stopTimer = setTimeout(() => finishStop(current, 'stop-timed-out',
        'Assist Panel did not answer the stop hook.'), stopTimeoutMs);
      post('stop');
      return current.stopping;
    },
  };
}

// Toasts the app asks for (showToast: title, message, and the SDK's options type,
// timeout in seconds, showCloseButton, id). A toast with the id of one still shown
// replaces it; one with a timeout goes away after it.
export function createToasts(container) {
  const byId = new Map();
  return (data) => {
    const type = TOAST_TYPES.has(data.type) ? data.type : 'info';
    const toast = document.createElement('div');
    toast.className = 'md-toast';
    toast.dataset.type = type;
    toast.setAttribute('role', type === 'error' ? 'alert' : 'status');
    const title = document.createElement('strong');
    title.className = 'md-toast__title';
    title.textContent = typeof data.title === 'string' ? data.title : '';
    const message = document.createElement('p');
    message.className = 'md-toast__message';
    message.textContent = typeof data.message === 'string' ? data.message : '';
    toast.append(title, message);
    const id = typeof data.id === 'string' && data.id ? data.id : null;
    const remove = () => {
      toast.remove();
      if (id && byId.get(id) === toast) byId.delete(id);
    };
    if (id) {
      byId.get(id)?.remove();
      byId.set(id, toast);
    }
    if (data.showCloseButton !== false) {
      const close = document.createElement('button');
      close.type = 'button';
      close.className = 'md-toast__close';
      close.setAttribute('aria-label', 'Close');
      close.textContent = '×';
      close.addEventListener('click', remove);
      toast.append(close);
    }
    if (typeof data.timeout === 'number' && data.timeout > 0) {
      setTimeout(remove, data.timeout * 1000);
    }
    container.append(toast);
  };
}
