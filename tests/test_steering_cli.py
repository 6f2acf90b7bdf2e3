"""Feedback and steering from the command line: the plan prompt and an approval prompt in a real
pseudo-terminal (pexpect), steering through ``--output jsonl`` stdin in a real subprocess, bad
input, ``agent runs show``, and each run replayed identical by ``agent replay``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REVIEW = {"outcome": "complete", "answer": "done as asked", "reason": ""}


def _env(ws: Path, script: list[object]) -> dict[str, str]:
    script_file = ws.parent / f"script-{time.monotonic_ns()}.json"
    script_file.write_text(json.dumps(script))
    return {**os.environ, "AGENT_MODEL": "test/script", "AGENT_TEST_SCRIPT": str(script_file),
            "AGENT_MEMORY__ENABLED": "false", "NO_COLOR": "1", "COLUMNS": "120"}


def _agent(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentcli", *args], cwd=ws, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "AGENT_MEMORY__ENABLED": "false", "COLUMNS": "120"})


def _replays_identical(ws: Path) -> None:
    done = _agent(ws, "replay", "last", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["identical"], verdict


def _events(ws: Path) -> list[dict[str, Any]]:
    [path] = list((ws / ".agent" / "runs").glob("*/events.jsonl"))
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


class Terminal:
    """``agent run`` in a real pseudo-terminal: answer each prompt as it comes, keep the screen."""

    PROMPTS = {"plan": r"run this plan\? \[y\]es / \[n\]o, or type what to change \(y\): ",
               "approval": r"run it\? \[y\]es / \[n\]o / \[a\]lways \(this tool, this run\) / a\[b\]ort, "
                           r"or type what to do instead \(n\): ",
               "again": r"please answer one of: [^\n]*\n"}

    def __init__(self, ws: Path, script: list[object], *args: str) -> None:
        import pexpect

        self.child = pexpect.spawn(sys.executable, ["-m", "agentcli", "run", *args], cwd=str(ws),
                                   env=_env(ws, script), encoding="utf-8", timeout=90, dimensions=(60, 120))
        self.screen = ""

    def answer(self, *replies: tuple[str, str]) -> int:
        import pexpect

        names = list(self.PROMPTS)
        pending = list(replies)
        try:
            while True:
                i = self.child.expect([*self.PROMPTS.values(), pexpect.EOF])
                self.screen += (self.child.before or "") + (self.child.after if isinstance(self.child.after, str)
                                                            else "")
                if i == len(names):
                    break
                if names[i] == "again":
                    continue
                want, reply = pending.pop(0)
                assert want == names[i], (want, names[i], self.screen[-1500:])
                self.child.sendline(reply)
        finally:
            self.child.close()
        assert not pending, (pending, self.screen[-1500:])
        # What a person reads: colours and cursor moves of the status line taken out.
        self.screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.screen).replace("\r", "")
        return self.child.exitstatus if self.child.exitstatus is not None else -1


LIST_TXT = {"steps": [{"title": "list the text files", "tool": "list_files", "args": {"pattern": "*.txt"}}]}
LIST_PY = {"steps": [{"title": "list the python files", "tool": "list_files", "args": {"pattern": "*.py"}}]}


def test_feedback_at_the_plan_prompt_revises_the_plan_shown_as_a_diff(workspace: Path) -> None:
    (workspace / "a.txt").write_text("a\n")
    (workspace / "b.py").write_text("b = 1\n")
    term = Terminal(workspace, [LIST_TXT, LIST_PY, REVIEW], "list some files")
    # One character that is no key is asked again (no re-plan for a slip of a key); words are feedback.
    code = term.answer(("plan", "x"), ("plan", "list the python files instead"), ("plan", "y"))
    screen = term.screen
    assert code == 0, screen[-2000:]
    assert "please answer one of: y, n, or type what to change" in screen
    assert "the plan changed for your feedback (+0 -0 ~1):" in screen
    assert "~ s1 list_files: title: list the text files -> list the python files; args.pattern: *.txt -> *.py" \
        in screen
    assert "Traceback" not in screen
    events = _events(workspace)
    [said] = [e for e in events if e["type"] == "user_message"]
    assert said["data"]["kind"] == "feedback" and said["data"]["text"] == "list the python files instead"
    [call] = [e for e in events if e["type"] == "tool_call"]
    assert call["data"]["args"] == {"pattern": "*.py"}
    shown = _agent(workspace, "runs", "show", "last")
    assert shown.returncode == 0, shown.stderr
    assert "the user's words (1):" in shown.stdout
    assert 'feedback at the plan\'s confirmation: "list the python files instead"' in shown.stdout
    _replays_identical(workspace)


def test_no_after_feedback_still_stops_with_exit_4(workspace: Path) -> None:
    term = Terminal(workspace, [LIST_TXT, LIST_PY], "list some files")
    code = term.answer(("plan", "list the python files instead"), ("plan", "n"))
    assert code == 4, term.screen[-2000:]
    assert "the plan was not confirmed" in term.screen
    _replays_identical(workspace)


WRITE_OUT = {"steps": [{"title": "list the files", "tool": "list_files", "args": {"pattern": "*"}},
                       {"title": "write out.txt", "tool": "write_file", "depends_on": ["s1"],
                        "args": {"path": "out.txt", "content": "out\n"}}]}
# A re-plan's new steps are numbered after the previous plan's.
WRITE_UTILS = {"steps": {"s3": {"title": "write utils.py", "tool": "write_file",
                                "args": {"path": "utils.py", "content": "def f():\n    return 1\n"}}}}


def test_feedback_at_an_approval_prompt_skips_the_step_and_revises_the_plan(workspace: Path) -> None:
    term = Terminal(workspace, [WRITE_OUT, WRITE_UTILS, REVIEW], "write a file")
    code = term.answer(("plan", "y"), ("approval", "no, put it in utils.py"), ("plan", "y"), ("approval", "y"))
    screen = term.screen
    assert code == 0, screen[-2000:]
    assert not (workspace / "out.txt").exists()
    assert (workspace / "utils.py").read_text() == "def f():\n    return 1\n"
    assert "the plan changed for your feedback at step s2 (+0 -0 ~1):" in screen
    assert "~ s2 -> s3 write_file:" in screen and "args.path: out.txt -> utils.py" in screen
    events = _events(workspace)
    [denied] = [e for e in events if e["type"] == "approval" and e["step_id"] == "s2"]
    assert denied["data"]["feedback"] == "no, put it in utils.py"
    [said] = [e for e in events if e["type"] == "user_message"]
    assert (said["step_id"], said["data"]["at"]) == ("s2", "approval")
    moves = [e["data"]["to"] for e in events if e["type"] == "transition"
             and "WAITING_TOOL" not in (e["data"]["from"], e["data"]["to"])]
    assert moves == ["PLANNING", "EXECUTING", "REPLANNING", "EXECUTING", "REVIEWING", "COMPLETE", "IDLE"]
    _replays_identical(workspace)


WAIT_THEN_WRITE = {"steps": [
    {"title": "wait for the flag", "tool": "run_shell",
     "args": {"command": "while [ ! -f go.flag ]; do sleep 0.05; done; echo waited", "timeout": 60}},
    {"title": "write two", "tool": "run_shell", "depends_on": ["s1"], "args": {"command": "echo two >> side.txt"}},
]}
WRITE_THREE = {"steps": {"s3": {"title": "write three", "tool": "run_shell",
                                "args": {"command": "echo three >> side.txt"}}}}


def test_a_steer_on_stdin_with_output_jsonl_revises_the_running_plan(workspace: Path) -> None:
    err_file = workspace.parent / "stderr.txt"
    with err_file.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "agentcli", "run", "do two things", "--yes",
                                 "--output", "jsonl"], cwd=workspace,
                                env=_env(workspace, [WAIT_THEN_WRITE, WRITE_THREE, REVIEW]),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdin is not None and proc.stdout is not None
        seen: list[dict[str, Any]] = []
        while True:  # the first step is running
            line = proc.stdout.readline()
            assert line, err_file.read_text()
            seen.append(json.loads(line))
            if seen[-1]["type"] == "tool_intent":
                break
        # A steer, then bad lines: each refused in one line on stderr; the run goes on.
        proc.stdin.write(b'{"type": "steer", "text": "write three instead of two"}\n'
                         b'not json\n{"type": "steer", "text": "  "}\n{"type": "stop"}\n')
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while "stdin line 4" not in err_file.read_text():  # every line read: the steer is queued
            assert time.monotonic() < deadline, err_file.read_text()
            time.sleep(0.05)
        (workspace / "go.flag").write_text("")
        proc.stdin.close()
        out = proc.stdout.read()
        proc.wait(timeout=120)
    stderr = err_file.read_text()
    assert proc.returncode == 0, stderr
    assert (workspace / "side.txt").read_text() == "three\n"  # s2 never ran; the new step did
    lines = [json.loads(x) for x in out.decode().splitlines()]
    said = [e for e in lines if e["type"] == "user_message"]
    assert [(e["data"]["kind"], e["data"]["text"], e["data"]["done"]) for e in said] == [
        ("steer", "write three instead of two", ["s1"])]
    assert lines[-1]["type"] == "run_outcome" and lines[-1]["status"] == "COMPLETE"
    assert [x for x in stderr.splitlines() if x.startswith("error:")] == [
        "error: stdin line 2 is not valid JSON: Expecting value at line 1 column 1; ignored",
        "error: stdin line 3: the message is empty; ignored",
        "error: stdin line 4 has type 'stop'; the types taken are: steer; ignored"]
    assert "Traceback" not in stderr
    _replays_identical(workspace)


@pytest.mark.parametrize("line", [b"[1, 2]\n", b'{"type": "steer"}\n', b"\xff\xfe\n"])
def test_a_malformed_line_is_one_error_and_the_run_goes_on(workspace: Path, line: bytes) -> None:
    draft = {"steps": [{"title": "list", "tool": "list_files", "args": {"pattern": "*"}}]}
    done = subprocess.run([sys.executable, "-m", "agentcli", "run", "list", "--yes", "--output", "jsonl"],
                          cwd=workspace, env=_env(workspace, [draft, REVIEW]), input=line, capture_output=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    errors = [x for x in done.stderr.decode().splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: stdin line 1") and errors[0].endswith("; ignored")
    assert json.loads(done.stdout.decode().splitlines()[-1])["status"] == "COMPLETE"


WRITE_A = {"steps": [{"title": "write a.txt", "tool": "write_file", "args": {"path": "a.txt", "content": "a\n"}}]}


def _steer_while_verifying(ws: Path, script: list[object], verify: str, text: str) -> tuple[int, str, list[str]]:
    """``agent run --output jsonl`` whose verify command waits for ``go.flag``: ``text`` (and a bad
    line, to know when the first was read) is sent on stdin while it runs. Exit code, stderr, stdout's lines."""
    err_file = ws.parent / "stderr.txt"
    env = {**_env(ws, script), "AGENT_VERIFY__COMMAND": f"while [ ! -f go.flag ]; do sleep 0.05; done; {verify}"}
    with err_file.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "agentcli", "run", "write a", "--yes", "--output", "jsonl"],
                                cwd=ws, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdin is not None and proc.stdout is not None
        while True:
            line = proc.stdout.readline()
            assert line, err_file.read_text()
            event = json.loads(line)
            if event["type"] == "tool_intent" and event["step_id"] == "verify":
                break
        proc.stdin.write(json.dumps({"type": "steer", "text": text}).encode() + b"\n[]\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while "stdin line 2" not in err_file.read_text():
            assert time.monotonic() < deadline, err_file.read_text()
            time.sleep(0.05)
        (ws / "go.flag").write_text("")
        proc.stdin.close()
        out = proc.stdout.read()
        proc.wait(timeout=120)
    return proc.returncode, err_file.read_text(), out.decode().splitlines()


WRITE_B = {"steps": {"s2": {"title": "write b.txt", "tool": "write_file", "args": {"path": "b.txt", "content": "b\n"}}}}


def test_a_steer_sent_while_the_verify_command_runs_is_applied_after_it(workspace: Path) -> None:
    """The verify command runs after the last step; a message sent meanwhile is not lost: once it
    passes, the plan is revised for the message (VERIFYING -> REPLANNING), run, reviewed and verified."""
    code, stderr, lines = _steer_while_verifying(workspace, [WRITE_A, REVIEW, WRITE_B, REVIEW], "true",
                                                 "also write b.txt")
    assert code == 0, stderr
    assert (workspace / "b.txt").read_text() == "b\n" and "not applied" not in stderr
    events = _events(workspace)
    [said] = [e for e in events if e["type"] == "user_message"]
    assert (said["data"]["text"], said["data"]["boundary"]) == ("also write b.txt", "verify")
    moves = [(e["data"]["from"], e["data"]["to"]) for e in events if e["type"] == "transition"]
    assert ("VERIFYING", "REPLANNING") in moves and moves[-2:] == [("VERIFYING", "COMPLETE"), ("COMPLETE", "IDLE")]
    assert [e["data"]["status"] for e in events if e["type"] == "verify"] == ["passed", "passed"]
    assert json.loads(lines[-1])["status"] == "COMPLETE"
    _replays_identical(workspace)


def test_a_steer_the_run_ends_before_applying_is_named_not_applied(workspace: Path) -> None:
    """The verify command fails for a dependency the environment lacks: the run ends there, and the
    message sent while it ran is named in a warning, never silently dropped."""
    code, stderr, lines = _steer_while_verifying(
        workspace, [WRITE_A, REVIEW], f"{sys.executable} -c 'import nosuch_dep_zz'", "also write b.txt")
    assert code == 5, stderr
    assert not (workspace / "b.txt").exists()
    assert "warning: 1 message on stdin was not applied: the run ended before another step boundary: " \
           "also write b.txt" in stderr
    assert not [x for x in lines if '"user_message"' in x]
    assert json.loads(lines[-1])["reason"] == "missing_dependency"


def test_feedback_the_planner_changes_nothing_for_is_said_so(workspace: Path) -> None:
    (workspace / "a.txt").write_text("a\n")
    term = Terminal(workspace, [LIST_TXT, LIST_TXT, REVIEW], "list some files")
    code = term.answer(("plan", "list the text files please"), ("plan", "y"))
    screen = term.screen
    assert code == 0, screen[-2000:]
    assert "the plan is unchanged after your feedback: the planner kept every step as it was" in screen
    assert "the plan changed" not in screen and "+0 -0 ~0" not in screen
