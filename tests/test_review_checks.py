"""A review that answers ``replan`` with the commands that check the work: the re-plan is those
commands as ``run_shell`` steps, with no planner call, approved as any command by the config, then
reviewed as usual; unusable commands and the re-plan limit leave the planner and the budget as
they were."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from runkit import Harness, config
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.config import Settings
from agentcli.engine.reviewer import CHECK_CHARS, MAX_CHECKS, Review
from agentcli.engine.runner import ReplanContext, run
from agentcli.models.fakes import ScriptedModel
from agentcli.planning.plan import Plan
from agentcli.planning.planner import make_plan
from agentcli.record.events import read_events

runner = CliRunner()
ENV = {"AGENT_MODEL": "test/scripted"}
TASK = "check that data.txt is in place"
#: The first plan: a check that reads the wrong file (the work is fine, the check is not).
FIRST = {"steps": [{"title": "Run the check", "tool": "run_shell", "args": {"command": "cat missing.txt"}}]}
CHECKS = ["cat data.txt", "wc -l data.txt"]


def replan(commands: Any = None, reason: str = "the check read the wrong file: run `cat data.txt`") -> dict[str, Any]:
    out: dict[str, Any] = {"outcome": "replan", "answer": "", "reason": reason}
    if commands is not None:
        out["commands"] = commands
    return out


def complete(answer: str) -> dict[str, Any]:
    return {"outcome": "complete", "answer": answer, "reason": ""}


def invoke(model: ScriptedModel, *args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, ["run", TASK, *args], obj=State(backend=model, environ={**ENV, **(env or {})}))


def events(workspace: Path, run_id: str) -> list[Any]:
    return list(read_events(workspace / ".agent" / "runs" / run_id / "events.jsonl").events)


def roles(evs: list[Any]) -> list[str]:
    return [e.data["role"] for e in evs if e.type == "llm_call"]


def plans(evs: list[Any]) -> list[dict[str, Any]]:
    return [e.data for e in evs if e.type == "plan_created"]


def test_the_reviews_commands_are_the_new_steps_with_no_planner_call(workspace: Path) -> None:
    (workspace / "data.txt").write_text("one line\n")
    model = ScriptedModel([FIRST, replan(CHECKS), complete("data.txt is there: one line")])
    r = invoke(model, "--yes", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["status"], out["answer"]) == ("COMPLETE", "data.txt is there: one line")
    assert not model.queue  # every scripted answer used, no more asked for
    evs = events(workspace, out["run_id"])
    # One planner call (the first plan), two reviews: the re-plan asked no model.
    assert roles(evs) == ["planner", "reviewer", "reviewer"]
    first, second = plans(evs)
    assert "source" not in first and second["source"] == "review" and second["replan"] is True
    steps = second["plan"]["steps"]
    assert [(s["id"], s["tool"], s["args"], s["depends_on"], s["title"]) for s in steps] == [
        ("s2", "run_shell", {"command": "cat data.txt"}, [], "cat data.txt"),
        ("s3", "run_shell", {"command": "wc -l data.txt"}, ["s2"], "wc -l data.txt")]
    # Approval is the config's for a command (exec = ask): the review cannot lower it.
    assert all(s["requires_approval"] and s["risk"] == "exec" for s in steps)
    assert [s["status"] for s in out["steps"]] == ["ok", "ok"]
    review_events = [e.data for e in evs if e.type == "review"]
    assert review_events[0]["commands"] == CHECKS and "commands" not in review_events[1]
    # The plan was saved like any re-plan, hashed.
    saved = Plan.model_validate_json((workspace / ".agent" / "plans" / f"{second['plan']['id']}.json").read_text())
    assert saved.verify_hash() and [s.id for s in saved.steps] == ["s2", "s3"]
    shown = runner.invoke(app, ["runs", "show", out["run_id"]], obj=State(environ=ENV), env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    assert "(the review's checks)" in text and 'commands=["cat data.txt", "wc -l data.txt"]' in text
    replayed = runner.invoke(app, ["replay", out["run_id"]], obj=State(backend=ScriptedModel([]), environ=ENV))
    assert replayed.exit_code == 0 and replayed.stdout.startswith("identical"), replayed.output


def test_the_runs_output_says_the_review_added_check_steps(workspace: Path) -> None:
    (workspace / "data.txt").write_text("one line\n")
    r = invoke(ScriptedModel([FIRST, replan(CHECKS), complete("data.txt is there: one line")]), "--yes")
    assert r.exit_code == 0, r.output
    assert "replanning: the check read the wrong file" in r.stderr
    assert "executing: new plan" in r.stderr and "the review's check steps s2 `cat data.txt`; s3 `wc -l data.txt`" \
        in " ".join(r.stderr.split())


def test_unusable_commands_leave_the_re_plan_to_the_planner(workspace: Path) -> None:
    (workspace / "data.txt").write_text("one line\n")
    too_many = [f"echo {i}" for i in range(MAX_CHECKS + 1)]
    for bad in (too_many, ["cat data.txt\nrm -rf ."], ["x" * (CHECK_CHARS + 1)], [""], "cat data.txt", [3]):
        planned = {"steps": {"s2": {"title": "Read data", "call": {"tool": "run_shell",
                                                                  "args": {"command": "cat data.txt"}}}}}
        model = ScriptedModel([FIRST, replan(bad), planned, complete("data.txt is there")])
        r = invoke(model, "--yes", "--json")
        assert r.exit_code == 0, (bad, r.output)
        evs = events(workspace, json.loads(r.stdout)["run_id"])
        assert roles(evs) == ["planner", "reviewer", "planner", "reviewer"], bad
        assert all("source" not in p for p in plans(evs))


def test_commands_only_count_with_a_replan_verdict() -> None:
    assert Review(outcome="replan", commands=[" make test "]).checks() == ("make test",)
    assert Review(outcome="continue", commands=["make test"]).checks() == ()
    assert Review(outcome="replan").checks() == ()


def test_the_re_plan_limit_holds_for_the_reviews_checks(workspace: Path) -> None:
    # max_replans = 1: the review's checks are that re-plan; a second one is over the budget.
    model = ScriptedModel([FIRST, replan(["cat nothing.txt"]), replan(["cat data.txt"])])
    r = invoke(model, "--yes", "--json", env={"AGENT_BUDGET__MAX_REPLANS": "1"})
    out = json.loads(r.stdout)
    assert r.exit_code == 3 and out["reason"] == "budget_exceeded:replans", r.output
    evs = events(workspace, out["run_id"])
    assert roles(evs) == ["planner", "reviewer", "reviewer"]
    assert [p.get("source") for p in plans(evs)] == [None, "review"]


def test_a_denied_command_policy_denies_the_reviews_checks(workspace: Path) -> None:
    # approval.exec = deny: the check steps are denied as any command, even with --yes.
    (workspace / "data.txt").write_text("one line\n")
    read_first = {"steps": [{"title": "Read", "tool": "read_file", "args": {"path": "missing.txt"}}]}
    model = ScriptedModel([read_first, replan(["cat data.txt"])])
    r = invoke(model, "--yes", "--json", env={"AGENT_APPROVAL__EXEC": "deny"})
    out = json.loads(r.stdout)
    assert r.exit_code == 4 and out["reason"] == "denied", r.output
    assert [(s["id"], s["status"]) for s in out["steps"]] == [("s2", "denied")]
    assert not [e for e in events(workspace, out["run_id"]) if e.type == "tool_call" and e.step_id == "s2"]


def test_non_interactive_ask_denies_the_reviews_checks(workspace: Path) -> None:
    # No --yes and nobody to ask (no prompt): a command step that asks is denied; the run's
    # planner is make_plan, as the CLI's.
    (workspace / "data.txt").write_text("one line\n")
    read_first = {"steps": [{"title": "Read", "tool": "read_file", "args": {"path": "missing.txt"}}]}
    model = ScriptedModel([read_first, replan(["cat data.txt"])])
    h = Harness(workspace, config(), model, [])
    session = h.session()
    settings = Settings(config=h.config, workspace=workspace)
    assert session.registry is not None
    registry = session.registry

    async def planner(task: str, ctx: ReplanContext | None) -> Plan:
        return await make_plan(task, settings=settings, registry=registry, client=session.client,
                               plan_id=h.run_id + (f"-r{len(ctx.plan.steps)}" if ctx else ""),
                               replan=ctx.replan() if ctx else None, save=False)

    deps = session.deps(planner, lambda p, replanned: True)
    try:
        out = asyncio.run(run(TASK, deps))
    finally:
        session.close()
    assert (out.status, out.reason) == ("FAILED", "denied")
    assert [(s["id"], s["status"]) for s in out.steps] == [("s2", "denied")]
    evs = list(h.recording().events)
    assert roles(evs) == ["planner", "reviewer"]
    assert [e.data["decision"] for e in evs if e.type == "approval" and e.step_id == "s2"] == ["denied"]


def _make_plan_with_checks(workspace: Path, commands: tuple[str, ...], model: ScriptedModel, *,
                           shell: bool = True, **sections: Any) -> Plan:
    """make_plan for a re-plan after s1, given a review's check commands."""
    from agentcli.engine.session import build_llm_client
    from agentcli.planning.planner import Replan
    from agentcli.tools import ToolContext, ToolRegistry, builtin_tools

    cfg = config(**sections)
    settings = Settings(config=cfg, workspace=workspace)
    registry = ToolRegistry(ToolContext(workspace=workspace, config=cfg.tools, data_dir=workspace / ".agent"))
    for t in builtin_tools(cfg.tools):
        if shell or t.name != "run_shell":
            registry.register(t)
    client = build_llm_client(settings, "run-x", backend=model)
    replan = Replan(context=lambda first: "A previous plan failed.", first_step=2, kept=frozenset({"s1"}),
                    commands=commands)
    return asyncio.run(make_plan(TASK, settings=settings, registry=registry, client=client, replan=replan,
                                 plan_id="run-x-r1", save=False))


def test_make_plan_takes_the_checks_with_the_configs_approval(workspace: Path) -> None:
    for exec_policy, asks in (("auto", False), ("ask", True), ("deny", True)):
        model = ScriptedModel([])  # any model request would fail: none is made
        p = _make_plan_with_checks(workspace, ("make test",), model, approval={"exec": exec_policy})
        assert model.requests == [] and p.source == "review" and p.verify_hash()
        [s] = p.steps
        assert (s.id, s.tool, s.args, s.requires_approval, s.risk) == ("s2", "run_shell", {"command": "make test"},
                                                                         asks, "exec")
        # Not in the plan's JSON or hash: the plan_created event says where the steps came from.
        assert "source" not in p.model_dump(mode="json")


def test_checks_the_registry_refuses_go_to_the_planner(workspace: Path) -> None:
    draft = {"steps": {"s2": {"call": {"tool": "read_file", "args": {"path": "data.txt"}}, "title": "Read"}}}
    for kwargs in ({"shell": False}, {"budget": {"max_steps": 1}}):
        model = ScriptedModel([draft])
        p = _make_plan_with_checks(workspace, ("make test", "make lint"), model, **kwargs)
        assert len(model.requests) == 1 and p.source == "planner", kwargs
        assert [(s.id, s.tool) for s in p.steps] == [("s2", "read_file")]
