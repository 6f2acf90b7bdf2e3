"""A hosted planner may look before it plans: read-only tool calls (list_files, read_file,
search_code), validated and run, bounded in number and size; never a tool that writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models.fakes import ScriptedModel
from agentcli.models.types import ToolCall

ENV = {"AGENT_MODEL": "test/scripted", "AGENT_MEMORY__ENABLED": "false"}
DRAFT = {"steps": {"s1": {"call": {"tool": "read_file", "args": {"path": "calc.py"}}, "depends_on": [],
                          "title": "Read calc.py"}}}
REVIEW = {"outcome": "complete", "answer": "read it", "reason": ""}


def run(ws: Path, *script: Any, env: dict[str, str] | None = None) -> tuple[Any, ScriptedModel]:
    model = ScriptedModel(list(script))
    r = CliRunner().invoke(app, ["run", "look at calc.py", "--yes", "--json"],
                           obj=State(backend=model, environ={**ENV, **(env or {})}))
    return r, model


def test_the_planner_reads_a_file_then_plans(workspace: Path) -> None:
    (workspace / "calc.py").write_text("def add(a, b):\n    return a + b  # MARKER-42\n")
    r, model = run(workspace, ToolCall(id="c1", name="read_file", arguments={"path": "calc.py"}), DRAFT, REVIEW)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["status"] == "COMPLETE"
    first, second = model.requests[0], model.requests[1]
    assert [t["function"]["name"] for t in first.tools or []] == ["list_files", "read_file", "search_code",
                                                                   "git_history"]
    assert "at most 6 calls" in first.messages[0]["content"]
    [answer] = [m for m in second.messages if m["role"] == "tool"]
    assert answer["tool_call_id"] == "c1" and "MARKER-42" in answer["content"]
    assert second.messages[-2]["tool_calls"][0]["function"]["name"] == "read_file"
    # The plan's planning cost is the planner calls' own, each counted once.
    run_id = json.loads(r.stdout)["run_id"]
    events = [json.loads(x) for x in (workspace / ".agent" / "runs" / run_id / "events.jsonl").read_text().splitlines()]
    planner = [e["data"]["cost_usd"] for e in events if e["type"] == "llm_call" and e["data"]["role"] == "planner"]
    [made] = [e["data"]["plan"] for e in events if e["type"] == "plan_created"]
    assert len(planner) == 2 and made["planning_cost_usd"] == pytest.approx(sum(planner))


def test_one_survey_round_can_search_and_see_the_code_around_each_match(workspace: Path) -> None:
    # A search and the read of its hits were two rounds of the survey: with context they are one.
    body = [f"    step_{i} = {i}" for i in range(40)]
    body[20] = "    if arg.endswith('---'):  # MARKER-7"
    (workspace / "calc.py").write_text("def parse(arg):\n" + "\n".join(body) + "\n")
    both = [ToolCall(id="c1", name="search_code", arguments={"query": "MARKER-7", "context": 3}),
            ToolCall(id="c2", name="list_files", arguments={"pattern": "*.py"})]
    r, model = run(workspace, both, DRAFT, REVIEW)
    assert r.exit_code == 0, r.output
    assert "all in one reply" in model.requests[0].messages[0]["content"]
    replies = {m["tool_call_id"]: json.loads(m["content"]) for m in model.requests[1].messages if m["role"] == "tool"}
    [hit] = replies["c1"]
    assert (hit["line"], hit["from_line"]) == (22, 19)
    assert hit["snippet"].splitlines() == body[17:24] and replies["c2"] == ["calc.py"]
    assert len([q for q in model.requests if q.tools]) == 2  # one round of calls, then the plan


def test_the_survey_is_bounded_and_never_writes(workspace: Path) -> None:
    (workspace / "calc.py").write_text("x = 1\n")
    write = ToolCall(id="w1", name="write_file", arguments={"path": "evil.txt", "content": "no"})
    look = ToolCall(id="l1", name="list_files", arguments={"pattern": "*.py"})
    r, model = run(workspace, [write, look], DRAFT, REVIEW, env={"AGENT_PLANNER__SURVEY_CALLS": "1"})
    assert r.exit_code == 0, r.output
    assert not (workspace / "evil.txt").exists()
    first, second = model.requests[0], model.requests[1]
    replies = {m["tool_call_id"]: m["content"] for m in second.messages if m["role"] == "tool"}
    assert "not a read-only tool" in replies["w1"] and "calc.py" in replies["l1"]
    # The one call allowed is used: now the plan. The tools are still sent (the request keeps the first
    # one's prefix for a provider's prompt cache), with no call asked for.
    assert second.tools == first.tools and second.tool_choice == "none"
    assert first.tool_choice is None


def test_no_survey_when_turned_off(workspace: Path) -> None:
    (workspace / "calc.py").write_text("x = 1\n")
    r, model = run(workspace, DRAFT, REVIEW, env={"AGENT_PLANNER__SURVEY_CALLS": "0"})
    assert r.exit_code == 0, r.output
    assert model.requests[0].tools is None
    assert "Before the plan you may call" not in model.requests[0].messages[0]["content"]


def test_the_planner_is_told_how_the_run_is_verified(workspace: Path) -> None:
    (workspace / "calc.py").write_text("x = 1\n")
    r, model = run(workspace, DRAFT, REVIEW, env={"AGENT_VERIFY__COMMAND": "python -m pytest -q"})
    assert r.exit_code == 0, r.output
    assert "# Verification\nWhen the steps are done, if files changed, `python -m pytest -q` runs" \
        in model.requests[0].messages[0]["content"]


def test_the_survey_tools_are_sent_compactly_and_their_bounds_still_hold(workspace: Path) -> None:
    # The survey's tools go without the bounds the tools check themselves (lengths, patterns, closed
    # objects) and with an optional argument's type written as ["integer", "null"]: a call that breaks
    # a bound is still refused, with the tool's own error for the planner to read.
    (workspace / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    long_query = ToolCall(id="c1", name="search_code", arguments={"query": "x" * 500})
    r, model = run(workspace, long_query, DRAFT, REVIEW)
    assert r.exit_code == 0, r.output
    sent = {t["function"]["name"]: t["function"] for t in model.requests[0].tools or []}
    params = sent["search_code"]["parameters"]
    text = json.dumps(sent)
    for keyword in ("maxLength", "minLength", "pattern", "additionalProperties", '"default": null', "anyOf"):
        assert keyword not in text, keyword
    assert params["required"] == ["query"] and params["properties"]["max_results"]["maximum"] == 20
    assert params["properties"]["glob"]["type"] == ["string", "null"] and "description" in params["properties"]["glob"]
    assert sent["git_history"]["parameters"]["properties"]["command"]["enum"] == ["log", "show", "blame"]
    [answer] = [m for m in model.requests[1].messages if m["role"] == "tool"]
    assert "error" in answer["content"] and "200" in answer["content"]
