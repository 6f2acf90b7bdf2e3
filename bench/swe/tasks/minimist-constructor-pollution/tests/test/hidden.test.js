"use strict";
// Hidden tests, after the upstream test/proto.js of minimist 1.2.6 (ported from tape to node:test).
const test = require("node:test");
const assert = require("node:assert");
const parse = require("..");

test("parses long and short options", () => {
  const argv = parse(["--name", "x", "-n", "3", "rest"]);
  assert.strictEqual(argv.name, "x");
  assert.strictEqual(argv.n, 3);
  assert.deepStrictEqual(argv._, ["rest"]);
});

test("proto pollution", () => {
  const argv = parse(["--__proto__.x", "123"]);
  assert.strictEqual({}.x, undefined);
  assert.strictEqual(argv.x, undefined);
});

test("proto pollution (constructor)", () => {
  const argv = parse(["--constructor.prototype.y", "123"]);
  assert.strictEqual({}.y, undefined);
  assert.strictEqual(argv.y, undefined);
});

test("proto pollution (constructor function)", () => {
  const argv = parse(["--_.concat.constructor.prototype.y", "123"]);
  function fnToBeTested() {}
  assert.strictEqual(fnToBeTested.y, undefined);
  assert.strictEqual(argv.y, undefined);
});

test("proto pollution (constructor function) snyk", () => {
  const argv = parse("--_.constructor.constructor.prototype.foo bar".split(" "));
  assert.strictEqual((function () {}).foo, undefined);
  assert.strictEqual(argv.y, undefined);
});
