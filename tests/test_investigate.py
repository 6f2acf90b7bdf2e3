"""Investigate steps: a bounded read-only loop inside one step (read tools, git history, commands in the
sandbox with the workspace read-only), its limits, its typed findings, its approval, its record and
replay; the planner taught it; the plan reminder of model steps; the git_history tool."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models.fakes import ScriptedModel
from agentcli.models.types import ToolCall
from agentcli.tools.sandbox import sandbox_status

ENV = {"AGENT_MODEL": "test/scripted", "AGENT_MEMORY__ENABLED": "false", "AGENT_PLANNER__SURVEY_CALLS": "0"}
PYTEST = f"{sys.executable} -m pytest -q test_calc.py"
needs_sandbox = pytest.mark.skipif(not sandbox_status().available, reason="no OS sandbox (bwrap)")
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def planted(ws: Path) -> None:
    """A small project whose test fails because of a bug in another module than the one tested."""
    (ws / "mathutil.py").write_text("def scale(x, factor):\n    return x * factor + 1\n")
    (ws / "calc.py").write_text("from mathutil import scale\n\n\ndef double(x):\n    return scale(x, 2)\n")
    (ws / "test_calc.py").write_text("from calc import double\n\n\ndef test_double():\n    assert double(3) == 6\n")


def draft(*, fix: bool = True) -> dict[str, Any]:
    steps: dict[str, Any] = {
        "s1": {"investigate": "Why does test_calc.py fail? Run it and find the faulty line.", "depends_on": [],
               "title": "Find why the test fails"},
    }
    if fix:
        steps |= {
            "s2": {"prompt": "Fix the bug these findings establish:\n{{s1.output}}", "answer": "edits",
                   "depends_on": ["s1"], "title": "Write the fix"},
            "s3": {"call": {"tool": "apply_edits", "args": {"edits": "{{s2.output}}"}}, "depends_on": ["s2"],
                   "title": "Apply the fix"},
            "s4": {"call": {"tool": "run_shell", "args": {"command": PYTEST}}, "depends_on": ["s3"],
                   "title": "Run the test"},
        }
    return {"steps": steps}


FINDINGS = {"established": "mathutil.scale adds 1 to the product: scale(3, 2) is 7, not 6.",
            "evidence": ["mathutil.py:2:     return x * factor + 1", "E       assert 7 == 6"]}
FIX = {"edits": [{"path": "mathutil.py", "search": "    return x * factor + 1\n",
                  "replace": "    return x * factor\n"}]}
REVIEW = {"outcome": "complete", "answer": "fixed mathutil.scale", "reason": ""}


def invoke(ws: Path, *script: Any, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
           ) -> tuple[Any, ScriptedModel]:
    model = ScriptedModel(list(script))
    r = CliRunner().invoke(app, ["run", "the test suite fails; find the cause and fix it", "--json", "--yes", *args],
                           obj=State(backend=model, environ={**ENV, **(env or {})}))
    return r, model


def events(ws: Path, run_id: str) -> list[dict[str, Any]]:
    path = ws / ".agent" / "runs" / run_id / "events.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()]


def finished(evs: list[dict[str, Any]], sid: str) -> dict[str, Any]:
    [f] = [e["data"] for e in evs if e["type"] == "step_finished" and e.get("step_id") == sid]
    return f


@needs_sandbox
def test_a_failing_suite_is_fixed_through_an_investigate_step_without_a_replan(workspace: Path) -> None:
    planted(workspace)
    run_tests = ToolCall(id="c1", name="run_readonly", arguments={"command": PYTEST})
    try_write = ToolCall(id="c2", name="run_readonly", arguments={"command": "echo x > planted.txt"})
    read = ToolCall(id="c3", name="read_file", arguments={"path": "mathutil.py"})
    r, model = invoke(workspace, draft(), run_tests, [try_write, read], FINDINGS, FIX, REVIEW)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["status"] == "COMPLETE"
    assert (workspace / "mathutil.py").read_text() == "def scale(x, factor):\n    return x * factor\n"
    assert not (workspace / "planted.txt").exists()  # the workspace is read-only in an investigation
    evs = events(workspace, out["run_id"])
    assert sum(e["type"] == "plan_created" for e in evs) == 1  # no re-plan
    # Every call of the investigation is recorded under its step.
    called = [(e["data"]["tool"], e["data"]["result"]) for e in evs
              if e["type"] == "tool_call" and e.get("step_id") == "s1"]
    assert [c[0] for c in called] == ["run_readonly", "run_readonly", "read_file"]
    assert called[0][1]["output"]["exit_code"] == 1 and "assert 7 == 6" in called[0][1]["output"]["output"]
    assert "read-only" in called[0][1]["output"]["sandbox"] and called[1][1]["output"]["exit_code"] != 0
    calls = [e["data"] for e in evs if e["type"] == "llm_call" and e.get("step_id") == "s1"]
    assert len(calls) == 3 and all(c["role"] == "executor" for c in calls)
    findings = finished(evs, "s1")
    assert findings["status"] == "ok"
    assert findings["output"]["established"] == FINDINGS["established"]
    assert findings["output"]["evidence"] == FINDINGS["evidence"]
    assert findings["output"]["commands"] == [{"command": PYTEST, "exit_code": 1},
                                              {"command": "echo x > planted.txt", "exit_code": 2}]
    assert findings["output"]["calls"] == 3 and findings["output"]["stopped"] == "answered"
    assert findings["input_tokens"] > 0
    # An investigate step is a read: approved by policy (approval.read = auto), with no question asked.
    [approval] = [e["data"] for e in evs if e["type"] == "approval" and e.get("step_id") == "s1"]
    assert approval["tool"] == "investigate" and approval["decided_by"] == "policy"
    # The model saw the tools, the test's output, and then its findings went into the fix's prompt.
    first = model.requests[1]
    assert [t["function"]["name"] for t in first.tools or []] == ["read_file", "search_code", "list_files",
                                                                   "git_history", "run_readonly"]
    assert "Question: Why does test_calc.py fail?" in first.messages[1]["content"]
    assert "assert 7 == 6" in model.requests[2].messages[-1]["content"]
    fix_prompt = model.requests[4].messages[-1]["content"]
    assert "scale(3, 2) is 7" in fix_prompt and '"exit_code": 1' in fix_prompt
    assert finished(evs, "s4")["output"]["exit_code"] == 0
    # And the run replays identical.
    rep = CliRunner().invoke(app, ["replay", out["run_id"]], obj=State(environ=ENV))
    assert rep.exit_code == 0 and rep.stdout.startswith("identical"), rep.output
    shown = CliRunner().invoke(app, ["runs", "show", out["run_id"]], obj=State(environ=ENV))
    assert shown.exit_code == 0 and "s1 investigate" in shown.stdout, shown.output


@needs_sandbox
def test_the_calls_limit_asks_for_the_findings_with_no_tools(workspace: Path) -> None:
    planted(workspace)
    look = ToolCall(id="c1", name="list_files", arguments={"pattern": "*.py"})
    more = ToolCall(id="c2", name="read_file", arguments={"path": "calc.py"})
    r, model = invoke(workspace, draft(fix=False), [look, more], FINDINGS, REVIEW,
                      env={"AGENT_INVESTIGATE__MAX_CALLS": "1"})
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    last = model.requests[2]
    assert last.tools is None and "No tool calls are left" in last.messages[-1]["content"]
    replies = {m["tool_call_id"]: m["content"] for m in last.messages if m["role"] == "tool"}
    assert "calc.py" in replies["c1"] and "no tool calls left" in replies["c2"]
    found = finished(events(workspace, out["run_id"]), "s1")
    assert found["status"] == "ok" and found["output"]["stopped"] == "calls" and found["output"]["calls"] == 1


def test_the_token_limit_ends_the_step_with_what_it_found(workspace: Path) -> None:
    (workspace / "big.txt").write_text("lorem ipsum dolor sit amet\n" * 400)
    read = ToolCall(id="c1", name="read_file", arguments={"path": "big.txt"})
    again = ToolCall(id="c2", name="read_file", arguments={"path": "big.txt", "start_line": 2})
    stop = {"outcome": "stop", "answer": "", "reason": "could not find out"}
    r, model = invoke(workspace, draft(fix=False), read, again, stop,
                      env={"AGENT_INVESTIGATE__MAX_TOKENS": "1000"})
    out = json.loads(r.stdout)
    found = finished(events(workspace, out["run_id"]), "s1")
    assert found["status"] == "failed" and found["error"]["type"] == "investigate_limit"
    assert "token limit (1000" in found["error"]["message"]
    assert found["output"]["stopped"] == "tokens" and found["output"]["calls"] >= 1
    # Each model call asked for one tool call; the call after the limit was never sent: the limit is
    # checked before each model call.
    assert len([q for q in model.requests if q.tools]) == found["output"]["calls"]


def test_a_tool_that_is_not_offered_is_refused_and_nothing_is_written(workspace: Path) -> None:
    write = ToolCall(id="w1", name="write_file", arguments={"path": "evil.txt", "content": "no"})
    shell = ToolCall(id="w2", name="run_shell", arguments={"command": "touch evil2.txt"})
    r, model = invoke(workspace, draft(fix=False), [write, shell], FINDINGS, REVIEW)
    assert r.exit_code == 0, r.output
    assert not (workspace / "evil.txt").exists() and not (workspace / "evil2.txt").exists()
    replies = {m["tool_call_id"]: m["content"] for m in model.requests[2].messages if m["role"] == "tool"}
    assert "not a tool you may call here" in replies["w1"] and "not a tool you may call here" in replies["w2"]


def test_without_a_sandbox_its_commands_are_refused(workspace: Path) -> None:
    planted(workspace)
    run_tests = ToolCall(id="c1", name="run_readonly", arguments={"command": "echo hi > x.txt"})
    r, model = invoke(workspace, draft(fix=False), run_tests, FINDINGS, REVIEW,
                      env={"AGENT_SANDBOX__MODE": "off"})
    assert r.exit_code == 0, r.output
    [reply] = [m["content"] for m in model.requests[2].messages if m["role"] == "tool"]
    assert "refused" in reply and "sandbox" in reply and not (workspace / "x.txt").exists()
    found = finished(events(workspace, json.loads(r.stdout)["run_id"]), "s1")
    assert found["output"]["commands"] == [{"command": "echo hi > x.txt", "exit_code": None}]


def test_an_investigate_step_follows_the_read_policy(workspace: Path) -> None:
    # approval.read = "deny": denied (--yes approves only what the policy asks about), and nothing of
    # the loop runs.
    r, model = invoke(workspace, draft(fix=False), env={"AGENT_APPROVAL__READ": "deny"})
    assert r.exit_code != 0
    assert len(model.requests) == 1  # the plan only
    evs = events(workspace, json.loads(r.stdout)["run_id"])
    assert finished(evs, "s1")["status"] == "denied"


def test_the_planner_is_taught_investigate_steps_unless_turned_off(workspace: Path) -> None:
    r, model = invoke(workspace, draft(fix=False), FINDINGS, REVIEW)
    assert r.exit_code == 0, r.output
    system = model.requests[0].messages[0]["content"]
    assert "plan an investigate step" in system and "run_readonly" not in system.split("# Tools")[1]
    schema = json.dumps(model.requests[0].response_format)
    assert '"investigate"' in schema
    r, model = invoke(workspace, {"steps": {"s1": {"call": {"tool": "list_files", "args": {}}, "depends_on": [],
                                                       "title": "list"}}}, REVIEW,
                      env={"AGENT_INVESTIGATE__ENABLED": "false"})
    assert r.exit_code == 0, r.output
    assert "investigate" not in model.requests[0].messages[0]["content"]
    assert '"investigate"' not in json.dumps(model.requests[0].response_format)


def test_model_steps_see_the_plan_and_where_they_are_in_it(workspace: Path) -> None:
    (workspace / "a.txt").write_text("alpha\n")
    plan = {"steps": {
        "s1": {"call": {"tool": "read_file", "args": {"path": "a.txt"}}, "depends_on": [], "title": "Read a.txt"},
        "s2": {"prompt": "Summarise: {{s1.output}}", "depends_on": ["s1"], "title": "Summarise it"},
        "s3": {"call": {"tool": "list_files", "args": {}}, "depends_on": ["s2"], "title": "List the files"},
    }}
    r, model = invoke(workspace, plan, "a summary", REVIEW)
    assert r.exit_code == 0, r.output
    system, user = model.requests[1].messages
    assert "<plan>" not in system["content"]  # the stable prefix is the same for every step
    assert user["content"].startswith(
        "<plan>\nThe plan, for orientation; do only step s2 (done: finished, its output used here; to do: comes "
        "later; other: earlier, not used here):\n"
        "s1 [done] Read a.txt\ns2 [now] Summarise it\ns3 [to do] List the files\n</plan>\n\nSummarise: ")


def test_a_one_step_plan_has_no_reminder(workspace: Path) -> None:
    r, model = invoke(workspace, {"steps": {"s1": {"prompt": "Say hi", "depends_on": [], "title": "hi"}}},
                      "hi", REVIEW)
    assert r.exit_code == 0, r.output
    assert model.requests[1].messages[-1]["content"] == "Say hi"


# -- git_history ---------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=Ann", "-c", "user.email=ann@example.com", *args], cwd=repo,
                   check=True, capture_output=True)


@needs_git
def test_git_history_log_show_and_blame(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(workspace.parent))
    _git(workspace, "init", "-q")
    planted(workspace)
    _git(workspace, "add", ".")
    _git(workspace, "commit", "-q", "-m", "first")
    (workspace / "mathutil.py").write_text("def scale(x, factor):\n    return x * factor + 1  # off by one\n")
    _git(workspace, "commit", "-qam", "scale: add one")

    def call(args: dict[str, Any]) -> Any:
        r = CliRunner().invoke(app, ["tools", "call", "git_history", "--args", json.dumps(args), "--json"],
                               obj=State(environ=ENV))
        return r

    log = call({"path": "mathutil.py"})
    assert log.exit_code == 0, log.output
    text = json.loads(log.stdout)["output"]
    assert "scale: add one" in text and "first" in text and "Ann" in text
    show = json.loads(call({"command": "show"}).stdout)["output"]
    assert "+    return x * factor + 1  # off by one" in show
    blame = json.loads(call({"command": "blame", "path": "mathutil.py", "start_line": 2, "end_line": 2}).stdout)
    assert "off by one" in blame["output"] and blame["output"].count("\n") == 1
    bad = call({"command": "log", "rev": "--output=/tmp/x"})
    assert bad.exit_code != 0 or not json.loads(bad.stdout).get("ok", True)
    escape = json.loads(call({"command": "log", "path": "../outside"}).stdout)
    assert escape["ok"] is False


@needs_sandbox
def test_a_failure_can_be_investigated_before_the_replan(workspace: Path) -> None:
    planted(workspace)
    first = {"steps": {"s1": {"call": {"tool": "run_shell", "args": {"command": PYTEST}}, "depends_on": [],
                              "title": "Run the test"}}}
    replan = {"outcome": "replan", "answer": "", "reason": "test_double fails"}
    fixed = {"steps": {
        "s2": {"prompt": "Fix mathutil.scale", "answer": "edits", "depends_on": [], "title": "Write the fix"},
        "s3": {"call": {"tool": "apply_edits", "args": {"edits": "{{s2.output}}"}}, "depends_on": ["s2"],
               "title": "Apply the fix"},
        "s4": {"call": {"tool": "run_shell", "args": {"command": PYTEST}}, "depends_on": ["s3"], "title": "Test"},
    }}
    look = ToolCall(id="c1", name="run_readonly", arguments={"command": PYTEST})
    r, model = invoke(workspace, first, replan, look, FINDINGS, fixed, FIX, REVIEW,
                      env={"AGENT_INVESTIGATE__BEFORE_REPLAN": "true"})
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["status"] == "COMPLETE"
    evs = events(workspace, out["run_id"])
    [done] = [e for e in evs if e["type"] == "review" and e["data"]["kind"] == "investigated"]
    assert done["step_id"] == "investigate-1" and done["data"]["outcome"] == "ok"
    assert "test_double fails" in done["data"]["reason"]
    assert done["data"]["after"]["commands"] == [{"command": PYTEST, "exit_code": 1}]
    assert [e["data"]["tool"] for e in evs if e["type"] == "tool_call" and e["step_id"] == "investigate-1"] \
        == ["run_readonly"]
    replanned = model.requests[4].messages[-1]["content"]
    assert "An investigation of this failure found" in replanned and "scale(3, 2) is 7" in replanned
    rep = CliRunner().invoke(app, ["replay", out["run_id"]], obj=State(environ=ENV))
    assert rep.exit_code == 0 and rep.stdout.startswith("identical"), rep.output


def test_a_plan_cannot_name_the_read_only_command_tool_directly(workspace: Path) -> None:
    sneaky = {"steps": {"s1": {"call": {"tool": "run_readonly", "args": {"command": "cat /etc/hostname"}},
                               "depends_on": [], "title": "run"}}}
    r, model = invoke(workspace, sneaky, sneaky, sneaky)
    assert r.exit_code != 0
    assert "run_readonly is only for investigate steps" in model.requests[1].messages[-1]["content"]


def test_an_episode_with_an_investigate_step_is_no_example_for_the_small_planner() -> None:
    from agentcli.engine.runner import episode_plan
    from agentcli.planning.examples import PlanExample
    from agentcli.planning.plan import Plan, Step

    steps = [Step(id="s1", title="look", kind="investigate", prompt="why?", risk="read"),
             Step(id="s2", title="say", kind="llm", prompt="{{s1.output}}", depends_on=["s1"])]
    made = Plan(id="p", task="t", created_at="2026-01-01T00:00:00Z", model="m", steps=steps)
    text = episode_plan(made)
    assert text is not None and json.loads(text)["steps"][0]["kind"] == "investigate"
    assert "kind" not in json.loads(text)["steps"][1]  # rows of other kinds keep their old shape
    assert PlanExample.from_episode("t", text) is None
