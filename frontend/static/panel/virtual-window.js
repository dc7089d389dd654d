// The virtual list's arithmetic, with no DOM: where each item starts, which items to
// mount around the view, where the view should be, and which item anchors it.
// virtual-list.js measures, mounts and scrolls; these functions only compute.
//
// tops: item offsets from the top of the content (a Float64Array at least n long,
// filled by layout). heightAt(i): item i's height (measured, else the average).
// box: {gap, padTop, padBottom, viewport}, the scroller's CSS gap and padding and its
// visible height, in px.

// The average of the measured heights, or `estimate` before any was measured.
export function averageHeight(heights, estimate) {
  let sum = 0;
  let count = 0;
  for (const height of heights) {
    sum += height;
    count += 1;
  }
  return count ? sum / count : estimate;
}

// Fills tops for n items; answers where the content ends (padding included).
export function layout(tops, n, heightAt, box) {
  let y = box.padTop;
  for (let i = 0; i < n; i += 1) {
    tops[i] = y;
    y += heightAt(i) + box.gap;
  }
  return y - box.gap + box.padBottom;
}

// The last of n items that starts at or above y (the first when none does).
export function itemAt(tops, n, y) {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (tops[mid] <= y) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// The items to mount for a view starting at `top`: those in view and `overscan` more
// on each side, at most `maxMounted` (the overscan goes first, then items at either
// end of the view in turn), plus `focused` (-1: none) wherever it is. Ascending indices.
export function mountWindow(tops, n, { top, viewport, overscan, maxMounted, focused = -1 }) {
  const firstVisible = itemAt(tops, n, top);
  const lastVisible = itemAt(tops, n, top + viewport);
  let first = Math.max(0, firstVisible - overscan);
  let last = Math.min(n - 1, lastVisible + overscan);
  while (last - first + 1 > maxMounted) {
    if (firstVisible - first > last - lastVisible) first += 1;
    else last -= 1;
  }
  const indices = [];
  if (focused >= 0 && focused < first) indices.push(focused);
  for (let i = first; i <= last; i += 1) indices.push(i);
  if (focused > last) indices.push(focused);
  return indices;
}

// The height items from..to (inclusive) take, gaps between them included: a spacer's.
export function span(tops, heightAt, from, to) {
  return tops[to] + heightAt(to) - tops[from];
}

// Where the view should start: the bottom when pinned; else where the anchor item
// ({index, delta}, or null) is `delta` px below the top of the view, or `scrollTop`
// when there is no anchor. When `reveal` >= 0, moved just enough to show that item
// whole (its top when it is taller than the view). Always within the content.
export function scrollTarget(tops, heightAt, { end, box, pinned, anchor, scrollTop, reveal = -1 }) {
  const max = Math.max(0, end - box.viewport);
  let top;
  if (pinned) top = max;
  else if (anchor) top = tops[anchor.index] - anchor.delta;
  else top = scrollTop;
  if (reveal >= 0) {
    const start = tops[reveal] - box.padTop;
    const bottom = tops[reveal] + heightAt(reveal) + box.padBottom;
    if (start < top) top = start;
    else if (bottom > top + box.viewport) top = Math.min(start, bottom - box.viewport);
  }
  return Math.min(max, Math.max(0, top));
}

// The first item visible in a view starting at `top`, and how far below the top of
// the view it starts (negative: it starts above, cut off).
export function anchorAt(tops, n, heightAt, top) {
  let i = itemAt(tops, n, top);
  if (tops[i] + heightAt(i) <= top && i < n - 1) i += 1; // that one ended above: in the gap
  return { index: i, delta: tops[i] - top };
}
