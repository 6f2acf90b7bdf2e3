"""The user's words during a run, through the run's loop: feedback at the plan's confirmation and at
a step's approval, and steering messages taken at step boundaries. Every run here is replayed at
the end of the session (tests/conftest.py); some are replayed here too, to show the words are
served from the record."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from runkit import Harness, config, make_registry, plan, review, step

from agentcli.config import Settings
from agentcli.engine.approval import Answer, ApprovalRequest, Approver
from agentcli.engine.replay import replay_run
from agentcli.engine.runner import ReplanContext, RunOutcome, run
from agentcli.engine.session import RunSession
from agentcli.engine.steering import Boundary, Feedback, PlanRevision, SteeringQueue, check_words
from agentcli.models.fakes import ScriptedModel
from agentcli.planning.diff import plan_diff
from agentcli.planning.plan import Plan
from agentcli.record.reader import RunRecord


class Run:
    """A run whose planner, confirmation, approval prompt and steering are scripted."""

    def __init__(self, h: Harness, *, confirms: list[bool | Feedback] | None = None,
                 prompts: list[Answer | Feedback] | None = None, steering: Any = None) -> None:
        self.h = h
        self.confirms = list(confirms or [])
        self.prompts = list(prompts or [])
        self.steering = steering
        self.contexts: list[ReplanContext] = []
        self.revisions: list[PlanRevision] = []
        self.shown: list[tuple[str, bool]] = []

    def go(self) -> RunOutcome:
        h = self.h
        queue = list(h.plans)

        async def planner(task: str, ctx: ReplanContext | None) -> Plan:
            if ctx is not None:
                self.contexts.append(ctx)
            return queue.pop(0)

        def confirm(p: Plan, replan: bool) -> bool | Feedback:
            self.shown.append((p.hash, replan))
            return self.confirms.pop(0) if self.confirms else True

        def prompt(req: ApprovalRequest) -> Answer | Feedback:
            return self.prompts.pop(0)

        session = h.session()
        session.approver = Approver(h.config.approval, prompt=prompt)
        deps = session.deps(planner, confirm, steering=self.steering, on_revision=self.revisions.append,
                            verify_command=h.verify)
        try:
            return asyncio.run(run("the task", deps))
        finally:
            session.close()


def moves(rec: RunRecord) -> list[str]:
    """The states a run moved to, tool waits left out."""
    return [t.data.to for t in rec.transitions() if "WAITING_TOOL" not in (t.data.src, t.data.to)]


def _replay(h: Harness) -> None:
    result = asyncio.run(replay_run(h.events_path, Harness(h.workspace, h.config, None, []).session().registry
                                    or pytest.fail("no registry")))
    assert result.identical, result.divergence and result.divergence.describe()


def test_feedback_at_the_plan_revises_it_and_asks_again(workspace: Path) -> None:
    (workspace / "a.txt").write_text("alpha\n")
    (workspace / "utils.py").write_text("def f(): pass\n")
    first = plan(step("s1", "read_file", path="a.txt"))
    second = plan(step("s1", "read_file", path="utils.py"), step("s2", "list_files", pattern="*.py"),
                  plan_id="plan-2")
    h = Harness(workspace, config(), ScriptedModel([review(answer="def f")]), [first, second])
    r = Run(h, confirms=[Feedback("no, read utils.py instead"), True])
    out = r.go()
    assert out.status == "COMPLETE"
    # The planner was asked again with the user's words leading its context, to write s1 on.
    (ctx,) = r.contexts
    text = ctx.text()
    assert text.startswith('The user read the plan below and asked for changes before confirming it: '
                           '"no, read utils.py instead"')
    assert ctx.first_step == 1 and "numbered s1, s2" in text and "read_file" in text
    # Shown as a diff, then confirmed again.
    (rev,) = r.revisions
    assert rev.change.kind == "feedback" and rev.change.at == "plan"
    assert rev.diff.lines() == ['~ s1 read_file: args.path: a.txt -> utils.py', '+ s2 list_files: s2 list_files']
    assert r.shown == [(first.hash, False), (rev.new.hash, False)]
    assert [s["id"] for s in out.steps] == ["s1", "s2"]
    rec = RunRecord.read(h.events_path)
    (said,) = rec.user_messages
    assert (said.data.kind, said.data.at, said.data.text, said.data.plan_hash) == (
        "feedback", "plan", "no, read utils.py instead", first.hash)
    assert [(p.replan, p.by_user) for p in rec.plans] == [(False, False), (True, True)]
    assert rec.replans == 0  # the user's re-plans are not the budget's
    _replay(h)


def test_no_after_feedback_still_stops(workspace: Path) -> None:
    first = plan(step("s1", "list_files", pattern="*"))
    second = plan(step("s1", "list_files", pattern="*.py"), plan_id="plan-2")
    h = Harness(workspace, config(), ScriptedModel([]), [first, second])
    out = Run(h, confirms=[Feedback("only python files"), False]).go()
    assert (out.status, out.reason, out.exit_code) == ("FAILED", "denied", 4)
    assert out.steps == []


def test_feedback_at_an_approval_skips_the_step_and_revises_the_plan(workspace: Path) -> None:
    (workspace / "a.txt").write_text("alpha\n")
    first = plan(step("s1", "read_file", path="a.txt"),
                 step("s2", "write_file", deps=["s1"], path="out.txt", content="x"))
    second = plan(step("s3", "write_file", path="utils.py", content="y"), plan_id="plan-2")
    h = Harness(workspace, config(approval={"write": "ask"}), ScriptedModel([review(answer="wrote utils.py")]),
                [first, second])
    r = Run(h, prompts=[Feedback("no, write utils.py instead"), "yes"], confirms=[True, True])
    out = r.go()
    assert out.status == "COMPLETE", out.answer
    assert not (workspace / "out.txt").exists() and (workspace / "utils.py").read_text() == "y"
    (ctx,) = r.contexts
    assert ctx.user is not None and ctx.user.at == "approval" and ctx.user.step_id == "s2"
    assert ctx.kept == {"s1"} and ctx.first_step == 3
    assert 'declined step s2 (write_file)' in ctx.text() and '"no, write utils.py instead"' in ctx.text()
    # Completed steps kept; the declined one replaced; the revision confirmed again.
    assert [s["id"] for s in out.steps] == ["s1", "s3"]
    (rev,) = r.revisions
    assert rev.diff.lines() == [
        "~ s2 -> s3 write_file: title: s2 write_file -> s3 write_file; args.content: x -> y; "
        "args.path: out.txt -> utils.py"]
    assert r.shown[-1] == (rev.new.hash, True)
    rec = RunRecord.read(h.events_path)
    assert moves(rec) == ["PLANNING", "EXECUTING", "REPLANNING", "EXECUTING", "REVIEWING", "COMPLETE", "IDLE"]
    approval = next(a for a in rec.approvals if a.step_id == "s2")
    assert (approval.data.decision, approval.data.feedback) == ("denied", "no, write utils.py instead")
    (said,) = rec.user_messages
    assert (said.step_id, said.data.at) == ("s2", "approval")
    _replay(h)


class StepSteering:
    """Steers once, at the first boundary where ``after`` has finished."""

    def __init__(self, after: str, words: str) -> None:
        self.after, self.words = after, words
        self.boundaries: list[Boundary] = []

    def take(self, boundary: Boundary) -> str | None:
        self.boundaries.append(boundary)
        if self.after in boundary.done and self.words:
            words, self.words = self.words, ""
            return words
        return None


def test_a_steer_is_taken_at_the_next_step_boundary(workspace: Path) -> None:
    first = plan(step("s1", "nap", seconds=0, label="one"), step("s2", "nap", deps=["s1"], seconds=0, label="two"),
                 step("s3", "nap", deps=["s2"], seconds=0, label="three"))
    second = plan(step("s4", "nap", seconds=0, label="docs"), plan_id="plan-2")
    h = Harness(workspace, config(), ScriptedModel([review(answer="one docs")]), [first, second])
    steering = StepSteering("s1", "skip the rest, do the docs")
    r = Run(h, steering=steering)
    out = r.go()
    assert out.status == "COMPLETE"
    # Asked before each step started, after the last and after the review; taken after s1: s2 and s3 never ran.
    assert [(sorted(b.done), b.kind) for b in steering.boundaries] == [
        ([], "step"), (["s1"], "step"), (["s1"], "step"), (["s1", "s4"], "step"), (["s1", "s4"], "review")]
    assert [(s["id"], s["status"]) for s in out.steps] == [("s1", "ok"), ("s4", "ok")]
    (ctx,) = r.contexts
    assert ctx.kept == {"s1"} and ctx.text().startswith(
        'While the plan below was running, the user sent a message: "skip the rest, do the docs"')
    (rev,) = r.revisions
    assert rev.diff.lines() == ["- s3 nap: s3 nap",
                                "~ s2 -> s4 nap: title: s2 nap -> s4 nap; args.label: two -> docs"]
    assert len(r.shown) == 1  # a steer's plan is confirmed only when it adds a step to approve
    rec = RunRecord.read(h.events_path)
    assert moves(rec) == ["PLANNING", "EXECUTING", "REPLANNING", "EXECUTING", "REVIEWING", "COMPLETE", "IDLE"]
    (said,) = rec.user_messages
    assert (said.data.kind, said.data.at, said.data.done, said.data.plan_hash) == (
        "steer", "boundary", ["s1"], first.hash)
    _replay(h)


def test_a_steer_after_the_last_step_still_revises_the_plan(workspace: Path) -> None:
    first = plan(step("s1", "nap", seconds=0, label="one"))
    second = plan(step("s2", "nap", seconds=0, label="more"), plan_id="plan-2")
    h = Harness(workspace, config(), ScriptedModel([review(answer="one more")]), [first, second])
    out = Run(h, steering=StepSteering("s1", "also do more")).go()
    assert out.status == "COMPLETE"
    assert [(s["id"], s["status"]) for s in out.steps] == [("s1", "ok"), ("s2", "ok")]


def test_a_queued_steer_is_applied_between_steps_never_during_one(workspace: Path) -> None:
    first = plan(step("s1", "nap", seconds=0.3, label="one"), step("s2", "nap", deps=["s1"], seconds=0, label="two"))
    second = plan(step("s3", "nap", seconds=0, label="three"), plan_id="plan-2")
    h = Harness(workspace, config(), ScriptedModel([review(answer="one three")]), [first, second])
    queue = SteeringQueue()
    # The message arrives while s1's tool runs: it waits for the boundary after s1.
    timer = threading.Timer(0.1, queue.put, args=("do three instead of two",))
    timer.start()
    try:
        out = Run(h, steering=queue).go()
    finally:
        timer.join()
    assert [(s["id"], s["status"]) for s in out.steps] == [("s1", "ok"), ("s3", "ok")]
    assert queue.pending() == []
    rec = RunRecord.read(h.events_path)
    s1_end = next(t.seq for t in rec if t.type == "step_finished" and t.step_id == "s1")
    (said,) = rec.user_messages
    assert said.seq > s1_end and said.data.done == ["s1"]


def test_user_replans_do_not_use_the_replan_budget(workspace: Path) -> None:
    plans = [plan(step("s1", "nap", seconds=0, label="a"))] + [
        plan(step("s1", "nap", seconds=0, label=f"v{i}"), plan_id=f"p{i}") for i in range(3)]
    h = Harness(workspace, config(budget={"max_replans": 0}), ScriptedModel([review(answer="v2")]), plans)
    out = Run(h, confirms=[Feedback("v0"), Feedback("v1"), Feedback("v2"), True]).go()
    assert out.status == "COMPLETE" and out.steps[0]["id"] == "s1"


def test_words_are_checked() -> None:
    assert check_words("  fix it  ") == "fix it"
    for bad in ("", "   \n", "x" * 9000):
        with pytest.raises(ValueError):
            check_words(bad)
    q = SteeringQueue()
    with pytest.raises(ValueError, match="empty"):
        q.put(" ")
    assert q.pending() == []


def test_plan_diff_matches_steps_by_what_they_do() -> None:
    old = plan(step("s1", "read_file", path="a.py"), step("s2", "run_shell", command="pytest"),
               step("s3", "write_file", path="b.py", content="x"))
    new = plan(step("s4", "run_shell", command="pytest"), step("s5", "write_file", path="b.py", content="y"),
               step("s6", "list_files", pattern="*"))
    d = plan_diff(old, new)
    assert [a.id for a, _ in d.same] == ["s2"]
    assert [(c.old.id, c.new.id, c.fields) for c in d.changed] == [("s3", "s5", ("title", "args"))]
    assert [s.id for s in d.removed] == ["s1"] and [s.id for s in d.added] == ["s6"]
    assert d.summary() == "+1 -1 ~1" and not d.empty
    assert plan_diff(old, old).lines() == ["(no change to the steps)"]


def test_more_words_at_the_revised_plan_revise_it_again(workspace: Path) -> None:
    (workspace / "a.txt").write_text("alpha\n")
    first = plan(step("s1", "read_file", path="a.txt"),
                 step("s2", "write_file", deps=["s1"], path="out.txt", content="x"))
    second = plan(step("s3", "write_file", path="utils.py", content="y"), plan_id="plan-2")
    third = plan(step("s4", "write_file", path="helpers.py", content="z"), plan_id="plan-3")
    h = Harness(workspace, config(approval={"write": "ask"}), ScriptedModel([review(answer="helpers")]),
                [first, second, third])
    r = Run(h, prompts=[Feedback("write utils.py instead"), "yes"],
            confirms=[True, Feedback("no, helpers.py after all"), True])
    out = r.go()
    assert out.status == "COMPLETE", out.answer
    assert [s["id"] for s in out.steps] == ["s1", "s4"]
    assert (workspace / "helpers.py").read_text() == "z" and not (workspace / "utils.py").exists()
    assert [c.user.words for c in r.contexts if c.user] == ["write utils.py instead", "no, helpers.py after all"]
    assert r.contexts[1].kept == {"s1"} and r.contexts[1].first_step == 4
    rec = RunRecord.read(h.events_path)
    assert [(t.data.at, t.step_id) for t in rec.user_messages] == [("approval", "s2"), ("plan", None)]
    _replay(h)



def test_steering_lines_read_from_a_pipe() -> None:
    import os

    from agentcli.cli.steer import read_steering

    queue = SteeringQueue()
    errors: list[str] = []
    r, w = os.pipe()
    reader = read_steering(queue, r, errors.append)
    # A line far longer than any read: refused while it streams in, the lines after it still read.
    data = (b'{"type": "steer", "text": "first"}\n\n{"type": "steer", "text": "' + b"x" * 200000 + b'"}\n'
            b'{"type": "steer", "text": "second"}\n{"type": "steer", "text": "third"}')
    while data:
        data = data[os.write(w, data):]
    os.close(w)
    reader.join(timeout=10)
    os.close(r)
    assert queue.pending() == ["first", "second", "third"]
    assert errors == ["stdin line 3 is too long (more than 33024 bytes); ignored"]


def test_feedback_at_the_verify_commands_approval_revises_the_plan(workspace: Path) -> None:
    first = plan(step("s1", "write_file", risk="write", path="a.py", content="x = 1\n"))
    second = plan(step("s2", "write_file", risk="write", path="b.py", content="y = 2\n"), plan_id="plan-2")
    h = Harness(workspace, config(approval={"write": "auto", "exec": "ask"}),
                ScriptedModel([review(answer="a.py"), review(answer="a.py and b.py")]), [first, second],
                verify="true")
    r = Run(h, prompts=[Feedback("write b.py too before checking"), "yes"])
    out = r.go()
    assert out.status == "COMPLETE", out.answer
    assert (workspace / "b.py").read_text() == "y = 2\n"
    (ctx,) = r.contexts
    assert ctx.text().startswith('The user declined the verify command when asked to approve it')
    rec = RunRecord.read(h.events_path)
    assert [(t.step_id, t.data.at) for t in rec.user_messages] == [("verify", "approval")]
    assert moves(rec) == ["PLANNING", "EXECUTING", "REVIEWING", "VERIFYING", "REPLANNING", "EXECUTING", "REVIEWING",
                          "VERIFYING", "COMPLETE", "IDLE"]
    _replay(h)


def test_a_steer_then_a_revision_declined_replays_identical(workspace: Path) -> None:
    # The steer's re-plan is not asked about; the later one is, and declined: a replay must serve
    # each plan's own answer (not the answers in the order the run moved).
    first = plan(step("s1", "nap", seconds=0, label="one"), step("s2", "nap", deps=["s1"], seconds=0, label="two"))
    second = plan(step("s3", "write_file", risk="write", path="out.txt", content="x"), plan_id="plan-2")
    third = plan(step("s4", "write_file", risk="write", path="utils.py", content="y"), plan_id="plan-3")
    h = Harness(workspace, config(approval={"write": "ask"}), ScriptedModel([]), [first, second, third])
    r = Run(h, steering=StepSteering("s1", "write a file instead"), prompts=[Feedback("utils.py, please")],
            confirms=[True, False])
    out = r.go()
    assert (out.status, out.reason, out.exit_code) == ("FAILED", "denied", 4)
    assert not (workspace / "utils.py").exists()
    _replay(h)


def _resume(h: Harness, workspace: Path, resume: Any, second: Plan) -> tuple[RunOutcome, list[ReplanContext]]:
    """Resume the run of ``h`` from ``resume`` (its record's state), the re-planner answering ``second``:
    the outcome and every context the re-planner was given."""
    contexts: list[ReplanContext] = []

    async def planner(task: str, ctx: ReplanContext | None) -> Plan:
        assert ctx is not None
        contexts.append(ctx)
        return second

    session = RunSession(Settings(config=h.config, workspace=workspace), h.run_id, backend=ScriptedModel(
        [review(answer="one three")]), registry=make_registry(workspace, h.config), memory=False, telemetry=False,
        checkpoints=False, resume=resume, extra_start={"resumed": True})
    try:
        return asyncio.run(run("the task", session.deps(planner, lambda p, r: True))), contexts
    finally:
        session.close()


def _steered_run(workspace: Path) -> tuple[Harness, list[bytes], int, Plan]:
    """A run steered at s1 ("three, not two"), the re-planner answering the returned plan: its
    harness, its record's lines and the index of its ``user_message`` line."""
    first = plan(step("s1", "nap", seconds=0, label="one"), step("s2", "nap", deps=["s1"], seconds=0, label="two"))
    second = plan(step("s3", "nap", seconds=0, label="three"), plan_id="plan-2")
    h = Harness(workspace, config(), ScriptedModel([review(answer="one three")]), [first, second])
    Run(h, steering=StepSteering("s1", "three, not two")).go()
    lines = h.events_path.read_bytes().splitlines(keepends=True)
    cut = next(i for i, x in enumerate(lines) if b'"type":"user_message"' in x)
    return h, lines, cut, second


def test_words_recorded_before_a_kill_are_applied_by_the_resume(workspace: Path) -> None:
    h, lines, cut, second = _steered_run(workspace)
    # As if killed right after the steer was made durable, before the re-plan was recorded.
    h.events_path.write_bytes(b"".join(lines[:cut + 1]))

    from agentcli.engine.runner import resume_state

    resume = resume_state(RunRecord.read(h.events_path))
    assert [(c.kind, c.words) for c in resume.unapplied] == [("steer", "three, not two")]
    out, contexts = _resume(h, workspace, resume, second)
    assert out.status == "COMPLETE", out.answer
    assert [(s["id"], s["status"]) for s in out.steps] == [("s1", "ok"), ("s3", "ok")]
    (ctx,) = contexts
    assert ctx.user is not None and ctx.user.words == "three, not two" and ctx.kept == {"s1"}
    rec = RunRecord.read(h.events_path)
    assert [p.by_user for p in rec.plans] == [False, True]
    _replay(h)


@pytest.mark.tampered_record  # a second message is written into the record, as a kill would leave it
def test_every_message_the_run_stopped_before_applying_is_applied_by_the_resume(workspace: Path) -> None:
    """Two messages recorded after the last plan (the run was stopped before revising it): the
    resumed run revises the plan once for both, every word reaching the re-planner. (The record's
    first part, written by hand, cannot replay: a run takes one message a boundary.)"""
    h, lines, cut, second = _steered_run(workspace)
    said = json.loads(lines[cut])
    more = {**said, "seq": said["seq"] + 1, "data": {**said["data"], "text": "and label it four"}}
    h.events_path.write_bytes(b"".join(lines[:cut + 1]) + json.dumps(more).encode() + b"\n")

    from agentcli.engine.runner import resume_state

    resume = resume_state(RunRecord.read(h.events_path))
    assert [c.words for c in resume.unapplied] == ["three, not two", "and label it four"]
    out, contexts = _resume(h, workspace, resume, second)
    assert out.status == "COMPLETE", out.answer
    (ctx,) = contexts  # one revision for both
    assert ctx.user is not None and ctx.user.words == "three, not two\nand label it four"
    assert ctx.text().startswith('While the plan below was running, the user sent a message: '
                                 '"three, not two\\nand label it four"')
    rec = RunRecord.read(h.events_path)
    assert [p.by_user for p in rec.plans] == [False, True]
    assert [t.data.text for t in rec.user_messages] == ["three, not two", "and label it four"]  # none recorded again


class KindSteering:
    """Steers once, at the first boundary of ``kind`` (a message sent while the review ran)."""

    def __init__(self, kind: str, words: str) -> None:
        self.kind, self.words = kind, words

    def take(self, boundary: Boundary) -> str | None:
        if boundary.kind == self.kind and self.words:
            words, self.words = self.words, ""
            return words
        return None


def test_a_steer_sent_while_the_reviewer_ran_is_applied_after_the_review(workspace: Path) -> None:
    first = plan(step("s1", "nap", seconds=0, label="one"))
    second = plan(step("s2", "nap", seconds=0, label="docs"), plan_id="plan-2")
    h = Harness(workspace, config(), ScriptedModel([review(answer="one"), review(answer="one docs")]),
                [first, second])
    r = Run(h, steering=KindSteering("review", "also the docs"))
    out = r.go()
    assert out.status == "COMPLETE" and out.answer == "one docs"
    assert [(s["id"], s["status"]) for s in out.steps] == [("s1", "ok"), ("s2", "ok")]
    rec = RunRecord.read(h.events_path)
    assert moves(rec) == ["PLANNING", "EXECUTING", "REVIEWING", "REPLANNING", "EXECUTING", "REVIEWING", "COMPLETE",
                          "IDLE"]
    (said,) = rec.user_messages
    assert (said.data.text, said.data.boundary, said.data.done) == ("also the docs", "review", ["s1"])
    _replay(h)  # served after the review, not at the step boundary before it (same plan, same steps done)


class AfterReview:
    """Steers once, at the first boundary after the reviewer was asked (a message typed while it ran)."""

    def __init__(self, model: ScriptedModel, words: str) -> None:
        self.model, self.words = model, words
        self.kinds: list[str] = []

    def take(self, boundary: Boundary) -> str | None:
        self.kinds.append(boundary.kind)
        reviewed = any("You review the results" in str(r.messages[0]["content"]) for r in self.model.requests)
        if reviewed and self.words:
            words, self.words = self.words, ""
            return words
        return None


def test_a_steer_sent_while_a_continue_review_ran_is_taken_before_the_next_step(workspace: Path) -> None:
    """s1 failed and the run stopped starting steps; a message typed while the reviewer ran, which
    said continue, is taken at the next step boundary and replays there."""
    (workspace / "ok.txt").write_text("fine")
    first = plan(step("s1", "read_file", path="missing.txt"), step("s2", "read_file", path="ok.txt"),
                 step("s3", prompt="use {{s1.output}}", deps=["s1"]))
    second = plan(step("s4", "read_file", path="ok.txt"), plan_id="plan-2")
    model = ScriptedModel([review("continue", reason="s1 is optional"), review(answer="fine")])
    h = Harness(workspace, config(executor={"max_parallel": 1}), model, [first, second])
    out = Run(h, steering=AfterReview(model, "read ok.txt once more")).go()
    assert out.status == "COMPLETE", out.answer
    assert [(s["id"], s["status"]) for s in out.steps] == [("s4", "ok")]
    rec = RunRecord.read(h.events_path)
    (said,) = rec.user_messages
    assert (said.data.text, said.data.boundary, said.data.done) == ("read ok.txt once more", "step", ["s1"])
    assert moves(rec) == ["PLANNING", "EXECUTING", "REVIEWING", "EXECUTING", "REPLANNING", "EXECUTING", "REVIEWING",
                          "COMPLETE", "IDLE"]
    _replay(h)
