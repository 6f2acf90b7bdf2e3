"""`agent runs stats` and the per-step cost breakdown of `agent runs show`, against the call logs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.errors import LLMTransientError
from agentcli.models.fakes import ScriptedModel
from agentcli.record.stats import parse_since

runner = CliRunner()
ENV = {"AGENT_MODEL": "test/scripted", "AGENT_LLM__BACKOFF_BASE_SECONDS": "0"}
TWO_STEPS = {"steps": [
    {"title": "List the Python files", "tool": "list_files", "args": {"pattern": "*.py"}},
    {"title": "Summarise", "prompt": "Summarise these files: {{s1.output}}", "depends_on": ["s1"]},
]}


def complete(answer: str = "done") -> dict[str, str]:
    return {"outcome": "complete", "answer": answer, "reason": ""}


def invoke(args: list[str], *responses: Any, model: ScriptedModel | None = None,
           env: dict[str, str] | None = None) -> Any:
    backend = model if model is not None else ScriptedModel(list(responses))
    return runner.invoke(app, args, obj=State(backend=backend, environ={**ENV, **(env or {})}))


def run_json(*args: str, responses: list[Any] | None = None, model: ScriptedModel | None = None,
             env: dict[str, str] | None = None) -> dict[str, Any]:
    r = invoke(["run", *args, "--json"], *(responses or []), model=model, env=env)
    assert r.stdout, r.output
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def call_log_records(ws: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted((ws / ".agent" / "runs").glob("*/llm_calls.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("event") == "llm_call":
                out.append(rec)
    return out


@pytest.fixture
def recorded(workspace: Path) -> dict[str, str]:
    """Four runs: complete, complete after a retried 429, budget-stopped, and one on an unpriced model."""
    (workspace / "main.py").write_text("print('hi')\n")
    (workspace / "util.py").write_text("X = 1\n")
    ids = {}
    ids["ok"] = run_json("summarise the code", "--yes", responses=[TWO_STEPS, "two files", complete()])["run_id"]
    ids["retry"] = run_json("summarise again", "--yes", responses=[
        TWO_STEPS, LLMTransientError("rate limited", status=429, retry_after=0), "two files", complete()])["run_id"]
    ids["budget"] = run_json("too big", "--yes", "--max-tokens", "20", responses=[TWO_STEPS])["run_id"]
    unpriced = ScriptedModel([TWO_STEPS, "two files", complete()], price=None)
    ids["unpriced"] = run_json("no price", "--yes", model=unpriced,
                               env={"AGENT_BUDGET__ALLOW_UNKNOWN_PRICE": "true"})["run_id"]
    return ids


def stats_json(*args: str) -> dict[str, Any]:
    r = invoke(["runs", "stats", "--json", *args])
    assert r.exit_code == 0, r.output
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def test_stats_match_the_call_logs_exactly(workspace: Path, recorded: dict[str, str]) -> None:
    records = call_log_records(workspace)
    assert len(records) >= 8 and any(r["outcome"] == "retry" for r in records)
    t = stats_json()["totals"]
    assert t["calls"] == len(records)
    assert t["input_tokens"] == sum(r["gen_ai.usage.input_tokens"] for r in records)
    assert t["output_tokens"] == sum(r["gen_ai.usage.output_tokens"] for r in records)
    assert t["cost_usd"] == math.fsum(r["cost_usd"] for r in records if r["cost_usd"] is not None)
    assert t["cost_usd"] > 0
    unpriced = [r for r in records if r["outcome"] == "ok" and r["cost_usd"] is None]
    assert t["unpriced_calls"] == len(unpriced) == 3
    assert t["unpriced_input_tokens"] == sum(r["gen_ai.usage.input_tokens"] for r in unpriced)
    assert t["failed_calls"] == sum(1 for r in records if r["outcome"] != "ok")
    assert t["runs"] == 4


@pytest.mark.parametrize("by", ["model", "day", "status"])
def test_groups_add_up_to_the_totals(workspace: Path, recorded: dict[str, str], by: str) -> None:
    s = stats_json("--by", by)
    for key in ("calls", "input_tokens", "output_tokens", "unpriced_calls", "failed_calls"):
        assert sum(g[key] for g in s["groups"]) == s["totals"][key]
    assert math.isclose(math.fsum(g["cost_usd"] for g in s["groups"]), s["totals"]["cost_usd"], rel_tol=1e-12)
    if by == "status":
        assert {g["key"]: g["runs"] for g in s["groups"]} == {"COMPLETE": 3, "FAILED": 1}
    if by == "model":
        assert [g["key"] for g in s["groups"]] == ["test/scripted"]


def test_outcomes_and_estimate_error(workspace: Path, recorded: dict[str, str]) -> None:
    s = stats_json()
    assert s["runs"] == 4
    assert s["runs_by_status"] == {"COMPLETE": 3, "FAILED": 1}
    assert s["failure_reasons"] == {"budget_exceeded:tokens": 1}
    est = s["estimate"]
    # the two priced complete runs are compared; the unpriced one is not (the budget-stopped run
    # never got a plan: its planner call was refused)
    assert (est["plans_compared"], est["plans_skipped"]) == (2, 1)
    actual = 0.0
    estimated = 0.0
    for key in ("ok", "retry"):
        events = [json.loads(line) for line in
                  (workspace / ".agent" / "runs" / recorded[key] / "events.jsonl").read_text().splitlines()]
        [plan] = [e["data"]["plan"] for e in events if e["type"] == "plan_created"]
        estimated += plan["estimated_cost_usd"]
        actual += math.fsum(e["data"]["cost_usd"] for e in events if e["type"] == "llm_call"
                            and e["step_id"] == "s2" and e["data"]["cost_usd"] is not None)
    assert math.isclose(est["estimated_usd"], estimated) and math.isclose(est["actual_usd"], actual)
    assert math.isclose(est["mean_error_usd"], (actual - estimated) / 2)
    assert est["mean_abs_error_usd"] >= abs(est["mean_error_usd"])


def test_since_filters_by_run_start(workspace: Path, recorded: dict[str, str]) -> None:
    assert stats_json("--since", "1h")["runs"] == 4
    assert stats_json("--since", "2999-01-01")["runs"] == 0
    bad = invoke(["runs", "stats", "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since" in bad.stderr
    assert parse_since("7d", now=1_000_000.0) == 1_000_000.0 - 7 * 86400
    assert parse_since("2026-01-02") == 1767312000.0


def test_stats_table(workspace: Path, recorded: dict[str, str]) -> None:
    r = invoke(["runs", "stats", "--by", "status"])
    assert r.exit_code == 0, r.output
    assert "usage by status" in r.stdout and "total" in r.stdout and "COMPLETE 3" in r.stdout
    assert "budget_exceeded:tokens" in r.stdout and "plan estimates" in r.stdout
    assert invoke(["runs", "stats", "--by", "tool"]).exit_code == 2


def test_empty_data_dir(workspace: Path) -> None:
    s = stats_json()
    assert (s["runs"], s["totals"]["calls"], s["groups"]) == (0, 0, [])
    assert invoke(["runs", "stats"]).exit_code == 0


def test_show_has_per_step_costs(workspace: Path, recorded: dict[str, str]) -> None:
    run_id = recorded["retry"]
    r = invoke(["runs", "show", run_id, "--json"])
    costs = {c["step_id"]: c for c in json.loads(r.stdout)["step_costs"]}
    assert list(costs) == ["s1", "s2", "(planner)", "(reviewer)"]
    s2 = costs["s2"]
    events = [json.loads(line) for line in
              (workspace / ".agent" / "runs" / run_id / "events.jsonl").read_text().splitlines()]
    s2_calls = [e for e in events if e["type"] == "llm_call" and e["step_id"] == "s2"]
    assert s2["calls"] == len(s2_calls) == 2  # the 429 and the answer
    assert s2["cost_usd"] == math.fsum(e["data"]["cost_usd"] for e in s2_calls if e["data"]["cost_usd"] is not None)
    assert s2["estimated_cost_usd"] > 0 and s2["error_usd"] == s2["cost_usd"] - s2["estimated_cost_usd"]
    assert (costs["s1"]["estimated_cost_usd"], costs["s1"]["cost_usd"]) == (0.0, 0.0)
    # the breakdown accounts for every call of the run
    summary = json.loads(r.stdout)["summary"]
    assert math.isclose(math.fsum(c["cost_usd"] for c in costs.values()), summary["cost_usd"], abs_tol=1e-12)
    text = invoke(["runs", "show", run_id])
    assert "cost per step" in text.stdout and "actual - est." in text.stdout
    unpriced = json.loads(invoke(["runs", "show", recorded["unpriced"], "--json"]).stdout)["step_costs"]
    assert [c["cost_usd"] for c in unpriced if c["step_id"] == "s2"] == [None]


def test_fork_does_not_count_served_calls_twice(workspace: Path, recorded: dict[str, str]) -> None:
    before = stats_json()
    fork = invoke(["replay", recorded["ok"], "--from", "s2", "--yes", "--json"], "a fresh summary", complete())
    assert fork.exit_code == 0, fork.output
    after = stats_json()
    # the fork's planner call was served from the recording; its s2 and reviewer calls were live
    assert after["replayed_calls"] == before["replayed_calls"] + 1
    assert after["totals"]["calls"] == before["totals"]["calls"] + 2
    assert after["runs"] == before["runs"] + 1
