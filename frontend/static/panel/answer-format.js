// The answer's formatting as a stream of operations, with no DOM: what AnswerWriter
// (answer.js) turns into nodes.
//
// A small subset of Markdown: paragraphs (blank line), line breaks, lists ("- ",
// "* ", "+ ", "1. ", "1) "), **bold**, links [text](url) and [n] citations of the
// n-th source. Whatever could still change meaning (a "[" that may open a link, a
// "*" that may be "**", the start of a line that may be a list marker) is held back
// until the next chunk settles it, so the operations for a text given in chunks are
// those for the text given whole (adjacent "text" operations aside).
//
// Operations, in order:
//   {op: "paragraph"}                       a new paragraph
//   {op: "item", list, start, newList}      a list item ("ul" | "ol"); newList: it
//                                           starts a list, whose first number is start
//   {op: "break"}                           a line break in the same paragraph or item
//   {op: "text", text}                      text, into the open bold if there is one
//   {op: "bold"} / {op: "unbold"}           "**" opens / closes bold
//   {op: "unclosed"}                        the open bold never closed on its line:
//                                           it was the text "**" after all
//   {op: "cite", n, raw}                    [n]: the n-th source, raw its text
//   {op: "link", text, url}                 [text](url), url as written

// A link's URL: no spaces, parentheses only in balanced pairs (one level).
const URL_PART = String.raw`(?:[^()\s]|\([^()\s]*\))`;
const CITE = /^\[(\d{1,2})\]/;
export const LINK = new RegExp(String.raw`^\[([^\]\n]{1,200})\]\((${URL_PART}{1,2048})\)`);
// "[" followed by what may still become a citation or a link.
const LINK_PREFIX = new RegExp(
  String.raw`^\[[^\]\n]{0,200}(?:\](?:\(${URL_PART}{0,2048}(?:\([^()\s]*)?)?)?$`);
const MARKER = /^[ \t]{0,3}(?:([-*+])[ \t]+|(\d{1,9})[.)][ \t]+)/;
// The start of a line that may still become a list marker.
const MARKER_PREFIX = /^[ \t]{0,3}(?:[-*+]|\d{1,9}[.)]?)?$/;
const SPECIAL = /[\n*[]/;
const LEADING_BLANKS = /^[ \t]+/;

export class AnswerTokenizer {
  constructor() {
    this.pending = ""; // text received but not turned into operations yet
    this.lineStart = true;
    this.blank = true; // at the start, or after a blank line
    this.inBlock = false; // a paragraph or item is open
    this.list = ""; // the kind of the open list: "ul" | "ol" | ""
    this.bold = false;
    this.blockEmpty = true; // nothing in the open block yet: leading blanks are dropped
  }

  // Answers the operations the text settles.
  write(text) {
    this.pending += String(text).replace(/\r/g, "");
    return this.run(false);
  }

  // No more text: the operations for what was held back, and any bold left open.
  end() {
    const ops = this.run(true);
    this.closeBold(ops);
    return ops;
  }

  run(final) {
    const ops = [];
    while (this.pending) {
      const progressed = this.lineStart ? this.startLine(final, ops) : this.inlineStep(final, ops);
      if (!progressed) break;
    }
    return ops;
  }

  startLine(final, ops) {
    const text = this.pending;
    if (/^[ \t]*$/.test(text)) { // what follows decides; trailing blanks are dropped
      if (!final) return false;
      this.pending = "";
      return true;
    }
    const blankLine = /^[ \t]*\n/.exec(text);
    if (blankLine) { // a blank line ends the paragraph or list
      this.pending = text.slice(blankLine[0].length);
      this.inBlock = false;
      this.list = "";
      this.blank = true;
      return true;
    }
    const marker = MARKER.exec(text);
    if (!marker && !final && MARKER_PREFIX.test(text)) return false;
    if (marker) {
      const list = marker[1] ? "ul" : "ol";
      ops.push({ op: "item", list, start: list === "ol" ? Number(marker[2]) : 1,
        newList: this.list !== list });
      this.list = list;
      this.pending = text.slice(marker[0].length);
      this.blockEmpty = true;
    } else if (this.inBlock && !this.blank) {
      ops.push({ op: "break" }); // a line of the same block
      this.pending = text.replace(LEADING_BLANKS, "");
      this.blockEmpty = false;
    } else {
      this.list = "";
      ops.push({ op: "paragraph" });
      this.pending = text.replace(LEADING_BLANKS, "");
      this.blockEmpty = true;
    }
    this.inBlock = true;
    this.lineStart = false;
    this.blank = false;
    return true;
  }

  inlineStep(final, ops) {
    const text = this.pending;
    const at = text.search(SPECIAL);
    if (at !== 0) {
      const end = at === -1 ? text.length : at;
      this.text(text.slice(0, end), ops);
      this.pending = text.slice(end);
      return true;
    }
    if (text[0] === "\n") {
      this.closeBold(ops);
      this.pending = text.slice(1);
      this.lineStart = true;
      return true;
    }
    if (text[0] === "*") {
      if (text.length === 1 && !final) return false;
      if (text[1] === "*") {
        ops.push({ op: this.bold ? "unbold" : "bold" });
        this.bold = !this.bold;
        this.blockEmpty = false;
        this.pending = text.slice(2);
      } else {
        this.text("*", ops);
        this.pending = text.slice(1);
      }
      return true;
    }
    let match = CITE.exec(text);
    if (match) {
      ops.push({ op: "cite", n: Number(match[1]), raw: match[0] });
    } else if ((match = LINK.exec(text))) {
      ops.push({ op: "link", text: match[1], url: match[2] });
    } else if (!final && LINK_PREFIX.test(text)) {
      return false;
    } else {
      this.text("[", ops);
      this.pending = text.slice(1);
      return true;
    }
    this.blockEmpty = false;
    this.pending = text.slice(match[0].length);
    return true;
  }

  text(value, ops) {
    const text = this.blockEmpty ? value.replace(LEADING_BLANKS, "") : value;
    if (!text) return;
    ops.push({ op: "text", text });
    this.blockEmpty = false;
  }

  // A "**" still open at the end of its line was not bold after all.
  closeBold(ops) {
    if (!this.bold) return;
    ops.push({ op: "unclosed" });
    this.bold = false;
  }
}
