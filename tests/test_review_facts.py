"""Reviews that need no model call (``review.mode = "auto"``): a run whose steps are all tool steps
that succeeded at their first try, for a task that asks for a change and no answer, ends COMPLETE
when the verify command passes, without a reviewer call; anything uncertain is still reviewed, and
``review.mode = "always"`` reviews every run."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from runkit import Harness, config, plan, step

from agentcli.engine.replay import replay_run
from agentcli.models.fakes import ScriptedModel
from agentcli.planning.plan import Step
from agentcli.planning.strategy import change_only

TASK = "add out.txt with the word good"
#: Passes when out.txt holds "good".
CHECK = f"{sys.executable} -c \"import sys; sys.exit(open('out.txt').read() != 'good')\""


def write(sid: str, content: str, deps: list[str] | None = None) -> Step:
    return step(sid, "write_file", risk="write", deps=deps, path="out.txt", content=content)


def verdict(answer: str) -> dict[str, Any]:
    return {"outcome": "complete", "answer": answer, "reason": ""}


def transitions(h: Harness) -> list[str]:
    return [e.data["to"] for e in h.recording().of_type("transition")]


def reviews(h: Harness) -> list[str]:
    return [e.data["kind"] for e in h.recording().of_type("review")]


def test_a_change_the_verify_command_passes_ends_complete_without_a_reviewer_call(workspace: Path) -> None:
    model = ScriptedModel([])  # any model call would fail the run: none is made
    h = Harness(workspace, config(), model, [plan(write("s1", "good"))], yes=True, checkpoints=True, verify=CHECK)
    out = h.run(TASK)
    assert out.status == "COMPLETE", out.answer
    assert model.requests == []
    assert out.answer == f"Done: the plan's 1 step succeeded, changing out.txt; `{CHECK}` passed."
    assert out.verify is not None and out.verify["status"] == "passed"
    assert reviews(h) == ["facts"]
    assert transitions(h)[-4:] == ["REVIEWING", "VERIFYING", "COMPLETE", "IDLE"]
    # The replay makes the same decision from the record: identical, nothing run.
    (workspace / "out.txt").unlink()
    result = asyncio.run(replay_run(h.events_path, h.deps().registry))
    assert result.identical, result.divergence and result.divergence.describe()


def test_review_mode_always_keeps_the_reviewer(workspace: Path) -> None:
    model = ScriptedModel([verdict("wrote out.txt")])
    h = Harness(workspace, config(review={"mode": "always"}), model, [plan(write("s1", "good"))], yes=True,
                checkpoints=True, verify=CHECK)
    out = h.run(TASK)
    assert out.status == "COMPLETE" and out.answer == "wrote out.txt"
    assert len(model.requests) == 1 and reviews(h) == ["verdict"]


def test_a_failed_verify_is_replanned_and_the_new_plan_reviewed(workspace: Path) -> None:
    # The facts decided nothing: the verify command failed, a new plan is made, and a run that was
    # re-planned is reviewed by the model.
    model = ScriptedModel([verdict("fixed out.txt")])
    second = plan(write("s2", "good"), plan_id="plan-2")
    h = Harness(workspace, config(), model, [plan(write("s1", "bad")), second], yes=True, checkpoints=True,
                verify=CHECK)
    out = h.run(TASK)
    assert out.status == "COMPLETE" and out.answer == "fixed out.txt"
    [ctx] = h.replans
    assert "verify command" in ctx.reason
    assert [e.data["status"] for e in h.recording().of_type("verify")] == ["failed", "passed"]
    assert reviews(h) == ["verdict"] and len(model.requests) == 1


@pytest.mark.parametrize("case", ["llm step", "asks an answer", "no verify", "retried step"])
def test_anything_uncertain_is_reviewed(workspace: Path, case: str) -> None:
    model = ScriptedModel([verdict("reviewed")])
    steps = [write("s1", "good")]
    task, verify = TASK, CHECK
    if case == "llm step":
        steps = [step("s1", prompt="Say good."), write("s2", "good", deps=["s1"])]
        model = ScriptedModel(["good", verdict("reviewed")])
    elif case == "asks an answer":
        task = "add out.txt with the word good and explain why"
    elif case == "no verify":
        verify = ""
    else:  # a step that failed once and succeeded when retried
        steps = [step("s1", "flaky", attempts=2, key="k"), write("s2", "good", deps=["s1"])]
    h = Harness(workspace, config(), model, [plan(*steps)], yes=True, checkpoints=True, verify=verify)
    out = h.run(task)
    assert out.status == "COMPLETE", out.answer
    assert out.answer == "reviewed" and reviews(h) == ["verdict"]


def test_a_verify_that_cannot_run_leaves_the_judgement_to_the_reviewer(workspace: Path) -> None:
    # The user declines the verify command: no fact decides, so the reviewer judges, and the command
    # is not asked for again.
    model = ScriptedModel([verdict("wrote out.txt, unverified")])
    h = Harness(workspace, config(approval={"write": "auto"}), model, [plan(write("s1", "good"))],
                prompt_answers=["no"], checkpoints=True, verify=CHECK)
    out = h.run(TASK)
    assert out.status == "COMPLETE" and out.answer == "wrote out.txt, unverified"
    assert [e.data["status"] for e in h.recording().of_type("verify")] == ["denied"]
    asked = [e for e in h.recording().of_type("approval") if e.data["decided_by"] == "user"]
    assert reviews(h) == ["verdict"] and len(asked) == 1
    assert transitions(h)[-4:] == ["VERIFYING", "REVIEWING", "COMPLETE", "IDLE"]


def test_after_an_unverified_review_new_steps_are_verified_again(workspace: Path) -> None:
    # The reviewer, judging after the declined verify command, asks for a new plan: its changes are
    # verified as any run's are (the command is asked for again, and passes).
    model = ScriptedModel([{"outcome": "replan", "answer": "", "reason": "check it"}, verdict("rewritten")])
    h = Harness(workspace, config(approval={"write": "auto"}), model,
                [plan(write("s1", "good")), plan(write("s2", "good"), plan_id="plan-2")],
                prompt_answers=["no", "yes"], checkpoints=True, verify=CHECK)
    out = h.run(TASK)
    assert out.status == "COMPLETE" and out.answer == "rewritten"
    assert [e.data["status"] for e in h.recording().of_type("verify")] == ["denied", "passed"]
    assert reviews(h) == ["verdict", "verdict"]


def test_which_tasks_ask_for_a_change_only() -> None:
    assert change_only("add a --verbose flag to the CLI")
    assert change_only("fix the failing test in tests/test_store.py")
    assert change_only("rename Store.move to Store.apply and update its callers")
    assert not change_only("fix the parser and explain why it failed")
    assert not change_only("what does the store save?")
    assert not change_only("add a flag, then tell me which tests cover it")
    assert not change_only("find where Item is defined")
