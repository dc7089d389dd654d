// Unit tests of static/panel/virtual-window.js: the virtual list's offsets, which
// items it mounts, where it puts the view and which item anchors it.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  anchorAt, averageHeight, itemAt, layout, mountWindow, scrollTarget, span,
} from "../static/panel/virtual-window.js";

const BOX = { gap: 10, padTop: 5, padBottom: 7, viewport: 300 };

// n items of the given heights (a number: all alike), laid out in BOX.
function list(heights, n = heights.length) {
  const heightOf = typeof heights === "number" ? () => heights : (i) => heights[i];
  const tops = new Float64Array(Math.max(n, 1));
  const end = layout(tops, n, heightOf, BOX);
  return { tops, n, end, heightAt: heightOf };
}

test("the average of measured heights, or the estimate before any", () => {
  assert.equal(averageHeight([], 160), 160);
  assert.equal(averageHeight(new Map([["a", 100], ["b", 200]]).values(), 160), 150);
});

test("layout: padding, then each item and a gap; the end has the bottom padding", () => {
  const { tops, end } = list([100, 50, 200]);
  assert.deepEqual([...tops], [5, 115, 175]);
  assert.equal(end, 175 + 200 + 7);
  const tops4 = new Float64Array(4);
  assert.equal(layout(tops4, 0, () => 1, BOX), 5 - 10 + 7); // no items: the update skips it
});

test("itemAt: the last item starting at or above y", () => {
  const { tops, n } = list([100, 50, 200]);
  assert.deepEqual([0, 5, 114, 115, 170, 175, 1e6].map((y) => itemAt(tops, n, y)),
    [0, 0, 0, 1, 1, 2, 2]);
  assert.equal(itemAt(tops, 1, 500), 0);
});

test("span: the height a spacer stands for, gaps between the items included", () => {
  const { tops, heightAt } = list([100, 50, 200]);
  assert.equal(span(tops, heightAt, 0, 0), 100);
  assert.equal(span(tops, heightAt, 0, 2), 100 + 10 + 50 + 10 + 200);
  assert.equal(span(tops, heightAt, 1, 2), 50 + 10 + 200);
});

test("mountWindow: the items in view and the overscan on each side", () => {
  const { tops, n } = list(90, 100); // items every 100 px from 5
  // At 1000-1300: from item 9 (the last starting above 1000) to item 12 (starts at 1205).
  assert.deepEqual(mountWindow(tops, n, { top: 1000, viewport: 300, overscan: 3, maxMounted: 16 }),
    [6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  assert.deepEqual(mountWindow(tops, n, { top: 0, viewport: 300, overscan: 3, maxMounted: 16 }),
    [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(mountWindow(tops, n, { top: 9700, viewport: 300, overscan: 3, maxMounted: 16 }),
    [93, 94, 95, 96, 97, 98, 99]);
});

test("mountWindow: over maxMounted, the overscan goes first, then both ends of the view", () => {
  const { tops, n } = list(90, 100);
  const at = (maxMounted) =>
    mountWindow(tops, n, { top: 1000, viewport: 300, overscan: 3, maxMounted });
  assert.deepEqual(at(8), [7, 8, 9, 10, 11, 12, 13, 14]);
  assert.deepEqual(at(4), [9, 10, 11, 12]);
  assert.deepEqual(at(2), [10, 11]);
  assert.deepEqual(at(1), [10]);
});

test("mountWindow: the focused item stays mounted wherever it is, once", () => {
  const { tops, n } = list(90, 100);
  const window = (focused) =>
    mountWindow(tops, n, { top: 1000, viewport: 300, overscan: 1, maxMounted: 16, focused });
  assert.deepEqual(window(-1), [8, 9, 10, 11, 12, 13]);
  assert.deepEqual(window(2), [2, 8, 9, 10, 11, 12, 13]);
  assert.deepEqual(window(90), [8, 9, 10, 11, 12, 13, 90]);
  assert.deepEqual(window(10), [8, 9, 10, 11, 12, 13]);
});

test("scrollTarget: pinned is the bottom; unpinned keeps the anchor where it was", () => {
  const { tops, end, heightAt } = list(90, 100);
  const max = end - BOX.viewport;
  const target = (options) => scrollTarget(tops, heightAt,
    { end, box: BOX, pinned: false, anchor: null, scrollTop: 0, ...options });
  assert.equal(target({ pinned: true, anchor: { index: 3, delta: 0 } }), max);
  assert.equal(target({ anchor: { index: 20, delta: 15 } }), tops[20] - 15);
  assert.equal(target({ anchor: { index: 20, delta: -40 } }), tops[20] + 40);
  assert.equal(target({ scrollTop: 1234 }), 1234);
  assert.equal(target({ anchor: { index: 0, delta: 100 } }), 0); // never above the content
  assert.equal(target({ anchor: { index: 99, delta: 0 } }), max); // nor below it
  // Content shorter than the view: always 0.
  const short = list([40, 40]);
  assert.equal(scrollTarget(short.tops, short.heightAt,
    { end: short.end, box: BOX, pinned: true, anchor: null, scrollTop: 0 }), 0);
});

test("scrollTarget: revealing an item moves the view just enough to show it", () => {
  const { tops, end, heightAt } = list(90, 100);
  const reveal = (index, scrollTop) => scrollTarget(tops, heightAt,
    { end, box: BOX, pinned: false, anchor: null, scrollTop, reveal: index });
  assert.equal(reveal(11, 1000), 1000); // already in view
  assert.equal(reveal(12, 1000), tops[12] + 90 + BOX.padBottom - BOX.viewport); // its padding is not
  assert.equal(reveal(5, 1000), tops[5] - BOX.padTop); // above: its top, with the padding
  assert.equal(reveal(20, 1000), tops[20] + 90 + BOX.padBottom - BOX.viewport); // below
  const tall = list([100, 1000, 100]);
  assert.equal(scrollTarget(tall.tops, tall.heightAt, { end: tall.end, box: BOX, pinned: false,
    anchor: null, scrollTop: 0, reveal: 1 }), tall.tops[1] - BOX.padTop); // taller: its top
  // Pinned and revealing an item above: the reveal wins.
  assert.equal(scrollTarget(tops, heightAt, { end, box: BOX, pinned: true, anchor: null,
    scrollTop: 0, reveal: 3 }), tops[3] - BOX.padTop);
});

test("anchorAt: the first visible item and its offset; one ending above is skipped", () => {
  const { tops, n, heightAt } = list(90, 100);
  assert.deepEqual(anchorAt(tops, n, heightAt, 1005), { index: 10, delta: 0 });
  assert.deepEqual(anchorAt(tops, n, heightAt, 1050), { index: 10, delta: -45 });
  assert.deepEqual(anchorAt(tops, n, heightAt, 1097), { index: 11, delta: 8 }); // in the gap
  assert.deepEqual(anchorAt(tops, n, heightAt, 0), { index: 0, delta: 5 });
  assert.deepEqual(anchorAt(tops, n, heightAt, 1e6), { index: 99, delta: tops[99] - 1e6 });
});
