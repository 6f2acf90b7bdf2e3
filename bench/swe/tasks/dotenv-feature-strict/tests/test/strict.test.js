"use strict";
// Hidden tests of the feature request: a strict option, and boolean options given as strings (written for the
// benchmark).
const test = require("node:test");
const assert = require("node:assert");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawnSync } = require("node:child_process");

const ROOT = path.join(__dirname, "..");
const MAIN = path.join(ROOT, "lib", "main.js");
const PRELOAD = path.join(ROOT, "config.js");

function project(content) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dotenv-"));
  if (content !== undefined) fs.writeFileSync(path.join(dir, ".env"), content);
  return dir;
}

// A child process (config() changes process.env): the script's output, its error output, its exit code.
function node(dir, args, env = {}) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("DOTENV_CONFIG_")));
  const r = spawnSync(process.execPath, args, { cwd: dir, env: { ...clean, ...env }, encoding: "utf8" });
  return { out: r.stdout, err: r.stderr, code: r.status };
}

function script(dir, body) {
  return node(dir, ["-e", `const dotenv = require(${JSON.stringify(MAIN)});\n${body}`]);
}

test("config: strict throws the read error", () => {
  const dir = project();
  const r = script(dir, `
    try { dotenv.config({ strict: true }); console.log("no error"); }
    catch (e) { console.log("threw " + e.code + " " + (e instanceof Error)); }`);
  assert.strictEqual(r.out.trim(), "threw ENOENT true");
});

test("config: strict given as a string", () => {
  const dir = project();
  const r = script(dir, `
    for (const strict of ["true", "TRUE", "1", "yes"]) {
      try { dotenv.config({ path: "missing.env", strict }); console.log("no error"); }
      catch (e) { console.log("threw " + e.code); }
    }
    const res = dotenv.config({ path: "missing.env", strict: "false" });
    console.log("returned " + res.error.code);`);
  assert.strictEqual(r.out.trim(), "threw ENOENT\nthrew ENOENT\nthrew ENOENT\nthrew ENOENT\nreturned ENOENT");
});

test("preload: DOTENV_CONFIG_STRICT stops the process when the file is missing", () => {
  const dir = project();
  const r = node(dir, ["-r", PRELOAD, "-e", "console.log('started')"], { DOTENV_CONFIG_STRICT: "true" });
  assert.notStrictEqual(r.code, 0);
  assert.doesNotMatch(r.out, /started/);
  assert.match(r.err, /ENOENT/);
});

test("preload: dotenv_config_strict=true stops the process when the file is missing", () => {
  const dir = project();
  const r = node(dir, ["-r", PRELOAD, "-e", "console.log('started')", "dotenv_config_strict=true",
    "dotenv_config_path=" + path.join(dir, "nope.env")]);
  assert.notStrictEqual(r.code, 0);
  assert.doesNotMatch(r.out, /started/);
  assert.match(r.err, /ENOENT/);
});

test("preload: DOTENV_CONFIG_DEBUG=false does not turn debugging on", () => {
  const dir = project();
  for (const value of ["false", "0", "no", "FALSE"]) {
    const r = node(dir, ["-r", PRELOAD, "-e", "console.log('started')"], { DOTENV_CONFIG_DEBUG: value });
    assert.strictEqual(r.code, 0, value);
    assert.strictEqual(r.out, "started\n", value);
  }
});

test("preload: dotenv_config_override=false does not override", () => {
  const dir = project("GREETING=from-file\n");
  const r = node(dir, ["-r", PRELOAD, "-e", "console.log(process.env.GREETING)", "dotenv_config_override=false"],
    { GREETING: "from-env" });
  assert.strictEqual(r.out, "from-env\n");
});

test("the TypeScript declarations have the option", () => {
  const dts = fs.readFileSync(path.join(ROOT, "lib", "main.d.ts"), "utf8");
  assert.match(dts, /strict\?\s*:\s*boolean/);
});

test("config: without strict a missing file is returned as error", () => {
  const dir = project();
  const r = script(dir, `
    const res = dotenv.config();
    console.log(res.error.code + " " + (res.parsed === undefined));
    console.log(dotenv.config({ strict: false }).error.code);`);
  assert.strictEqual(r.out.trim(), "ENOENT true\nENOENT");
});

test("config: strict with a file that exists loads it", () => {
  const dir = project("A_KEY=a value\nB_KEY='quoted'\n");
  const r = script(dir, `
    const res = dotenv.config({ strict: true });
    console.log(JSON.stringify(res.parsed) + " " + process.env.A_KEY);`);
  assert.strictEqual(r.out.trim(), '{"A_KEY":"a value","B_KEY":"quoted"} a value');
});

test("preload: debugging and override still work", () => {
  const dir = project("GREETING=from-file\n");
  const dbg = node(dir, ["-r", PRELOAD, "-e", "console.log(process.env.GREETING)"],
    { DOTENV_CONFIG_DEBUG: "true", GREETING: "from-env" });
  assert.match(dbg.out, /\[DEBUG\].*GREETING/);
  const over = node(dir, ["-r", PRELOAD, "-e", "console.log(process.env.GREETING)", "dotenv_config_override=true"],
    { GREETING: "from-env" });
  assert.strictEqual(over.out, "from-file\n");
  const plain = node(dir, ["-r", PRELOAD, "-e", "console.log(process.env.GREETING)"]);
  assert.strictEqual(plain.out, "from-file\n");
});
