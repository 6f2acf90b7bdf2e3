"""What a person sees while a run works, and Ctrl-C, through a real pseudo-terminal against a slow
OpenAI-compatible model on loopback: a status line from the start that moves while a model call
is in flight, one Ctrl-C stopping the run recorded and resumable, a second ending it at once.
Times are not asserted here (bench/ measures them): only what is shown, in what order, and what
is recorded."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from httpkit import ModelServer
from pytest_httpserver import HTTPServer

pexpect = pytest.importorskip("pexpect")

PLAN = {"steps": {"s1": {"call": {"tool": "list_files", "args": {"pattern": "*.md"}}, "depends_on": [],
                         "title": "list the markdown files"}}}
VERDICT = {"outcome": "complete", "answer": "notes.md", "reason": ""}
TASK = "list the markdown files"
WAITING = re.compile(r"waiting for \S+ (\d+\.\d)s")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    d = tmp_path / "ws"
    d.mkdir()
    (d / "notes.md").write_text("# notes\n")
    return d


def spawn(ws: Path, server: ModelServer, *args: str, columns: int = 100) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "OPENAI_")) and k not in (
        "NO_COLOR", "COLUMNS")}
    env.update(server.env(AGENT_PLANNER__SURVEY_CALLS="0", AGENT_ALLOW_MODEL_REQUESTS="1"), TERM="xterm-256color",
               PYTHONPATH=os.pathsep.join(sys.path))
    return pexpect.spawn(sys.executable, ["-m", "agentcli", "run", *args], cwd=str(ws), env=env,
                         encoding="utf-8", timeout=120, dimensions=(30, columns))


def finished(ws: Path) -> tuple[str, dict[str, Any]]:
    [events] = list((ws / ".agent" / "runs").glob("*/events.jsonl"))
    ends = [json.loads(x) for x in events.read_text().splitlines() if '"run_finished"' in x]
    return events.parent.name, ends[-1]["data"]


def test_the_status_line_shows_from_the_start_and_moves_during_a_model_call(ws: Path, httpserver: HTTPServer
                                                                            ) -> None:
    server = ModelServer(httpserver, delay=3.0).add(PLAN, VERDICT)
    child = spawn(ws, server, "--yes", TASK)
    # The first thing on screen is the status line, before the engine has even been imported.
    child.expect(r"(?<![\[;0-9])[A-Za-z]{4,}")
    assert child.after in ("starting", "planning"), child.after
    assert not re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before).strip(" ⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏\r\n")
    child.expect(WAITING)
    seen = {child.match.group(1)}
    while len(seen) < 2:  # the same call, redrawn with a later time
        child.expect(WAITING)
        seen.add(child.match.group(1))
    child.expect_exact("notes.md")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert finished(ws)[1]["status"] == "COMPLETE"


def test_ctrl_c_during_a_model_call_stops_the_run_recorded_and_resume_plans_again(
        ws: Path, httpserver: HTTPServer) -> None:
    server = ModelServer(httpserver, delay=600.0)
    child = spawn(ws, server, "--yes", TASK)
    try:
        child.expect(WAITING)  # the planner's call is in flight
        child.sendintr()
        child.expect_exact("resume with: agent run --resume")
        child.expect(pexpect.EOF)
        child.close()
    finally:
        server.release()
    assert child.exitstatus == 130
    run_id, end = finished(ws)
    assert end["reason"] == "interrupted" and end["exit_code"] == 130
    # The abandoned request is answered (an error nobody reads) before the resume's are queued.
    server.delay = 0.0
    deadline = 600
    while not server.bodies and deadline:
        __import__("time").sleep(0.1)
        deadline -= 1
    server.add(PLAN, VERDICT)
    again = spawn(ws, server, "--resume", run_id, "--yes")
    again.expect_exact("notes.md")
    again.expect(pexpect.EOF)
    again.close()
    assert again.exitstatus == 0
    assert finished(ws)[1]["status"] == "COMPLETE"
    # Stopped while planning and resumed, the run replays identical: the replay of its first part
    # is interrupted where the run was, before any plan.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "OPENAI_"))}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    replayed = subprocess.run([sys.executable, "-m", "agentcli", "replay", run_id], cwd=ws, env=env,
                              capture_output=True, text=True, timeout=120)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert replayed.stdout.startswith("identical")


def test_a_second_ctrl_c_ends_the_process_at_once(ws: Path, httpserver: HTTPServer) -> None:
    server = ModelServer(httpserver, delay=600.0)
    try:
        child = spawn(ws, server, "--yes", TASK)
        child.expect(WAITING)
        child.sendintr()
        child.sendintr()
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 130
        assert "interrupted" in child.before
    finally:
        server.release()
