"""Runs cut short as the run listings show them: a real `agent run` killed with SIGKILL at a step
boundary is listed with its plan's steps and how many finished, as cut short and how to resume it;
`agent runs show` says the same; `agent undo` without an id (in a real pseudo-terminal, 80 columns)
offers only runs that changed files, each on one line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

KILLED = {"steps": [
    {"title": "write a file", "tool": "run_shell", "args": {"command": "echo one >> side.txt"}},
    {"title": "slow step", "tool": "run_shell", "depends_on": ["s1"],
     "args": {"command": "sleep 60", "timeout": 90}},
    {"title": "never reached", "tool": "run_shell", "depends_on": ["s2"], "args": {"command": "true"}},
]}
READ_ONLY = {"steps": [{"title": "list files " + "with a long title " * 4, "tool": "list_files",
                        "args": {"pattern": "*"}}]}
REVIEW = {"outcome": "complete", "answer": "done", "reason": ""}
LONG_TASK = "look at the files in the workspace " + "and say what each of them is for " * 4


def _env(ws: Path, script: list[object]) -> dict[str, str]:
    script_file = ws.parent / f"script-{time.monotonic_ns()}.json"
    script_file.write_text(json.dumps(script))
    return {**os.environ, "AGENT_MODEL": "test/script", "AGENT_TEST_SCRIPT": str(script_file),
            "COLUMNS": "80", "AGENT_MEMORY__ENABLED": "false"}


def _agent(ws: Path, *args: str, script: list[object] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentcli", *args], cwd=ws, env=_env(ws, script or []),
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def _killed_run(ws: Path, task: str) -> str:
    """A run killed with SIGKILL once its first step finished and its second began."""
    proc = subprocess.Popen([sys.executable, "-m", "agentcli", "run", task, "--yes", "--json"], cwd=ws,
                            env=_env(ws, [KILLED]), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    runs = ws / ".agent" / "runs"
    before = set(runs.glob("*/events.jsonl")) if runs.is_dir() else set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [p for p in runs.glob("*/events.jsonl") if p not in before] if runs.is_dir() else []
        text = found[0].read_text() if found else ""
        if '"type":"tool_intent"' in text and '"step_id":"s2"' in text:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    else:
        raise AssertionError("the run never reached step s2")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    return found[0].parent.name


@pytest.mark.slow
def test_killed_run_listed_with_its_plan_and_resume(workspace: Path) -> None:
    run_id = _killed_run(workspace, "write then wait")
    listed = _agent(workspace, "runs", "list", "--json")
    [summary] = json.loads(listed.stdout)
    assert (summary["status"], summary["steps"], summary["steps_ok"]) == ("INTERRUPTED", 3, 1)
    assert summary["changed_files"] is True

    table = _agent(workspace, "runs", "list")
    assert table.returncode == 0, table.stderr
    assert "INTERRUPTED (killed?)" in table.stdout and " 1/3 " in table.stdout, table.stdout
    assert f"1 run cut short: resume with agent run --resume {run_id}" in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) <= 80, table.stdout

    shown = _agent(workspace, "runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    flat = " ".join(shown.stdout.split())
    assert "INTERRUPTED (no end recorded: killed, or still going) · steps 1/3 ok" in flat, shown.stdout
    assert f"cut short: resume with agent run --resume {run_id}" in shown.stdout.splitlines()
    assert "s2 run_shell  cut short" in shown.stdout  # not "running": nothing runs it any more
    assert max(len(line) for line in shown.stdout.splitlines()) <= 80, shown.stdout


def _undo_chooser(ws: Path) -> str:
    child = pexpect.spawn(sys.executable, ["-m", "agentcli", "undo"], cwd=str(ws), dimensions=(24, 80),
                          env={**_env(ws, []), "TERM": "xterm-256color", "PYTHONPATH": os.pathsep.join(sys.path)},
                          encoding="utf-8", timeout=60)
    child.expect([r"undo which run\?", pexpect.EOF])
    screen = child.before or ""
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    return screen + (child.before or "")


@pytest.mark.slow
def test_undo_offers_only_runs_that_changed_files(workspace: Path) -> None:
    (workspace / "a.txt").write_text("a\n")
    done = _agent(workspace, "run", LONG_TASK, "--yes", script=[READ_ONLY, REVIEW])
    assert done.returncode == 0, done.stderr
    [unchanged] = [p.name for p in (workspace / ".agent" / "runs").iterdir()]

    nothing = _undo_chooser(workspace)
    assert "nothing to undo: none of the last 1 run changed files" in " ".join(nothing.split()), nothing
    assert unchanged not in nothing

    killed = _killed_run(workspace, LONG_TASK)
    screen = _undo_chooser(workspace)
    offered = [line for line in screen.splitlines() if re.match(r"\s*\[\d\] \d{8}-", line)]
    assert len(offered) == 1 and killed in offered[0] and unchanged not in screen, screen
    # one line at 80 columns: the task cut with an ellipsis
    assert offered[0].rstrip().endswith("…") and len(offered[0].rstrip()) < 80, offered
