// UI text in the agent's language (the panel's langTag, e.g. "pt-BR" or "fr-CA").
// t(key, params) answers the text of the best matching language: the exact tag,
// then its base language, then English.
import { MESSAGES } from "./messages.js";

let table = MESSAGES.en;
let current = "en";

export function pickLanguage(langTag) {
  const tag = String(langTag || "").trim();
  if (!tag) return "en";
  const exact = Object.keys(MESSAGES).find((lang) => lang.toLowerCase() === tag.toLowerCase());
  if (exact) return exact;
  const base = tag.split("-")[0].toLowerCase();
  const family = Object.keys(MESSAGES).find((lang) => lang.split("-")[0].toLowerCase() === base);
  return family || "en";
}

export function setLanguage(langTag) {
  current = pickLanguage(langTag);
  table = MESSAGES[current];
  return current;
}

export function language() {
  return current;
}

export function t(key, params = {}) {
  const text = table[key] ?? MESSAGES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

// Fills elements marked data-i18n="key" (their text) and data-i18n-<attr>="key"
// (e.g. data-i18n-placeholder, data-i18n-aria-label) below root.
export function translateDocument(root) {
  for (const node of root.querySelectorAll("*")) {
    for (const name of node.getAttributeNames()) {
      if (name === "data-i18n") node.textContent = t(node.getAttribute(name));
      else if (name.startsWith("data-i18n-")) {
        node.setAttribute(name.slice("data-i18n-".length), t(node.getAttribute(name)));
      }
    }
  }
  document.documentElement.lang = current;
}
