// Unit tests of static/panel/i18n.js: which language a langTag gets, and t().
import assert from "node:assert/strict";
import { test } from "node:test";

import { language, pickLanguage, setLanguage, t } from "../static/panel/i18n.js";
import { MESSAGES } from "../static/panel/messages.js";

test("pickLanguage: the exact tag, in any case", () => {
  assert.equal(pickLanguage("pt-BR"), "pt-BR");
  assert.equal(pickLanguage("PT-br"), "pt-BR");
  assert.equal(pickLanguage("ja"), "ja");
  assert.equal(pickLanguage(" de "), "de");
});

test("pickLanguage: else the base language, else a region of it", () => {
  assert.equal(pickLanguage("fr-CA"), "fr");
  assert.equal(pickLanguage("es-419"), "es");
  assert.equal(pickLanguage("en-GB"), "en");
  assert.equal(pickLanguage("pt"), "pt-BR");
  assert.equal(pickLanguage("pt-PT"), "pt-BR");
});

test("pickLanguage: English for anything else", () => {
  for (const tag of ["", "   ", null, undefined, "zz", "x-klingon", "-", 42]) {
    assert.equal(pickLanguage(tag), "en", String(tag));
  }
});

test("every language pickLanguage can answer has its table", () => {
  for (const lang of Object.keys(MESSAGES)) assert.equal(pickLanguage(lang), lang);
});

test("t: the current language's text, its parameters filled; English, else the key", () => {
  assert.equal(setLanguage("es-MX"), "es");
  assert.equal(language(), "es");
  assert.equal(t("status.live"), MESSAGES.es["status.live"]);
  assert.equal(t("announce.suggestion", { query: "¿voz?" }),
    MESSAGES.es["announce.suggestion"].replace("{query}", "¿voz?"));
  assert.equal(t("no.such.key"), "no.such.key");
  setLanguage("en");
  assert.equal(t("announce.suggestion", { query: "x {query}" }), "New suggestion: x {query}");
  assert.equal(t("announce.suggestion"), "New suggestion: {query}"); // a missing parameter stays
});
