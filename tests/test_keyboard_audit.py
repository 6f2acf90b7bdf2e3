"""What a person at the keyboard meets first, through the public surface: a mistyped flag or a
missing argument is one ``error:`` line naming the command's help (exit 2), never click's four
lines; the group's help when no subcommand is given stays as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from httpkit import ModelServer
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models.fakes import ScriptedModel


def agent(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return subprocess.run([sys.executable, "-m", "agentcli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("args", "line"), [
    (["--bogus"], "error: no such option: --bogus (see agent --help)"),
    (["run", "--yse", "x"], "error: no such option: --yse; did you mean --yes? (see agent run --help)"),
    (["runs", "show"], "error: missing argument 'run_id' (see agent runs show --help)"),
    (["runs", "shw"], "error: no such command 'shw'; did you mean 'show'? (see agent runs --help)"),
    (["run", "--max-steps", "many", "x"], "error: invalid value for '--max-steps': input should be a valid "
                                          "integer, unable to parse string as an integer (see agent run --help)"),
    (["-m"], "error: option '-m' requires an argument (see agent --help)"),
])
def test_a_bad_flag_or_argument_is_one_line_and_exit_2(tmp_path: Path, args: list[str], line: str) -> None:
    r = agent(*args, cwd=tmp_path)
    assert r.returncode == 2
    # Run as `python -m agentcli`, the help it names is that command's.
    assert r.stderr.replace("python -m agentcli", "agent").splitlines() == [line]
    assert r.stdout == ""
    assert not (tmp_path / ".agent").exists()  # nothing was started


def test_a_group_without_its_subcommand_still_shows_its_help(tmp_path: Path) -> None:
    r = agent("runs", cwd=tmp_path)
    assert "agentcli runs [OPTIONS] COMMAND" in r.stdout + r.stderr
    assert "Commands:" in r.stdout + r.stderr


# -- agent chat: Ctrl-D after a turn stopped by Ctrl-C while its model call was in flight

def _pty_env(server: ModelServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "OPENAI_")) and k not in (
        "NO_COLOR", "COLUMNS")}
    env.update(server.env(AGENT_PLANNER__SURVEY_CALLS="0", AGENT_ALLOW_MODEL_REQUESTS="1"), TERM="xterm-256color",
               PROMPT_TOOLKIT_NO_CPR="1", PYTHONPATH=os.pathsep.join(sys.path))
    return env


def test_ctrl_d_leaves_the_chat_though_a_stopped_turn_left_its_model_call_in_flight(
        tmp_path: Path, httpserver: HTTPServer) -> None:
    pexpect = pytest.importorskip("pexpect")
    server = ModelServer(httpserver, delay=600.0)  # the model never answers while the test runs
    try:
        child = pexpect.spawn(sys.executable, ["-m", "agentcli", "chat"], cwd=str(tmp_path), env=_pty_env(server),
                              encoding="utf-8", timeout=60, dimensions=(30, 80))
        child.expect_exact("agent>")
        child.sendline("list the markdown files")
        child.expect(r"waiting for \S+ \d+\.\ds")  # the planner's call is in flight
        child.sendintr()
        child.expect_exact("interrupted")
        child.expect_exact("agent>")
        child.sendcontrol("d")
        child.expect_exact("resume with agent chat --resume")
        # The chat ends now: the request still in flight (for 600 s) does not hold the exit.
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        assert "Traceback" not in (child.before or "")
    finally:
        server.release()


# -- agent ask: what it shows while the model thinks, and Ctrl-C

def test_ask_shows_the_model_thinking_and_ctrl_c_stops_it_at_once(tmp_path: Path, httpserver: HTTPServer) -> None:
    pexpect = pytest.importorskip("pexpect")
    server = ModelServer(httpserver, delay=600.0)
    try:
        child = pexpect.spawn(sys.executable, ["-m", "agentcli", "ask", "what is 2+2"], cwd=str(tmp_path),
                              env=_pty_env(server), encoding="utf-8", timeout=60, dimensions=(30, 80))
        child.expect(r"asking · \d+\.\ds · waiting for \S+ \d+\.\ds")  # a status line while it thinks
        child.sendintr()
        # Stopped at once: the request in flight (600 s) does not hold the exit.
        child.expect_exact("interrupted")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 130
        assert "Traceback" not in (child.before or "")
    finally:
        server.release()


def test_ask_streams_under_its_status_line_then_prints_the_answer(tmp_path: Path, httpserver: HTTPServer) -> None:
    pexpect = pytest.importorskip("pexpect")
    server = ModelServer(httpserver).add("Four, as it has always been.")
    child = pexpect.spawn(sys.executable, ["-m", "agentcli", "ask", "what is 2+2"], cwd=str(tmp_path),
                          env=_pty_env(server), encoding="utf-8", timeout=60, dimensions=(30, 80))
    child.expect_exact("Four, as it has always been.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert server.streamed == [True]  # on a terminal the answer streams, as `agent run`'s do


def test_ask_with_an_empty_prompt_is_a_usage_error(tmp_path: Path) -> None:
    r = agent("ask", "   ", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.splitlines() == ["error: the prompt is empty"]


# -- agent run: how a run that stopped short says to go on; an error said once

def invoke(args: list[str], *responses: Any) -> Any:
    runner = CliRunner(env={"COLUMNS": "80"})
    return runner.invoke(app, args, obj=State(backend=ScriptedModel(list(responses)),
                                              environ={"AGENT_MODEL": "test/scripted",
                                                       "AGENT_MEMORY__ENABLED": "false"}))


def _run_id(ws: Path) -> str:
    [run] = list((ws / ".agent" / "runs").iterdir())
    return run.name


LIST_PY = {"steps": [{"title": "List the Python files", "tool": "list_files", "args": {"pattern": "**/*.py"}}]}
WRITE = {"steps": [{"title": "Write it", "tool": "write_file", "args": {"path": "a.txt", "content": "a"}}]}


def test_a_run_stopped_on_its_budget_says_which_flag_resumes_it(workspace: Path) -> None:
    r = invoke(["run", "list the python files", "--yes", "--max-tokens", "5"], LIST_PY)
    assert r.exit_code == 3, r.output
    run_id = _run_id(workspace)
    assert f"resume with a larger budget: agent run --resume {run_id} --max-tokens N" in r.stderr
    assert r.stderr.splitlines()[-1].startswith("error: budget_exceeded:tokens: ")


def test_a_step_denied_for_want_of_a_terminal_says_how_to_resume(workspace: Path) -> None:
    r = invoke(["run", "write a.txt"], WRITE, {"outcome": "stop", "answer": "", "reason": "declined"})
    assert r.exit_code == 4, r.output
    assert f"resume with: agent run --resume {_run_id(workspace)}" in r.stderr
    assert not (workspace / "a.txt").exists()


def test_a_run_that_fails_with_an_error_says_it_once(workspace: Path) -> None:
    r = invoke(["run", "list the python files", "--yes"], "not a plan", "still not", "nor this")
    assert r.exit_code == 1, r.output
    [line] = [x for x in (r.stdout + r.stderr).splitlines() if "did not reply with JSON" in x]
    assert line.startswith("error: the planner did not reply with JSON")
    assert "resume with" not in r.stderr  # asking the same planner again is no way on


# -- agent runs stats at 80 columns: the model's name whole

def test_runs_stats_at_80_columns_keeps_the_model_name_whole(workspace: Path) -> None:
    model = "test/a-model-with-a-long-name"  # priced by nobody: its calls are counted as unpriced
    r = CliRunner().invoke(app, ["run", "list the files", "--yes"], obj=State(
        backend=ScriptedModel([LIST_PY, {"outcome": "complete", "answer": "x", "reason": ""}], price=None),
        environ={"AGENT_MODEL": model, "AGENT_MEMORY__ENABLED": "false"}))
    assert r.exit_code == 0, r.output
    stats = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["runs", "stats"], obj=State(environ={}))
    assert stats.exit_code == 0, stats.output
    lines = stats.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, stats.stdout
    [row] = [line for line in lines if line.startswith(model)]
    assert row.split()[1:3] == ["1", "2"]  # runs, calls: counts whole on the row
    assert "    unpriced: 2 (" in stats.stdout  # under the row, whole, where the row cannot hold it


# -- the status line at 80 columns: the call's timer is never what is cut

@pytest.mark.parametrize(("columns", "waiting"), [(80, "waiting for gpt-4o-mini "),
                                                  (120, "waiting for openai/gpt-4o-mini ")])
def test_the_status_line_keeps_the_model_calls_timer_at_80_columns(columns: int, waiting: str) -> None:
    import io
    import re
    from types import SimpleNamespace

    from rich.console import Console

    from agentcli.cli.live import RunStatus
    from agentcli.models.types import PreCall, RunTotals

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=columns, color_system=None)
    status = RunStatus(console, enabled=True)
    totals = RunTotals()
    totals.input_tokens, totals.output_tokens, totals.cost_usd = 12_000, 345, 0.0123
    client = SimpleNamespace(totals=totals, on_send=[], observers=[], on_text=[])
    status.watch_client(client)
    status.set_phase("planning")
    client.on_send[0](PreCall("openai/gpt-4o-mini", 10, 10, None, "planner", None))
    console.print(status)
    [line] = out.getvalue().splitlines()
    assert len(line) < columns
    assert re.search(re.escape(waiting) + r"\d+\.\ds", line), line  # the timer whole, not "9…"
    assert "12,345 tokens" in line


# -- agent doctor at a terminal: a long line wrapped under its own text; a workspace that does not
#    exist is not made by its checks

def test_doctor_wraps_a_long_line_under_its_text_at_80_columns(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    pyte = pytest.importorskip("pyte")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_") and k not in ("NO_COLOR", "COLUMNS")}
    env.update(AGENT_MODEL="test/scripted", AGENT_MEMORY__ENABLED="false", TERM="xterm-256color",
               PYTHONPATH=os.pathsep.join(sys.path))
    screen = pyte.Screen(80, 40)
    stream = pyte.Stream(screen)
    child = pexpect.spawn(sys.executable, ["-m", "agentcli", "-w", str(tmp_path / "missing"), "doctor"],
                          cwd=str(tmp_path), env=env, encoding="utf-8", timeout=120, dimensions=(40, 80))
    while True:
        try:
            stream.feed(child.read_nonblocking(65536, timeout=120))
        except pexpect.EOF:
            break
    child.close()
    lines = [line.rstrip() for line in screen.display if line.strip()]
    assert child.exitstatus == 1  # the workspace does not exist: the config check fails
    assert lines[0].startswith("FAIL config: workspace")
    # A path longer than a line is broken where the line ends, not at a space: compare the text
    # without its white space (a temporary folder's path is longer under a parallel test run).
    flat = "".join("".join(lines).split())
    said = f"FAIL data dir: not checked: the workspace {tmp_path / 'missing'} is not a directory"
    assert "".join(said.split()) in flat, lines
    assert not (tmp_path / "missing").exists()  # a check never makes the workspace it was given
    for line in lines:  # every line a check's (its mark) or the wrapped rest of one, under its text
        assert line[:5] in ("ok   ", "warn ", "FAIL ", "     "), lines
        assert not line.startswith("      "), lines
    assert any(line.startswith("     ") for line in lines)  # at 80 columns some check's line is long
    assert "Traceback" not in screen.display


def test_how_to_undo_a_run_fits_80_columns(workspace: Path) -> None:
    r = invoke(["run", "write a.txt", "--yes"], WRITE, {"outcome": "complete", "answer": "wrote a.txt", "reason": ""})
    assert r.exit_code == 0, r.output
    run_id = _run_id(workspace)
    lines = r.stderr.splitlines()
    assert f"changed the workspace; undo with: agent undo {run_id}" in lines
    assert f"see what changed: agent runs diff {run_id}" in lines
    assert all(len(line) <= 80 for line in lines), lines


def test_a_bad_flag_of_agent_run_at_a_terminal_leaves_no_starting_line(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    pyte = pytest.importorskip("pyte")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_") and k not in ("NO_COLOR", "COLUMNS")}
    env.update(TERM="xterm-256color", PYTHONPATH=os.pathsep.join(sys.path))
    screen = pyte.Screen(80, 10)
    stream = pyte.Stream(screen)
    child = pexpect.spawn(sys.executable, ["-m", "agentcli", "run", "--yse", "list the files"], cwd=str(tmp_path),
                          env=env, encoding="utf-8", timeout=60, dimensions=(10, 80))
    while True:
        try:
            stream.feed(child.read_nonblocking(65536, timeout=60))
        except pexpect.EOF:
            break
    child.close()
    assert child.exitstatus == 2
    lines = [line.rstrip() for line in screen.display if line.strip()]
    # The entry point drew "starting…" at once; the error takes its place, alone on the screen.
    assert "".join(lines) == "error: no such option: --yse; did you mean --yes? (see python -m agentcli run --help)"
    assert "starting" not in screen.display[0]
