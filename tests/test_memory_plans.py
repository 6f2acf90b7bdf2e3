"""Past runs' plans recalled from episodic memory as the local planner's examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from runkit import plan, step
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.config import load_settings
from agentcli.engine.runner import episode_plan
from agentcli.memory import Memory
from agentcli.memory.embeddings import get_embedder
from agentcli.memory.store import EPISODES, MIGRATIONS
from agentcli.models.fakes import ScriptedModel
from agentcli.planning.examples import EXAMPLES, PlanExample, select_examples

HASH = get_embedder("test/hash")
LIST_MD = {"steps": {"s1": {"call": {"tool": "list_files", "args": {"pattern": "**/*.md"}},
                            "depends_on": [], "title": "md"}}}
TWO_STEPS = json.dumps({"schema_version": 1, "steps": [
    {"id": "s1", "title": "Read it", "depends_on": [], "tool": "read_file", "args": {"path": "notes/todo.md"}},
    {"id": "s2", "title": "Sum up", "depends_on": ["s1"], "prompt": "Summarise: {{s1.output}}"},
]})


def memory_for(ws: Path, events: list[tuple[str, dict[str, Any]]] | None = None) -> Memory:
    settings = load_settings(workspace=ws, environ={"AGENT_MEMORY__EMBEDDING_MODEL": "test/hash"},
                             use_user_config=False)
    sink = None if events is None else (lambda kind, payload: events.append((kind, payload)))
    return Memory.from_settings(settings, on_event=sink)


def episode(mem: Memory, run_id: str, task: str, status: str = "COMPLETE", plan_json: str | None = TWO_STEPS,
            time: str = "2026-11-24T01:00:00+00:00") -> None:
    mem.record_episode(run_id=run_id, task=task, plan_summary="", status=status, reason="", answer="",
                       cost_usd=0.0, time=time, plan=plan_json)


# ------------------------------------------------------------------ what is stored and recalled


def test_episode_plan_keeps_what_the_planner_writes() -> None:
    p = plan(step("s1", "list_files", pattern="**/*.py"),
             step("s2", prompt="Count: {{s1.output}}", deps=["s1"]))
    data = json.loads(episode_plan(p) or "")
    assert data["schema_version"] == 1
    assert data["steps"][0] == {"id": "s1", "title": data["steps"][0]["title"], "depends_on": [],
                                "tool": "list_files", "args": {"pattern": "**/*.py"}}
    assert data["steps"][1]["prompt"] == "Count: {{s1.output}}" and data["steps"][1]["depends_on"] == ["s1"]
    assert episode_plan(None) is None


def test_recall_plans_only_completed_runs_with_a_plan_newest_per_task(workspace: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    mem = memory_for(workspace, events)
    episode(mem, "r-old", "summarise notes/todo.md", time="2026-11-20T00:00:00+00:00")
    episode(mem, "r-new", "summarise notes/todo.md", time="2026-11-23T00:00:00+00:00")
    episode(mem, "r-failed", "summarise notes/todo.md please", status="FAILED")
    episode(mem, "r-noplan", "summarise notes/todo.md now", plan_json=None)
    episode(mem, "r-other", "deploy the release to production")
    found = mem.recall_plans("summarise notes/todo.md")
    assert [p.run_id for p in found] == ["r-new"]
    assert found[0].score == pytest.approx(1.0, abs=1e-3) and json.loads(found[0].plan)["steps"][1]["prompt"]
    assert mem.recall_plans("summarise notes/todo.md", min_score=1.01) == []
    assert mem.recall_plans("summarise notes/todo.md", k=0) == []
    assert mem.recall_plans("summarise notes/todo.md", lambda p: p.run_id != "r-new") == []
    recalls = [p for k, p in events if k == "memory_recall"]
    assert recalls[0]["purpose"] == "plans" and recalls[0]["hits"][0]["id"] == "r-new"


def test_empty_memory_recalls_no_plans_without_creating_it(workspace: Path) -> None:
    mem = memory_for(workspace)
    assert mem.recall_plans("anything") == []
    assert not (workspace / ".agent" / "memory").exists()


def test_memory_written_before_plans_were_kept_is_migrated(workspace: Path) -> None:
    mem = memory_for(workspace)
    episode(mem, "r1", "summarise notes/todo.md")
    table = mem.store.open(EPISODES)
    table.drop_columns(["plan"])  # the episodes table as schema 1 wrote it
    assert "plan" not in table.schema.names
    again = memory_for(workspace)
    assert again.recall_plans("summarise notes/todo.md") == []  # the old row has no plan: not an example
    assert "plan" in again.store.open(EPISODES).schema.names
    assert [i["id"] for i in again.list_items("episodic")] == ["r1"]  # nothing lost
    episode(again, "r2", "summarise notes/todo.md")
    assert [p.run_id for p in again.recall_plans("summarise notes/todo.md")] == ["r2"]
    assert MIGRATIONS[0][1] == "episodes_add_plan"  # append-only: never renamed or reordered


# ------------------------------------------------------------------ examples


def test_past_plan_as_example_keeps_steps_deps_and_titles() -> None:
    ex = PlanExample.from_episode("summarise notes/todo.md", TWO_STEPS, source="run r1")
    assert ex is not None and ex.source == "run r1" and ex.tools == {"read_file"} and ex.uses_llm
    draft = ex.draft()["steps"]
    assert draft["s1"] == {"call": {"tool": "read_file", "args": {"path": "notes/todo.md"}}, "depends_on": [],
                           "title": "Read it"}
    assert draft["s2"] == {"prompt": "Summarise: {{s1.output}}", "depends_on": ["s1"], "title": "Sum up"}
    for bad in ("", "{}", '{"steps": [{"id": "s1", "depends_on": ["s9"]}]}', '{"steps": []}', "[1]"):
        assert PlanExample.from_episode("t", bad) is None


def test_recalled_plans_compete_with_the_library_on_similarity() -> None:
    mine = PlanExample.from_episode("summarise notes/todo.md", TWO_STEPS, source="run r1")
    assert mine is not None
    chosen = select_examples("summarise notes/todo.md", 3, embedder=HASH, recalled=[mine])
    assert chosen[-1] is mine  # the most similar: last, nearest the task
    far = PlanExample.from_episode("deploy the release to production", TWO_STEPS, source="run r2")
    assert far is not None
    chosen = select_examples("list the python files", 3, embedder=HASH, recalled=[far])
    assert far not in chosen and all(c in EXAMPLES for c in chosen)


# ------------------------------------------------------------------ through `agent run`


def test_a_completed_run_becomes_the_next_similar_plans_example(workspace: Path) -> None:
    (workspace / "README.md").write_text("# demo\n")
    env = {"AGENT_MODEL": "local/smollm2", "AGENT_MEMORY__EMBEDDING_MODEL": "test/hash"}
    runner = CliRunner()
    first = runner.invoke(app, ["run", "list the markdown files", "--yes", "--json"],
                          obj=State(backend=ScriptedModel([LIST_MD]), environ=env))
    assert first.exit_code == 0, first.output
    first_id = json.loads(first.stdout)["run_id"]
    model = ScriptedModel([LIST_MD])
    second = runner.invoke(app, ["run", "list the markdown files", "--yes", "--json"],
                           obj=State(backend=model, environ=env))
    assert second.exit_code == 0, second.output
    msgs = model.requests[0].messages
    # The past run's plan is the last example before the task: its task, then its plan as the reply.
    assert msgs[-3]["content"] == "list the markdown files" and msgs[-1]["content"] == "list the markdown files"
    assert json.loads(msgs[-2]["content"])["steps"]["s1"]["call"] == LIST_MD["steps"]["s1"]["call"]
    second_id = json.loads(second.stdout)["run_id"]
    events = [json.loads(x) for x in
              (workspace / ".agent" / "runs" / second_id / "events.jsonl").read_text().splitlines()]
    plans = [e["data"] for e in events if e["type"] == "memory_recall" and e["data"].get("purpose") == "plans"]
    assert plans and plans[0]["hits"][0]["id"] == first_id


def test_no_past_plans_when_memory_is_off(workspace: Path) -> None:
    (workspace / "README.md").write_text("# demo\n")
    env = {"AGENT_MODEL": "local/smollm2", "AGENT_MEMORY__EMBEDDING_MODEL": "test/hash"}
    runner = CliRunner()
    assert runner.invoke(app, ["run", "list the markdown files", "--yes", "--json"],
                         obj=State(backend=ScriptedModel([LIST_MD]), environ=env)).exit_code == 0
    model = ScriptedModel([LIST_MD])
    off = {**env, "AGENT_MEMORY__PAST_PLANS": "0"}
    r = runner.invoke(app, ["run", "list the markdown files", "--yes", "--json"], obj=State(backend=model, environ=off))
    assert r.exit_code == 0, r.output
    assert all(m["content"] != json.dumps(LIST_MD) for m in model.requests[0].messages)
    users = [m["content"] for m in model.requests[0].messages if m["role"] == "user"]
    assert users.count("list the markdown files") == 1


def test_a_past_plan_must_use_the_nearest_library_examples_tools_unless_same_task(workspace: Path) -> None:
    from test_plan import make_registry

    from agentcli.memory.types import PastPlan
    from agentcli.planning.local import recalled_examples

    settings = load_settings(workspace=workspace, environ={}, use_user_config=False)
    tools = make_registry(workspace, settings.config).tools()
    read = PastPlan("r1", "what is the version in setup.cfg?", json.dumps({"schema_version": 1, "steps": [
        {"id": "s1", "title": "t", "depends_on": [], "tool": "read_file", "args": {"path": "setup.cfg"}}]}), 0.9)
    gone = PastPlan("r2", "ask the old tool", json.dumps({"schema_version": 1, "steps": [
        {"id": "s1", "title": "t", "depends_on": [], "tool": "no_such_tool", "args": {}}]}), 0.9)

    def found(task: str, accept: Any) -> list[PastPlan]:
        return [p for p in (read, gone) if accept(p)]

    task = "set the version in setup.cfg to 2.0"
    assert recalled_examples(task, found, tools, agree_with={"edit_file"}) == []
    assert [e.source for e in recalled_examples(task, found, tools, agree_with={"read_file"})] == ["run r1"]
    same = recalled_examples("What is the version in  setup.cfg?", found, tools, agree_with={"edit_file"})
    assert [e.source for e in same] == ["run r1"]

    def broken(task: str, accept: Any) -> list[PastPlan]:
        raise RuntimeError("store unreadable")

    assert recalled_examples(task, broken, tools) == []
