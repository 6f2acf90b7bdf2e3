"use strict";
// Hidden tests, after the upstream test/proto.js of minimist 1.2.3 (ported from tape to node:test).
const test = require("node:test");
const assert = require("node:assert");
const parse = require("..");

test("parses long and short options", () => {
  const argv = parse(["--name", "x", "-n", "3", "rest"]);
  assert.strictEqual(argv.name, "x");
  assert.strictEqual(argv.n, 3);
  assert.deepStrictEqual(argv._, ["rest"]);
});

test("dotted keys make nested objects", () => {
  const argv = parse(["--a.b", "1", "--a.c", "two"]);
  assert.deepStrictEqual(argv.a, { b: 1, c: "two" });
});

test("proto pollution", () => {
  const argv = parse(["--__proto__.x", "123"]);
  assert.strictEqual({}.x, undefined);
  assert.strictEqual(argv.__proto__.x, undefined);
  assert.strictEqual(argv.x, undefined);
});

test("proto pollution (array)", () => {
  const argv = parse(["--x", "4", "--x", "5", "--x.__proto__.z", "789"]);
  assert.strictEqual({}.z, undefined);
  assert.deepStrictEqual(argv.x, [4, 5]);
  assert.strictEqual(argv.x.z, undefined);
  assert.strictEqual(argv.x.__proto__.z, undefined);
});

test("proto pollution (number)", () => {
  const argv = parse(["--x", "5", "--x.__proto__.z", "100"]);
  assert.strictEqual({}.z, undefined);
  assert.strictEqual((4).z, undefined);
  assert.strictEqual(argv.x, 5);
  assert.strictEqual(argv.x.z, undefined);
});

test("proto pollution (string)", () => {
  const argv = parse(["--x", "abc", "--x.__proto__.z", "def"]);
  assert.strictEqual({}.z, undefined);
  assert.strictEqual("...".z, undefined);
  assert.strictEqual(argv.x, "abc");
  assert.strictEqual(argv.x.z, undefined);
});
