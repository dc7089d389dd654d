// Unit tests of static/panel/answer.js, its parts that need no DOM: which URLs may
// become links, the answer as plain text (Copy, Insert), and what a citation links to.
import assert from "node:assert/strict";
import { test } from "node:test";

import { citation, plainText, safeUrl } from "../static/panel/answer.js";

test("only absolute http(s) URLs are safe, normalised", () => {
  assert.equal(safeUrl("https://kb.example.com/a b"), "https://kb.example.com/a%20b");
  assert.equal(safeUrl("HTTP://KB.example.com"), "http://kb.example.com/");
  for (const url of ["javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,x",
    "//evil.example.com", "/relative", "kb.example.com", "ftp://x", "", null, 42, {}]) {
    assert.equal(safeUrl(url), null, String(url));
  }
});

test("plain text drops ** and citations, writes links as text (url)", () => {
  assert.equal(plainText("**Press** the key [1].\nThen save [2][3]"), "Press the key.\nThen save");
  assert.equal(plainText("See [the guide](https://kb.example.com/x) or [this](javascript:alert(1))"),
    "See the guide (https://kb.example.com/x) or this");
  assert.equal(plainText("  a  \n\n\n\nb [1]  \n"), "a\n\nb");
  assert.equal(plainText(null), "");
  assert.equal(plainText(undefined), "");
});

test("a citation [n] links to the n-th source when its URL is http(s)", () => {
  const sources = [{ title: "Voicemail", url: "https://kb.example.com/vm" },
    { title: "Bad", url: "javascript:alert(1)" }, { url: "https://kb.example.com/untitled" }];
  assert.deepEqual(citation(sources, 1), { href: "https://kb.example.com/vm", title: "Voicemail" });
  assert.equal(citation(sources, 2), null);
  assert.deepEqual(citation(sources, 3), { href: "https://kb.example.com/untitled", title: "" });
  assert.equal(citation(sources, 0), null);
  assert.equal(citation(sources, 4), null);
  assert.equal(citation([], 1), null);
});
