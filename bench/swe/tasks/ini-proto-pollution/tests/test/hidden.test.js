"use strict";
const test = require("node:test");
const assert = require("node:assert");
const ini = require("..");

test("parses sections and keys", () => {
  const data = ini.parse("top = 1\n[db]\nhost = localhost\nport = 5432\n");
  assert.strictEqual(data.top, "1");
  assert.deepStrictEqual(data.db, { host: "localhost", port: "5432" });
});

test("stringify round-trips", () => {
  const text = ini.stringify({ a: "b", s: { k: "v" } });
  assert.deepStrictEqual(ini.parse(text), { a: "b", s: { k: "v" } });
});

test("a __proto__ section does not pollute", () => {
  const data = ini.parse("[__proto__]\npolluted = yes\n[ok]\nk = v\n");
  assert.strictEqual({}.polluted, undefined);
  assert.strictEqual(data.polluted, undefined);
  assert.deepStrictEqual(data.ok, { k: "v" });
});

test("a __proto__ key is ignored", () => {
  const data = ini.parse("__proto__[] = 1\n[s]\n__proto__[] = 2\nk = v\n");
  assert.strictEqual(Object.getPrototypeOf(data), Object.prototype);
  assert.strictEqual(Object.getPrototypeOf(data.s), Object.prototype);
  assert.strictEqual(data.s.k, "v");
});
