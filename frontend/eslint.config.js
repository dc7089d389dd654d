// ESLint for the page's plain ES modules (no build step: what is linted is what the
// browser runs), their node --test unit tests, the browser tests' harness pages, the
// mock Agent Desktop's modules and the page parser benchmark. scripts/test runs it
// from the repository root (see there for the paths).
// The globs below are relative to the repository root, wherever ESLint runs from.
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

import js from "@eslint/js";
import globals from "globals";

const basePath = dirname(dirname(fileURLToPath(import.meta.url))); // the repository root

// On top of eslint:recommended: a few rules that catch real mistakes in code that is
// never compiled or type-checked.
const rules = {
  "no-unused-vars": "error",
  eqeqeq: ["error", "smart"],
  "no-implicit-globals": "error",
  "prefer-const": "error",
  "no-var": "error",
  "no-throw-literal": "error",
  "no-self-compare": "error",
  "no-template-curly-in-string": "error",
  "no-unmodified-loop-condition": "error",
  "no-unreachable-loop": "error",
  "array-callback-return": "error",
  // The page's CSP has no 'unsafe-eval': these would only fail at run time.
  "no-eval": "error",
  "no-implied-eval": "error",
  "no-new-func": "error",
};

// Text from the model, the knowledge base and the transcript never becomes markup
// (docs/panel.md, "Safety"): the DOM is built with createElement and text nodes.
const noMarkup = ["innerHTML", "outerHTML", "insertAdjacentHTML"].map((property) => ({
  property, message: "Build nodes with createElement and textContent (docs/panel.md, Safety).",
}));

export default [
  {
    basePath,
    linterOptions: { reportUnusedDisableDirectives: "error" },
  },
  {
    ...js.configs.recommended,
    basePath,
    files: ["**/*.js", "**/*.mjs"],
  },
  {
    basePath,
    files: ["frontend/static/panel/**/*.js", "tests/browser/harness/**/*.js",
      "server/devmode/mocks/genesys/static/**/*.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: { ...globals.browser } },
    rules: {
      ...rules,
      "no-restricted-properties": ["error", ...noMarkup,
        { object: "document", property: "write", message: "Build nodes with createElement." }],
    },
  },
  {
    basePath,
    files: ["frontend/tests/**/*.js", "bench/**/*.mjs", "frontend/eslint.config.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: { ...globals.node } },
    rules,
  },
];
