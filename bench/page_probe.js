// Measuring aids for bench/page.py (benchmark item 5, issue 7). Never part of the
// product: the bench injects this file into every frame with Playwright's
// add_init_script. It drives the panel only through its own ask form (the form's
// real submit handler) and reads only the panel's DOM.
globalThis.assistPageBench = (() => {
  const feed = () => document.querySelector(".ap-feed");
  const streaming = () => Number(feed().dataset.streaming || 0);
  const count = () => Number(feed().dataset.count || 0);

  // Resolves once test() holds, checked again at each change of the feed's
  // data-streaming or data-count (an event, not a poll).
  function until(test) {
    if (test()) return Promise.resolve();
    return new Promise((resolve) => {
      const observer = new MutationObserver(() => {
        if (!test()) return;
        observer.disconnect();
        resolve();
      });
      observer.observe(feed(), { attributes: true,
        attributeFilter: ["data-streaming", "data-count"] });
    });
  }

  // Puts one question in the ask box and submits the form, as pressing Ask does.
  function submit(query) {
    const form = document.querySelector(".ap-ask");
    form.elements.query.value = query;
    form.requestSubmit();
  }

  // Asks every question, keeping at most inFlight streams open (Chromium opens 6
  // connections per origin and queues the rest; the page's stall watchdog runs from
  // the moment a card is added). Resolves with the card count once all have ended.
  async function ask({ questions, inFlight = 12 }) {
    for (const query of questions) {
      await until(() => streaming() < inFlight);
      submit(query);
    }
    await until(() => streaming() === 0);
    return count();
  }

  // The newest card (the list puts aria-posinset on every mounted card).
  function lastCard() {
    return feed().querySelector(`.ap-card[aria-posinset="${count()}"]`);
  }

  // What the newest card shows now: its answer's characters and whitespace-separated
  // words (the mock model's tokens are words with their leading space).
  function lastText() {
    const card = lastCard();
    const answer = card && card.querySelector(".ap-card__answer");
    const text = answer ? answer.textContent : "";
    return { t: performance.now(), chars: text.length, tokens: (text.match(/\S+/g) || []).length,
      state: card ? card.dataset.state : null, mounted: Boolean(card) };
  }

  function sample() {
    const cards = document.querySelectorAll(".ap-card");
    const sizes = new Set([...cards].map((card) => card.getAttribute("aria-setsize")));
    return { t: performance.now(), mounted: cards.length, count: count(),
      setsize: sizes.size === 1 ? Number([...sizes][0]) : null,
      nodes: document.getElementsByTagName("*").length };
  }

  // Records requestAnimationFrame deltas (ms) for durationMs, with the DOM sampled
  // every sampleMs and the newest card's text read at the start and at the end.
  // Also each frame's main-thread work: from the frame's start to the first task after
  // its rendering (every rAF callback, the feed's flush among them, then style,
  // layout and paint), which a message posted from a rAF callback measures.
  async function measure({ durationMs, sampleMs = 250 }) {
    const deltas = [];
    const work = [];
    const channel = new MessageChannel();
    channel.port1.onmessage = (event) => work.push(performance.now() - event.data);
    const samples = [sample()];
    const longTasks = [];
    let observer = null;
    if (PerformanceObserver.supportedEntryTypes.includes("longtask")) {
      observer = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) longTasks.push(entry.duration);
      });
      observer.observe({ type: "longtask" });
    }
    const timer = setInterval(() => samples.push(sample()), sampleMs);
    let before = null;
    await new Promise((resolve) => {
      let previous = -1;
      let end = 0;
      const step = (now) => {
        if (previous < 0) {
          before = lastText();
          end = now + durationMs;
        } else {
          deltas.push(now - previous);
        }
        channel.port2.postMessage(now);
        previous = now;
        if (now >= end) resolve();
        else requestAnimationFrame(step);
      };
      requestAnimationFrame(step);
    });
    const after = lastText();
    clearInterval(timer);
    channel.port1.close();
    samples.push(sample());
    if (observer) observer.disconnect();
    return { deltas, work, samples, before, after, longTasks, durationMs };
  }

  return { ask, submit, lastText, sample, measure };
})();
