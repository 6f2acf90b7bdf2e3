"use strict";
// Hidden tests of the feature request: encode's align, newline and sort options (written for the benchmark).
const test = require("node:test");
const assert = require("node:assert");
const ini = require("..");

function data() {
  return {
    zeta: "1",
    alpha: "x",
    long_key_name: true,
    list: ["p", "q"],
    server: { port: "80", host: "example.org", tls: { on: "yes", cert: "a.pem" } },
    app: { k: "v" },
  };
}

test("sort: keys and sections sorted at every level", () => {
  assert.strictEqual(ini.encode(data(), { sort: true }), [
    "alpha=x", "list[]=p", "list[]=q", "long_key_name=true", "zeta=1", "",
    "[app]", "k=v", "",
    "[server]", "host=example.org", "port=80", "",
    "[server.tls]", "cert=a.pem", "on=yes", "",
  ].join("\n"));
});

test("align: the = signs of each section line up", () => {
  assert.strictEqual(ini.encode(data(), { align: true }), [
    "zeta          = 1", "alpha         = x", "long_key_name = true", "list[]        = p", "list[]        = q", "",
    "[server]", "port = 80", "host = example.org", "",
    "[server.tls]", "on   = yes", "cert = a.pem", "",
    "[app]", "k = v", "",
  ].join("\n"));
});

test("align: an array key counts with its brackets", () => {
  assert.strictEqual(ini.encode({ a: "1", items: ["x"] }, { align: true }), "a       = 1\nitems[] = x\n");
});

test("newline: an empty line after each section header", () => {
  assert.strictEqual(ini.encode({ top: "1", s: { a: "2", t: { b: "3" } } }, { newline: true }),
    "top=1\n\n[s]\n\na=2\n\n[s.t]\n\nb=3\n");
});

test("options together, with a section and whitespace", () => {
  const out = ini.encode({ b: "2", aa: "1", sub: { y: "1", x: "22" } },
    { section: "main", sort: true, align: true, newline: true });
  assert.strictEqual(out, "[main]\n\naa = 1\nb  = 2\n\n[main.sub]\n\nx = 22\ny = 1\n");
  assert.strictEqual(ini.stringify({ b: "2", aa: "1" }, { sort: true, whitespace: true }), "aa = 1\nb = 2\n");
});

test("encoded with the options, decodes to the same object", () => {
  const opts = [{ sort: true }, { align: true }, { newline: true }, { sort: true, align: true, newline: true }];
  const plain = ini.decode(ini.encode(data()));
  for (const opt of opts) {
    assert.deepStrictEqual(ini.decode(ini.encode(data(), opt)), plain, JSON.stringify(opt));
  }
});

test("without the options the output is unchanged", () => {
  assert.strictEqual(ini.encode(data()), [
    "zeta=1", "alpha=x", "long_key_name=true", "list[]=p", "list[]=q", "",
    "[server]", "port=80", "host=example.org", "",
    "[server.tls]", "on=yes", "cert=a.pem", "",
    "[app]", "k=v", "",
  ].join("\n"));
  assert.strictEqual(ini.encode({ a: "1", s: { b: "2" } }, "top"), "[top]\na=1\n\n[top.s]\nb=2\n");
  assert.strictEqual(ini.encode({ a: "1", s: { b: "2" } }, { whitespace: true }), "a = 1\n\n[s]\nb = 2\n");
  assert.deepStrictEqual(ini.decode("a=1\n[s]\nb = 2\n"), { a: "1", s: { b: "2" } });
});
