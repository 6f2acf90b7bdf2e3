"""What a person sees, through a real pseudo-terminal (pexpect): the tables at 80 and 120 columns
(committed as text snapshots in tests/snapshots/screens/), and every question agentcli asks: its
legend drawn exactly, Ctrl-C taken as "stop the run" (recorded, exit 4), nothing printed inside it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pexpect = pytest.importorskip("pexpect")

SNAPSHOTS = Path(__file__).parent / "snapshots" / "screens"
TASK = "find every python module that imports the requests library and say what each uses it for"
LIST = {"steps": [{"title": "List the Python files", "tool": "list_files", "args": {"pattern": "**/*.py"}}]}
NOTES = ("## 0.4.3\n\n- Fixed rounding of discounts on carts over 100 items\n- The CLI reads "
         "config/defaults.toml before the user's file\n")
RELEASE = {"steps": [
    {"title": "Read the changelog", "tool": "read_file", "args": {"path": "CHANGELOG.md"}},
    {"title": "Write the release notes for version 0.4.3", "tool": "write_file",
     "args": {"path": "docs/release-notes-0.4.3.md", "content": NOTES}}]}
WRITE = {"steps": [{"title": "Write a note", "tool": "write_file", "args": {"path": "note.txt", "content": "hi"}}]}
DONE = {"outcome": "complete", "answer": "done", "reason": ""}


def _env(ws: Path, script: list[Any] | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_") and k not in ("COLUMNS", "LINES")}
    env.update({"TERM": "xterm-256color", "NO_COLOR": "1", "PYTHONPATH": os.pathsep.join(sys.path),
                "AGENT_MEMORY__ENABLED": "false", "AGENT_MODEL": "test/script"}, **extra)
    if script is not None:
        path = ws.parent / f"script-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(script))
        env["AGENT_TEST_SCRIPT"] = str(path)
    return env


def run_plain(ws: Path, *args: str, script: list[Any] | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentcli", *args], cwd=ws, env=_env(ws, script, **extra),
                          text=True, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


def spawn(ws: Path, *args: str, columns: int = 100, script: list[Any] | None = None, **extra: str) -> Any:
    return pexpect.spawn(sys.executable, ["-m", "agentcli", *args], cwd=str(ws), env=_env(ws, script, **extra),
                         encoding="utf-8", timeout=60, dimensions=(60, columns))


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def screen_of(ws: Path, *args: str, columns: int, script: list[Any] | None = None) -> str:
    """What a command shows in a terminal ``columns`` wide, as plain text lines (what is left on the
    screen at the end: a status line drawn while it worked is erased by then)."""
    child = spawn(ws, *args, columns=columns, script=script)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    return "\n".join(line.rstrip() for line in _rendered(child.before)) + "\n"


_CONTROL = re.compile(r"\x1b\[([\d;]*)([A-Za-z])|\x1b\[\?[\d;]*[A-Za-z]|\x1b\][^\x07]*\x07|\r|\n")


def _rendered(raw: str) -> list[str]:
    """The lines a terminal shows for ``raw``, as far as these commands move the cursor: a carriage
    return, a new line, up (``ESC [ n A``) and erase the line (``ESC [ 2 K``, ``ESC [ K``); colours
    and the rest are dropped. A line is not folded at the terminal's width (what :func:`fits` checks)."""
    lines, row, col, pos = [""], 0, 0, 0

    def put(text: str) -> None:
        nonlocal col
        line = lines[row].ljust(col)
        lines[row] = line[:col] + text + line[col + len(text):]
        col += len(text)

    for m in _CONTROL.finditer(raw):
        put(raw[pos:m.start()])
        pos, token = m.end(), m.group(0)
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif m.group(2) == "A":
            row = max(0, row - int(m.group(1) or 1))
        elif m.group(2) == "K":
            lines[row] = "" if m.group(1) == "2" else lines[row][:col]
    put(raw[pos:])
    return "\n".join(lines).splitlines()


def normalised(text: str, ws: Path) -> str:
    """A screen without what changes from run to run (ids, clock times, durations, costs, counts
    of tokens, hashes, the temporary workspace)."""
    text = text.replace(str(ws), "<ws>")
    text = re.sub(r"\d{8}-\d{6}-[0-9a-f]{6}", "<run-id-------------->", text)
    text = re.sub(r"\d\d-\d\d \d\d:\d\d", "<time----->", text)
    text = re.sub(r"hash [0-9a-f]{12}", "hash <hash------>", text)
    text = re.sub(r"\d+(\.\d+)?s\b", lambda m: "<s>".ljust(len(m.group(0))), text)
    text = re.sub(r"\$[\d.]+", lambda m: "<$>".ljust(len(m.group(0))), text)
    return re.sub(r"\(\d+ tokens", "(<n> tokens", text)


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"snapshot {name} is missing (UPDATE_SNAPSHOTS=1 creates it)"
    assert text == path.read_text(encoding="utf-8"), f"snapshot {name} differs (UPDATE_SNAPSHOTS=1 updates it)"


def fits(screen: str, columns: int) -> None:
    # A path in a message line is the terminal's to fold; the tables never need that.
    lines = [x for x in screen.splitlines() if not x.startswith("plan saved to")]
    assert max(len(line) for line in lines) <= columns, screen


def words(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------ the tables


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with three runs whose statuses differ only after the first word."""
    ws = tmp_path_factory.mktemp("screens") / "ws"
    ws.mkdir()
    (ws / "main.py").write_text("import requests\n")
    assert run_plain(ws, "run", "--yes", TASK, script=[LIST, DONE]).returncode == 0
    time.sleep(1.1)  # run ids sort by their second: the list's order is the runs' order
    assert run_plain(ws, "run", TASK, script=[WRITE]).returncode == 4  # no terminal, no --yes: denied
    time.sleep(1.1)
    assert run_plain(ws, "run", "--yes", "--max-tokens", "100", TASK, script=[LIST]).returncode == 3
    return ws


@pytest.mark.parametrize("columns", [80, 120])
def test_runs_list_shows_the_task_and_the_whole_status(recorded: Path, columns: int) -> None:
    screen = screen_of(recorded, "runs", "list", columns=columns)
    fits(screen, columns)
    check_snapshot(f"runs-list-{columns}.txt", normalised(screen, recorded))
    for status in ("COMPLETE", "FAILED (denied)", "FAILED (budget_exceeded:tokens)"):
        assert status in screen  # whole: the reasons are what tells the runs apart
    assert words(screen).count(TASK) == 3
    ids = sorted(p.name for p in (recorded / ".agent" / "runs").iterdir())
    assert all(run_id in screen for run_id in ids)  # whole: what `runs show` and `undo` take


@pytest.mark.parametrize("columns", [80, 120])
def test_runs_show_gives_costs_in_one_form(recorded: Path, columns: int) -> None:
    screen = screen_of(recorded, "runs", "show", sorted((recorded / ".agent" / "runs").iterdir())[0].name,
                       columns=columns)
    costs = screen.split("cost per step", 1)[1]
    assert "list_files" in costs and "$0.000000" not in costs  # nothing spent is $0, as in every table
    assert re.search(r"list_files +ok +0 +\$0 +\$0 +\+\$0\n", costs), costs


@pytest.mark.parametrize("columns", [80, 120])
def test_the_plan_shows_a_write_steps_whole_arguments(recorded: Path, columns: int) -> None:
    screen = screen_of(recorded, "plan", "write the release notes for 0.4.3", columns=columns,
                       script=[RELEASE])
    fits(screen, columns)
    check_snapshot(f"plan-{columns}.txt", normalised(screen, recorded))
    assert "write_file" in screen and "Write the release notes" in screen
    assert words(f"path=docs/release-notes-0.4.3.md content={json.dumps(NOTES)}") in words(screen)


@pytest.mark.parametrize("columns", [80, 120])
def test_memory_list_shows_whole_run_ids(tmp_path: Path, columns: int) -> None:
    from agentcli.config import load_settings
    from agentcli.memory import Memory

    ws = tmp_path / "ws"
    ws.mkdir()
    mem = Memory.from_settings(load_settings(workspace=ws, environ={}, use_user_config=False))
    run_ids = ["20261124-010000-abcdef", "20261124-020000-123456"]
    for run_id, task in zip(run_ids, (TASK, "add a slugify helper to the utils module"), strict=True):
        mem.record_episode(run_id=run_id, task=task, plan_summary="s1 list_files", status="COMPLETE",
                           reason="complete", answer="main.py", cost_usd=0.001)
    child = pexpect.spawn(sys.executable, ["-m", "agentcli", "memory", "list", "--tier", "episodic"], cwd=str(ws),
                          env={**_env(ws), "AGENT_MEMORY__ENABLED": "true"}, encoding="utf-8", timeout=120,
                          dimensions=(40, columns))
    child.expect(pexpect.EOF)
    child.close()
    screen = _ANSI.sub("", child.before).replace("\r", "")
    assert child.exitstatus == 0, screen
    fits(screen, columns)
    lines = [x.rstrip() for x in screen.splitlines()]
    # Both episodes are written within the same instant: their order is not the point.
    check_snapshot(f"memory-list-{columns}.txt", "\n".join(lines[:2] + sorted(lines[2:])) + "\n")
    assert all(run_id in screen for run_id in run_ids)  # whole: what `memory forget` takes


# ------------------------------------------------------------------ the questions

#: Every question agentcli asks, as drawn: the question, its legend, the default.
LEGENDS = {
    "plan": "run this plan? [y]es / [n]o, or type what to change (y): ",
    "approval": "run it? [y]es / [n]o / [a]lways (this tool, this run) / a[b]ort, or type what to do instead (n): ",
    "undo": "undo these changes? [y]es / [n]o (n): ",
    "resume": "run it again? [y]es / [d]one already, go on / [n]o, stop (n): ",
}


def test_every_legend_is_drawn_by_the_one_function() -> None:
    from agentcli.cli.commands.run import (
        APPROVAL_CHOICES,
        APPROVAL_WORDS,
        PLAN_CHOICES,
        PLAN_WORDS,
        UNCERTAIN_CHOICES,
    )
    from agentcli.cli.prompts import legend

    assert f"run this plan? {legend(PLAN_CHOICES)}, {PLAN_WORDS} (y): " == LEGENDS["plan"]
    assert f"run it? {legend(APPROVAL_CHOICES)}, {APPROVAL_WORDS} (n): " == LEGENDS["approval"]
    assert f"run it again? {legend(UNCERTAIN_CHOICES)} (n): " == LEGENDS["resume"]


def test_plan_approval_and_undo_legends_in_a_real_terminal(workspace: Path) -> None:
    child = spawn(workspace, "run", "write a note", script=[WRITE, DONE], columns=120)
    child.expect_exact(LEGENDS["plan"])
    child.sendline("y")
    child.expect_exact(LEGENDS["approval"])
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and (workspace / "note.txt").read_text() == "hi"
    child = spawn(workspace, "undo", "last")
    child.expect_exact(LEGENDS["undo"])
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and not (workspace / "note.txt").exists()


def test_a_legend_wider_than_the_terminal_puts_the_hint_on_the_answers_line(workspace: Path) -> None:
    child = spawn(workspace, "run", "write a note", script=[WRITE, DONE], columns=80)
    child.expect_exact(LEGENDS["plan"])  # it fits: one line
    child.sendline("y")
    child.expect_exact("run it? [y]es / [n]o / [a]lways (this tool, this run) / a[b]ort,\r\n"
                       "or type what to do instead (n): ")
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and (workspace / "note.txt").read_text() == "hi"


def test_undo_without_an_id_asks_which_at_a_terminal(workspace: Path) -> None:
    assert run_plain(workspace, "run", "--yes", "write a note", script=[WRITE, DONE]).returncode == 0
    child = spawn(workspace, "undo")
    child.expect_exact("undo which run? [1] / [n]one (1): ")
    child.sendline("")
    child.expect_exact(LEGENDS["undo"])
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and not (workspace / "note.txt").exists()


def _finished(ws: Path) -> dict[str, Any]:
    [path] = list((ws / ".agent" / "runs").glob("*/events.jsonl"))
    events = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return next(e for e in reversed(events) if e["type"] == "run_finished")["data"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("at", ["plan", "approval"])
def test_ctrl_c_at_a_question_stops_the_run_recorded(workspace: Path, at: str) -> None:
    """The reproduction: the write prompt survived two Ctrl-C and asked again."""
    child = spawn(workspace, "run", "write a note", script=[WRITE, DONE])
    child.expect_exact(LEGENDS["plan"])
    if at == "approval":
        child.sendline("y")
        child.expect_exact(LEGENDS["approval"])
    child.sendcontrol("c")
    child.expect(pexpect.EOF, timeout=180)  # the run then finishes and is recorded (slow under load)
    child.close()
    assert child.exitstatus == 4, child.before
    assert LEGENDS["approval"] not in (child.before or "")  # not asked again
    assert not (workspace / "note.txt").exists()
    finished = _finished(workspace)
    assert finished["status"] == "FAILED" and finished["reason"] == ("denied" if at == "plan" else "aborted")


def test_nothing_is_printed_inside_an_open_question(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A parallel step's `ok s3 0.09s` once landed inside the approval prompt's line: a line said
    while a question is open waits for the answer."""
    from agentcli.cli import prompts
    from agentcli.cli.commands.common import configure_consoles

    configure_consoles(no_color=True)
    read, write = os.pipe()
    monkeypatch.setattr(sys, "stdin", os.fdopen(read, "r"))
    answers: list[str] = []
    asking = threading.Thread(target=lambda: answers.append(prompts.ask("run it?", [("y", "[y]es")], default="y")))
    asking.start()
    deadline = time.monotonic() + 10
    while "run it?" not in capsys.readouterr().err and time.monotonic() < deadline:
        time.sleep(0.01)
    prompts.say(lambda: print("ok s3 0.09s", file=sys.stderr))
    time.sleep(0.1)
    assert "ok s3" not in capsys.readouterr().err  # held while the question is open
    os.write(write, b"y\n")
    asking.join(10)
    assert answers == ["y"] and "ok s3 0.09s" in capsys.readouterr().err
    os.close(write)


def test_a_failed_runs_answer_is_on_the_screen_once(workspace: Path) -> None:
    (workspace / "a.txt").write_text("A\n")
    read = {"steps": [{"title": "Read a.txt", "tool": "read_file", "args": {"path": "a.txt"}}]}
    stop = {"outcome": "stop", "answer": "", "reason": "the notes need the version number, which a.txt lacks"}
    child = spawn(workspace, "run", "write the release notes", "--yes", script=[read, stop], columns=120)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus != 0
    screen = "\n".join(_rendered(child.before))
    assert screen.count("which a.txt lacks") == 1, screen
    assert "error: stopped" in screen


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("group", ["", "runs", "memory", "tools", "config"])
def test_every_commands_help_line_is_whole(workspace: Path, columns: int, group: str) -> None:
    screen = screen_of(workspace, *([group] if group else []), "--help", columns=columns)
    fits(screen, columns)
    commands = screen.split("Commands:\n", 1)[1].strip().splitlines()
    assert len(commands) >= 2
    for line in commands:  # each a whole phrase, not one cut off with "..."
        assert line.rstrip().endswith((".", ")")) and not line.rstrip().endswith("..."), screen
    if not group:
        assert "--data-dir <path>" in screen
