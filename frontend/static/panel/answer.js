// The answer's formatting, rendered safely and incrementally while it streams.
//
// A small subset of Markdown: paragraphs (blank line), line breaks, lists ("- ",
// "* ", "1. "), **bold**, links [text](https://...) and [n] citations of the n-th
// source. Everything is built with createElement and text nodes: no text from the
// model, the knowledge base or the transcript ever becomes markup, and only
// absolute http(s) URLs become links.
//
// AnswerWriter only appends: text already rendered is never re-rendered. Whatever
// could still change meaning (a "[" that may open a link, a "*" that may be "**",
// the start of a line that may be a list marker) is held back until the next
// chunk settles it, so rendering a text in chunks gives exactly the DOM of
// rendering it whole (an unmounted card re-renders to the same nodes).

// A link's URL: no spaces, parentheses only in balanced pairs (one level).
const URL_PART = String.raw`(?:[^()\s]|\([^()\s]*\))`;
const CITE = /^\[(\d{1,2})\]/;
const LINK = new RegExp(String.raw`^\[([^\]\n]{1,200})\]\((${URL_PART}{1,2048})\)`);
const LINKS = new RegExp(LINK.source.slice(1), "g");
// "[" followed by what may still become a citation or a link.
const LINK_PREFIX = new RegExp(
  String.raw`^\[[^\]\n]{0,200}(?:\](?:\(${URL_PART}{0,2048}(?:\([^()\s]*)?)?)?$`);
const MARKER = /^[ \t]{0,3}(?:([-*+])[ \t]+|(\d{1,9})[.)][ \t]+)/;
// The start of a line that may still become a list marker.
const MARKER_PREFIX = /^[ \t]{0,3}(?:[-*+]|\d{1,9}[.)]?)?$/;
const SPECIAL = /[\n*[]/;

// An absolute http(s) URL, normalised; null for anything else (javascript:, data:,
// relative paths, garbage).
export function safeUrl(url) {
  if (typeof url !== "string" || !url) return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}

// A link that opens outside the panel, or plain text when the URL is not http(s).
export function externalLink(className, url, text) {
  const href = safeUrl(url);
  const node = document.createElement(href ? "a" : "span");
  node.className = className;
  node.textContent = text;
  if (href) {
    node.href = href;
    node.target = "_blank";
    node.rel = "noopener noreferrer";
  }
  return node;
}

// The answer as plain text, for the clipboard and the reply box: no markers, no
// citations, links as "text (url)".
export function plainText(text) {
  return String(text || "")
    .replace(/\*\*/g, "")
    .replace(LINKS, (whole, label, url) => {
      const href = safeUrl(url);
      return href ? `${label} (${href})` : label;
    })
    .replace(/[ \t]*\[\d{1,2}\]/g, "")
    .replace(/[ \t]+\n/g, "\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

export class AnswerWriter {
  constructor(container, sources = []) {
    this.container = container;
    this.sources = sources;
    this.pending = ""; // text received but not rendered yet
    this.block = null; // the current <p> or <li>
    this.list = null; // the current <ul> or <ol>
    this.inline = null; // where text goes: the block, or a <strong> inside it
    this.lineStart = true;
    this.blank = true; // at the start, or after a blank line
  }

  write(text) {
    this.pending += String(text).replace(/\r/g, "");
    this.run(false);
  }

  // No more text: render what was held back and close any open bold.
  end() {
    this.run(true);
    this.closeInline();
  }

  run(final) {
    while (this.pending) {
      const progressed = this.lineStart ? this.startLine(final) : this.inlineStep(final);
      if (!progressed) return;
    }
  }

  startLine(final) {
    const text = this.pending;
    if (/^[ \t]*$/.test(text)) { // what follows decides; trailing blanks are dropped
      if (!final) return false;
      this.pending = "";
      return true;
    }
    const blankLine = /^[ \t]*\n/.exec(text);
    if (blankLine) { // a blank line ends the paragraph or list
      this.pending = text.slice(blankLine[0].length);
      this.block = this.inline = this.list = null;
      this.blank = true;
      return true;
    }
    const marker = MARKER.exec(text);
    if (!marker && !final && MARKER_PREFIX.test(text)) return false;
    if (marker) {
      const kind = marker[1] ? "ul" : "ol";
      if (!this.list || this.list.localName !== kind) {
        this.list = document.createElement(kind);
        this.list.className = "ap-answer__list";
        if (kind === "ol" && Number(marker[2]) !== 1) this.list.start = Number(marker[2]);
        this.container.append(this.list);
      }
      this.block = document.createElement("li");
      this.list.append(this.block);
      this.pending = text.slice(marker[0].length);
    } else if (this.block && !this.blank) {
      this.block.append(document.createElement("br")); // a line of the same block
      this.pending = text.replace(/^[ \t]+/, "");
    } else {
      this.list = null;
      this.block = document.createElement("p");
      this.block.className = "ap-answer__paragraph";
      this.container.append(this.block);
      this.pending = text.replace(/^[ \t]+/, "");
    }
    this.inline = this.block;
    this.lineStart = false;
    this.blank = false;
    return true;
  }

  inlineStep(final) {
    const text = this.pending;
    const at = text.search(SPECIAL);
    if (at !== 0) {
      const end = at === -1 ? text.length : at;
      this.text(text.slice(0, end));
      this.pending = text.slice(end);
      return true;
    }
    if (text[0] === "\n") {
      this.closeInline();
      this.pending = text.slice(1);
      this.lineStart = true;
      return true;
    }
    if (text[0] === "*") {
      if (text.length === 1 && !final) return false;
      if (text[1] === "*") {
        this.toggleBold();
        this.pending = text.slice(2);
      } else {
        this.text("*");
        this.pending = text.slice(1);
      }
      return true;
    }
    let match = CITE.exec(text);
    if (match) {
      this.cite(Number(match[1]), match[0]);
    } else if ((match = LINK.exec(text))) {
      this.inline.append(externalLink("ap-link", match[2], match[1]));
    } else if (!final && LINK_PREFIX.test(text)) {
      return false;
    } else {
      this.text("[");
      this.pending = text.slice(1);
      return true;
    }
    this.pending = text.slice(match[0].length);
    return true;
  }

  text(value) {
    let text = value;
    if (!this.block.firstChild) text = text.replace(/^[ \t]+/, "");
    if (!text) return;
    const last = this.inline.lastChild;
    if (last && last.nodeType === Node.TEXT_NODE) last.appendData(text);
    else this.inline.append(document.createTextNode(text));
  }

  cite(n, raw) {
    const source = this.sources[n - 1];
    const href = source && safeUrl(source.url);
    if (!href) {
      this.text(raw);
      return;
    }
    const link = document.createElement("a");
    link.className = "ap-cite";
    link.href = href;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.title = String(source.title || "");
    link.textContent = raw;
    this.inline.append(link);
  }

  toggleBold() {
    if (this.inline !== this.block) {
      this.inline = this.block;
      return;
    }
    const strong = document.createElement("strong");
    this.block.append(strong);
    this.inline = strong;
  }

  // A "**" still open at the end of its line was not bold after all: put it back as text.
  closeInline() {
    if (!this.inline || this.inline === this.block) return;
    const strong = this.inline;
    strong.replaceWith(document.createTextNode("**"), ...strong.childNodes);
    this.block.normalize();
    this.inline = this.block;
  }
}
