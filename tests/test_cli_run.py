"""`agent run`, `agent runs`, `agent replay` through the CLI, with the scripted model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models.fakes import ScriptedModel

runner = CliRunner()
LIST_PY = {"steps": [{"title": "List the Python files", "tool": "list_files", "args": {"pattern": "**/*.py"}}]}
ENV = {"AGENT_MODEL": "test/scripted"}


def complete(answer: str) -> dict[str, str]:
    return {"outcome": "complete", "answer": answer, "reason": ""}


def invoke(args: list[str], *responses: Any) -> Any:
    return runner.invoke(app, args, obj=State(backend=ScriptedModel(list(responses)), environ=ENV))


def seed(ws: Path) -> None:
    (ws / "main.py").write_text("print('hi')\n")
    (ws / "util.py").write_text("X = 1\n")
    (ws / "README.md").write_text("# demo\n")


def test_run_json_then_list_show_replay(workspace: Path) -> None:
    seed(workspace)
    r = invoke(["run", "list the python files", "--yes", "--json"], LIST_PY, complete("main.py, util.py"))
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["status"], out["answer"]) == ("COMPLETE", "main.py, util.py")
    assert out["steps"][0]["status"] == "ok"
    run_id = out["run_id"]
    assert (workspace / ".agent" / "runs" / run_id / "events.jsonl").is_file()
    assert (workspace / ".agent" / "runs" / run_id / "llm_calls.jsonl").is_file()

    listed = json.loads(invoke(["runs", "list", "--json"]).stdout)
    assert [x["run_id"] for x in listed] == [run_id]
    assert listed[0]["status"] == "COMPLETE" and listed[0]["steps_ok"] == 1 and listed[0]["calls"] == 2

    shown = invoke(["runs", "show", run_id[:12]])
    assert shown.exit_code == 0 and "list_files" in shown.stdout and "COMPLETE" in shown.stdout

    replayed = invoke(["replay", run_id])
    assert replayed.exit_code == 0, replayed.output
    assert replayed.stdout.startswith("identical")
    view = invoke(["replay", run_id, "--view"])
    assert view.exit_code == 0 and "REVIEWING" in view.stdout


def test_run_without_tty_or_yes_is_denied(workspace: Path) -> None:
    seed(workspace)
    r = invoke(["run", "list the python files"], LIST_PY)
    assert r.exit_code == 4
    assert "--yes" in r.stderr and "Traceback" not in r.output


def test_budget_exit_code(workspace: Path) -> None:
    r = invoke(["run", "list the python files", "--yes", "--max-tokens", "20"], LIST_PY)
    assert r.exit_code == 3
    assert "budget_exceeded:tokens" in r.stderr


def test_run_saved_plan_exactly(workspace: Path, tmp_path: Path) -> None:
    seed(workspace)
    plan_file = tmp_path / "plan.json"
    r = invoke(["plan", "list the python files", "-o", str(plan_file)], LIST_PY)
    assert r.exit_code == 0, r.output
    r = invoke(["run", "--plan", str(plan_file), "--yes", "--json"], complete("two files"))
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["plan_hash"] == json.loads(plan_file.read_text())["hash"]
    # an edited plan is re-validated, re-hashed and the change shown
    data = json.loads(plan_file.read_text())
    data["steps"][0]["args"]["pattern"] = "*.md"
    plan_file.write_text(json.dumps(data))
    r = invoke(["run", "--plan", str(plan_file), "--yes"], complete("readme"))
    assert r.exit_code == 0, r.output
    assert "differs from the plan as made" in r.stderr and "*.md" in r.stderr


def test_task_and_plan_together_is_usage_error(workspace: Path, tmp_path: Path) -> None:
    r = invoke(["run", "x", "--plan", str(tmp_path / "p.json")])
    assert r.exit_code == 2 and "one of" in r.stderr


def test_truncated_events_still_listed_and_shown(workspace: Path) -> None:
    seed(workspace)
    out = json.loads(invoke(["run", "list", "--yes", "--json"], LIST_PY, complete("ok")).stdout)
    path = workspace / ".agent" / "runs" / out["run_id"] / "events.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    listed = invoke(["runs", "list"])
    assert listed.exit_code == 0 and out["run_id"] in listed.stdout
    assert "truncated last line" in listed.stderr
    shown = invoke(["runs", "show", out["run_id"]])
    assert shown.exit_code == 0 and "truncated last line" in shown.stderr


def test_replay_unknown_run(workspace: Path) -> None:
    r = invoke(["replay", "nope"])
    assert r.exit_code == 2 and "no run 'nope'" in r.stderr


def test_help_imports_no_heavy_module() -> None:
    code = ("import sys, agentcli.cli.app\n"
            "heavy = [m for m in ('litellm', 'lancedb', 'llama_cpp', 'mcp', 'pydantic') if m in sys.modules]\n"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_runs_are_remembered_and_recalled_into_planning(workspace: Path) -> None:
    seed(workspace)
    env = {**ENV, "AGENT_MEMORY__EMBEDDING_MODEL": "test/hash"}
    first = runner.invoke(app, ["run", "list the python files", "--yes", "--json"],
                          obj=State(backend=ScriptedModel([LIST_PY, complete("main.py, util.py")]), environ=env))
    assert first.exit_code == 0, first.output
    first_id = json.loads(first.stdout)["run_id"]
    model = ScriptedModel([LIST_PY, complete("again")])
    second = runner.invoke(app, ["run", "list the python files", "--yes", "--json"],
                           obj=State(backend=model, environ=env))
    assert second.exit_code == 0, second.output
    prompt = model.requests[0].messages[-1]["content"]
    assert "Recalled from earlier runs" in prompt and first_id in prompt
    second_id = json.loads(second.stdout)["run_id"]
    events = [json.loads(x) for x in
              (workspace / ".agent" / "runs" / second_id / "events.jsonl").read_text().splitlines()]
    types = [e["type"] for e in events]
    assert "memory_recall" in types and "memory_write" in types
    assert types[-1] == "run_finished"
    # the replay ignores memory (an outside store) and is still identical
    replayed = runner.invoke(app, ["replay", second_id], obj=State(environ=env))
    assert replayed.exit_code == 0, replayed.output


def test_a_run_id_is_never_a_path_or_a_pattern(workspace: Path) -> None:
    # Found by the fuzz suite: a long id raised OSError, an absolute path NotImplementedError (glob).
    for bad in ["a" * 300, "/etc/passwd", "../x", "*", "run[1]"]:
        for command in (["runs", "show", bad], ["runs", "diff", bad], ["replay", bad]):
            r = invoke(command)
            assert r.exit_code == 2, (command, r.output)
            assert "is not a run id" in r.stderr and "Traceback" not in r.output


@pytest.mark.tampered_record
def test_replay_of_a_record_whose_config_is_no_longer_valid_is_one_line(workspace: Path) -> None:
    seed(workspace)
    r = invoke(["run", "list the python files", "--yes", "--json"], LIST_PY, complete("main.py, util.py"))
    run_id = json.loads(r.stdout)["run_id"]
    events = workspace / ".agent" / "runs" / run_id / "events.jsonl"
    lines = events.read_text().splitlines()
    start = json.loads(lines[0])
    assert start["type"] == "run_started"
    start["data"]["config"]["budget"] = {"max_steps": -5}  # a value this agentcli refuses
    events.write_text("\n".join([json.dumps(start), *lines[1:]]) + "\n")
    for extra in ([], ["--live-tools"]):
        out = invoke(["replay", run_id, *extra])
        assert out.exit_code == 2, out.output
        assert "recorded a config this agentcli does not accept (budget.max_steps" in out.stderr
        assert "Traceback" not in out.output and "internal error" not in out.output


def test_a_relative_data_dir_flag_is_from_the_current_directory(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ws, here = tmp_path / "project", tmp_path / "here"
    ws.mkdir()
    here.mkdir()
    seed(ws)
    monkeypatch.chdir(here)
    r = invoke(["--workspace", str(ws), "--data-dir", "d", "run", "list the python files", "--yes", "--json"],
               LIST_PY, complete("main.py, util.py"))
    assert r.exit_code == 0, r.output
    run_id = json.loads(r.stdout)["run_id"]
    assert (here / "d" / "runs" / run_id / "events.jsonl").is_file()
    assert not (ws / "d").exists() and not (ws / ".agent").exists()
    listed = invoke(["-w", str(ws), "--data-dir", "d", "runs", "list", "--json"])
    assert [x["run_id"] for x in json.loads(listed.stdout)] == [run_id]
    shown = json.loads(invoke(["-w", str(ws), "--data-dir", "d", "config", "show", "--json"]).stdout)
    assert shown["data_dir"] == str(here / "d")
    # The config key stays relative to the workspace (a project's agent.toml names its own folder).
    (ws / "agent.toml").write_text('data_dir = "state"\n')
    assert json.loads(invoke(["-w", str(ws), "config", "show", "--json"]).stdout)["data_dir"] == str(ws / "state")
