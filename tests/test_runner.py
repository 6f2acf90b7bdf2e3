"""Executing plans through the state machine, with the scripted model: the run-level scenarios."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import pytest
from runkit import EpisodeSink, Harness, config, plan, review, step

from agentcli.engine.approval import ApprovalDecision, ApprovalRequest, Approver
from agentcli.models.fakes import ScriptedModel


def transitions(h: Harness) -> list[str]:
    return [e.data["to"] for e in h.recording().of_type("transition")]


def test_happy_path(workspace: Path) -> None:
    (workspace / "notes.txt").write_text("alpha\nbeta\n")
    p = plan(step("s1", "read_file", path="notes.txt"),
             step("s2", prompt="Summarise: {{s1.output}}", deps=["s1"]))
    model = ScriptedModel(["two lines: alpha and beta", review(answer="alpha, beta")])
    h = Harness(workspace, config(), model, [p])
    out = h.run()
    assert (out.status, out.reason, out.exit_code, out.answer) == ("COMPLETE", "complete", 0, "alpha, beta")
    assert [s["status"] for s in out.steps] == ["ok", "ok"]
    # the llm step saw the file's content through the reference
    assert "alpha\nbeta" in model.requests[0].messages[-1]["content"]
    assert transitions(h) == ["PLANNING", "EXECUTING", "WAITING_TOOL", "EXECUTING", "REVIEWING", "COMPLETE",
                              "IDLE"]
    types = [e.type for e in h.recording().events]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    for t in ("plan_created", "step_started", "tool_call", "approval", "llm_call", "budget_check",
              "step_finished", "review"):
        assert t in types
    assert out.totals["calls"] == 2


def test_invalid_args_self_corrected(workspace: Path) -> None:
    (workspace / "a.txt").write_text("content of a")
    # after resolution, path gets a list (list_files output): invalid; the model corrects it
    p = plan(step("s1", "list_files", pattern="*.txt"),
             step("s2", "read_file", deps=["s1"], path="{{s1.output}}"))
    model = ScriptedModel([{"path": "a.txt"}, review(answer="content of a")])
    h = Harness(workspace, config(), model, [p])
    out = h.run()
    assert out.status == "COMPLETE"
    s2 = out.steps[1]
    assert s2["status"] == "ok" and s2["corrections"] == 1
    fix_prompt = model.requests[0].messages[-1]["content"]
    assert "path" in fix_prompt and "valid string" in fix_prompt
    assert any(e.data.get("kind") == "args_corrected" for e in h.recording().of_type("review"))


def test_tool_timeout_retried_then_success(workspace: Path) -> None:
    p = plan(step("s1", "flaky", attempts=2, key="k"))
    h = Harness(workspace, config(), ScriptedModel([review(answer="ok k")]), [p])
    out = h.run()
    assert out.status == "COMPLETE"
    assert out.steps[0]["attempts"] == 2 and h.counters.calls["k"] == 2
    results = [e.data["result"] for e in h.recording().of_type("tool_call")]
    assert [r["ok"] for r in results] == [False, True]
    assert results[0]["error"]["type"] == "timeout"


def test_failed_step_replan_then_complete(workspace: Path) -> None:
    (workspace / "real.txt").write_text("found it")
    first = plan(step("s1", "read_file", path="missing.txt"))
    second = plan(step("s1", "read_file", path="real.txt"), plan_id="plan-2")
    model = ScriptedModel([review("replan", reason="missing.txt does not exist"), review(answer="found it")])
    h = Harness(workspace, config(), model, [first, second])
    out = h.run()
    assert (out.status, out.answer) == ("COMPLETE", "found it")
    assert h.replans[0].reason == "missing.txt does not exist"
    assert h.replans[0].runs["s1"].status == "failed"
    # the new step was renumbered after the old ones and ran
    assert [s["id"] for s in out.steps] == ["s2"] and out.steps[0]["status"] == "ok"
    assert transitions(h) == ["PLANNING", "EXECUTING", "WAITING_TOOL", "EXECUTING", "REVIEWING", "REPLANNING",
                              "EXECUTING", "WAITING_TOOL", "EXECUTING", "REVIEWING", "COMPLETE", "IDLE"]


def test_complete_with_nothing_done_and_nothing_said_is_replanned(workspace: Path) -> None:
    (workspace / "real.txt").write_text("found it")
    first = plan(step("s1", "read_file", path="missing.txt"))
    second = plan(step("s1", "read_file", path="real.txt"), plan_id="plan-2")
    model = ScriptedModel([review(answer=""), review(answer="found it")])
    h = Harness(workspace, config(), model, [first, second])
    out = h.run()
    assert (out.status, out.answer) == ("COMPLETE", "found it")
    assert h.replans[0].reason == "no step succeeded; the task is not done"


def test_episode_keeps_the_plan_only_when_every_step_succeeded(workspace: Path) -> None:
    (workspace / "a.txt").write_text("A")
    sink = EpisodeSink()
    ok = plan(step("s1", "read_file", path="a.txt"), task="read a.txt")
    assert Harness(workspace, config(), ScriptedModel([review(answer="A")]), [ok], memory=sink).run("read a.txt")
    partial = plan(step("s1", "read_file", path="a.txt"), step("s2", "read_file", path="nope.txt"))
    out = Harness(workspace, config(), ScriptedModel([review(answer="A, and nope.txt is missing")]), [partial],
                  memory=sink, run_id="run-2").run()
    assert out.status == "COMPLETE"
    first, second = sink.episodes
    assert first["status"] == "COMPLETE" and json.loads(first["plan"])["steps"][0]["args"] == {"path": "a.txt"}
    assert second["status"] == "COMPLETE" and second["plan"] is None and "nope.txt" in second["plan_summary"]


def test_completed_steps_kept_on_replan(workspace: Path) -> None:
    (workspace / "a.txt").write_text("A")
    first = plan(step("s1", "read_file", path="a.txt"), step("s2", "read_file", path="nope.txt"))
    second = plan(step("s1", "read_file", path="a.txt"), plan_id="plan-2")
    model = ScriptedModel([review("replan", reason="nope"), review(answer="A")])
    h = Harness(workspace, config(), model, [first, second])
    out = h.run()
    assert out.status == "COMPLETE"
    assert [(s["id"], s["status"]) for s in out.steps] == [("s1", "ok"), ("s3", "ok")]
    reads = [e for e in h.recording().of_type("tool_call") if e.step_id == "s1"]
    assert len(reads) == 1  # s1 was not run again


def test_denied_approval_without_tty(workspace: Path) -> None:
    p = plan(step("s1", "write_file", approval=True, risk="write", path="out.txt", content="x"))
    h = Harness(workspace, config(), ScriptedModel([]), [p])
    out = h.run()
    assert (out.status, out.reason, out.exit_code) == ("FAILED", "denied", 4)
    assert "--yes" in out.answer
    assert not (workspace / "out.txt").exists()
    [approval] = h.recording().of_type("approval")
    assert approval.data["decision"] == "denied" and approval.data["decided_by"] == "policy"
    assert transitions(h)[-3:] == ["REVIEWING", "FAILED", "IDLE"]


def test_yes_approves_ask_steps(workspace: Path) -> None:
    p = plan(step("s1", "write_file", approval=True, risk="write", path="out.txt", content="x"))
    h = Harness(workspace, config(), ScriptedModel([review()]), [p], yes=True)
    out = h.run()
    assert out.status == "COMPLETE" and (workspace / "out.txt").read_text() == "x"
    intents = list(h.recording().of_type("tool_intent"))
    assert len(intents) == 1  # written durably before the write happened


def test_interactive_abort(workspace: Path) -> None:
    p = plan(step("s1", "write_file", approval=True, risk="write", path="out.txt", content="x"))
    h = Harness(workspace, config(), ScriptedModel([]), [p], prompt_answers=["abort"])
    out = h.run()
    assert (out.status, out.reason, out.exit_code) == ("FAILED", "aborted", 4)
    assert not (workspace / "out.txt").exists()


def test_only_a_question_to_a_person_leaves_the_loop(workspace: Path) -> None:
    """An approval a person answers blocks on the terminal, so it is asked off the event loop
    (other steps go on); a decision nobody is asked for (a flag, the policy, no terminal) is made
    on the loop, without a thread."""
    asked_in: list[bool] = []
    p = plan(step("s1", "write_file", approval=True, risk="write", path="out.txt", content="x"))
    h = Harness(workspace, config(), ScriptedModel([review()]), [p], prompt_answers=["yes"])
    real = Approver.decide

    def spy(self: Approver, req: ApprovalRequest) -> ApprovalDecision:
        asked_in.append(threading.current_thread() is threading.main_thread())
        return real(self, req)

    other = workspace / "other"
    other.mkdir()
    h2 = Harness(other, config(), ScriptedModel([review()]), [p], yes=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Approver, "decide", spy)
        assert h.run().status == "COMPLETE" and h2.run().status == "COMPLETE"
    assert asked_in == [False, True]
    req = ApprovalRequest("s1", "write_file", "write", {}, "h", requires_approval=False)
    policy = config().approval
    assert Approver(policy, prompt=lambda r: "yes").asks(req)
    assert not Approver(policy, prompt=lambda r: "yes", yes=True).asks(req)
    assert not Approver(policy).asks(req)  # no terminal: denied by the policy, nobody asked
    read = ApprovalRequest("s1", "read_file", "read", {}, "h", requires_approval=False)
    assert not Approver(policy, prompt=lambda r: "yes").asks(read)


def test_plan_not_confirmed(workspace: Path) -> None:
    p = plan(step("s1", "list_files"))
    h = Harness(workspace, config(), ScriptedModel([]), [p], confirm_answers=[False])
    out = h.run()
    assert (out.status, out.reason, out.exit_code) == ("FAILED", "denied", 4)
    assert transitions(h) == ["PLANNING", "FAILED", "IDLE"]


@pytest.mark.parametrize("which", ["tokens", "cost"])
def test_budget_refuses_llm_call_before_sending(workspace: Path, which: str) -> None:
    p = plan(step("s1", prompt="write a poem"))
    budget = {"max_tokens": 50} if which == "tokens" else {"max_cost_usd": 0.0000001}
    model = ScriptedModel(["a poem", review()])
    h = Harness(workspace, config(budget=budget), model, [p])
    out = h.run()
    assert (out.status, out.reason, out.exit_code) == ("FAILED", f"budget_exceeded:{which}", 3)
    assert model.requests == []  # the call that would cross the budget was never made
    checks = [e.data for e in h.recording().of_type("budget_check")]
    assert checks[-1]["ok"] is False and checks[-1]["which"] == which


def test_unknown_price_refused_under_cost_budget_when_not_allowed(workspace: Path) -> None:
    p = plan(step("s1", prompt="x"))
    model = ScriptedModel(["y", review()], price=None)
    out = Harness(workspace, config(budget={"allow_unknown_price": False}), model, [p]).run()
    assert out.reason == "budget_exceeded:cost" and "unknown" in out.answer
    assert model.requests == []
    # The default: allowed, counted as $0 (the totals count the unpriced calls).
    model = ScriptedModel(["y", review()], price=None)
    out = Harness(workspace, config(), model, [p], run_id="run-2").run()
    assert out.status == "COMPLETE" and out.totals["unpriced_calls"] == 2


def test_step_budget(workspace: Path) -> None:
    p = plan(step("s1", "list_files"), step("s2", "list_files", deps=["s1"]))
    out = Harness(workspace, config(budget={"max_steps": 1}), ScriptedModel([]), [p]).run()
    assert (out.reason, out.exit_code) == ("budget_exceeded:steps", 3)
    assert [s["status"] for s in out.steps] == ["ok", "pending"]


def test_time_budget_cancels_running_tool(workspace: Path) -> None:
    p = plan(step("s1", "nap", seconds=5))
    out = Harness(workspace, config(budget={"max_seconds": 0.5}), ScriptedModel([]), [p]).run()
    assert (out.reason, out.exit_code) == ("budget_exceeded:seconds", 3)
    assert out.duration_s < 4


def test_replan_budget(workspace: Path) -> None:
    p = plan(step("s1", "read_file", path="missing.txt"))
    model = ScriptedModel([review("replan", reason="missing")])
    out = Harness(workspace, config(budget={"max_replans": 0}), model, [p]).run()
    assert (out.reason, out.exit_code) == ("budget_exceeded:replans", 3)


def test_independent_steps_overlap(workspace: Path) -> None:
    p = plan(*(step(f"s{i}", "nap", seconds=0.3, label=f"n{i}") for i in range(1, 5)))
    h = Harness(workspace, config(executor={"max_parallel": 4}), ScriptedModel([review()]), [p])
    out = h.run()
    assert out.status == "COMPLETE"
    ev = h.recording()
    starts = {e.step_id: e.time for e in ev.of_type("step_started")}
    ends = {e.step_id: e.time for e in ev.of_type("step_finished")}
    # every step started before any other finished: they ran at the same time
    assert max(starts.values()) < min(ends.values())


def test_max_parallel_one_serialises(workspace: Path) -> None:
    p = plan(*(step(f"s{i}", "nap", seconds=0.05, label=f"n{i}") for i in range(1, 4)))
    h = Harness(workspace, config(executor={"max_parallel": 1}), ScriptedModel([review()]), [p])
    h.run()
    ev = h.recording()
    starts = sorted((e.time, e.step_id) for e in ev.of_type("step_started"))
    ends = {e.step_id: e.time for e in ev.of_type("step_finished")}
    for (_, a), (t_next, _) in itertools.pairwise(starts):
        assert ends[a] <= t_next


def test_continue_skips_failed_and_dependents(workspace: Path) -> None:
    (workspace / "ok.txt").write_text("fine")
    p = plan(step("s1", "read_file", path="missing.txt"), step("s2", "read_file", path="ok.txt"),
             step("s3", prompt="use {{s1.output}}", deps=["s1"]))
    h = Harness(workspace, config(executor={"max_parallel": 1}),
                ScriptedModel([review("continue", reason="s1 is optional"), review(answer="fine")]), [p])
    out = h.run()
    assert out.status == "COMPLETE"
    assert {s["id"]: s["status"] for s in out.steps} == {"s1": "skipped", "s2": "ok", "s3": "skipped"}


def test_continue_skips_dependents_in_plan_order(workspace: Path) -> None:
    # After "continue", the steps that depend on the skipped s1 are skipped as one scan of the plan
    # in order meets them: s3, then s4 (which depends on s3) in the same pass. s2 comes before s4,
    # so that pass found it still waiting; no step is left to run, so it stays pending.
    (workspace / "ok.txt").write_text("fine")
    p = plan(step("s1", "read_file", path="missing.txt"), step("s2", "read_file", path="ok.txt", deps=["s4"]),
             step("s3", "read_file", path="ok.txt", deps=["s1"]), step("s4", "read_file", path="ok.txt", deps=["s3"]))
    h = Harness(workspace, config(executor={"max_parallel": 1}),
                ScriptedModel([review("continue", reason="s1 is optional"), review(answer="fine")]), [p])
    out = h.run()
    # No step succeeded and "fine" is in no step's output: the reviewer's "complete" is overruled.
    assert (out.status, out.reason) == ("FAILED", "not_done")
    assert {s["id"]: s["status"] for s in out.steps} == {"s1": "skipped", "s2": "pending", "s3": "skipped",
                                                         "s4": "skipped"}
    finished = [(e.step_id, e.data["status"]) for e in h.recording().of_type("step_finished")]
    assert finished == [("s1", "failed"), ("s3", "skipped"), ("s4", "skipped")]


def test_a_complete_verdict_with_nothing_done_and_nothing_found_is_overruled(workspace: Path) -> None:
    # Every step failed, and the answer quotes nothing any step returned: the record says the task
    # is not done, whatever the reviewer says.
    h = Harness(workspace, config(), ScriptedModel([review(answer="tox.ini sets envlist = py312")]),
                [plan(step("s1", "read_file", path="tox.ini"))])
    out = h.run()
    assert (out.status, out.reason, out.exit_code) == ("FAILED", "not_done", 1)
    assert "no step succeeded" in out.answer
    verdicts = [(e.data["kind"], e.data.get("outcome")) for e in h.recording().of_type("review")]
    assert verdicts == [("verdict", "complete"), ("overruled", "failed")]
    overruled = list(h.recording().of_type("review"))[-1].data
    assert overruled["answer"] == "tox.ini sets envlist = py312" and "not grounded" in overruled["reason"]
    assert transitions(h)[-3:] == ["REVIEWING", "FAILED", "IDLE"]


def test_a_complete_verdict_that_quotes_a_failed_steps_output_stands(workspace: Path) -> None:
    # The command failed, but its output is what the task asked about: an answer drawn from it is
    # the run's finding, and the reviewer's "complete" stands.
    cmd = "echo 'collected 3 items: 1 failed (test_parse_dates)'; exit 1"
    h = Harness(workspace, config(), ScriptedModel([review(answer="1 test fails: test_parse_dates")]),
                [plan(step("s1", "run_shell", command=cmd))], yes=True)
    out = h.run()
    assert [s["status"] for s in out.steps] == ["failed"]
    assert (out.status, out.exit_code) == ("COMPLETE", 0)
    assert [e.data["kind"] for e in h.recording().of_type("review")] == ["verdict"]
