"""`agent plan` through CliRunner, and snapshots of the table and of --json.

Snapshots live in tests/snapshots/; regenerate them with UPDATE_SNAPSHOTS=1.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from test_plan import make_registry
from test_planner import GOOD, settings_for
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.cli.render import format_cost, render_plan
from agentcli.models.client import LLMClient
from agentcli.models.fakes import ScriptedModel
from agentcli.planning.plan import Plan
from agentcli.planning.planner import make_plan

runner = CliRunner()
SNAPSHOTS = Path(__file__).parent / "snapshots"

# The built-in tools, as `agent plan` sees them.
DRAFT = {"steps": {
    "s1": {"call": {"tool": "list_files", "args": {"pattern": "**/*.py"}}, "depends_on": [],
           "title": "List the Python files"},
    "s2": {"prompt": "Group these files by package: {{s1.output}}", "depends_on": ["s1"],
           "title": "Group them by package"},
    "s3": {"call": {"tool": "run_shell", "args": {"command": "wc -l $(git ls-files '*.py')"}},
           "depends_on": [], "title": "Count lines"},
}}


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"snapshot {name} is missing (UPDATE_SNAPSHOTS=1 creates it)"
    assert text == path.read_text(encoding="utf-8"), f"snapshot {name} differs (UPDATE_SNAPSHOTS=1 updates it)"


def invoke(args: list[str], responses: list[Any], **env: str) -> Any:
    state = State(backend=ScriptedModel(responses), environ={"AGENT_MODEL": "test/scripted", **env})
    return runner.invoke(app, args, obj=state)


def normalised(plan_json: dict[str, Any]) -> dict[str, Any]:
    # The id and time are fresh per run; the hash and schema versions follow the built-in
    # tools' schemas, which other changes may touch. Everything else must stay as it is.
    out = dict(plan_json, id="<id>", created_at="<time>", hash="<hash>")
    out["steps"] = [dict(s, tool_schema_version="<v>" if s["tool_schema_version"] else None)
                    for s in plan_json["steps"]]
    return out


def test_plan_command_shows_the_table_and_saves_the_plan(workspace: Path) -> None:
    result = invoke(["plan", "list the python files"], [DRAFT])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Task:     list the python files" in out and "Model:    test/scripted" in out
    # 80 columns: every column is there; the args, too long for the row, are whole under each step.
    assert "#   step" in out and "depends on  approval" in out and "estimate" in out
    assert "list_files" in out and "    args: pattern=**/*.py" in out and "run_shell" in out and "llm" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    [saved] = (workspace / ".agent" / "plans").glob("*.json")
    plan = Plan.model_validate_json(saved.read_text())
    assert f"Plan:     {plan.id}  hash {plan.hash[:12]}" in out
    assert plan.verify_hash() and [s.requires_approval for s in plan.steps] == [False, False, True]
    assert "plan saved to" in result.stderr
    # The planning call was logged under the plan's id.
    assert (workspace / ".agent" / "runs" / plan.id).is_dir()


def test_plan_json_is_the_only_thing_on_stdout(workspace: Path) -> None:
    result = invoke(["plan", "list the python files", "--json", "-o", "out/plan.json"], [DRAFT])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert Plan.model_validate(data).verify_hash()
    assert json.loads((workspace / "out" / "plan.json").read_text()) == data
    assert json.loads((workspace / ".agent" / "plans" / f"{data['id']}.json").read_text()) == data
    check_snapshot("plan.json", json.dumps(normalised(data), indent=2) + "\n")


def test_plan_failure_is_one_line_and_exit_1(workspace: Path) -> None:
    bad = {"steps": {"s1": {"call": {"tool": "nope", "args": {}}, "depends_on": [], "title": "x"}}}
    result = invoke(["plan", "do it"], [bad, bad, bad])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: no valid plan after 3 tries: s1.tool: unknown tool 'nope'")


def test_plan_gives_up_after_the_configured_reasks(workspace: Path) -> None:
    bad = {"steps": {"s1": {"call": {"tool": "nope", "args": {}}, "depends_on": [], "title": "x"}}}
    result = invoke(["plan", "do it"], [bad], AGENT_LLM__MAX_REASKS="0")
    assert result.exit_code == 1 and "after 1 tries" in result.stderr


def test_table_snapshot(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    client = LLMClient(settings.config, backend=ScriptedModel([GOOD]))
    plan = asyncio.run(make_plan("summarise the code", settings=settings, registry=make_registry(tmp_path),
                                 client=client, plan_id="20260102-030405-abcdef",
                                 now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), save=False))
    console = Console(width=120, record=True, color_system=None, force_terminal=False, file=io.StringIO())
    render_plan(plan, console)
    check_snapshot("plan_table.txt", console.export_text())


@pytest.mark.parametrize(("cost", "shown"), [(None, "unknown"), (0.0, "$0"), (0.000123, "$0.000123"), (0.5, "$0.5000")])
def test_format_cost(cost: float | None, shown: str) -> None:
    assert format_cost(cost) == shown
