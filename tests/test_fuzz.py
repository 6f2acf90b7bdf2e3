"""Hostile input: generated argv, ``--args``, config files, plan files, run records and memory
queries never end in an internal error, only in documented exit codes, and bad input (exit 2)
leaves the data dir as it was.

Bounded so the suite stays fast (derandomized: the same cases every run; 8 to 40 generated cases
per family, plus explicit ones for each kind of damage the plan and record families make, so every
kind is covered at any size). The file's time is not in the generated cases (~20-40 ms each) but
in one-time imports, the handful of real subprocesses and a few slow commands (`agent doctor`):
halving the cases changed nothing measurable. A longer run: ``AGENTCLI_FUZZ_EXAMPLES=500 pytest -q
tests/test_fuzz.py`` (that many generated cases per family); with ``AGENTCLI_FUZZ_REPORT=FILE``
failures are appended to FILE as JSON lines instead of failing (to count them).
The issue's reproductions are kept as a corpus of regression cases (``CORPUS``), each confirmed
in-process, and a handful again in a real subprocess.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models.fakes import ScriptedModel

EXAMPLES = int(os.environ.get("AGENTCLI_FUZZ_EXAMPLES", "0") or 0)
REPORT = os.environ.get("AGENTCLI_FUZZ_REPORT")
DOCUMENTED = {0, 1, 2, 3, 4, 130}
ENV = {"AGENT_MODEL": "test/scripted", "AGENT_MEMORY__ENABLED": "false"}
runner = CliRunner()

DRAFT = {"steps": [
    {"title": "list", "tool": "list_files", "args": {"pattern": "*.md"}},
    {"title": "read", "tool": "read_file", "args": {"path": "README.md"}, "depends_on": ["s1"]},
    {"title": "sum", "kind": "llm", "prompt": "Summarise {{s2.output}}", "depends_on": ["s2"]},
]}
REVIEW = {"outcome": "complete", "answer": "done", "reason": ""}


def fuzz_settings(n: int) -> Any:
    # No shrinking: a failure is reported as found (the report has the whole input), fast.
    return settings(max_examples=EXAMPLES or n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])


# ----------------------------------------------------------------------------- the harness


class Lab:
    """A workspace with one recorded run and a saved plan; runs the CLI in process."""

    def __init__(self, root: Path) -> None:
        self.ws = root / "ws"
        self.ws.mkdir()
        (self.ws / "README.md").write_text("# demo\nhello\n")
        r = self.invoke(["run", "summarise the readme", "--yes", "--json"], [DRAFT, "a summary", REVIEW],
                        check=False)
        assert r.exit_code == 0, r.output
        self.run_id = json.loads(r.stdout)["run_id"]
        self.run_dir = self.data / "runs" / self.run_id
        self.events = self.run_dir / "events.jsonl"
        self.plan_file = self.data / "plans" / f"{self.run_id}.json"
        self.cases = 0

    @property
    def data(self) -> Path:
        return self.ws / ".agent"

    def snapshot(self) -> dict[str, tuple[int, int]]:
        return {str(p.relative_to(self.data)): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in sorted(self.data.rglob("*")) if p.is_file()} if self.data.is_dir() else {}

    def invoke(self, argv: list[str], script: list[Any] | None = None, *, check: bool = True,
               env: dict[str, str] | None = None) -> Any:
        before = self.snapshot() if check else None
        cwd = os.getcwd()
        os.chdir(self.ws)
        try:
            r = runner.invoke(app, argv, obj=State(backend=ScriptedModel(list(script or [])),
                                                   environ={**ENV, **(env or {})}, use_user_config=False))
        finally:
            os.chdir(cwd)
        if check:
            self.cases += 1
            self.verify(argv, r, before)
        return r

    def verify(self, argv: list[str], r: Any, before: dict[str, tuple[int, int]] | None) -> None:
        problems = []
        out = (r.stdout or "") + (r.stderr or "")
        if "internal error" in out or "Traceback" in out:
            problems.append("internal error")
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            problems.append(f"exception {type(r.exception).__name__}: {r.exception}")
        if r.exit_code not in DOCUMENTED:
            problems.append(f"undocumented exit code {r.exit_code}")
        if r.exit_code == 2 and before is not None:
            after = self.snapshot()
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            if changed:
                problems.append(f"bad input changed the data dir: {changed[:5]}")
        if not problems:
            return
        detail = {"argv": [a[:200] for a in argv], "exit": r.exit_code, "problems": problems,
                  "output": out[-500:]}
        if REPORT:
            with open(REPORT, "a", encoding="utf-8", errors="replace") as f:
                f.write(json.dumps(detail, ensure_ascii=True) + "\n")
            return
        raise AssertionError(json.dumps(detail, indent=1, ensure_ascii=True))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    mp = pytest.MonkeyPatch()
    for name in list(os.environ):
        if name.startswith("AGENT_") and name != "AGENT_ALLOW_MODEL_REQUESTS":
            mp.delenv(name)
    mp.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg")))
    lab = None
    try:
        lab = Lab(tmp_path_factory.mktemp("fuzz"))
        yield lab
    finally:
        mp.undo()
        if REPORT and lab is not None:
            with open(REPORT, "a", encoding="utf-8") as f:
                f.write(json.dumps({"cases": lab.cases}) + "\n")


# ----------------------------------------------------------------------------- strategies

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)), max_leaves=12)
nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "-", "--", "\x00", "\ud800", "a\udcff", "../../etc/passwd", "/etc/passwd", "~",
                     "9" * 400, "-1", "0", "1e999", "nan", "99999999999d", "2026-13-45", "{{s1.output}}",
                     "'; drop table x; --", "*" * 300, "\n\n", "x" * 5000, "[" * 3000, "{\"a\":" * 1500]),
)
deep_json = st.integers(50, 5000).flatmap(
    lambda n: st.sampled_from(["[" * n + "]" * n, '{"a":' * n + "1" + "}" * n, "[" * n]))


def _commands() -> list[tuple[list[str], list[str]]]:
    """Every command path of the CLI with its option names."""
    import typer.main

    root = typer.main.get_command(app)
    out: list[tuple[list[str], list[str]]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
            return
        opts = [o for p in cmd.params for o in getattr(p, "opts", []) if o.startswith("-")]
        out.append((path, opts))

    walk(root, [])
    return out


COMMANDS = _commands()
# Commands that would start long work or a real model: still fuzzed, but with flags that keep them
# cheap (the scripted model has nothing to say, so any model call fails fast).
GLOBAL_OPTS = ["--config", "--workspace", "--model", "--api-base", "--data-dir", "--log-json", "--version"]


@st.composite
def argv_case(draw: st.DrawFn, lab_paths: list[str]) -> list[str]:
    path, opts = draw(st.sampled_from(COMMANDS))
    tokens: list[str] = []
    if draw(st.booleans()):
        opt = draw(st.sampled_from(GLOBAL_OPTS[:5]))
        tokens += [opt, draw(st.one_of(nasty_text, st.sampled_from(lab_paths)))]
    tokens += path
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 2))
        if kind == 0 and opts:
            tokens.append(draw(st.sampled_from(opts)))
        elif kind == 1:
            tokens.append(draw(st.one_of(nasty_text, st.sampled_from(lab_paths))))
        else:
            tokens.append(draw(st.sampled_from(opts or ["--help"])))
            tokens.append(draw(nasty_text))
    if "--help" in tokens or "-h" in tokens:
        return tokens
    # Never prompt, never ask the model to do real work.
    if path[:1] == ["run"] and "--yes" in tokens:
        tokens.remove("--yes")
    return tokens


def _mutate_json(value: Any, rnd: random.Random, new: Any) -> Any:
    """``value`` with one randomly chosen node replaced by ``new`` (or deleted from a dict)."""
    nodes: list[tuple[Any, Any]] = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            nodes += [(node, k) for k in node]
            stack += list(node.values())
        elif isinstance(node, list):
            nodes += [(node, i) for i in range(len(node))]
            stack += node
    if not nodes:
        return new
    parent, key = rnd.choice(nodes)
    if isinstance(parent, dict) and rnd.random() < 0.25:
        del parent[key]
    else:
        parent[key] = new
    return value


# ----------------------------------------------------------------------------- the families


@pytest.mark.slow
def test_fuzz_argv_of_every_command(lab: Lab) -> None:
    paths = [str(lab.plan_file), str(lab.events), lab.run_id, lab.run_id[:8], "README.md", "missing.json",
             str(lab.ws.parent)]

    @fuzz_settings(40)
    @given(argv_case(paths))
    def check(argv: list[str]) -> None:
        lab.invoke(argv)

    check()


def test_fuzz_tool_args(lab: Lab) -> None:
    @fuzz_settings(30)
    @given(st.sampled_from(["git_status", "list_files", "read_file", "search_code", "nope"]),
           st.one_of(json_value.map(json.dumps), deep_json, nasty_text))
    def check(tool: str, raw: str) -> None:
        lab.invoke(["tools", "call", tool, "--args", raw])

    check()


TOML_SNIPPETS = ["model = 5", "[budget]\nmax_steps = -1", "[tools]\nshell_env_allow = 3", "[[mcp.servers]]\n",
                 "x = " + "[" * 2000 + "]" * 2000, "a = {b = " * 600 + "1" + "}" * 600,
                 "\n".join(f"[{'.'.join(['t'] * i)}]" for i in range(1, 60)), "[telemetry.headers]\nx = 1",
                 'data_dir = "/proc/nope"', 'model = "\\ud800"', "= = =", "[approval]\nwrite = 'yes'"]


@st.composite
def toml_bytes(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.sampled_from(TOML_SNIPPETS)).encode()
    if kind == 1:
        return draw(st.binary(max_size=200))
    if kind == 2:
        key = draw(st.sampled_from(["model", "budget.max_steps", "llm.temperature", "memory.uri",
                                    "approval.exec", "tools.output_limit_chars", "telemetry.exporter"]))
        section, _, leaf = key.rpartition(".")
        val = draw(st.one_of(st.integers(-10**30, 10**30), st.text(max_size=20).map(json.dumps),
                             st.sampled_from(["true", "[]", "{}", "1e999", "nan"])))
        return ((f"[{section}]\n" if section else "") + f"{leaf} = {val}\n").encode("utf-8", "surrogatepass")
    return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")


def test_fuzz_config_files(lab: Lab) -> None:
    cfg = lab.ws.parent / "fuzz.toml"

    @fuzz_settings(25)
    @given(toml_bytes(), st.sampled_from([["config", "show"], ["tools", "list"], ["runs", "list"],
                                          ["config", "show", "--json"]]))
    def check(content: bytes, argv: list[str]) -> None:
        cfg.write_bytes(content)
        lab.invoke(["--config", str(cfg), *argv])

    check()


@pytest.mark.slow
def test_fuzz_plan_files(lab: Lab) -> None:
    base = json.loads(lab.plan_file.read_text())
    target = lab.ws.parent / "fuzz-plan.json"

    @fuzz_settings(30)
    @given(st.integers(0, 2**32), st.one_of(json_value, deep_json, nasty_text), st.integers(0, 3))
    @example(1, None, 0)  # a node replaced
    @example(2, 0, 1)  # random bytes
    @example(3, 0, 2)  # one byte changed
    @example(4, 0, 3)  # a long chain of steps
    def check(seed: int, new: Any, kind: int) -> None:
        rnd = random.Random(seed)
        if kind == 0:
            target.write_text(json.dumps(_mutate_json(json.loads(json.dumps(base)), rnd, new)))
        elif kind == 1:
            target.write_bytes(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 80))))
        elif kind == 2:
            raw = json.dumps(base).encode()
            cut = rnd.randrange(len(raw))
            target.write_bytes(raw[:cut] + bytes([rnd.randrange(256)]) + raw[cut + 1:])
        else:
            n = rnd.choice([2, 50, 1500, 20000])
            steps = [{**base["steps"][0], "id": f"s{i}", "depends_on": [f"s{i + 1}"] if i < n else []}
                     for i in range(1, n + 1)]
            target.write_text(json.dumps({**base, "steps": steps}))
        lab.invoke(["run", "--plan", str(target)])

    check()


#: Event times no clock writes: past what ``datetime`` shows, before 1970, not finite, not a number.
ABSURD_TIMES: list[Any] = [1e300, -1e300, -1.0, float("nan"), float("inf"), "yesterday", 2**70, None, [], True]

RECORD_COMMANDS = [["runs", "show"], ["runs", "show", "--json"], ["replay"], ["replay", "--live-tools"],
                   ["run", "--resume"], ["runs", "list"], ["runs", "stats"]]


@pytest.mark.slow
def test_fuzz_record_files(lab: Lab) -> None:
    lines = lab.events.read_text().splitlines()
    calls = (lab.run_dir / "llm_calls.jsonl").read_bytes()

    @fuzz_settings(40)
    @given(st.integers(0, 2**32), st.one_of(json_value, nasty_text), st.sampled_from(RECORD_COMMANDS),
           st.sampled_from(["garbled", "time", "node", "node", "node"]))
    @example(5, None, ["runs", "show"], "garbled")
    @example(6, None, ["runs", "show"], "time")
    @example(7, None, ["replay"], "node")
    def check(seed: int, new: Any, argv: list[str], kind: str) -> None:
        rnd = random.Random(seed)
        events = list(lines)
        i = rnd.randrange(len(events))
        if kind == "garbled":
            events[i] = rnd.choice(["{", "[]", "null", '{"schema_version":1}', "\xff\xfe", events[i][:7]])
        elif kind == "time":  # an event time no clock writes
            events[i] = json.dumps({**json.loads(events[i]), "time": rnd.choice(ABSURD_TIMES)})
        else:
            events[i] = json.dumps(_mutate_json(json.loads(events[i]), rnd, new))
        run_id = f"{lab.run_id}-f{seed}"
        d = lab.data / "runs" / run_id
        d.mkdir(parents=True, exist_ok=True)
        (d / "events.jsonl").write_text("\n".join(events) + "\n", errors="surrogateescape")
        (d / "llm_calls.jsonl").write_bytes(calls)
        try:
            lab.invoke([*argv, run_id] if argv[-1] not in ("list", "stats") else argv, [REVIEW])
        finally:
            shutil.rmtree(d, ignore_errors=True)

    check()


def test_fuzz_memory_queries(lab: Lab) -> None:
    env = {"AGENT_MEMORY__ENABLED": "true"}
    r = lab.invoke(["memory", "add", "--text", "a note about the readme"], env=env, check=False)
    assert r.exit_code == 0, r.output

    @fuzz_settings(8)
    @given(st.sampled_from([["memory", "search"], ["memory", "forget"], ["memory", "search", "--json"]]),
           nasty_text)
    def check(argv: list[str], text: str) -> None:
        lab.invoke([*argv[:2], text, *argv[2:]], env=env)

    check()


# ----------------------------------------------------------------------------- the corpus

# The issue's reproductions: each must be one clear line and exit 2 (or 1), nothing else changed.
def _corpus(lab: Lab) -> Iterator[tuple[str, Callable[[], list[str]], int]]:
    tmp = lab.ws.parent
    base = json.loads(lab.plan_file.read_text())

    def write(name: str, data: bytes | str) -> str:
        p = tmp / name
        p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
        return str(p)

    yield "args: thousands of brackets", lambda: ["tools", "call", "git_status", "--args", "[" * 5000 + "]" * 5000], 2
    yield "plan: not UTF-8", lambda: ["run", "--plan", write("p1.json", b"\xff\xfe{}")], 2
    yield "plan: deeply nested", lambda: ["run", "--plan", write("p2.json", "[" * 5000 + "]" * 5000)], 2
    yield "plan: lone surrogate in the task", lambda: [
        "run", "--plan", write("p3.json", json.dumps({**base, "task": "\ud800"}))], 2
    steps = [{**base["steps"][0], "id": f"s{i}", "depends_on": [f"s{i + 1}"] if i < 1500 else []}
             for i in range(1, 1501)]
    yield "plan: 1,500 chained steps", lambda: [
        "run", "--plan", write("p4.json", json.dumps({**base, "steps": steps}))], 1
    yield "config: not UTF-8", lambda: ["--config", write("c1.toml", b'model = "\xff"\n'), "config", "show"], 2
    yield "config: nested tables", lambda: [
        "--config", write("c2.toml", "x = " + "[" * 2000 + "]" * 2000), "config", "show"], 2
    yield "stats: --since past the epoch", lambda: ["runs", "stats", "--since", "99999999999d"], 0
    yield "memory search: not UTF-8", lambda: ["memory", "search", "abc\udcff"], 2
    yield "memory forget: not UTF-8", lambda: ["memory", "forget", "abc\udcff"], 2


def _with_event_time(lab: Lab, index: int, value: Any) -> str:
    """A copy of the lab's run whose event ``index`` has the time ``value``; its run id."""
    lines = lab.events.read_text().splitlines()
    lines[index] = json.dumps({**json.loads(lines[index]), "time": value})
    run_id = f"{lab.run_id}-t{index}-{ABSURD_TIMES.index(value) if value in ABSURD_TIMES else 'nan'}"
    d = lab.data / "runs" / run_id
    d.mkdir(parents=True, exist_ok=True)
    (d / "events.jsonl").write_text("\n".join(lines) + "\n")
    return run_id


@pytest.mark.parametrize("value", ABSURD_TIMES, ids=repr)
def test_an_absurd_event_time_is_a_malformed_event(lab: Lab, value: Any) -> None:
    # Once an OverflowError (1e300) or ValueError (NaN) in every renderer of a time.
    for index in (0, 3):  # run_started (the run's start time) and an event inside the run
        run_id = _with_event_time(lab, index, value)
        try:
            # Every reader of a time for the values that once crashed; the record families' fuzz
            # writes all of them at random besides.
            every = isinstance(value, float) and (value == 1e300 or math.isnan(value))
            for argv in (["runs", "show", run_id, "--json"], ["replay", run_id], ["runs", "list"],
                         ["runs", "stats"], ["runs", "diff", lab.run_id, run_id]) if every else ():
                r = lab.invoke(argv, [REVIEW])
                assert "internal error" not in r.output, (argv, r.output)
            shown = lab.invoke(["runs", "show", run_id], [REVIEW])
            assert shown.exit_code == 0, shown.output
            assert f"warning: event {index + 1} of {run_id} is malformed: time: " in shown.stderr
            assert "run_finished" in shown.stdout  # the rest of the record still shows
        finally:
            shutil.rmtree(lab.data / "runs" / run_id, ignore_errors=True)


def test_corpus_of_the_issue(lab: Lab) -> None:
    for name, argv, code in _corpus(lab):
        r = lab.invoke(argv())
        assert r.exit_code == code, (name, r.output)
        if code:
            err = r.stderr.strip()
            assert len(err.splitlines()) == 1 and err.startswith("error: "), (name, err)


@pytest.mark.slow
def test_corpus_in_a_real_subprocess(lab: Lab) -> None:
    env = {**os.environ, **ENV}
    picked = [c for c in _corpus(lab) if c[0].startswith(("args", "plan: not", "config: nested", "memory search"))]
    assert len(picked) == 4
    for name, argv, code in picked:
        p = subprocess.run([sys.executable, "-m", "agentcli", *argv()], cwd=lab.ws, env=env, capture_output=True,
                           timeout=120, errors="surrogateescape")
        assert p.returncode == code, (name, p.stderr)
        assert p.stderr.startswith("error: ") and len(p.stderr.strip().splitlines()) == 1, (name, p.stderr)
        assert "internal error" not in p.stderr


# ----------------------------------------------------------------------------- numeric options

def _numeric_options() -> list[tuple[list[str], str, bool, bool]]:
    """``(command path, option, is_float, takes an argument)`` for every int or float option."""
    import typer.main

    out: list[tuple[list[str], str, bool, bool]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, [*path, name])
        needs_arg = any(p.param_type_name == "argument" and p.required for p in cmd.params)
        for p in cmd.params:
            kind = getattr(getattr(p, "type_descriptor", None), "annotation", None)
            if p.param_type_name == "option" and kind in (int, float):
                out.append((path, max(p.opts, key=len), kind is float, needs_arg))

    walk(typer.main.get_command(app), [])
    return out


NUMERIC = _numeric_options()


def _limited(limit_bytes: int) -> Callable[[], None]:
    def set_limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return set_limit


def test_every_numeric_option_has_a_range() -> None:
    # One command's process once grew to 23 GB on a huge --max-steps (the planner's schema had a
    # slot per step): every int or float option is checked against a range before anything runs.
    assert len(NUMERIC) >= 9, NUMERIC
    from agentcli.cli.commands import common

    assert common.MAX_STEPS == 1000  # budget.max_steps's bound in the config (le=1000)


@pytest.mark.parametrize("key", ["AGENT_BUDGET__MAX_STEPS", "AGENT_MEMORY__SEMANTIC_K", "AGENT_MEMORY__EPISODIC_K"])
def test_a_huge_config_value_that_sizes_something_is_refused(lab: Lab, key: str) -> None:
    # The same values from the environment (or a config file): refused by the config, one line.
    r = lab.invoke(["memory", "search", "readme"] if "MEMORY" in key else ["run", "x", "--yes"],
                   env={key: "99999999999"})
    assert r.exit_code == 2 and r.stderr.startswith(f"error: environment variable {key}: "), r.output
    assert "less than or equal to 1000" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("path", "opt", "is_float", "needs_arg"), NUMERIC,
                         ids=[" ".join([*p, o]) for p, o, _f, _a in NUMERIC])
def test_a_huge_numeric_option_is_refused_in_one_line_under_a_memory_limit(
        lab: Lab, path: list[str], opt: str, is_float: bool, needs_arg: bool) -> None:
    # The huge value in a real process, its address space capped at 1.5 GB: an option that reached
    # code sizing something by it would die (MemoryError, or the kernel) instead of exiting 2.
    def argv(value: str) -> list[str]:
        return [*path, opt, value, *(["x"] if needs_arg else [])]

    def refused(code: int, err: str) -> None:
        err = err.strip()
        assert code == 2, (path, opt, code, err[-2000:])
        assert len(err.splitlines()) == 1 and err.startswith(f"error: {opt} must be between "), (path, opt, err)

    huge = "1e308" if is_float else "9223372036854775808"
    p = subprocess.run([sys.executable, "-m", "agentcli", *argv(huge)], cwd=lab.ws, env={**os.environ, **ENV},
                       capture_output=True, text=True, timeout=120, preexec_fn=_limited(1_500_000_000))
    refused(p.returncode, p.stderr)
    for value in ["-1", "99999999999999999999", *(["nan", "inf", "-inf"] if is_float else [])]:
        r = lab.invoke(argv(value))
        refused(r.exit_code, r.stderr)
