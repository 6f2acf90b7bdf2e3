"use strict";
const test = require("node:test");
const assert = require("node:assert");
const ms = require("..");

test("parses strings", () => {
  assert.strictEqual(ms("2h"), 7200000);
  assert.strictEqual(ms("1.5 days"), 129600000);
  assert.strictEqual(ms("-100ms"), -100);
  assert.strictEqual(ms(".5s"), 500);
});

test("formats numbers", () => {
  assert.strictEqual(ms(60000), "1m");
  assert.strictEqual(ms(-3 * 60000), "-3m");
  assert.strictEqual(ms(2 * 60000, { long: true }), "2 minutes");
});

test("NaN is refused", () => {
  assert.throws(() => ms(NaN), /val is not a non-empty string or a valid number/);
});

test("Infinity is refused", () => {
  assert.throws(() => ms(Infinity), /val is not a non-empty string or a valid number/);
  assert.throws(() => ms(-Infinity), /val is not a non-empty string or a valid number/);
});

test("a hyphen inside a number is not a number", () => {
  assert.strictEqual(ms("1-5h"), undefined);
});
