"""kill -9 a real `agent run` mid-run, then `--resume` it: completed side effects are not repeated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

DRAFT = {"steps": [
    {"title": "first side effect", "tool": "run_shell", "args": {"command": "echo one >> side.txt"}},
    {"title": "slow step", "tool": "run_shell", "depends_on": ["s1"],
     "args": {"command": "test -f resume.flag || sleep 60", "timeout": 90}},
    {"title": "second side effect", "tool": "run_shell", "depends_on": ["s2"],
     "args": {"command": "echo three >> side.txt"}},
]}
REVIEW = {"outcome": "complete", "answer": "both side effects done", "reason": ""}


def _agent(ws: Path, script: list[object], *args: str) -> subprocess.Popen[str]:
    script_file = ws.parent / f"script-{time.monotonic_ns()}.json"
    script_file.write_text(json.dumps(script))
    env = {**os.environ, "AGENT_MODEL": "test/script", "AGENT_TEST_SCRIPT": str(script_file)}
    return subprocess.Popen([sys.executable, "-m", "agentcli", *args], cwd=ws, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_kill9_then_resume(workspace: Path) -> None:
    proc = _agent(workspace, [DRAFT], "run", "do three things", "--yes", "--json")
    runs = workspace / ".agent" / "runs"
    deadline = time.monotonic() + 60
    events: Path | None = None
    while time.monotonic() < deadline:
        found = list(runs.glob("*/events.jsonl")) if runs.is_dir() else []
        if found and '"step_id":"s2","data":{"title"' in found[0].read_text():
            events = found[0]
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    assert events is not None, "the run never reached step s2"
    time.sleep(0.3)  # let s2's shell start
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert (workspace / "side.txt").read_text() == "one\n"

    run_id = events.parent.name
    (workspace / "resume.flag").write_text("")
    # s2 was killed between its intent and its result: re-running it is asked for explicitly.
    resumed = _agent(workspace, [REVIEW], "run", "--resume", run_id, "--yes", "--rerun-uncertain", "--json")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    result = json.loads(out)
    assert result["status"] == "COMPLETE" and result["run_id"] == run_id
    # s1's side effect happened exactly once; s3 ran once after the resume
    assert (workspace / "side.txt").read_text() == "one\nthree\n"

    listed = subprocess.run([sys.executable, "-m", "agentcli", "runs", "list", "--json"], cwd=workspace,
                            capture_output=True, text=True, timeout=60)
    [summary] = json.loads(listed.stdout)
    assert summary["status"] == "COMPLETE" and summary["steps_ok"] == 3
    # Killed midway and resumed, the run still replays as it ran: its first part up to the kill,
    # then the resumption (with the recorded decision to re-run s2).
    assert_replays_identical(workspace, run_id)


def assert_replays_identical(ws: Path, run_id: str) -> None:
    done = subprocess.run([sys.executable, "-m", "agentcli", "replay", run_id, "--json"], cwd=ws,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["identical"], verdict


@pytest.mark.slow
def test_ctrl_c_is_recorded_and_resumable(workspace: Path) -> None:
    draft = {"steps": [{"title": "slow", "tool": "run_shell",
                        "args": {"command": "test -f resume.flag || sleep 60", "timeout": 90}}]}
    proc = _agent(workspace, [draft], "run", "slow thing", "--yes")
    runs = workspace / ".agent" / "runs"
    deadline = time.monotonic() + 60
    # Interrupt once the command is about to run (its intent is durable), not after a guessed
    # delay: under load the step may not have got that far yet.
    while time.monotonic() < deadline:
        found = list(runs.glob("*/events.jsonl")) if runs.is_dir() else []
        if found and '"type":"tool_intent"' in found[0].read_text():
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    else:
        raise AssertionError("the run never reached its shell step")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "agent run --resume" in err and "Traceback" not in err
    [events] = list(runs.glob("*/events.jsonl"))
    finished = [json.loads(x) for x in events.read_text().splitlines() if '"run_finished"' in x]
    assert finished[-1]["data"]["reason"] == "interrupted"
    (workspace / "resume.flag").write_text("")
    # The interrupted command may have done part of its work: re-running it is asked for.
    resumed = _agent(workspace, [REVIEW], "run", "--resume", events.parent.name, "--yes", "--rerun-uncertain",
                     "--json")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert json.loads(out)["status"] == "COMPLETE"
    assert_replays_identical(workspace, events.parent.name)
