"use strict";
// Hidden tests of the feature request: a prerelease identifier base (written for the benchmark).
const test = require("node:test");
const assert = require("node:assert");
const path = require("node:path");
const { spawnSync } = require("node:child_process");
const semver = require("..");

const BIN = path.join(__dirname, "..", "bin", "semver.js");

function cli(...args) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test("inc: base 1 starts a new prerelease at 1", () => {
  assert.strictEqual(semver.inc("1.2.3", "prerelease", "beta", "1"), "1.2.4-beta.1");
  assert.strictEqual(semver.inc("1.2.3", "premajor", "rc", "1"), "2.0.0-rc.1");
  assert.strictEqual(semver.inc("1.2.3", "preminor", "rc", 1), "1.3.0-rc.1");
  assert.strictEqual(semver.inc("1.2.3", "prepatch", "rc", "1"), "1.2.4-rc.1");
  assert.strictEqual(semver.inc("1.2.4-beta.3", "prerelease", "alpha", "1"), "1.2.4-alpha.1");
});

test("inc: base 1 without an identifier", () => {
  assert.strictEqual(semver.inc("1.2.3", "prepatch", {}, undefined, "1"), "1.2.4-1");
  assert.strictEqual(semver.inc("1.2.3", "prerelease", { loose: true }, undefined, 1), "1.2.4-1");
});

test("inc: base 0 is the default", () => {
  assert.strictEqual(semver.inc("1.2.3", "prerelease", "beta", "0"), "1.2.4-beta.0");
  assert.strictEqual(semver.inc("1.2.3", "prerelease", "beta", 0), "1.2.4-beta.0");
});

test("inc: base false omits the number", () => {
  assert.strictEqual(semver.inc("1.2.3", "prerelease", "beta", false), "1.2.4-beta");
  assert.strictEqual(semver.inc("1.2.3", "premajor", "rc", false), "2.0.0-rc");
  assert.strictEqual(semver.inc("1.2.4-beta.1", "prerelease", "alpha", false), "1.2.4-alpha");
});

test("inc: base false cannot be used without an identifier, or on the same identifier", () => {
  assert.strictEqual(semver.inc("1.2.3", "prerelease", {}, undefined, false), null);
  assert.strictEqual(semver.inc("1.2.4-beta", "prerelease", "beta", false), null);
});

test("inc: an existing prerelease number is still raised by one", () => {
  assert.strictEqual(semver.inc("1.2.4-beta.1", "prerelease", "beta", "1"), "1.2.4-beta.2");
  assert.strictEqual(semver.inc("1.2.4-beta.1", "prerelease", "beta", false), "1.2.4-beta.2");
});

test("inc: options and identifier base together", () => {
  assert.strictEqual(semver.inc("1.2.3", "prerelease", { loose: true }, "beta", "1"), "1.2.4-beta.1");
  assert.strictEqual(semver.inc("=1.2.3", "prerelease", { loose: true }, "beta", false), "1.2.4-beta");
});

test("SemVer#inc takes the identifier base", () => {
  assert.strictEqual(new semver.SemVer("1.2.3").inc("premajor", "x", "1").version, "2.0.0-x.1");
  assert.strictEqual(new semver.SemVer("1.2.3").inc("prerelease", "x", false).version, "1.2.4-x");
});

test("cli: -n 1 and -n false", () => {
  assert.deepStrictEqual(cli("1.2.3", "-i", "prerelease", "--preid", "beta", "-n", "1"),
    { code: 0, out: "1.2.4-beta.1\n", err: "" });
  assert.deepStrictEqual(cli("1.2.3", "-i", "premajor", "--preid", "rc", "-n", "false"),
    { code: 0, out: "2.0.0-rc\n", err: "" });
  assert.deepStrictEqual(cli("-n", "0", "-i", "prerelease", "--preid", "beta", "1.2.3"),
    { code: 0, out: "1.2.4-beta.0\n", err: "" });
});

test("cli: an invalid -n is an error", () => {
  for (const bad of ["2", "true", "x"]) {
    const r = cli("1.2.3", "-i", "prerelease", "--preid", "beta", "-n", bad);
    assert.strictEqual(r.code, 1, bad);
    assert.strictEqual(r.out, "", bad);
    assert.ok(r.err.trim().length > 0, bad);
  }
});

test("cli: help lists -n", () => {
  const r = cli("--help");
  assert.strictEqual(r.code, 0);
  assert.match(r.out, /^-n <base>/m);
});

test("inc without identifier base is unchanged", () => {
  assert.strictEqual(semver.inc("1.2.3", "prerelease", "beta"), "1.2.4-beta.0");
  assert.strictEqual(semver.inc("1.2.4-beta.0", "prerelease"), "1.2.4-beta.1");
  assert.strictEqual(semver.inc("1.2.3", "premajor"), "2.0.0-0");
  assert.strictEqual(semver.inc("1.2.3", "minor"), "1.3.0");
  assert.strictEqual(semver.inc("1.2.3-beta", "prerelease", "beta"), "1.2.3-beta.0");
  assert.strictEqual(semver.inc("not a version", "patch"), null);
});

test("cli: existing options unchanged", () => {
  assert.deepStrictEqual(cli("1.2.3", "-i", "prerelease", "--preid", "beta"), { code: 0, out: "1.2.4-beta.0\n", err: "" });
  assert.deepStrictEqual(cli("1.2.3", "0.1.0", "2.0.0-rc.1"), { code: 0, out: "0.1.0\n1.2.3\n2.0.0-rc.1\n", err: "" });
  assert.deepStrictEqual(cli("-r", "^1.0.0", "1.2.3", "2.0.0"), { code: 0, out: "1.2.3\n", err: "" });
  assert.strictEqual(cli("-r", "^3.0.0", "1.2.3").code, 1);
});
