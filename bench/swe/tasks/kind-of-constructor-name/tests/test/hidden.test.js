"use strict";
const test = require("node:test");
const assert = require("node:assert");
const kindOf = require("..");

test("native kinds", () => {
  assert.strictEqual(kindOf([]), "array");
  assert.strictEqual(kindOf(null), "null");
  assert.strictEqual(kindOf(new Map()), "map");
  assert.strictEqual(kindOf(Symbol("s")), "symbol");
  assert.strictEqual(kindOf(new Date()), "date");
  assert.strictEqual(kindOf({}), "object");
});

test("an object whose constructor is not a function is an object", () => {
  assert.strictEqual(kindOf({ constructor: { name: "Symbol" } }), "object");
  assert.strictEqual(kindOf({ constructor: { name: "Map" } }), "object");
  assert.strictEqual(kindOf({ constructor: "Set" }), "object");
});
