"""Honest step results and the verify gate, with the model answering over litellm's real HTTP path
(an OpenAI-compatible server on loopback): what the reviewer and the re-planner are really sent."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from runkit import Harness, config, plan, step
from test_llm_http import FakeOpenAI, completion

from agentcli.engine.replay import replay_run
from agentcli.engine.reviewer import step_digest
from agentcli.engine.runner import ReplanContext
from agentcli.engine.verify import verify_command
from agentcli.models.fakes import ScriptedModel
from agentcli.planning.plan import Step


@pytest.fixture
def fake(httpserver: HTTPServer, allow_model_requests: None, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    return FakeOpenAI(httpserver)


def http_config(fake: FakeOpenAI, **sections: Any) -> Any:
    return config(model="openai/gpt-4o-mini", api_base=fake.api_base, **sections)


def verdict(outcome: str, answer: str = "", reason: str = "") -> dict[str, Any]:
    return completion(json.dumps({"outcome": outcome, "answer": answer, "reason": reason}))


def reviewer_prompts(fake: FakeOpenAI) -> list[str]:
    return [b["messages"][-1]["content"] for b in fake.bodies
            if "You review the results" in b["messages"][0]["content"]]


def test_a_non_zero_exit_fails_the_step_with_its_code_and_tail(fake: FakeOpenAI, workspace: Path) -> None:
    fake.ok(verdict("complete", "it failed"))
    cmd = "for i in $(seq 1 400); do echo line $i; done; echo 'FINAL VERDICT: broken' >&2; exit 3"
    h = Harness(workspace, http_config(fake), None, [plan(step("s1", "run_shell", command=cmd))], yes=True)
    out = h.run()
    [s1] = out.steps
    assert s1["status"] == "failed" and s1["error"]["type"] == "exit_code" and s1["error"]["exit_code"] == 3
    assert "exited with code 3" in s1["error"]["message"] and "FINAL VERDICT: broken" in s1["error"]["message"]
    [prompt] = reviewer_prompts(fake)
    assert "exited with code 3" in prompt and "FINAL VERDICT: broken" in prompt


def test_expected_exit_codes_make_a_non_zero_exit_a_success(workspace: Path) -> None:
    s1 = Step.model_validate({**step("s1", "run_shell", command="exit 1").model_dump(), "expect_exit_codes": [0, 1]})
    h = Harness(workspace, config(), ScriptedModel([{"outcome": "complete", "answer": "fine", "reason": ""}]),
                [plan(s1)], yes=True)
    out = h.run()
    assert out.steps[0]["status"] == "ok" and out.status == "COMPLETE"


def test_a_pytest_failure_reaches_the_reviewer(fake: FakeOpenAI, workspace: Path) -> None:
    (workspace / "test_many.py").write_text(
        "import pytest\n\n@pytest.mark.parametrize('i', range(300))\ndef test_ok(i):\n    assert i >= 0\n\n"
        "def test_bad():\n    assert 'MARKER_' + 'FAILURE' == 'expected'\n")
    fake.ok(verdict("replan", reason="test_bad fails")).ok(verdict("stop", reason="enough"))
    cmd = f"{sys.executable} -m pytest -q --color=yes -p no:cacheprovider test_many.py"
    h = Harness(workspace, http_config(fake), None, [plan(step("s1", "run_shell", command=cmd)), plan(
        step("s1", "read_file", path="test_many.py"))], yes=True)
    out = h.run()
    assert out.reason == "stopped"
    assert h.recording().first("step_finished").data["status"] == "failed"
    first = reviewer_prompts(fake)[0]
    assert "MARKER_FAILURE" in first and "1 failed, 300 passed" in first
    assert "\x1b[" not in first and "\\u001b" not in first
    # The re-planner is told what is left and how to number its steps, and sees the failure too.
    [ctx] = h.replans
    text = ctx.text()
    assert "1 failed, 300 passed" in text and "Left of the budget:" in text
    assert "re-plans after this one" in text


def test_a_denial_can_stop_the_run(fake: FakeOpenAI, workspace: Path) -> None:
    fake.ok(verdict("stop", reason="the user declined writing the file"))
    p = plan(step("s1", "write_file", approval=True, risk="write", path="out.txt", content="x"))
    h = Harness(workspace, http_config(fake), None, [p, p], prompt_answers=["no"])
    out = h.run()
    assert (out.status, out.reason, out.exit_code) == ("FAILED", "stopped", 4)
    assert h.replans == [] and len(list(h.recording().of_type("approval"))) == 1  # asked once, not again
    assert not (workspace / "out.txt").exists()
    assert "the user declined this step" in reviewer_prompts(fake)[0]
    transitions = [e.data["to"] for e in h.recording().of_type("transition")]
    assert transitions[-3:] == ["REVIEWING", "FAILED", "IDLE"]


def test_verify_failure_goes_to_the_replanner_then_passes(fake: FakeOpenAI, workspace: Path) -> None:
    fake.ok(verdict("complete", "written")).ok(verdict("complete", "fixed"))
    check = f"{sys.executable} -c \"import sys; t = open('out.txt').read(); print('got', t); sys.exit(t != 'good')\""
    first = plan(step("s1", "write_file", risk="write", path="out.txt", content="bad"))
    second = plan(step("s2", "write_file", risk="write", path="out.txt", content="good"), plan_id="plan-2")
    h = Harness(workspace, http_config(fake), None, [first, second], yes=True, checkpoints=True, verify=check)
    out = h.run()
    assert out.status == "COMPLETE", out.answer
    assert out.verify is not None and out.verify["status"] == "passed" and out.verify["command"] == check
    assert out.changed_files == ["out.txt"]
    [ctx] = h.replans
    assert "verify command" in ctx.reason and "got bad" in ctx.reason and "exit code 1" in ctx.reason
    rec = h.recording()
    assert [e.data["status"] for e in rec.of_type("verify")] == ["failed", "passed"]
    states = [e.data["to"] for e in rec.of_type("transition")]
    assert states.count("VERIFYING") == 2 and states[-2:] == ["COMPLETE", "IDLE"]
    # Every review got the run's changes so far, and was told that the check runs after it.
    assert "+bad" in reviewer_prompts(fake)[0] and "out.txt" in reviewer_prompts(fake)[0]
    systems = [b["messages"][0]["content"] for b in fake.bodies]
    reviews = [s for s in systems if "You review the results" in s]
    assert reviews and all(f"`{check}` runs in the workspace" in s for s in reviews)
    # The replay serves the recorded changes and verify call: identical, nothing run.
    (workspace / "out.txt").unlink()
    result = asyncio.run(replay_run(workspace / ".agent" / "runs" / h.run_id / "events.jsonl",
                                    h.deps().registry))
    assert result.identical, result.divergence and result.divergence.describe()
    assert not (workspace / "out.txt").exists()


def test_no_verify_without_changes_and_changed_files_say_none(workspace: Path) -> None:
    h = Harness(workspace, config(), ScriptedModel([{"outcome": "complete", "answer": "read", "reason": ""}]),
                [plan(step("s1", "list_files", pattern="*"))], checkpoints=True, verify="exit 1")
    out = h.run()
    assert out.status == "COMPLETE" and out.verify is None and out.changed_files == []


def test_the_reviewer_reads_source_changes_not_bytecode(workspace: Path) -> None:
    # pytest leaves __pycache__ behind in a project without a .gitignore: those binary patches
    # used to fill the reviewer's diff and push the real change out.
    (workspace / "calc.py").write_text("x = 1\n")
    cmd = ("echo 'x = 2  # CHANGED' > calc.py; mkdir -p __pycache__ .pytest_cache; "
           "head -c 20000 /dev/urandom > __pycache__/calc.cpython-311.pyc; echo junk > .pytest_cache/v")
    model = ScriptedModel([{"outcome": "complete", "answer": "changed", "reason": ""}])
    h = Harness(workspace, config(), model, [plan(step("s1", "run_shell", command=cmd))], checkpoints=True, yes=True)
    out = h.run()
    assert out.status == "COMPLETE" and out.changed_files == ["calc.py"]
    [review] = [r.messages[-1]["content"] for r in model.requests]
    assert "+x = 2  # CHANGED" in review and "GIT binary patch" not in review
    assert "a/__pycache__" not in review and "__pycache__/calc.cpython-311.pyc |" not in review
    assert (workspace / "__pycache__" / "calc.cpython-311.pyc").exists()  # checkpointed, only not shown


def test_the_digest_keeps_failed_and_newest_steps_first(workspace: Path) -> None:
    from agentcli.engine.executor import StepRun

    runs = {f"s{i}": StepRun(step(f"s{i}", "read_file", path="x"), status="ok", output=f"out{i} " + "x" * 5000)
            for i in range(1, 6)}
    runs["s2"].status, runs["s2"].error = "failed", {"message": "head " + "y" * 6000 + " THE ERROR"}
    digest = {d["id"]: d for d in step_digest(runs, limit=3000, total=7000)}
    assert "THE ERROR" in digest["s2"]["error"] and "omitted" in digest["s2"]["error"]
    assert len(digest["s5"]["output"]) <= 3100  # the newest gets its room
    assert "left out for room" in digest["s1"]["output"]


def test_replan_context_numbers_new_steps_after_the_kept_ones(workspace: Path) -> None:
    from agentcli.engine.executor import StepRun

    p = plan(step("s1", "read_file", path="a"), step("s2", "read_file", path="b"))
    runs = {"s1": StepRun(p.steps[0], status="ok", output="A"),
            "s2": StepRun(p.steps[1], status="failed", error={"message": "no b"})}
    ctx = ReplanContext(p, runs, "s2 failed", {"steps": 18, "replans": 1, "cost_usd": 0.5, "seconds": 800.0})
    assert ctx.first_step == 3 and ctx.kept == frozenset({"s1"})
    text = ctx.text()
    assert "Number your new steps from s3" in text and "{{s1.output}}" in text
    assert "18 steps, 1 re-plans after this one, $0.5000 of model spend, 800 s." in text


def test_verify_command_from_config_or_project_instructions() -> None:
    assert verify_command(config(verify={"command": "pytest -q"}), "make test") == "pytest -q"
    assert verify_command(config(), "make test") == "make test"
    assert verify_command(config(), None) == ""
