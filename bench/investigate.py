"""The failing-suite task with and without investigate steps: re-plans, calls, tokens, wall time.

A small Python project (:func:`planted`) whose test fails because of a bug in another module than the
one the test imports: a plan written before anything runs can only guess where the bug is. The task
is "the test suite fails; find the cause and fix it", with ``[verify] command`` = the project's tests.

Offline (``python -m bench --only investigate``): ``agent run`` in fresh processes, real sandbox, on the
scripted model (``test/script``), three ways:

- ``investigate step``: the plan investigates first (runs the tests read-only, reads the module the
  failure points at), then writes the fix from the findings; verify passes; no re-plan.
- ``no investigate step``: the plan reads the tested module and guesses a fix there; verify fails; the
  re-planner gets the failing output, reads the right module and fixes it: one re-plan.
- ``no investigate step, investigate before the re-plan``: as above, with
  ``[investigate] before_replan``: the failure is investigated before the re-plan.

The scripted answers encode what each kind of plan does (they are not a model's choices): the figures
are the calls, the real token counts (tiktoken) of the requests agentcli builds for them, and the wall
time of the runs, each checked COMPLETE and replayed ``identical``.

A capable model through an OpenAI-compatible server (the lead's llmbox, say)::

    python -m bench.investigate --model openai/x --api-base http://127.0.0.1:8000/v1 [--runs 1]

plants the project in a fresh folder per run and runs the task with investigate steps offered and with
them turned off (``[investigate] enabled = false``), printing one Markdown row per run: status, calls
by role, re-plans, input / output tokens, investigate steps planned, replay. The time limits are set for
a server whose answers are written by hand (:data:`_PATIENT`: an hour a request, four hours a run, no
retries); the run's other budgets are the defaults.

``--project js`` runs the same comparison on a JavaScript project from the npm registry instead
(``qs`` 6.13.0, its own tape suite, with the modules its tests need installed in the workspace
before the run; one of :data:`JS_BUGS` planted, ``--bug``: a failure whose output names only test
files); the offline section runs its scripted ways too when ``node`` and ``npm`` are on PATH (not at
smoke sizes: the first use fetches from the npm registry). ``--way`` runs one way only (``offered``
or ``off``), for a server whose answers take minutes each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECTION = "investigate"
TASK = "the test suite fails; find the cause and fix it"
TEST_COMMAND = "python -m pytest -q"

_FILES = {
    "shop/__init__.py": "",
    "shop/money.py": ("def to_cents(amount):\n"
                      "    \"\"\"An amount in euros as whole cents, rounded half up.\"\"\"\n"
                      "    return int(amount * 100)\n"),
    "shop/cart.py": ("from shop.money import to_cents\n\n\n"
                     "def total_cents(prices, quantity=1):\n"
                     "    \"\"\"The cart's total in cents.\"\"\"\n"
                     "    return sum(to_cents(p) * quantity for p in prices)\n"),
    "tests/test_cart.py": ("from shop.cart import total_cents\n\n\n"
                           "def test_total():\n    assert total_cents([1.10, 2.20]) == 330\n\n\n"
                           "def test_quantity():\n    assert total_cents([0.29], quantity=2) == 58\n"),
}
_BUG = "    return int(amount * 100)\n"
_FIX = "    return int(round(amount * 100))\n"


def planted(ws: Path) -> None:
    """The project, under git: `python -m pytest -q` fails (1.10 * 100 is 110.00000000000001, 0.29 *
    100 is 28.999999999999996: truncated, not rounded, in shop/money.py)."""
    for rel, text in _FILES.items():
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (ws / ".gitignore").write_text(".agent/\n__pycache__/\n.pytest_cache/\n")
    _commit(ws, "shop")


def _commit(ws: Path, message: str) -> None:
    for cmd in (["init", "-q"], ["add", "."], ["-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-qm",
                                              message]):
        subprocess.run(["git", *cmd], cwd=ws, check=True, capture_output=True)


def _call(name: str, **args: Any) -> dict[str, Any]:
    return {"tool_call": {"id": f"c-{name}-{len(json.dumps(args))}", "name": name, "arguments": args}}


_REVIEW = {"outcome": "complete", "answer": "to_cents now rounds: the suite passes", "reason": ""}
_FINDINGS = {"established": "shop.money.to_cents truncates amount * 100 with int(): 0.29 * 100 is "
                            "28.999999999999996, so 29 cents become 28; it must round.",
             "evidence": ["shop/money.py:3:     return int(amount * 100)", "E       assert 56 == 58"]}
_FIX_EDITS = {"edits": [{"path": "shop/money.py", "search": _BUG, "replace": _FIX}]}


def _steps_fix(first: int, after: list[str], fix_prompt: str) -> dict[str, Any]:
    a, b = f"s{first}", f"s{first + 1}"
    return {a: {"prompt": fix_prompt, "answer": "edits", "depends_on": after, "title": "Write the fix"},
            b: {"call": {"tool": "apply_edits", "args": {"edits": "{{" + a + ".output}}"}}, "depends_on": [a],
                "title": "Apply the fix"}}


def investigate_then_fix(question: str, fix_prompt: str) -> dict[str, Any]:
    """A draft: s1 investigates ``question``, s2 writes the fix from its findings, s3 applies it."""
    return {"steps": {"s1": {"investigate": question, "depends_on": [], "title": "Find the cause"},
                      **_steps_fix(2, ["s1"], fix_prompt)}}


def read_then_fix(first: int, path: str, title: str, fix_prompt: str) -> dict[str, Any]:
    """A draft from step ``s<first>``: read ``path``, write the fix from it (``fix_prompt``, to which
    the file's content is added), apply it."""
    read = f"s{first}"
    return {"steps": {read: {"call": {"tool": "read_file", "args": {"path": path}}, "depends_on": [], "title": title},
                      **_steps_fix(first + 1, [read], fix_prompt + "\n{{" + read + ".output}}")}}


def _ways(investigate: dict[str, Any], guess: dict[str, Any], wrong: dict[str, Any], replan: dict[str, Any],
          fix_after_replan: dict[str, Any], look: list[Any], findings: dict[str, Any], fix: dict[str, Any],
          review: dict[str, Any]) -> dict[str, list[Any]]:
    """The scripted model's answers per way, in the order a run asks for them (see the module docstring)."""
    return {
        "investigate step": [investigate, *look, findings, fix, review],
        "no investigate step": [guess, wrong, review, replan, fix_after_replan, review],
        "no investigate step, investigate before the re-plan": [guess, wrong, review, *look, findings, replan,
                                                                fix_after_replan, review],
    }


def scripts() -> dict[str, list[Any]]:
    """What the scripted model answers, per way (see the module docstring)."""
    wrong = {"edits": [{"path": "shop/cart.py", "search": "    return sum(to_cents(p) * quantity for p in prices)\n",
                        "replace": "    return sum(to_cents(p * quantity) for p in prices)\n"}]}
    return _ways(
        investigate_then_fix("Run the tests and find the line that makes them fail.",
                             "Fix the cause these findings establish:\n{{s1.output}}"),
        read_then_fix(1, "shop/cart.py", "Read the cart", "The cart's tests fail. Fix shop/cart.py:"), wrong,
        read_then_fix(4, "shop/money.py", "Read money.py", "to_cents truncates; make it round:"), _FIX_EDITS,
        [_call("run_readonly", command=TEST_COMMAND), _call("read_file", path="shop/money.py")],
        _FINDINGS, _FIX_EDITS, _REVIEW)


# --------------------------------------------------------------------------- a JavaScript project

#: qs's tape suite, run as its ``tests-only`` script does, without the coverage wrapper (nyc writes
#: into the workspace, which an investigate step mounts read-only) and without the lint and audit the
#: project's ``pretest`` / ``posttest`` add (those need its whole tool chain and the network).
JS_TEST_COMMAND = "npx tape 'test/**/*.js'"
JS_TASK = f"The test suite fails (`{JS_TEST_COMMAND}`); find the cause and fix it."
JS_PROJECT, JS_VERSION = "qs", "6.13.0"
#: What ``test/*.js`` require besides qs itself and its one dependency (their versions as
#: ``devDependencies`` pins them): installed once in a cache, copied into each workspace.
JS_TEST_DEPS = ("side-channel@^1.0.6", "tape@^5.8.1", "es-value-fixtures@^1.4.2", "for-each@^0.3.3",
                "has-override-mistake@^1.0.1", "has-property-descriptors@^1.0.2", "has-symbols@^1.0.3",
                "iconv-lite@^0.5.1", "mock-property@^1.0.3", "object-inspect@^1.13.2", "safer-buffer@^2.1.2")


@dataclass(frozen=True)
class JsBug:
    """A failure planted in qs: ``bad`` replaces ``good`` (once) in ``path``. The fix puts ``good`` back,
    or, where the planted change is a test, is ``fix`` (path, search, replace)."""

    path: str
    good: str
    bad: str
    established: str
    fix: tuple[str, str, str] | None = None

    @property
    def fix_edit(self) -> tuple[str, str, str]:
        """The edit that makes the suite pass: (path, search, replace)."""
        return self.fix or (self.path, self.bad, self.good)


#: The failures :func:`planted_js` can plant (``--bug``; the default :data:`JS_DEFAULT_BUG`). bench/RESULTS.md has a
#: capable model's runs on each.
JS_BUGS = {
    # A real bug with its real regression test: qs 6.13.1 fixed "utils.merge: functions should not be
    # stringified into keys" and added two assertions to test/utils.js; here they are added to 6.13.0's
    # suite, whose code is as released. 1 of 741 assertions fails (``functions can be merge sources``:
    # ``expected { foo: 'bar', bar: 'baz' } actual { foo: 'bar', 'function f() {}': true }``); nothing
    # in lib/ reads as wrong until the test is run (merge treats every non-object, a function too, as
    # a key to set).
    "merge-function": JsBug(
        "test/utils.js", "    t.deepEqual(noOptionsNonObjectSource, { foo: 'baz', bar: true });\n",
        "    t.deepEqual(noOptionsNonObjectSource, { foo: 'baz', bar: true });\n\n"
        "    var func = function f() {};\n    t.deepEqual(\n        utils.merge(func, { foo: 'bar' }),\n"
        "        [func, { foo: 'bar' }],\n        'functions can not be merged into'\n    );\n\n"
        "    func.bar = 'baz';\n    t.deepEqual(\n        utils.merge({ foo: 'bar' }, func),\n"
        "        { foo: 'bar', bar: 'baz' },\n        'functions can be merge sources'\n    );\n",
        "utils.merge in lib/utils.js takes every source whose typeof is not 'object' for a primitive and sets "
        "it as a key (String(function)); a function source must be merged like an object.",
        ("lib/utils.js", "    if (typeof source !== 'object') {\n",
         "    if (typeof source !== 'object' && typeof source !== 'function') {\n")),
    # A real bug with its real regression test, from a later release: qs 6.17.0 fixed "parse: decode
    # percent-encoded dots case-insensitively (#635)"; its test is added to 6.13.0's test/parse.js, whose
    # code is as released. 1 of 741 assertions fails (``lowercase and uppercase escapes decode in both
    # parent and child keys``: ``actual { 'name%2eobj': { 'first%2ename': 'John' }, 'name.obj': ... }``).
    "dot-case": JsBug(
        "test/parse.js", "    t.test('decode dot keys correctly', function (st) {\n",
        "    t.test('decode dot keys with case-insensitive percent escapes', function (st) {\n"
        "        var input = 'name%252eobj.first%252ename=John&name%252Eobj.last%252Ename=Doe';\n"
        '        st.deepEqual(\n'
        '            qs.parse(input, { decodeDotInKeys: true }),\n'
        "            { 'name.obj': { 'first.name': 'John', 'last.name': 'Doe' } },\n"
        "            'lowercase and uppercase escapes decode in both parent and child keys'\n"
        '        );\n'
        '        st.deepEqual(\n'
        '            qs.parse(input, { allowDots: true, decodeDotInKeys: false }),\n'
        "            { 'name%2eobj': { 'first%2ename': 'John' }, 'name%2Eobj': { 'last%2Ename': 'Doe' } },\n"
        "            'escaped dots remain unchanged when decoding is disabled'\n"
        '        );\n'
        '        st.end();\n'
        '    });\n'
        '\n'
        + "    t.test('decode dot keys correctly', function (st) {\n",
        "parseObject in lib/parse.js decodes %2E in keys with /%2E/g, so a lower-case %2e stays encoded "
        "with decodeDotInKeys; the pattern must be case-insensitive (/%2E/gi).",
        ("lib/parse.js", "cleanRoot.replace(/%2E/g, '.')", "cleanRoot.replace(/%2E/gi, '.')")),
    # The same, qs 6.16.1's "utils: encode + as %2B in iso-8859-1 mode so values round-trip (#565)":
    # 3 of 742 assertions fail, in the middle of the suite's output (``expected 'a=b%2Bc' actual
    # 'a=b+c'``); the fix is in utils.encode, which stringify calls.
    "iso-plus": JsBug(
        "test/stringify.js", "    t.test('respects an explicit charset of utf-8 (the default)', function (st) {\n",
        "    t.test('encodes a literal `+` as `%2B` in iso-8859-1 mode so it round-trips', function (st) {\n"
        "        st.equal(qs.stringify({ a: 'b+c' }, { charset: 'iso-8859-1' }), 'a=b%2Bc', "
        "'a `+` in a value is percent-encoded');\n"
        "        st.equal(qs.stringify({ 'a+b': 'c' }, { charset: 'iso-8859-1' }), 'a%2Bb=c', "
        "'a `+` in a key is percent-encoded');\n"
        '        st.deepEqual(\n'
        "            qs.parse(qs.stringify({ a: 'b+c' }, { charset: 'iso-8859-1' }), { charset: 'iso-8859-1' }),\n"
        "            { a: 'b+c' },\n"
        "            'the `+` survives a round-trip instead of decoding to a space'\n"
        '        );\n'
        '        st.end();\n'
        '    });\n'
        '\n'
        + "    t.test('respects an explicit charset of utf-8 (the default)', function (st) {\n",
        "utils.encode in lib/utils.js escapes iso-8859-1 strings with escape(), which leaves + as it is; a "
        "literal + then decodes as a space, so the iso-8859-1 branch must also replace + with %2B.",
        ("lib/utils.js", "            return '%26%23' + parseInt($0.slice(2), 16) + '%3B';\n        });\n",
         "            return '%26%23' + parseInt($0.slice(2), 16) + '%3B';\n        }).replace(/\\+/g, '%2B');\n")),
    # The same, qs 6.17.1's "parse: interpretNumericEntities: decode code points above U+FFFF as
    # surrogate pairs (#640)": 3 of 743 assertions fail, in the middle of the suite's output (``expected
    # { foo: '\U0001F600' } actual { foo: '\uF600' }``); the fix is in parse.js's interpretNumericEntities.
    "entity-astral": JsBug(
        "test/parse.js",
        "    t.test('handles a custom decoder returning `null`, in the `iso-8"
        "859-1` charset, when `interpretNumericEntities`', function (st) {\n",
        "    t.test('interprets numeric entities above U+FFFF as surrogate pairs', function (st) {\n"
        "        var options = { charset: 'iso-8859-1', interpretNumericEntities: true };\n"
        "        st.deepEqual(qs.parse('foo=%26%23128512%3B', options), { foo"
        ": '\\uD83D\\uDE00' }, 'U+1F600, which a browser submits as `&#128512;` from an iso-8859-1 form');\n"
        "        st.deepEqual(qs.parse('foo=%26%2365536%3B', options), { foo: '\\uD800\\uDC00' }, 'U+10000');\n"
        "        st.deepEqual(qs.parse('foo=%26%231114111%3B', options), { foo: '\\uDBFF\\uDFFF' }, 'U+10FFFF');\n"
        "        st.deepEqual(qs.parse('foo=%26%2365535%3B', options), { foo:"
        " '\\uFFFF' }, 'U+FFFF is still one code unit');\n"
        '        st.end();\n'
        '    });\n'
        '\n'
        "    t.test('handles a custom decoder returning `null`, in the `iso-8"
        "859-1` charset, when `interpretNumericEntities`', function (st) {\n",
        "interpretNumericEntities in lib/parse.js turns &#N; into String.fromCharCode(N), which keeps only the "
        "low 16 bits of a code point above U+FFFF; those need a surrogate pair (String.fromCodePoint).",
        ("lib/parse.js", '        return String.fromCharCode(parseInt(numberStr, 10));\n',
        '        var c = parseInt(numberStr, 10);\n'
        '        return c > 0xFFFF && c <= 0x10FFFF ? String.fromCodePoint(c) : String.fromCharCode(c);\n')),
    # The same, qs 6.17.0's "utils: encode: encode lone surrogates as U+FFFD instead of consuming the
    # next code unit (#624)", the first three assertions of its test: 3 of 742 assertions fail, in the
    # middle of the suite's output (``expected 'a=%EF%BF%BDx' actual 'a=%F0%90%81%B8'``); the fix is
    # in utils.encode.
    "lone-surrogate": JsBug(
        "test/stringify.js", "    t.test('stringifies falsy values', function (st) {\n",
        "    t.test('stringifies lone surrogates as U+FFFD', function (st) {\n"
        "        st.equal(qs.stringify({ a: '\\uD800x' }), 'a=%EF%BF%B"
        "Dx', 'lone high surrogate does not swallow the next character');\n"
        "        st.equal(qs.stringify({ a: '\\uDC00x' }), 'a=%EF%BF%B"
        "Dx', 'lone low surrogate does not swallow the next character');\n"
        "        st.equal(qs.stringify({ '\\uD800': 'b' }), '%EF%BF%BD=b', 'lone surrogate in a key');\n"
        '        st.end();\n'
        '    });\n'
        '\n'
        + "    t.test('stringifies falsy values', function (st) {\n",
        "utils.encode in lib/utils.js takes every code unit from 0xD800 to 0xDFFF as the first half of a pair "
        "and joins it with the next one; a lone surrogate (no low half after it) must become U+FFFD "
        "(%EF%BF%BD) and leave the next character alone.",
        ("lib/utils.js",
        '            i += 1;\n'
        '            c = 0x10000 + (((c & 0x3FF) << 10) | (segment.charCodeAt(i) & 0x3FF));\n'
        '\n'
        '            arr[arr.length] = hexTable[0xF0 | (c >> 18)]\n'
        '                + hexTable[0x80 | ((c >> 12) & 0x3F)]\n'
        '                + hexTable[0x80 | ((c >> 6) & 0x3F)]\n'
        '                + hexTable[0x80 | (c & 0x3F)];\n',
        '            var next = segment.charCodeAt(i + 1);\n'
        '            if (c <= 0xDBFF && next >= 0xDC00 && next <= 0xDFFF) {\n'
        '                i += 1;\n'
        '                c = 0x10000 + (((c & 0x3FF) << 10) | (next & 0x3FF));\n'
        '\n'
        '                arr[arr.length] = hexTable[0xF0 | (c >> 18)]\n'
        '                    + hexTable[0x80 | ((c >> 12) & 0x3F)]\n'
        '                    + hexTable[0x80 | ((c >> 6) & 0x3F)]\n'
        '                    + hexTable[0x80 | (c & 0x3F)];\n'
        '            } else {\n'
        "                arr[arr.length] = '%EF%BF%BD';\n"
        '            }\n')),
    # A real bug put back: qs 6.12.3 fixed "parse: properly account for strictNullHandling when
    # allowEmptyArrays"; here 6.13.0's parseObject has the line as 6.12.2 released it (its own test of the
    # fix stays). 1 of 739 assertions fails (``allowEmptyArrays + strictNullHandling``: ``expected {
    # testEmptyArray: [] } actual { testEmptyArray: [ null ] }``); the planted line is real code of an
    # earlier release, so reading it shows nothing wrong.
    "empty-array-null": JsBug(
        "lib/parse.js",
        "            obj = options.allowEmptyArrays && (leaf === '' || (options.strictNullHandling && leaf === null))\n"
        "                ? []\n                : [].concat(leaf);\n",
        "            obj = options.allowEmptyArrays && leaf === '' ? [] : [].concat(leaf);\n",
        "parseObject in lib/parse.js makes an empty array for a[]= only when the leaf is '', but with "
        "strictNullHandling a[] has the leaf null; allowEmptyArrays must give [] for that leaf too."),
    # A boundary that reads as the natural one: ``index < options.arrayLimit`` in parseObject, where
    # qs allows an index equal to the limit. 3 of 739 assertions fail (``limits specific array indices
    # to arrayLimit``, ``allows overriding array limit``): ``expected { a: [ 'a' ] } actual { a: { 20:
    # 'a' } }``; every stack names test/parse.js only.
    "array-limit": JsBug("lib/parse.js", "                && (options.parseArrays && index <= options.arrayLimit)\n",
                         "                && (options.parseArrays && index < options.arrayLimit)\n",
                         "parseObject in lib/parse.js turns an index into an array slot only while index < "
                         "options.arrayLimit; qs allows an index equal to the limit (a[20]=a with arrayLimit 20 is "
                         "an array), so the comparison must be <=."),
    # A default that reads as a valid choice: formats.js names RFC1738 (which leaves ( ) unescaped and
    # writes spaces as +) the default format. 5 of 739 assertions fail, in stringify's tests of symbols
    # and of the default format: ``expected '0=Symbol%28Symbol.iterator%29' actual
    # '0=Symbol(Symbol.iterator)'``; the code the symptom points at (utils.encode) is right.
    "default-format": JsBug("lib/formats.js", "    'default': Format.RFC3986,\n", "    'default': Format.RFC1738,\n",
                            "lib/formats.js makes RFC1738 the default format, so stringify leaves ( ) unescaped; "
                            "qs's default is RFC3986."),
    # A regular expression's flag: decode's iso-8859-1 branch matches %XX case-sensitively, so only
    # lower-case escapes are decoded. 7 of 739 assertions fail (``parses an iso-8859-1 string if asked
    # to`` and the charset-sentinel tests): ``expected { '¢': '½' } actual { '%A2': '%BD' }``.
    "iso-decode": JsBug("lib/utils.js", "        return strWithoutPlus.replace(/%[0-9a-f]{2}/gi, unescape);\n",
                        "        return strWithoutPlus.replace(/%[0-9a-f]{2}/g, unescape);\n",
                        "decode in lib/utils.js replaces /%[0-9a-f]{2}/g for iso-8859-1: without the i flag upper-case "
                        "escapes such as %A2 stay encoded; the pattern must be case-insensitive."),
    # An off-by-one in a helper nothing exports: compactQueue (which drops the holes a parsed sparse
    # array leaves) skips the first nested value. 12 of 739 assertions fail with ``expected { a: [ 'b',
    # 'c' ] } actual { a: [ , 'b', 'c' ] }``. A capable model spotted it by reading lib/utils.js in the
    # planner's survey (bench/RESULTS.md).
    "compact-queue": JsBug("lib/utils.js", "    while (queue.length > 1) {\n", "    while (queue.length > 2) {\n",
                           "compactQueue in lib/utils.js loops while queue.length > 2, so the first nested value "
                           "(a parsed sparse array) is never compacted; it must be > 1 (queue[0] is the wrapper)."),
}
#: The failure the scripted ways and ``--project js`` plant unless told otherwise.
JS_DEFAULT_BUG = "array-limit"


def _js_cache() -> Path:
    return Path(os.environ.get("BENCH_INVESTIGATE_CACHE") or Path.home() / ".cache" / "agentcli-investigate")


def _js_test_modules() -> Path:
    """``node_modules`` with the suite's modules (installed from the npm registry on first use)."""
    base = _js_cache() / f"{JS_PROJECT}-{JS_VERSION}-test-deps"
    if not (base / "ok").exists():
        import shutil

        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        (base / "package.json").write_text('{"name": "deps", "version": "1.0.0", "private": true}\n')
        proc = subprocess.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", *JS_TEST_DEPS],
                              cwd=base, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"npm install of qs's test modules failed: {(proc.stderr or proc.stdout)[-300:]}")
        (base / "ok").write_text("")
    return base / "node_modules"


def planted_js(ws: Path, bug: str = "") -> None:
    """qs 6.13.0 from the npm registry, under git, its test modules in ``node_modules`` (ignored), with
    one of :data:`JS_BUGS` planted in the committed tree: :data:`JS_TEST_COMMAND` fails."""
    import shutil

    from bench.swe.fetch import copy_tree, release

    copy_tree(release("npm", JS_PROJECT, JS_VERSION), ws)
    planted = JS_BUGS[bug or JS_DEFAULT_BUG]
    path = ws / planted.path
    text = path.read_text()
    if text.count(planted.good) != 1:
        raise RuntimeError(f"{planted.path}: the line to plant the bug in is not there once")
    path.write_text(text.replace(planted.good, planted.bad))
    shutil.copytree(_js_test_modules(), ws / "node_modules", symlinks=True)
    (ws / ".gitignore").write_text(".agent/\nnode_modules/\n.nyc_output/\ncoverage/\n")
    _commit(ws, JS_PROJECT)


def js_available() -> bool:
    """Whether node and npm are on PATH (the JavaScript project needs both)."""
    import shutil

    return bool(shutil.which("node") and shutil.which("npm"))


_JS_BUG = JS_BUGS[JS_DEFAULT_BUG]
JS_BUG_PATH = _JS_BUG.path
_JS_FINDINGS = {"established": _JS_BUG.established,
                "evidence": ["lib/parse.js:145:                 && (options.parseArrays && index < options.arrayLimit)",
                             "expected: |-  { a: [ 'a' ] }  actual: |-  { a: { 20: 'a' } }"]}
_JS_FIX_EDITS = {"edits": [{"path": JS_BUG_PATH, "search": _JS_BUG.bad, "replace": _JS_BUG.good}]}
_JS_REVIEW = {"outcome": "complete", "answer": "an index equal to arrayLimit is an array slot again: the suite passes",
              "reason": ""}


def js_scripts() -> dict[str, list[Any]]:
    """What the scripted model answers on the JavaScript project, per way (as :func:`scripts`)."""
    wrong = {"edits": [{"path": "lib/utils.js", "search": "var limit = 1024;\n", "replace": "var limit = 2048;\n"}]}
    undo = {"edits": [{"path": "lib/utils.js", "search": "var limit = 2048;\n", "replace": "var limit = 1024;\n"},
                      *_JS_FIX_EDITS["edits"]]}
    return _ways(
        investigate_then_fix("Run the tests and find the code that makes them fail.",
                             "Fix the cause these findings establish:\n{{s1.output}}"),
        read_then_fix(1, "lib/utils.js", "Read the helpers", "The tests fail. Fix lib/utils.js:"), wrong,
        read_then_fix(4, JS_BUG_PATH, "Read parse.js", "An index equal to arrayLimit must stay an array slot; fix it:"),
        undo, [_call("run_readonly", command=JS_TEST_COMMAND), _call("read_file", path=JS_BUG_PATH)],
        _JS_FINDINGS, _JS_FIX_EDITS, _JS_REVIEW)


@dataclass(frozen=True)
class Project:
    """One planted failing suite: how to plant it, the task, the verify command, the scripted answers."""

    name: str
    plant: Callable[[Path], None]
    task: str
    test_command: str
    scripts: Callable[[], dict[str, list[Any]]]
    describe: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)


PROJECTS = {
    "python": Project("python", planted, TASK, TEST_COMMAND, scripts, "a five-file Python project (shop)"),
    "js": Project("js", planted_js, JS_TASK, JS_TEST_COMMAND, js_scripts,
                  f"{JS_PROJECT} {JS_VERSION} from the npm registry (JavaScript)"),
}


_ENV = {"AGENT_MEMORY__ENABLED": "false"}
#: Offline, the scripted planner does not survey (a capable model may: the default 6 calls).
_OFFLINE = {"AGENT_PLANNER__SURVEY_CALLS": "0"}
#: The capable-model ways: investigate steps offered to the planner, and turned off.
_WAYS: dict[str, dict[str, str]] = {"offered": {}, "off": {"AGENT_INVESTIGATE__ENABLED": "false"}}
_WAY_ENV = {"no investigate step, investigate before the re-plan": {"AGENT_INVESTIGATE__BEFORE_REPLAN": "true"}}


def _path(python: Path) -> str:
    """PATH with this interpreter's folder first: the project's `python -m pytest` finds pytest."""
    return f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"


#: Limits for a server whose answers are written by hand.
_PATIENT = {"AGENT_LLM__TIMEOUT_SECONDS": "3600", "AGENT_LLM__MAX_RETRIES": "0", "AGENT_BUDGET__MAX_SECONDS": "14400",
            "AGENT_INVESTIGATE__MAX_SECONDS": "7200", "AGENT_VERIFY__TIMEOUT_SECONDS": "600"}


def _agent(agent: str, ws: Path, env: dict[str, str], *args: str, timeout: float = 900
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([agent, *args], cwd=ws, env=env, capture_output=True, text=True, timeout=timeout)


def outcome(ws: Path, out: dict[str, Any]) -> dict[str, Any]:
    """What one run did: status, calls by role, re-plans, tokens, investigate steps planned."""
    from agentcli.record.events import Reviewed
    from agentcli.record.reader import RunRecord

    rec = RunRecord.read(ws / ".agent" / "runs" / out["run_id"] / "events.jsonl")
    roles = [c.data.role for c in rec.calls]
    investigates = {s.id for p in rec.plans for s in p.plan.steps if s.kind == "investigate"}
    before = sum(1 for r in rec.of(Reviewed) if r.data.kind == "investigated")
    return {"status": out["status"], "calls": len(roles), "planner": roles.count("planner"),
            "step": roles.count("executor"), "reviewer": roles.count("reviewer"),
            "replans": out["budget"]["replans"], "input_tokens": out["totals"]["input_tokens"],
            "output_tokens": out["totals"]["output_tokens"], "investigate_steps": len(investigates),
            "investigated_before_replan": before,
            "verify": (out.get("verify") or {}).get("status")}


def run(ctx: Any) -> Any:
    """The offline section (``python -m bench --only investigate``): the Python project, then the
    JavaScript one when node and npm are on PATH."""
    from bench.report import Row, SectionResult
    from bench.stats import Summary

    res = SectionResult(SECTION)
    agent = str(ctx.agent)
    reps = 1 if ctx.smoke else 5
    # The JavaScript project fetches qs and its test modules from the npm registry on first use: not at
    # smoke sizes, which must run offline.
    projects = [PROJECTS["python"], *([PROJECTS["js"]] if js_available() and not ctx.smoke else [])]
    for project in projects:
        tag = "" if project.name == "python" else f"{JS_PROJECT}, "
        seconds: dict[str, list[float]] = {}
        last: dict[str, dict[str, Any]] = {}
        replayed: dict[str, str] = {}
        for n in range(reps):
            for way, script in project.scripts().items():
                ws = ctx.tmp / f"investigate-{project.name}-{n}-{len(seconds.get(way, []))}-{abs(hash(way)) % 10_000}"
                ws.mkdir(parents=True)
                project.plant(ws)
                script_path = ws.parent / f"{ws.name}.json"
                script_path.write_text(json.dumps(script))
                env = ctx.env(AGENT_MODEL="test/script", AGENT_TEST_SCRIPT=str(script_path), **_ENV, **_OFFLINE,
                              AGENT_VERIFY__COMMAND=project.test_command, **_WAY_ENV.get(way, {}),
                              PATH=_path(Path(ctx.python)))
                t0 = time.perf_counter()
                r = _agent(agent, ws, env, "run", project.task, "--yes", "--json")
                seconds.setdefault(way, []).append(time.perf_counter() - t0)
                if r.returncode != 0:
                    raise RuntimeError(f"{tag}{way}: agent run exited {r.returncode}: {(r.stderr or r.stdout)[-400:]}")
                out = json.loads(r.stdout)
                last[way] = outcome(ws, out)
                if way not in replayed:
                    rep = _agent(agent, ws, env, "replay", out["run_id"])
                    replayed[way] = rep.stdout.split()[0] if rep.stdout.strip() else f"exit {rep.returncode}"
        for way, o in last.items():
            res.rows.append(Row(SECTION, f"wall time of the run, {tag}{way}", Summary.of(seconds[way], "s")))
            res.rows.append(Row(SECTION, f"outcome, {tag}{way}", text=(
                f"{o['status']}, verify {o['verify']}; {o['replans']} re-plan(s); {o['calls']} calls "
                f"({o['planner']}/{o['step']}/{o['reviewer']} planner/step/reviewer); {o['input_tokens']:,} / "
                f"{o['output_tokens']:,} tokens in / out; replay {replayed[way]}")))
        a, b = last["investigate step"], last["no investigate step"]
        res.rows.append(Row(SECTION, f"ratio input tokens, {tag}no investigate step / investigate step",
                            Summary.of([b["input_tokens"] / a["input_tokens"]], "x")))
        res.rows.append(Row(SECTION, f"ratio wall time, {tag}no investigate step / investigate step",
                            Summary.of([Summary.of(seconds["no investigate step"], "s").median
                                        / Summary.of(seconds["investigate step"], "s").median], "x")))
    res.notes.append(
        f"{reps} fresh `agent run` processes per way, interleaved, real bwrap sandbox, [verify] command = "
        f"`{TEST_COMMAND}` (rows without a project name: a five-file Python project)"
        + (f" and `{JS_TEST_COMMAND}` (rows named {JS_PROJECT}: {JS_PROJECT} {JS_VERSION} from the npm registry, "
           f"a bug planted in {JS_BUG_PATH})" if len(projects) > 1 else "")
        + "; the scripted model's answers encode each kind of plan (module docstring of "
        "bench/investigate.py), so calls and re-plans follow from the script; tokens are tiktoken counts of the "
        "requests agentcli built. For a capable model: `python -m bench.investigate --model openai/x "
        "--api-base URL [--project js]`.")
    return res


# --------------------------------------------------------------------------- a capable model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.investigate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the model, e.g. openai/x")
    p.add_argument("--api-base", required=True, help="the OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--runs", type=int, default=1, help="runs per way (default 1)")
    p.add_argument("--project", choices=sorted(PROJECTS), default="python",
                   help="the planted project: python (a five-file project) or js (qs from the npm registry)")
    p.add_argument("--bug", choices=sorted(JS_BUGS), default=JS_DEFAULT_BUG,
                   help=f"with --project js: the failure planted in qs (default {JS_DEFAULT_BUG})")
    p.add_argument("--way", choices=("both", *_WAYS), default="both",
                   help="offered (investigate steps offered to the planner), off ([investigate] enabled = false) "
                        "or both (default)")
    p.add_argument("--agent", default=str(Path(sys.executable).parent / "agent"), help="the agent executable")
    p.add_argument("--keep", action="store_true", help="keep the workspaces (printed) for a look")
    args = p.parse_args(argv)
    project = PROJECTS[args.project]
    ways = _WAYS if args.way == "both" else {args.way: _WAYS[args.way]}
    bug = f", bug {args.bug} in {JS_BUGS[args.bug].path}" if project.name == "js" else ""
    print(f"project: {project.describe}{bug}; task: {project.task!r}; verify: `{project.test_command}`")
    print("| way | run | status | calls (planner/step/reviewer) | re-plans | input / output tokens | "
          "investigate steps | investigated before re-plan | verify | replay | workspace |")
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    root = Path(tempfile.mkdtemp(prefix="agentcli-investigate-"))
    for n in range(args.runs):
        for way, extra in ways.items():
            ws = root / f"{way}-{n}"
            ws.mkdir()
            if project.name == "js":
                planted_js(ws, args.bug)
            else:
                project.plant(ws)
            env = {**os.environ, **_ENV, **_PATIENT, **extra, "AGENT_VERIFY__COMMAND": project.test_command,
                   "AGENT_ALLOW_MODEL_REQUESTS": "1", "PATH": _path(Path(sys.executable)),
                   "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY", "sk-bench-0000")}
            r = _agent(args.agent, ws, env, "--model", args.model, "--api-base", args.api_base, "run",
                       project.task, "--yes", "--json", timeout=4 * 3600 + 60)
            try:
                out = json.loads(r.stdout)
            except json.JSONDecodeError:
                print(f"| investigate {way} | {n + 1} | error: {(r.stderr or r.stdout).strip()[-200:]} |")
                continue
            o = outcome(ws, out)
            rep = _agent(args.agent, ws, env, "replay", out["run_id"])
            print(f"| investigate {way} | {n + 1} | {o['status']} | {o['calls']} ({o['planner']}/{o['step']}/"
                  f"{o['reviewer']}) | {o['replans']} | {o['input_tokens']:,} / {o['output_tokens']:,} | "
                  f"{o['investigate_steps']} | {o['investigated_before_replan']} | {o['verify']} | "
                  f"{rep.stdout.split()[0] if rep.stdout.strip() else rep.returncode} | {ws if args.keep else '-'} |",
                  flush=True)
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
