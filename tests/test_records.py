"""Run records as typed data: one payload model per event type, one reader, old records readable."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from runkit import Harness, config, make_registry, plan, review, step
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.engine.replay import replay_run
from agentcli.models.fakes import ScriptedModel
from agentcli.models.profile import ModelProfile
from agentcli.record import events as ev
from agentcli.record.events import PAYLOADS, Event, EventLog, read_events
from agentcli.record.reader import RunRecord
from agentcli.redact import Redactor

FIXTURES = Path(__file__).parent / "fixtures" / "records"
ROOT = Path(__file__).resolve().parents[1]

# One payload of every event type, as a writer builds it.
_EXAMPLES: list[ev.Payload] = [
    ev.RunStarted(task="t", config_digest="d", versions={"agentcli": "0"}, model="m", config={"a": 1}),
    ev.PlanCreated(replan=False, plan={"id": "p", "steps": []}),
    ev.TransitionMade(src="IDLE", to="PLANNING", reason="task received"),
    ev.StepStarted(title="s1 read", kind="tool", tool="read_file"),
    ev.LlmCall(call_id="c", attempt=1, role="planner", outcome="ok", request_hash="h", model="m",
               request=ev.RecordedRequest(messages=[{"role": "user", "content": "é"}], max_tokens=5,
                                          temperature=0.0, seed=1),
               response=ev.RecordedResponse(text="x", tool_calls=[], input_tokens=1, output_tokens=2, model="m"),
               usage=ev.RecordedUsage(input_tokens=1, output_tokens=2), cost_usd=0.5, latency_ms=1.5,
               price=ev.RecordedPrice(input=0.1, output=0.2)),
    ev.ToolIntent(tool="write_file", args={"path": "a"}, attempt=1),
    ev.ArgsChecked(tool="apply_edits", ok=False, error={"type": "invalid_args", "message": "not found"}),
    ev.ToolCalled(tool="read_file", args={"path": "a"}, attempt=1,
                  result={"tool": "read_file", "ok": True, "output": "x", "error": None, "duration_ms": 1.0}),
    ev.StepFinished(status="ok", attempts=1, output={"k": [1, 2]}, error=None, input_tokens=0, output_tokens=0,
                    cost_usd=None),
    ev.ApprovalMade(tool="write_file", args_hash="a", plan_hash="p", decided_by="policy", decision="approved",
                    message="", risk="write"),
    ev.BudgetChecked(kind="step", ok=True, which=None, step_id="s1", steps=1),
    ev.MemoryRecalled(query="q", tiers=["episodic"], hits=[], took_ms=1.0),
    ev.MemoryWritten(tier="episodic", error="boom"),
    ev.Reviewed(kind="verdict", outcome="complete", answer="a", reason=""),
    ev.WorkspaceChanged(known=True, files=[{"path": "a.txt", "status": "M"}]),
    ev.Verified(command="make test", status="passed", exit_code=0, output="ok", duration_s=0.1,
                approval_wait_s=0.0),
    ev.Hooked(hook=0, event="pre_tool", command="true", tool="read_file", exit_code=0, outcome="ok", message="",
              stdout="", stderr="", duration_ms=1.0),
    ev.RunFinished(status="COMPLETE", reason="complete", answer="a", totals={}, budget={}, exit_code=0),
    ev.CheckpointMade(schema_version=1, phase="before", commit="c0ffee", tree="t", changed=0, skipped=[], ms=1.0,
                      step="s1"),
    ev.Undone(kind="undo", before_undo="a", after_undo="b", files=[]),
    ev.ResumeDecided(decision="stop", decided_by="policy", tool="run_shell", args={"command": "x"}, attempt=1,
                     reason="the tool was started but its result was never recorded"),
    ev.SessionStarted(workspace="/w", forked_from="s-1", fork_turn=2),
    ev.TurnStarted(turn=3, run_id="r", task="rename it", after=2,
                   ledger=ev.LedgerMade(sha256="ab", tokens=10, budget=4000, forms={"1": "full"}, basis={"r0": 7})),
    ev.SessionRolledBack(to_turn=1, undone=["r"]),

    ev.UserSaid(kind="steer", text="do the docs too", at="boundary", plan_hash="p", done=["s1"]),
]


def test_every_event_type_has_a_payload_model() -> None:
    assert set(PAYLOADS) == set(ev._EVENT_TYPES)
    assert {type(p) for p in _EXAMPLES} == set(PAYLOADS.values())


def test_typed_events_are_what_the_event_model_writes_and_read_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "r" / "events.jsonl"
    log = EventLog(path, "r")
    for p in _EXAMPLES:
        log.emit(p, step_id="s1")
    log.close()
    lines = path.read_bytes().splitlines()
    rec = RunRecord.read(path)
    assert not rec.warnings
    for raw, p, typed in zip(lines, _EXAMPLES, rec.items, strict=True):
        line = json.loads(raw)
        expected = Event(seq=line["seq"], time=line["time"], type=p.TYPE, run_id="r", step_id="s1",
                         data=Redactor()(p.event_data())).model_dump(mode="json")
        assert line == expected and list(line["data"]) == list(expected["data"])  # values and key order
        assert typed.data == p


def test_payloads_write_only_what_the_writer_set() -> None:
    # The line keeps the shape it always had: defaults fill in on reading, not on writing.
    assert ev.Reviewed(kind="grounded", outcome="complete").event_data() == {"kind": "grounded",
                                                                            "outcome": "complete"}
    assert ev.TransitionMade(src="A", to="B").event_data() == {"from": "A", "to": "B"}


def test_schema_1_record_reads_as_it_is() -> None:
    rec = RunRecord.read(FIXTURES / "v1-replan" / "events.jsonl")
    assert not rec.warnings
    assert rec.task == "the task" and rec.status == "COMPLETE" and rec.finish is not None
    assert [p.replan for p in rec.plans] == [False, True] and rec.replans == 1
    assert [s.id for s in rec.plans[1].plan.steps] == ["s1", "s4", "s5", "s6"]
    assert {sid: s.status for sid, s in rec.steps.items()} == {"s1": "ok", "s3": "failed", "s4": "ok",
                                                               "s5": "ok", "s6": "ok"}
    assert rec.steps["s1"].output == "alpha\nbeta\n"
    assert len(rec.calls) == 4 and rec.cost_usd > 0 and rec.unpriced_calls == 0
    assert [a.data.decision for a in rec.approvals].count("approved") == 4
    assert rec.fork is None and rec.confirmations() == [True, True]


def test_a_replan_that_keeps_steps_replays_identical(workspace: Path) -> None:
    # Before the fix, replay merged the recorded (already merged) re-plan a second time: the kept
    # step s1 stayed, the new steps were renumbered again and the plan_created events differed.
    (workspace / "a.txt").write_text("A")
    (workspace / "b.txt").write_text("B")
    first = plan(step("s1", "read_file", path="a.txt"), step("s2", "read_file", path="missing.txt"))
    second = plan(step("s1", "read_file", path="b.txt"), step("s2", prompt="join {{s1.output}}", deps=["s1"]),
                  plan_id="plan-2")
    h = Harness(workspace, config(), ScriptedModel([review("replan", reason="missing"), "AB",
                                                    review(answer="AB")]), [first, second])
    out = h.run()
    assert out.status == "COMPLETE" and [s["id"] for s in out.steps] == ["s1", "s3", "s4"]
    result = asyncio.run(replay_run(h.events_path, make_registry(workspace)))
    assert result.divergence is None, result.divergence.describe()
    assert [s["id"] for s in result.outcome.steps] == ["s1", "s3", "s4"]


def test_a_provider_without_json_schema_replays_identical(workspace: Path) -> None:
    # Live, such a provider gets JSON mode and the schema as an extra system message; the replay
    # must send the same request, or its hash is not in the recording.
    (workspace / "a.txt").write_text("A")
    model = ScriptedModel([review(answer="A")], profile=ModelProfile(structured_output="json_object", source="fake"))
    h = Harness(workspace, config(), model, [plan(step("s1", "read_file", path="a.txt"))])
    assert h.run().status == "COMPLETE"
    assert model.requests[0].response_format == {"type": "json_object"}
    result = asyncio.run(replay_run(h.events_path, make_registry(workspace)))
    assert result.divergence is None, result.divergence.describe()


def _broken_copy(workspace: Path) -> Path:
    runs = workspace / ".agent" / "runs" / "run-v1"
    runs.mkdir(parents=True)
    lines = (FIXTURES / "v1-replan" / "events.jsonl").read_text().splitlines()
    for i, line in enumerate(lines):
        e = json.loads(line)
        if e["type"] == "step_finished" and e["step_id"] == "s3":
            e["data"]["attempts"] = "many"  # not an int
            lines[i] = json.dumps(e)
    (runs / "events.jsonl").write_text("\n".join(lines) + "\n")
    return runs / "events.jsonl"


def test_a_malformed_event_is_one_warning_and_the_rest_reads(workspace: Path) -> None:
    rec = RunRecord.read(_broken_copy(workspace))
    assert rec.warnings == ["event 19 of run-v1 is malformed: attempts: Input should be a valid integer, "
                            "unable to parse string as an integer"]
    assert "s3" not in rec.steps and rec.status == "COMPLETE" and len(rec.plans) == 2


def test_runs_list_and_show_show_the_rest_of_a_malformed_record(workspace: Path) -> None:
    _broken_copy(workspace)
    runner = CliRunner()
    state = State(environ={"AGENT_MODEL": "test/scripted"})
    listed = runner.invoke(app, ["runs", "list", "--json"], obj=state)
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["status"] == "COMPLETE" and row["steps"] == 4
    assert row["warnings"] == ["event 19 of run-v1 is malformed: attempts: Input should be a valid integer, "
                               "unable to parse string as an integer"]
    shown = runner.invoke(app, ["runs", "show", "run-v1"], obj=State(environ={"AGENT_MODEL": "test/scripted"}))
    assert shown.exit_code == 0 and "Traceback" not in shown.output
    assert "event 19 of run-v1 is malformed" in shown.output and "COMPLETE" in shown.output


# Where a module takes an event's ``data`` apart by hand: ``<event>.data``, ``["data"]``.
_PARSING = re.compile(r"\b(?:e|ev|event|evt|start|finished|rec\.\w+\([^)]*\))\.data\b(?!_)|\[\"data\"\]")


def test_no_module_but_the_reader_parses_event_dicts() -> None:
    allowed = {ROOT / "agentcli" / "record" / "reader.py", ROOT / "agentcli" / "record" / "events.py"}
    offenders = []
    for path in sorted([*(ROOT / "agentcli").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]):
        if path in allowed:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _PARSING.search(line) or ".of_type(" in line or "read_events(" in line:
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "parse records with agentcli.record.reader.RunRecord:\n" + "\n".join(offenders)


def test_reading_raw_events_still_works_for_tools_that_want_lines(tmp_path: Path) -> None:
    path = tmp_path / "r" / "events.jsonl"
    log = EventLog(path, "r")
    log.emit(ev.TransitionMade(src="IDLE", to="PLANNING"))
    log.close()
    [e] = read_events(path).events
    assert e.data == {"from": "IDLE", "to": "PLANNING"}


def _data(p: ev.Payload) -> dict[str, Any]:
    return p.event_data()


@pytest.mark.parametrize("payload", _EXAMPLES, ids=lambda p: p.TYPE)
def test_every_payload_validates_its_own_line(payload: ev.Payload) -> None:
    assert type(payload).model_validate(_data(payload)) == payload


def test_a_fork_is_a_whole_run(workspace: Path) -> None:
    # A fork gets what `agent run` gets from the composition root: the per-call log, memory (its
    # episode), telemetry, and budgets from today's config and flags.
    (workspace / "notes.txt").write_text("alpha\n")
    draft = {"steps": {"s1": {"call": {"tool": "read_file", "args": {"path": "notes.txt"}}, "depends_on": [],
                              "title": "read"},
                       "s2": {"prompt": "Summarise {{s1.output}}", "depends_on": ["s1"], "title": "sum"}}}
    env = {"AGENT_MODEL": "test/scripted", "AGENT_LLM__BACKOFF_BASE_SECONDS": "0"}
    runner = CliRunner()
    done = runner.invoke(app, ["run", "--yes", "--json", "summarise the notes"],
                         obj=State(backend=ScriptedModel([draft, "alpha it is", review(answer="alpha")]), environ=env))
    assert done.exit_code == 0, done.output
    parent = json.loads(done.stdout)["run_id"]
    fork_env = {**env, "AGENT_TELEMETRY__EXPORTER": "console", "AGENT_BUDGET__MAX_STEPS": "7"}
    forked = runner.invoke(app, ["replay", parent, "--from", "s2", "--yes", "--json"],
                           obj=State(backend=ScriptedModel(["a fresh summary", review(answer="fresh")]),
                                     environ=fork_env))
    assert forked.exit_code == 0, forked.output
    fork_id = json.loads(forked.stdout)["fork"]
    folder = workspace / ".agent" / "runs" / fork_id
    calls = [json.loads(line) for line in (folder / "llm_calls.jsonl").read_text().splitlines()]
    assert [c["role"] for c in calls if c.get("event") == "llm_call"] == ["executor", "reviewer"]  # the live ones
    rec = RunRecord.read(folder / "events.jsonl")
    assert rec.fork is not None and (rec.fork.parent, rec.fork.from_step) == (parent, "s2")
    assert rec.finish is not None and rec.finish.answer == "fresh"
    assert rec.recorded_config().budget.max_steps == 7
    episodes = [t.data for t in rec.of(ev.MemoryWritten) if t.data.tier == "episodic"]
    assert episodes and episodes[0].error is None  # its episode is in memory
    assert "invoke_agent" in forked.stderr and fork_id in forked.stderr  # its trace was exported


def test_a_resumed_run_replays_identical(workspace: Path) -> None:
    # Stopped by its token budget, resumed with the default one: the replay runs both parts, the
    # second from the state the record had reached, as `agent run --resume` does.
    (workspace / "a.txt").write_text("A")
    p = plan(step("s1", "read_file", path="a.txt"), step("s2", prompt="say {{s1.output}}", deps=["s1"]))
    (workspace / "p.json").write_text(p.model_dump_json())
    env = {"AGENT_MODEL": "test/scripted", "AGENT_MEMORY__ENABLED": "false"}
    runner = CliRunner()
    first = runner.invoke(app, ["run", "--yes", "--json", "--max-tokens", "500", "--plan", "p.json"],
                          obj=State(backend=ScriptedModel([]), environ=env))
    out = json.loads(first.stdout)
    assert out["reason"] == "budget_exceeded:tokens", first.output
    resumed = runner.invoke(app, ["run", "--resume", out["run_id"], "--yes", "--json"],
                            obj=State(backend=ScriptedModel(["A said", review(answer="A")]), environ=env))
    assert json.loads(resumed.stdout)["status"] == "COMPLETE", resumed.output
    rec = RunRecord.open(workspace / ".agent", out["run_id"])
    assert rec.resumed == 1 and rec.status == "COMPLETE"
    replayed = runner.invoke(app, ["replay", out["run_id"], "--json"], obj=State(environ=env))
    verdict = json.loads(replayed.stdout)
    assert verdict["identical"], verdict["divergence"]
    assert verdict["status"] == "COMPLETE"


def test_forks_of_forks_replay_identical(workspace: Path) -> None:
    (workspace / "notes.txt").write_text("alpha\n")
    draft = {"steps": {"s1": {"call": {"tool": "read_file", "args": {"path": "notes.txt"}}, "depends_on": [],
                              "title": "read"},
                       "s2": {"prompt": "Summarise {{s1.output}}", "depends_on": ["s1"], "title": "sum"}}}
    env = {"AGENT_MODEL": "test/scripted", "AGENT_MEMORY__ENABLED": "false"}
    runner = CliRunner()
    done = runner.invoke(app, ["run", "--yes", "--json", "summarise the notes"],
                         obj=State(backend=ScriptedModel([draft, "alpha it is", review(answer="alpha")]), environ=env))
    run_id = json.loads(done.stdout)["run_id"]
    chain = [run_id]
    for n in range(2):
        forked = runner.invoke(app, ["replay", chain[-1], "--from", "s2", "--yes", "--json"],
                               obj=State(backend=ScriptedModel([f"summary {n}", review(answer=f"a{n}")]),
                                         environ=env))
        assert forked.exit_code == 0, forked.output
        chain.append(json.loads(forked.stdout)["fork"])
    grandchild = RunRecord.open(workspace / ".agent", chain[2])
    assert grandchild.fork is not None and grandchild.fork.parent == chain[1]
    assert grandchild.finish is not None and grandchild.finish.answer == "a1"
    for rid in chain:
        verdict = json.loads(runner.invoke(app, ["replay", rid, "--json"], obj=State(environ=env)).stdout)
        assert verdict["identical"], (rid, verdict["divergence"])
