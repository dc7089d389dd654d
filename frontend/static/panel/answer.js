// The answer's formatting, rendered safely and incrementally while it streams.
//
// answer-format.js reads the text (a small subset of Markdown: paragraphs, line
// breaks, lists, **bold**, links [text](https://...) and [n] citations of the n-th
// source) into operations; AnswerWriter builds them with createElement and text
// nodes: no text from the model, the knowledge base or the transcript ever becomes
// markup, and only absolute http(s) URLs become links.
//
// AnswerWriter only appends: text already rendered is never re-rendered. What could
// still change meaning is held back until the next chunk settles it, so rendering a
// text in chunks gives exactly the DOM of rendering it whole (an unmounted card
// re-renders to the same nodes).
import { AnswerTokenizer, LINK } from "./answer-format.js";

const LINKS = new RegExp(LINK.source.slice(1), "g");

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

// The link a citation [n] becomes: the n-th source's URL and title, or null (no such
// source, or a URL that is not http(s)): then the citation stays text.
export function citation(sources, n) {
  const source = sources[n - 1];
  const href = source && safeUrl(source.url);
  return href ? { href, title: String(source.title || "") } : null;
}

export class AnswerWriter {
  constructor(container, sources = []) {
    this.container = container;
    this.sources = sources;
    this.tokenizer = new AnswerTokenizer();
    this.block = null; // the current <p> or <li>
    this.list = null; // the current <ul> or <ol>
    this.inline = null; // where text goes: the block, or a <strong> inside it
  }

  write(text) {
    this.apply(this.tokenizer.write(text));
  }

  // No more text: render what was held back and close any open bold.
  end() {
    this.apply(this.tokenizer.end());
  }

  apply(ops) {
    for (const op of ops) {
      switch (op.op) {
        case "paragraph":
          this.list = null;
          this.startBlock(this.container, "p", "ap-answer__paragraph");
          break;
        case "item":
          if (op.newList) {
            this.list = document.createElement(op.list);
            this.list.className = "ap-answer__list";
            if (op.list === "ol" && op.start !== 1) this.list.start = op.start;
            this.container.append(this.list);
          }
          this.startBlock(this.list, "li", "");
          break;
        case "break":
          this.block.append(document.createElement("br"));
          this.inline = this.block;
          break;
        case "text":
          this.text(op.text);
          break;
        case "bold": {
          const strong = document.createElement("strong");
          this.block.append(strong);
          this.inline = strong;
          break;
        }
        case "unbold":
          this.inline = this.block;
          break;
        case "unclosed": { // put the "**" back as text
          const strong = this.inline;
          strong.replaceWith(document.createTextNode("**"), ...strong.childNodes);
          this.block.normalize();
          this.inline = this.block;
          break;
        }
        case "cite":
          this.cite(op.n, op.raw);
          break;
        case "link":
          this.inline.append(externalLink("ap-link", op.url, op.text));
          break;
        default:
          break;
      }
    }
  }

  startBlock(parent, tag, className) {
    this.block = document.createElement(tag);
    if (className) this.block.className = className;
    parent.append(this.block);
    this.inline = this.block;
  }

  text(text) {
    const last = this.inline.lastChild;
    if (last && last.nodeType === Node.TEXT_NODE) last.appendData(text);
    else this.inline.append(document.createTextNode(text));
  }

  cite(n, raw) {
    const target = citation(this.sources, n);
    if (!target) {
      this.text(raw);
      return;
    }
    const link = document.createElement("a");
    link.className = "ap-cite";
    link.href = target.href;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.title = target.title;
    link.textContent = raw;
    this.inline.append(link);
  }
}
