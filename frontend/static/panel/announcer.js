// The screen-reader live region (.ap-announcer: polite, visually hidden; made here
// when the page lacks it). Each message replaces the last as a new node, so the
// same words twice are still announced.

export class Announcer {
  constructor(root) {
    let region = root.querySelector(".ap-announcer");
    if (!region) {
      region = document.createElement("div");
      region.className = "ap-announcer ap-visually-hidden";
      region.setAttribute("aria-atomic", "true");
      root.append(region);
    }
    region.setAttribute("aria-live", "polite");
    this.region = region;
  }

  say(text) {
    if (!text) return;
    const line = document.createElement("p");
    line.textContent = text;
    this.region.replaceChildren(line);
  }
}
