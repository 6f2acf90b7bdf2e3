"use strict";
const test = require("node:test");
const assert = require("node:assert");
const parser = require("..");

test("parses options and positionals", () => {
  const argv = parser(["--foo", "bar", "-x", "3", "pos"]);
  assert.strictEqual(argv.foo, "bar");
  assert.strictEqual(argv.x, 3);
  assert.deepStrictEqual(argv._, ["pos"]);
});

test("negation and camel case", () => {
  const argv = parser(["--no-color", "--dry-run"]);
  assert.strictEqual(argv.color, false);
  assert.strictEqual(argv.dryRun, true);
});

test("an option ending in hyphens is parsed", () => {
  const argv = parser(["--foo---", "bar"]);
  assert.strictEqual(argv["foo---"], "bar");
  assert.deepStrictEqual(argv._, []);
});
