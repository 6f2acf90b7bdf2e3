"""A step killed between its intent and its result is uncertain on resume: shown, never re-run
unasked (exit 4 with --yes alone), re-run with --rerun-uncertain, and the decision recorded.
Real subprocesses, a real kill -9, and the interactive prompt in a real pseudo-terminal (pexpect)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ONCE = {"steps": [{"title": "count once", "tool": "run_shell",
                   "args": {"command": "echo once >> counter.txt; sleep 3"}}]}
REVIEW = {"outcome": "complete", "answer": "counted", "reason": ""}


def agent(ws: Path, script: list[object], *args: str) -> subprocess.Popen[str]:
    script_file = ws.parent / f"script-{time.monotonic_ns()}.json"
    script_file.write_text(json.dumps(script))
    env = {**os.environ, "AGENT_MODEL": "test/script", "AGENT_TEST_SCRIPT": str(script_file),
           "AGENT_MEMORY__ENABLED": "false"}
    return subprocess.Popen([sys.executable, "-m", "agentcli", *args], cwd=ws, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def events_of(ws: Path) -> tuple[Path, list[dict[str, object]]]:
    [path] = list((ws / ".agent" / "runs").glob("*/events.jsonl"))
    return path, [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def kill_after_intent(ws: Path) -> str:
    """Start the one-step run and kill -9 it once the intent is durable and the command has run."""
    proc = agent(ws, [ONCE], "run", "count once", "--yes", "--json")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = ws / ".agent" / "runs"
        found = list(runs.glob("*/events.jsonl")) if runs.is_dir() else []
        counter = ws / "counter.txt"
        # The shell creates the file (>>) before echo writes to it: wait for the line itself.
        if found and '"type":"tool_intent"' in found[0].read_text() and counter.exists() and counter.read_text():
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    else:
        pytest.fail("the run never started its shell step")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    path, events = events_of(ws)
    assert not [e for e in events if e["type"] == "tool_call"], "the kill came too late"
    return path.parent.name


def test_yes_alone_stops_and_says_why(workspace: Path) -> None:
    run_id = kill_after_intent(workspace)
    resumed = agent(workspace, [REVIEW], "run", "--resume", run_id, "--yes")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 4, err
    assert "s1 run_shell" in err and "echo once >> counter.txt" in err and "--rerun-uncertain" in err
    assert "Traceback" not in err
    time.sleep(3.5)  # the killed agent's command, had it been re-run, would be done by now
    assert (workspace / "counter.txt").read_text() == "once\n"
    _, events = events_of(workspace)
    [decision] = [e for e in events if e["type"] == "resume_decision"]
    assert decision["step_id"] == "s1" and decision["data"]["decision"] == "stop"  # type: ignore[index]
    assert decision["data"]["decided_by"] == "policy"  # type: ignore[index]


def test_rerun_uncertain_runs_it_again_once(workspace: Path) -> None:
    run_id = kill_after_intent(workspace)
    resumed = agent(workspace, [REVIEW], "run", "--resume", run_id, "--yes", "--rerun-uncertain", "--json")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert json.loads(out)["status"] == "COMPLETE"
    assert (workspace / "counter.txt").read_text() == "once\nonce\n"  # asked for, and only once more
    _, events = events_of(workspace)
    [decision] = [e for e in events if e["type"] == "resume_decision"]
    assert decision["data"]["decision"] == "rerun" and decision["data"]["decided_by"] == "flag"  # type: ignore[index]
    # Settled: resuming the finished run again asks nothing and runs nothing.
    again = agent(workspace, [REVIEW], "run", "--resume", run_id, "--yes", "--json")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert (workspace / "counter.txt").read_text() == "once\nonce\n"


def test_rerun_uncertain_needs_resume(workspace: Path) -> None:
    p = agent(workspace, [], "run", "x", "--rerun-uncertain")
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "--rerun-uncertain only applies to --resume" in err


# --------------------------------------------------------------------------- at a real terminal

#: The prompts of an interactive resume, in the order they come, and the answer to each.
PROMPTS = {"uncertain": r"run it again\?[^\n]*: ", "plan": r"run this plan\?[^\n]*: ", "approval": r"run it\?[^\n]*: "}


def resume_at_terminal(ws: Path, run_id: str, answer: str) -> tuple[int, str, list[str]]:
    """``agent run --resume RUN`` in a real pseudo-terminal: ``answer`` at the uncertain-step
    prompt, yes to the plan and the approval. The exit code, the screen, the prompts seen."""
    import pexpect

    script_file = ws.parent / f"script-{time.monotonic_ns()}.json"
    script_file.write_text(json.dumps([REVIEW, REVIEW]))
    env = {**os.environ, "AGENT_MODEL": "test/script", "AGENT_TEST_SCRIPT": str(script_file),
           "AGENT_MEMORY__ENABLED": "false", "NO_COLOR": "1", "COLUMNS": "120"}
    child = pexpect.spawn(sys.executable, ["-m", "agentcli", "run", "--resume", run_id], cwd=str(ws), env=env,
                          encoding="utf-8", timeout=60, dimensions=(50, 120))
    names = list(PROMPTS)
    seen: list[str] = []
    screen = ""
    try:
        while True:
            i = child.expect([*PROMPTS.values(), pexpect.EOF])
            screen += (child.before or "") + (child.after if isinstance(child.after, str) else "")
            if i == len(names):
                break
            seen.append(names[i])
            child.sendline(answer if names[i] == "uncertain" else "y")
    finally:
        child.close()
    return child.exitstatus if child.exitstatus is not None else -1, screen, seen


@pytest.mark.parametrize(("answer", "decision", "code", "lines"), [
    ("y", "rerun", 0, 2), ("d", "done", 0, 1), ("n", "stop", 4, 1)], ids=["re-run", "take-as-done", "stop"])
def test_the_user_decides_at_a_real_terminal(workspace: Path, answer: str, decision: str, code: int,
                                             lines: int) -> None:
    run_id = kill_after_intent(workspace)
    exit_code, screen, seen = resume_at_terminal(workspace, run_id, answer)
    assert exit_code == code, screen[-2000:]
    assert seen[0] == "uncertain" and ("approval" in seen) == (decision == "rerun"), seen
    # What it was about to do is on the screen before the question.
    assert "step s1 may already have run" in screen and "run_shell" in screen
    # The legend whole (its [y]/[d]/[n] were once eaten as markup: "es / one already, go on / o, stop").
    assert "run it again? [y]es / [d]one already, go on / [n]o, stop (n): " in screen
    assert "echo once >> counter.txt" in screen and "Traceback" not in screen
    time.sleep(3.5 if decision != "rerun" else 0)  # a stray re-run would have finished by now
    assert (workspace / "counter.txt").read_text() == "once\n" * lines
    _, events = events_of(workspace)
    [made] = [e for e in events if e["type"] == "resume_decision"]
    assert made["step_id"] == "s1"
    assert (made["data"]["decision"], made["data"]["decided_by"]) == (decision, "user")  # type: ignore[index]
    finished = [e for e in events if e["type"] == "run_finished"]
    assert (finished[-1]["data"]["status"] == "COMPLETE") == (code == 0)  # type: ignore[index]
    if decision == "stop":  # said to the person who just answered at the terminal, not to a script
        assert "stopped at step s1 (run_shell), which may already have run; resuming asks again" in screen
        assert "at a terminal to decide" not in screen
        assert f"resume with: agent run --resume {run_id}" in screen
    if decision == "done":  # what the killed step did is the run's: reported, and undone by agent undo
        import re

        assert "changed: counter.txt" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
        assert f"agent undo {run_id}" in screen
