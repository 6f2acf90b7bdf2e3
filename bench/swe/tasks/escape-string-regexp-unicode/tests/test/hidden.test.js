"use strict";
const test = require("node:test");
const assert = require("node:assert");
const escapeStringRegexp = require("..");

test("escapes special characters", () => {
  assert.strictEqual(escapeStringRegexp("How much $ for a unicorn?"), "How much \\$ for a unicorn\\?");
  assert.ok(new RegExp(escapeStringRegexp("a.b*c")).test("xa.b*cx"));
  assert.ok(!new RegExp(escapeStringRegexp("a.b")).test("axb"));
});

test("refuses a non-string", () => {
  assert.throws(() => escapeStringRegexp(1), TypeError);
});

test("escaped text works in a unicode regex", () => {
  const re = new RegExp(escapeStringRegexp("a-b (c)"), "u");
  assert.ok(re.test("a-b (c)"));
});

test("escaped dash works inside a unicode character class", () => {
  const re = new RegExp("^[" + escapeStringRegexp("a-z") + "]+$", "u");
  assert.ok(re.test("a-z"));
  assert.ok(!re.test("b"));
});
