"""Replaying recorded runs: identical for every executor scenario, divergence when tampered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from runkit import Harness, config, make_registry, plan, review, step

from agentcli.engine.replay import replay_run
from agentcli.models.fakes import ScriptedModel


def _happy(ws: Path) -> Harness:
    (ws / "notes.txt").write_text("alpha\nbeta\n")
    p = plan(step("s1", "read_file", path="notes.txt"), step("s2", prompt="Summarise {{s1.output}}", deps=["s1"]))
    return Harness(ws, config(), ScriptedModel(["summary", review(answer="alpha, beta")]), [p])


def _corrected(ws: Path) -> Harness:
    (ws / "a.txt").write_text("A")
    p = plan(step("s1", "list_files", pattern="*.txt"), step("s2", "read_file", deps=["s1"], path="{{s1.output}}"))
    return Harness(ws, config(), ScriptedModel([{"path": "a.txt"}, review()]), [p])


def _timeout_retry(ws: Path) -> Harness:
    return Harness(ws, config(), ScriptedModel([review()]), [plan(step("s1", "flaky", attempts=2, key="k"))])


def _replan(ws: Path) -> Harness:
    (ws / "real.txt").write_text("R")
    return Harness(ws, config(), ScriptedModel([review("replan", reason="missing"), review(answer="R")]),
                   [plan(step("s1", "read_file", path="missing.txt")),
                    plan(step("s1", "read_file", path="real.txt"), plan_id="plan-2")])


def _denied(ws: Path) -> Harness:
    p = plan(step("s1", "write_file", approval=True, risk="write", path="o.txt", content="x"))
    return Harness(ws, config(), ScriptedModel([]), [p])


def _approved_write(ws: Path) -> Harness:
    p = plan(step("s1", "write_file", approval=True, risk="write", path="o.txt", content="x"))
    return Harness(ws, config(), ScriptedModel([review()]), [p], yes=True)


def _budget(ws: Path) -> Harness:
    return Harness(ws, config(budget={"max_tokens": 50}), ScriptedModel(["x"]), [plan(step("s1", prompt="x"))])


def _parallel(ws: Path) -> Harness:
    p = plan(*(step(f"s{i}", "nap", seconds=0.05 * i, label=f"n{i}") for i in range(1, 5)))
    return Harness(ws, config(), ScriptedModel([review()]), [p])


def _first_to_fail(ws: Path) -> Harness:
    # s1 is slow and s2 fails fast (three quick attempts): the failure stops s3 (after s1) from
    # starting. Served at once, s1's result would be taken in before s2's last attempt and s3 would
    # start: the replay serves each result in its recorded turn.
    p = plan(step("s1", "nap", seconds=0.3, label="slow"), step("s2", "read_file", path="missing.txt", attempts=3),
             step("s3", "nap", seconds=0, label="after", deps=["s1"]))
    return Harness(ws, config(), ScriptedModel([review("fail", reason="s2 failed")]), [p])


def _continue(ws: Path) -> Harness:
    (ws / "ok.txt").write_text("fine")
    p = plan(step("s1", "read_file", path="missing.txt"), step("s2", "read_file", path="ok.txt"),
             step("s3", prompt="use {{s1.output}}", deps=["s1"]))
    return Harness(ws, config(executor={"max_parallel": 1}),
                   ScriptedModel([review("continue", reason="optional"), review(answer="fine")]), [p])


def _truncated(ws: Path) -> Harness:
    # 9,000 tokens: cut at the step's 8,192, asked for again at the model's 16,384.
    long = " ".join(f"w{i}" for i in range(9000))
    return Harness(ws, config(), ScriptedModel([long, review()]), [plan(step("s1", prompt="write it all"))])


def _edits(ws: Path) -> Harness:
    (ws / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    wrong = {"edits": [{"path": "calc.py", "search": "return a+b", "replace": "return b + a"}]}
    fixed = {"edits": [{"path": "calc.py", "search": "return a + b", "replace": "return b + a"}]}
    p = plan(step("s1", "read_file", path="calc.py"),
             step("s2", prompt="swap: {{s1.output}}", deps=["s1"]).model_copy(update={"answer": "edits"}),
             step("s3", "apply_edits", deps=["s2"], edits="{{s2.output}}"))
    return Harness(ws, config(), ScriptedModel([wrong, fixed, review()]), [p], yes=True)


SCENARIOS: dict[str, Callable[[Path], Harness]] = {
    "happy": _happy, "corrected": _corrected, "timeout_retry": _timeout_retry, "replan": _replan,
    "denied": _denied, "approved_write": _approved_write, "budget": _budget, "parallel": _parallel,
    "first_to_fail": _first_to_fail, "continue": _continue, "truncated": _truncated, "edits": _edits,
}


def _events_path(h: Harness) -> Path:
    return h.workspace / ".agent" / "runs" / h.run_id / "events.jsonl"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_replay_is_identical(workspace: Path, name: str) -> None:
    h = SCENARIOS[name](workspace)
    original = h.run()
    result = asyncio.run(replay_run(_events_path(h), make_registry(workspace)))
    assert result.divergence is None, result.divergence.describe()
    assert (result.outcome.status, result.outcome.reason, result.outcome.answer) == (
        original.status, original.reason, original.answer)
    assert result.outcome.totals == original.totals


def test_replay_does_not_run_tools(workspace: Path) -> None:
    h = _approved_write(workspace)
    h.run()
    (workspace / "o.txt").unlink()
    result = asyncio.run(replay_run(_events_path(h), make_registry(workspace)))
    assert result.identical and not (workspace / "o.txt").exists()


@pytest.mark.tampered_record
def test_tampered_recording_reports_divergence(workspace: Path) -> None:
    h = _happy(workspace)
    h.run()
    path = _events_path(h)
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        ev = json.loads(line)
        if ev["type"] == "tool_call":
            ev["data"]["result"]["output"] = "tampered"
            lines[i] = json.dumps(ev)
    path.write_text("\n".join(lines) + "\n")
    result = asyncio.run(replay_run(path, make_registry(workspace)))
    d = result.divergence
    # the tampered tool result is served as recorded, so the step's recorded outcome no longer matches
    assert d is not None and (d.step, d.event) == ("s1", "step_finished")
    assert (d.field, d.recorded, d.replayed) == ("output", "alpha\nbeta\n", "tampered")
    assert "field output" in d.describe()


@pytest.mark.tampered_record
def test_an_input_never_asked_for_does_not_hold_the_replay(workspace: Path) -> None:
    """A record with an input the replay never asks for, received before every other: the inputs
    after it are served once the replay has nothing else to do (no clock is waited on), the
    replay ends as the run did, and the comparison names the input."""
    h = _parallel(workspace)
    original = h.run()
    path = _events_path(h)
    lines = path.read_text().splitlines()
    ghost = {"schema_version": 1, "seq": 2, "time": 0.0, "type": "tool_call", "run_id": h.run_id,
             "step_id": "ghost", "data": {"tool": "nap", "args": {}, "attempt": 1,
                                           "result": {"tool": "nap", "ok": True, "output": "boo", "error": None,
                                                      "duration_ms": 1.0, "truncated": False}}}
    path.write_text("\n".join([*lines, json.dumps(ghost)]) + "\n")
    result = asyncio.run(replay_run(path, make_registry(workspace)))
    assert (result.outcome.status, result.outcome.answer) == (original.status, original.answer)
    d = result.divergence
    assert d is not None and (d.step, d.event, d.field) == ("ghost", "tool_call", "(event)")


def test_a_check_of_the_workspace_is_served_from_the_record(workspace: Path) -> None:
    """An edit's check reads the workspace (the search text must be in the file): the record keeps
    each answer as the step got it (a refusal, then a pass after the correction), and the replay
    serves them, so it is identical with the file gone."""
    h = _edits(workspace)
    h.run()
    checks = [(e.step_id, e.data["ok"]) for e in h.recording().of_type("args_checked")]
    assert checks == [("s3", False), ("s3", True)]
    (workspace / "calc.py").unlink()
    result = asyncio.run(replay_run(_events_path(h), make_registry(workspace)))
    assert result.identical, result.divergence and result.divergence.describe()


def test_live_tools_rerun_reads(workspace: Path) -> None:
    h = _happy(workspace)
    h.run()
    (workspace / "notes.txt").write_text("changed\n")
    result = asyncio.run(replay_run(_events_path(h), make_registry(workspace), live_tools=True))
    d = result.divergence
    assert d is not None and d.step == "s1" and d.event == "tool_call"
