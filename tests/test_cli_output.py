"""Output for people and for scripts: tables that fit the terminal, --quiet, --no-color,
--output jsonl, --output-schema, and the approval prompt in a real pseudo-terminal."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models.fakes import ScriptedModel

ENV = {"AGENT_MODEL": "test/scripted", "AGENT_MEMORY__ENABLED": "false"}
LIST_PY = {"steps": [{"title": "List the Python files", "tool": "list_files", "args": {"pattern": "**/*.py"}}]}
LONG_TASK = ("find every python module in this repository that imports the requests library and "
             "summarise what each of them uses it for, with line numbers")


def complete(answer: str) -> dict[str, str]:
    return {"outcome": "complete", "answer": answer, "reason": ""}


def invoke(args: list[str], *responses: Any, columns: int = 80) -> Any:
    runner = CliRunner(env={"COLUMNS": str(columns)})
    return runner.invoke(app, args, obj=State(backend=ScriptedModel(list(responses)), environ=ENV))


def seed(ws: Path) -> None:
    (ws / "main.py").write_text("print('hi')\n")
    (ws / "util.py").write_text("X = 1\n")


def _fits(text: str, width: int) -> None:
    lines = text.splitlines()
    assert lines and max(len(line) for line in lines) <= width, text


@pytest.mark.parametrize("columns", [80, 120])
def test_runs_list_fits_the_terminal_one_line_per_run(workspace: Path, columns: int) -> None:
    seed(workspace)
    ids = []
    for answer in ("a", "b"):
        r = invoke(["run", LONG_TASK, "--yes", "--json"], LIST_PY, complete(answer))
        assert r.exit_code == 0, r.output
        ids.append(json.loads(r.stdout)["run_id"])
    listed = invoke(["runs", "list"], columns=columns)
    assert listed.exit_code == 0, listed.output
    _fits(listed.stdout, columns)
    lines = listed.stdout.splitlines()
    rows = [line for line in lines if line.startswith(tuple(ids))]
    assert len(rows) == 2  # one line per run: the full id, never folded
    assert all("COMPLETE" in row and "1/1" in row for row in rows)
    # The task is never cut: too long for the row, it is shown whole on the lines under it.
    assert " ".join(listed.stdout.split()).count(f"task: {LONG_TASK}") == 2
    if columns == 120:
        assert len(rows[0]) > 40 and "started" in lines[0]  # a wider terminal keeps the start time


@pytest.mark.parametrize("columns", [80, 120])
def test_every_table_fits(workspace: Path, columns: int) -> None:
    seed(workspace)
    r = invoke(["run", LONG_TASK, "--yes"], LIST_PY, complete("main.py and util.py"), columns=columns)
    assert r.exit_code == 0, r.output
    _fits(r.stdout, columns)
    run_id = invoke(["runs", "list", "--json"]).stdout
    run_id = json.loads(run_id)[0]["run_id"]
    for args in (["runs", "show", run_id], ["runs", "stats"], ["config", "show"], ["tools", "list"]):
        out = invoke(args, columns=columns)
        assert out.exit_code == 0, (args, out.output)
        _fits(out.stdout, columns)


def test_quiet_prints_only_the_answer(workspace: Path) -> None:
    seed(workspace)
    r = invoke(["run", "list the python files", "--yes", "--quiet"], LIST_PY, complete("main.py, util.py"))
    assert r.exit_code == 0, r.output
    assert r.stdout == "main.py, util.py\n"
    assert r.stderr == ""


def test_output_jsonl_streams_the_recorded_events_then_the_outcome(workspace: Path) -> None:
    seed(workspace)
    r = invoke(["run", "list the python files", "--yes", "--output", "jsonl"], LIST_PY, complete("two"))
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    outcome = lines[-1]
    assert outcome["type"] == "run_outcome" and outcome["status"] == "COMPLETE" and outcome["answer"] == "two"
    streamed = lines[:-1]
    recorded = [json.loads(x) for x in (workspace / ".agent" / "runs" / outcome["run_id"] / "events.jsonl")
                .read_text().splitlines()]
    assert streamed == recorded
    types = [e["type"] for e in streamed]
    assert types[0] == "run_started" and types[-1] == "run_finished" and "tool_call" in types


def test_output_jsonl_without_terminal_or_yes_denies(workspace: Path) -> None:
    seed(workspace)
    r = invoke(["run", "list the python files", "--output", "jsonl"], LIST_PY)
    assert r.exit_code == 4
    last = json.loads(r.stdout.splitlines()[-1])
    assert last["type"] == "run_outcome" and last["reason"] == "denied"


def test_unknown_output_format_is_a_usage_error(workspace: Path) -> None:
    r = invoke(["run", "x", "--output", "yaml"])
    assert r.exit_code == 2 and "--output must be one of" in r.stderr


SCHEMA = {"type": "object", "properties": {"files": {"type": "array", "items": {"type": "string"}}},
          "required": ["files"], "additionalProperties": False}


def test_output_schema_reasks_until_the_answer_validates_and_replays(workspace: Path, tmp_path: Path) -> None:
    seed(workspace)
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(SCHEMA))
    r = invoke(["run", "list the python files", "--yes", "--json", "--output-schema", str(schema_file)],
               LIST_PY, complete("main.py and util.py"), {"files": "main.py"}, {"files": ["main.py", "util.py"]})
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["data"] == {"files": ["main.py", "util.py"]}
    assert json.loads(out["answer"]) == out["data"]
    replayed = invoke(["replay", out["run_id"]])
    assert replayed.exit_code == 0 and replayed.stdout.startswith("identical"), replayed.output


def test_output_schema_never_valid_fails_the_run(workspace: Path, tmp_path: Path) -> None:
    seed(workspace)
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(SCHEMA))
    r = invoke(["run", "list the python files", "--yes", "--json", "--output-schema", str(schema_file)],
               LIST_PY, complete("x"), {"nope": 1}, {"nope": 2}, {"nope": 3})
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert out["status"] == "FAILED" and "--output-schema" in out["answer"] and out["data"] is None


def test_bad_output_schema_file_is_a_usage_error(workspace: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": 12}')
    r = invoke(["run", "x", "--output-schema", str(bad)])
    assert r.exit_code == 2 and "not a valid JSON Schema" in r.stderr and "Traceback" not in r.output


# ------------------------------------------------------------------ a real pseudo-terminal

WRITE = {"steps": [{"title": "Write the note", "tool": "write_file", "args": {"path": "note.txt", "content": "hi"}}]}


def _colours(text: str) -> set[int]:
    """The SGR colour codes (foreground, background, 256/true colour) in terminal output."""
    import re

    codes = {int(p) for m in re.finditer(r"\x1b\[([0-9;]*)m", text) for p in m.group(1).split(";") if p}
    return {c for c in codes if 30 <= c <= 49 or 90 <= c <= 107}


def _spawn(workspace: Path, tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    pexpect = pytest.importorskip("pexpect")
    script = tmp_path / "script.json"
    script.write_text(json.dumps([WRITE, complete("written")]))
    child_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS")}
    child_env.update({"AGENT_MODEL": "test/script", "AGENT_TEST_SCRIPT": str(script), "TERM": "xterm-256color",
                      "AGENT_MEMORY__ENABLED": "false", "PYTHONPATH": os.pathsep.join(sys.path)}, **(env or {}))
    return pexpect.spawn(sys.executable, ["-m", "agentcli", *extra, "run", "write a note"], cwd=str(workspace),
                         env=child_env, encoding="utf-8", timeout=30, dimensions=(40, 100))


def test_approval_prompt_in_a_pseudo_terminal(workspace: Path, tmp_path: Path) -> None:
    child = _spawn(workspace, tmp_path)
    child.expect_exact("run this plan?")
    child.sendline("y")
    child.expect_exact("run it?")
    child.expect_exact(" [y]es / [n]o / [a]lways (this tool, this run) / a[b]ort, or type what to do instead ")
    assert "\x1b" not in child.after  # the choices are plain text: rich markup did not eat a bracket
    child.sendline("y")
    child.expect_exact("written")
    child.expect(__import__("pexpect").EOF)
    child.close()
    assert child.exitstatus == 0
    assert (workspace / "note.txt").read_text() == "hi"


@pytest.mark.parametrize(("extra", "env"), [((), {"NO_COLOR": "1"}), (("--no-color",), {})])
def test_no_color_in_a_pseudo_terminal(workspace: Path, tmp_path: Path, extra: tuple[str, ...],
                                       env: dict[str, str]) -> None:
    child = _spawn(workspace, tmp_path, *extra, env=env)
    child.expect_exact("run this plan?")
    seen = child.before
    child.sendline("n")
    child.expect(__import__("pexpect").EOF)
    seen += child.before
    assert "write_file" in seen
    assert "\x1b[" in seen and not _colours(seen)  # styles (bold) stay; no colour at all


def test_colour_without_no_color_in_a_pseudo_terminal(workspace: Path, tmp_path: Path) -> None:
    child = _spawn(workspace, tmp_path)
    child.expect_exact("run this plan?")
    seen = child.before
    child.sendline("n")
    child.expect(__import__("pexpect").EOF)
    assert _colours(seen + child.before)  # the control: a terminal gets colours (the red "error:")


def test_the_run_summary_counts_its_model_calls_in_words(workspace: Path) -> None:
    seed(workspace)
    r = invoke(["run", "list the python files", "--yes"], LIST_PY, complete("main.py, util.py"))
    assert r.exit_code == 0, r.output
    assert " · 2 LLM calls · " in r.stderr
    # The saved plan again asks no planner: the review is the run's one call ("1 LLM call").
    [saved] = (workspace / ".agent" / "plans").glob("*.json")
    r = invoke(["run", "--plan", str(saved), "--yes"], complete("main.py, util.py"))
    assert r.exit_code == 0, r.output
    assert " · 1 LLM call · " in r.stderr
