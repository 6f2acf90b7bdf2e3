"use strict";
const test = require("node:test");
const assert = require("node:assert");
const ms = require("..");

test("short format of whole hours", () => {
  assert.strictEqual(ms(60 * 60 * 1000), "1h");
  assert.strictEqual(ms(-60 * 60 * 1000), "-1h");
});

test("long format of whole hours", () => {
  assert.strictEqual(ms(60 * 60 * 1000, { long: true }), "1 hour");
});

test("short format of other units", () => {
  assert.strictEqual(ms(1000), "1s");
  assert.strictEqual(ms(60 * 1000), "1m");
  assert.strictEqual(ms(2 * 60 * 60 * 1000), "2h");
  assert.strictEqual(ms(24 * 60 * 60 * 1000), "1d");
  assert.strictEqual(ms(500), "500ms");
});

test("parses strings", () => {
  assert.strictEqual(ms("1h"), 3600000);
  assert.strictEqual(ms("2 days"), 172800000);
});
