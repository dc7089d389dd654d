// Unit tests of static/panel/answer-format.js: the answer's formatting as
// operations, and that a text given in chunks gives the operations of the text
// given whole.
import assert from "node:assert/strict";
import { test } from "node:test";

import { AnswerTokenizer } from "../static/panel/answer-format.js";

// The operations for `chunks` written one by one, then end().
function format(...chunks) {
  const tokenizer = new AnswerTokenizer();
  const ops = chunks.flatMap((chunk) => tokenizer.write(chunk));
  return [...ops, ...tokenizer.end()];
}

// Adjacent "text" operations merged, as the DOM merges adjacent text.
function merged(ops) {
  const out = [];
  for (const op of ops) {
    const last = out[out.length - 1];
    if (op.op === "text" && last && last.op === "text") {
      out[out.length - 1] = { op: "text", text: last.text + op.text };
    } else {
      out.push(op);
    }
  }
  return out;
}

// The operations rendered as markup, as AnswerWriter builds them (for readable tests).
function render(ops) {
  const root = { tag: "", children: [] };
  let list = null;
  let block = null;
  let inline = null;
  const open = (parent, tag, attrs = "") => {
    const node = { tag, attrs, children: [] };
    parent.children.push(node);
    return node;
  };
  for (const op of ops) {
    if (op.op === "paragraph") inline = block = open(root, "p");
    else if (op.op === "item") {
      const start = op.list === "ol" && op.start !== 1 ? ` start=${op.start}` : "";
      if (op.newList) list = open(root, op.list, start);
      inline = block = open(list, "li");
    } else if (op.op === "break") block.children.push("<br>");
    else if (op.op === "text") inline.children.push(op.text);
    else if (op.op === "bold") inline = open(block, "strong");
    else if (op.op === "unbold") inline = block;
    else if (op.op === "unclosed") {
      const at = block.children.indexOf(inline);
      block.children.splice(at, 1, "**", ...inline.children);
      inline = block;
    } else if (op.op === "cite") inline.children.push(`<cite ${op.n}>`);
    else if (op.op === "link") inline.children.push(`<a ${op.url}>${op.text}</a>`);
  }
  const html = (node) => {
    if (typeof node === "string") return node;
    const inner = node.children.map(html).join("");
    return node.tag ? `<${node.tag}${node.attrs}>${inner}</${node.tag}>` : inner;
  };
  return html(root);
}

const markup = (...chunks) => render(format(...chunks));

test("paragraphs and line breaks", () => {
  assert.equal(markup("Hello\nworld\n\nNext one"), "<p>Hello<br>world</p><p>Next one</p>");
  assert.equal(markup("\n\n  a  \n\n\n  b\n\n"), "<p>a  </p><p>b</p>");
  assert.equal(markup("a\r\nb"), "<p>a<br>b</p>");
});

test("bullet and numbered lists; a line without a marker continues the item", () => {
  assert.equal(markup("- a\n* b\n+ c"), "<ul><li>a</li><li>b</li><li>c</li></ul>");
  assert.equal(markup("1. x\n2) y"), "<ol><li>x</li><li>y</li></ol>");
  assert.equal(markup("3. x\n4. y"), "<ol start=3><li>x</li><li>y</li></ol>");
  assert.equal(markup("- a\n1. b"), "<ul><li>a</li></ul><ol><li>b</li></ol>");
  assert.equal(markup("- a\nmore\n\n- b"), "<ul><li>a<br>more</li></ul><ul><li>b</li></ul>");
  assert.equal(markup("Intro\n- a"), "<p>Intro</p><ul><li>a</li></ul>");
  assert.equal(markup("-a and 1.5 and     - four spaces"),
    "<p>-a and 1.5 and     - four spaces</p>");
  assert.equal(markup("-    spaced"), "<ul><li>spaced</li></ul>");
});

test("bold, and a ** left open at the end of its line is text", () => {
  assert.equal(markup("a **b** c"), "<p>a <strong>b</strong> c</p>");
  assert.equal(markup("a **b\nc"), "<p>a **b<br>c</p>");
  assert.equal(markup("**open"), "<p>**open</p>");
  assert.equal(markup("2 * 3 = 6*"), "<p>2 * 3 = 6*</p>");
});

test("citations and links; anything else in brackets is text", () => {
  assert.equal(markup("See [1] and [12]."), "<p>See <cite 1> and <cite 12>.</p>");
  assert.equal(markup("[123] [a] [] [x](no space)"), "<p>[123] [a] [] [x](no space)</p>");
  assert.equal(markup("Read [the guide](https://kb.example.com/a_(b)) now"),
    "<p>Read <a https://kb.example.com/a_(b)>the guide</a> now</p>");
  // The URL is passed on as written: AnswerWriter makes a link only of http(s).
  assert.deepEqual(format("[x](javascript:alert(1))").filter((op) => op.op === "link"),
    [{ op: "link", text: "x", url: "javascript:alert(1)" }]);
});

test("what may still change meaning is held back until the next chunk", () => {
  const tokenizer = new AnswerTokenizer();
  assert.deepEqual(tokenizer.write("Use ["), [{ op: "paragraph" }, { op: "text", text: "Use " }]);
  assert.deepEqual(tokenizer.write("1"), []);
  assert.deepEqual(tokenizer.write("] or *"), [{ op: "cite", n: 1, raw: "[1]" },
    { op: "text", text: " or " }]);
  assert.deepEqual(tokenizer.write("*b"), [{ op: "bold" }, { op: "text", text: "b" }]);
  assert.deepEqual(tokenizer.write("\n1"), [{ op: "unclosed" }]);
  assert.deepEqual(tokenizer.write("0. "), [{ op: "item", list: "ol", start: 10, newList: true }]);
  assert.deepEqual(tokenizer.write("[a](https://x"), []);
  assert.deepEqual(merged(tokenizer.end()), [{ op: "text", text: "[a](https://x" }]);
});

const SAMPLES = [
  "Hello **world** [1].\n\n- one [2]\n- two **bold\n\n3. three\n4) four\n\n"
    + "See [the guide](https://kb.example.com/a_(b)?q=1) and [x](javascript:alert(1)).",
  "  lead\n  \n* a\n  * nested?\n1.5 kg\n12) twelve\n**x** ** y **\n[",
  "Caf\u00e9 \u20ac5 \ud83d\ude00 [9]\r\n\r\n[ not a link ](https://a b) [z](https://ok)"
    + "\n-\n-x\n- ",
];

test("a text cut at any one or two places formats as it does whole", () => {
  for (const text of SAMPLES) {
    const whole = merged(format(text));
    for (let a = 0; a <= text.length; a += 1) {
      assert.deepEqual(merged(format(text.slice(0, a), text.slice(a))), whole, `cut at ${a}`);
      for (let b = a; b <= text.length; b += 7) {
        assert.deepEqual(merged(format(text.slice(0, a), text.slice(a, b), text.slice(b))), whole,
          `cut at ${a} and ${b}`);
      }
    }
    assert.deepEqual(merged(format(...text)), whole, "character by character");
  }
});
