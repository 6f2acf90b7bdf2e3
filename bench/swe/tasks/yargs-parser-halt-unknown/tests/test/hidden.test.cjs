"use strict";
const test = require("node:test");
const assert = require("node:assert");
const parser = require("..");

const config = { "halt-at-non-option": true, "unknown-options-as-args": true };

test("parses options and positionals", () => {
  const argv = parser(["--foo", "bar", "-x", "3", "pos"]);
  assert.strictEqual(argv.foo, "bar");
  assert.strictEqual(argv.x, 3);
  assert.deepStrictEqual(argv._, ["pos"]);
});

test("known options after an unknown one are left alone", () => {
  const argv = parser(["-v", "--unknown", "x", "--foo", "y"],
    { string: ["foo"], boolean: ["v"], configuration: config });
  assert.strictEqual(argv.v, true);
  assert.strictEqual(argv.foo, undefined);
  assert.deepStrictEqual(argv._, ["--unknown", "x", "--foo", "y"]);
});
