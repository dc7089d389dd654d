// A virtualized, append-only list of items of varying height in a scroll container.
//
// Only the items near the viewport are in the DOM (at most `maxMounted`, plus the
// one holding focus); the others are represented by spacer elements whose heights
// are the sum of the items they stand for (measured when they were mounted, else
// the average). Mounted items stay in normal flow, so an item that grows (a
// streaming answer) pushes the ones after it by itself; the list then corrects
// the scroll position in the same frame:
// - pinned (the reader is at the bottom): the view follows the newest item;
// - not pinned: the first visible item keeps its offset from the top of the
//   viewport, whatever changed above or below it.
// The list owns only geometry; what an item looks like is up to create(key). The
// arithmetic (offsets, what to mount, where the view goes) is in virtual-window.js.
import {
  anchorAt, averageHeight, layout, mountWindow, scrollTarget, span,
} from "./virtual-window.js";

const DEFAULTS = { estimate: 160, overscan: 3, maxMounted: 16, slack: 4 };

export class VirtualList {
  // scroller: the scroll container. create(key, index) -> element; destroy(key, element).
  // onPinnedChange(pinned): the reader reached the bottom, or left it.
  constructor(scroller, { create, destroy = () => {}, onPinnedChange = () => {}, ...options }) {
    this.scroller = scroller;
    this.create = create;
    this.destroy = destroy;
    this.onPinnedChange = onPinnedChange;
    this.options = { ...DEFAULTS, ...options };
    this.keys = [];
    this.index = new Map(); // key -> position
    this.heights = new Map(); // key -> measured height (px)
    this.mounted = new Map(); // key -> element, in list order
    this.elementKeys = new WeakMap(); // element -> key
    this.spacers = new Map(); // spacer id -> element
    this.pinned = true;
    this.anchor = null; // {key, delta}: the first visible item and its offset in the viewport
    this.revealIndex = -1; // an item to bring into view at the next update
    this.lastTop = 0;
    this.frame = 0;
    this.tops = new Float64Array(0);
    this.heightAt = (i) => this.heights.get(this.keys[i]) ?? this.average;
    scroller.style.overflowAnchor = "none"; // the list anchors itself
    this.resizeObserver = new ResizeObserver((entries) => this.onResize(entries));
    this.resizeObserver.observe(scroller);
    scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
  }

  append(key) {
    this.index.set(key, this.keys.length);
    this.keys.push(key);
    this.schedule();
  }

  indexOf(key) {
    return this.index.has(key) ? this.index.get(key) : -1;
  }

  element(key) {
    return this.mounted.get(key) || null;
  }

  // Scrolls to the newest item and follows it again.
  scrollToEnd() {
    this.setPinned(true);
    this.revealIndex = -1;
    this.update();
  }

  // Mounts the item at `index`, scrolled into view; answers its element.
  reveal(index) {
    if (index < 0 || index >= this.keys.length) return null;
    this.revealIndex = index;
    this.update();
    return this.mounted.get(this.keys[index]) || null;
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.update());
  }

  // Measures, picks what to mount, mounts it and sets the scroll position: all in one
  // go, so nothing is painted in between. Safe to call at any time.
  update() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    if (!this.keys.length) return;
    const style = getComputedStyle(this.scroller);
    const box = {
      gap: parseFloat(style.rowGap) || 0,
      padTop: parseFloat(style.paddingTop) || 0,
      padBottom: parseFloat(style.paddingBottom) || 0,
      viewport: this.scroller.clientHeight,
    };
    // Newly mounted items are measured in the next pass, which may change what is in
    // view: a few passes settle it (a ResizeObserver catches the rare rest).
    let top = 0;
    for (let pass = 0; pass < 5; pass += 1) {
      this.measure();
      top = this.target(box, this.layout(box));
      if (!this.reconcile(this.wanted(top, box.viewport))) break;
    }
    if (this.pinned && this.revealIndex < 0) this.scroller.scrollTop = this.scroller.scrollHeight;
    else if (Math.abs(this.scroller.scrollTop - top) >= 0.5) this.scroller.scrollTop = top;
    this.lastTop = this.scroller.scrollTop;
    if (this.revealIndex >= 0) {
      this.revealIndex = -1;
      this.setPinned(this.atBottom());
    }
    this.capture(this.lastTop);
  }

  measure() {
    for (const [key, element] of this.mounted) {
      const height = element.getBoundingClientRect().height;
      if (height > 0) this.heights.set(key, height);
    }
  }

  // Offsets of every item from the top of the content, from the known heights;
  // answers where the content ends.
  layout(box) {
    const n = this.keys.length;
    this.average = averageHeight(this.heights.values(), this.options.estimate);
    if (this.tops.length < n) this.tops = new Float64Array(Math.max(n, this.tops.length * 2, 64));
    return layout(this.tops, n, this.heightAt, box);
  }

  // Where the view should be: the bottom when pinned, the item being revealed, or
  // wherever keeps the anchor item at the same offset in the viewport.
  target(box, end) {
    const anchor = this.anchor && this.index.has(this.anchor.key)
      ? { index: this.index.get(this.anchor.key), delta: this.anchor.delta } : null;
    return scrollTarget(this.tops, this.heightAt, { end, box, pinned: this.pinned, anchor,
      scrollTop: this.scroller.scrollTop, reveal: this.revealIndex });
  }

  // The items to mount: those in view and `overscan` more on each side, at most
  // `maxMounted` (the overscan goes first), plus the one holding focus.
  wanted(top, viewport) {
    const { overscan, maxMounted } = this.options;
    return mountWindow(this.tops, this.keys.length,
      { top, viewport, overscan, maxMounted, focused: this.focusedIndex() });
  }

  // The item holding keyboard focus stays mounted, wherever the view is.
  focusedIndex() {
    const active = document.activeElement;
    if (!active || active === this.scroller || !this.scroller.contains(active)) return -1;
    for (const [key, element] of this.mounted) {
      if (element.contains(active)) return this.index.get(key);
    }
    return -1;
  }

  // Puts exactly the wanted items, with spacers for the gaps, in the scroller,
  // without moving an element that stays (a moved element would lose focus).
  // Answers whether anything was newly mounted.
  reconcile(indices) {
    const wantedKeys = new Set(indices.map((i) => this.keys[i]));
    for (const [key, element] of this.mounted) {
      if (wantedKeys.has(key)) continue;
      this.resizeObserver.unobserve(element);
      element.remove();
      this.mounted.delete(key);
      this.destroy(key, element);
    }
    const sequence = [];
    let mountedNew = false;
    let previous = -1;
    const spacerHeight = (from, to) => span(this.tops, this.heightAt, from, to);
    for (const i of indices) {
      const key = this.keys[i];
      if (i > previous + 1) {
        sequence.push(this.spacer(`before:${key}`, spacerHeight(previous + 1, i - 1)));
      }
      let element = this.mounted.get(key);
      if (!element) {
        element = this.create(key, i);
        this.mounted.set(key, element);
        this.elementKeys.set(element, key);
        this.resizeObserver.observe(element);
        mountedNew = true;
      }
      sequence.push(element);
      previous = i;
    }
    const n = this.keys.length;
    if (previous < n - 1) sequence.push(this.spacer("end", spacerHeight(previous + 1, n - 1)));
    const keep = new Set(sequence);
    for (const [id, spacer] of this.spacers) {
      if (!keep.has(spacer)) {
        spacer.remove();
        this.spacers.delete(id);
      }
    }
    let next = null;
    for (let j = sequence.length - 1; j >= 0; j -= 1) {
      const node = sequence[j];
      if (node.parentNode !== this.scroller || node.nextSibling !== next) {
        this.scroller.insertBefore(node, next);
      }
      next = node;
    }
    return mountedNew;
  }

  spacer(id, height) {
    let spacer = this.spacers.get(id);
    if (!spacer) {
      spacer = document.createElement("div");
      spacer.className = "ap-feed__spacer";
      spacer.setAttribute("aria-hidden", "true"); // its box is panel.css's; its height ours
      this.spacers.set(id, spacer);
    }
    const value = `${Math.max(0, height)}px`;
    if (spacer.style.height !== value) spacer.style.height = value;
    return spacer;
  }

  // Remembers the first visible item and its offset in the viewport.
  capture(top) {
    if (!this.keys.length) return;
    const { index, delta } = anchorAt(this.tops, this.keys.length, this.heightAt, top);
    this.anchor = { key: this.keys[index], delta };
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight <= this.options.slack;
  }

  setPinned(pinned) {
    if (this.pinned === pinned) return;
    this.pinned = pinned;
    this.onPinnedChange(pinned);
  }

  onScroll() {
    const top = this.scroller.scrollTop;
    if (Math.abs(top - this.lastTop) < 0.5) return; // where the list put it
    if (this.atBottom()) this.setPinned(true);
    else if (top < this.lastTop) this.setPinned(false); // the reader went up
    this.lastTop = top;
    this.capture(top);
    this.schedule(); // mount what came into view
  }

  onResize(entries) {
    for (const entry of entries) {
      const key = this.elementKeys.get(entry.target);
      if (key === undefined) {
        this.schedule(); // the scroller itself
        return;
      }
      const size = entry.borderBoxSize && entry.borderBoxSize[0];
      const height = size ? size.blockSize : entry.target.getBoundingClientRect().height;
      if (Math.abs(height - (this.heights.get(key) ?? -1)) >= 0.5) {
        this.schedule(); // e.g. the panel got narrower and text rewrapped
        return;
      }
    }
  }
}
