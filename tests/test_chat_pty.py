"""`agent chat` in a real pseudo-terminal (pexpect), answered by the scripted model (one queue shared
by every process of the test): three turns where turn 2 refers to turn 1's change, a `kill -9` of
turn 3 and `agent chat --resume`, then `agent replay SESSION`: identical. And the line editor's keys
and the slash commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agentcli.planning.prompt import LEDGER_HEADING
from agentcli.record.events import Verified
from agentcli.record.reader import RunRecord, find_run
from agentcli.record.sessions import SessionRecord

pexpect = pytest.importorskip("pexpect")

PROMPT = "agent>"
NEW_PROMPT = "\x1b[?2004h"  # bracketed paste on: a prompt has begun reading keys


def complete(answer: str) -> dict[str, str]:
    return {"outcome": "complete", "answer": answer, "reason": ""}


def one_step(tool: str, title: str, **args: Any) -> dict[str, Any]:
    return {"steps": {"s1": {"call": {"tool": tool, "args": args}, "depends_on": [], "title": title}}}


SCRIPT = [
    one_step("write_file", "Add greet", path="greet.py", content="def greet(name):\n    return 'hi ' + name\n"),
    complete("Added greet() to greet.py."),
    # Turn 2: "the function you just added" is greet, which only the ledger of turn 1 says.
    one_step("edit_file", "Rename greet", path="greet.py", search="def greet(", replace="def welcome("),
    complete("Renamed greet to welcome."),
    one_step("run_shell", "Log and wait", command="echo three >> log.txt; sleep 30"),
    complete("Logged."),
]


def env_for(tmp_path: Path, script: list[Any]) -> dict[str, str]:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS")}
    env.update({"AGENT_MODEL": "test/script", "AGENT_TEST_SCRIPT": str(path), "AGENT_TEST_SCRIPT_SHARED": "1",
                "AGENT_MEMORY__ENABLED": "false", "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1",
                "PYTHONPATH": os.pathsep.join(sys.path)})
    return env


def spawn(ws: Path, env: dict[str, str], *args: str) -> Any:
    child = pexpect.spawn(sys.executable, ["-m", "agentcli", "chat", *args], cwd=str(ws), env=env,
                          encoding="utf-8", timeout=60, dimensions=(40, 120))
    child.expect_exact(PROMPT)
    return child


def turn(child: Any, line: str, *, approve: bool = True) -> None:
    child.sendline(line)
    child.expect_exact("run this plan?")
    child.sendline("y")
    if approve:
        child.expect_exact("run it?")
        child.sendline("y")


def test_three_turns_kill_9_resume_and_replay(workspace: Path, tmp_path: Path) -> None:
    env = env_for(tmp_path, SCRIPT)
    child = spawn(workspace, env)
    turn(child, "add a function greet to greet.py")
    child.expect_exact("Added greet() to greet.py.")
    child.expect_exact(PROMPT)
    turn(child, "rename the function you just added to welcome")
    child.expect_exact("Renamed greet to welcome.")
    child.expect_exact(PROMPT)
    assert (workspace / "greet.py").read_text().startswith("def welcome(name):")

    data = workspace / ".agent"
    session = SessionRecord.open(data, "last")
    _first, second = session.chain()
    rec2 = RunRecord.read(find_run(data, second.run_id))
    planner = rec2.plans[0].planner_calls[0].request.messages[-1]["content"]
    # Turn 2's planner was told what turn 1 did: its words, the file, the diff, the answer.
    assert LEDGER_HEADING in planner and '"add a function greet to greet.py"' in planner
    assert "+def greet(name):" in planner and "Added greet() to greet.py." in planner

    # Turn 3 is killed (-9) while its shell command runs.
    turn(child, "log three and wait")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        s = SessionRecord.open(data, session.session_id)
        if len(s.chain()) == 3:
            path = find_run(data, s.chain()[-1].run_id) if (data / "runs" / s.chain()[-1].run_id).is_dir() else None
            if path is not None and '"type":"tool_intent"' in path.read_text() and (workspace / "log.txt").exists():
                break
        time.sleep(0.05)
    else:
        pytest.fail("turn 3 never started its shell step")
    os.kill(child.pid, signal.SIGKILL)
    child.expect(pexpect.EOF)
    child.close()

    # Reopened: the interrupted turn is offered, resumed (its step marked done), and the chat goes on.
    child = pexpect.spawn(sys.executable, ["-m", "agentcli", "chat", "--resume"], cwd=str(workspace), env=env,
                          encoding="utf-8", timeout=60, dimensions=(40, 120))
    child.expect_exact("turn 3 (log three and wait) was interrupted")
    child.expect_exact("resume it?")
    child.sendline("y")
    answered = []
    while True:  # the resume shows the plan again and asks about the step that may have run
        i = child.expect_exact(["run this plan?", "run it again?", "Logged."])
        if i == 2:
            break
        answered.append(i)
        child.sendline("yd"[i])
    assert 1 in answered
    child.expect_exact(PROMPT)
    child.sendcontrol("d")
    child.expect_exact(f"agent chat --resume {session.session_id}")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert (workspace / "log.txt").read_text() == "three\n"  # not run again

    s = SessionRecord.open(data, session.session_id)
    assert [t.turn for t in s.chain()] == [1, 2, 3]
    assert RunRecord.read(find_run(data, s.chain()[-1].run_id)).status == "COMPLETE"
    out = subprocess.run([sys.executable, "-m", "agentcli", "replay", session.session_id, "--json"], cwd=workspace,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert result["identical"] and [t["turn"] for t in result["turns"]] == [1, 2, 3]


def test_line_editor_keys_and_slash_commands(workspace: Path, tmp_path: Path) -> None:
    env = env_for(tmp_path, [one_step("write_file", "Write a", path="a.py", content="A = 1\n"), complete("wrote a"),
                             one_step("write_file", "Write b", path="b.py", content="B = 1\n"), complete("wrote b")])
    child = spawn(workspace, env)
    child.sendline("/plan")
    child.expect_exact("no turn yet")
    child.sendline("/help")
    child.expect_exact("/fork TURN")
    child.expect_exact(PROMPT)  # the next prompt reads keys: a Ctrl-C before it would be a signal
    child.send("half a line")
    child.sendcontrol("c")  # clears the line: nothing runs
    child.expect_exact(PROMPT)
    turn(child, "write a.py")
    child.expect_exact("wrote a")
    # Alt-Enter: a second line within the same message.
    child.send("write b.py\x1b\rwith B = 1")
    child.send("\r")
    child.expect_exact("run this plan?")
    child.sendline("y")
    child.expect_exact("run it?")
    child.sendline("y")
    child.expect_exact("wrote b")
    child.expect_exact(PROMPT)
    child.sendline("/plan")
    child.expect_exact("Write b")
    child.sendline("/cost")
    child.expect_exact("turn 2: $")
    child.sendline("/undo")
    child.expect_exact("undo this turn? [y]es / [n]o (n):")  # one turn: not "these 1 turn"
    child.sendline("y")
    child.expect_exact("back to turn 1")
    child.expect_exact(PROMPT)
    assert not (workspace / "b.py").exists() and (workspace / "a.py").exists()
    child.sendline("/fork 1")
    child.expect_exact("forked session")
    child.expect_exact(PROMPT)
    child.send("\x1b[A")  # Up: the history's last line comes back into the editor
    child.expect_exact("/fork 1")
    child.sendcontrol("c")  # and Ctrl-C clears it: nothing runs
    # The old prompt's last redraw shows "agent>" too; a Ctrl-D sent before the new prompt reads keys
    # is the terminal's end of input, not a key. The new prompt starts by turning bracketed paste on.
    child.expect_exact(NEW_PROMPT)
    child.expect_exact(PROMPT)
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    data = workspace / ".agent"
    sessions = [SessionRecord(p / "session.jsonl") for p in (data / "sessions").iterdir()]
    assert len(sessions) == 2
    [original] = [x for x in sessions if x.start is not None and x.start.forked_from is None]
    [fork] = [x for x in sessions if x is not original]
    assert [t.task for t in original.turns] == ["write a.py", "write b.py\nwith B = 1"]
    assert [t.turn for t in original.chain()] == [1]
    assert fork.start is not None and fork.start.forked_from == original.session_id
    assert [(t.turn, t.copied) for t in fork.chain()] == [(1, True)]


def test_ctrl_c_stops_a_turn_and_the_chat_goes_on(workspace: Path, tmp_path: Path) -> None:
    env = env_for(tmp_path, [one_step("run_shell", "Wait", command="sleep 30"), complete("never"),
                             one_step("list_files", "List", pattern="*"), complete("listed")])
    child = spawn(workspace, env)
    turn(child, "wait a while")
    data = workspace / ".agent"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = list((data / "runs").glob("*/events.jsonl")) if (data / "runs").is_dir() else []
        if runs and '"type":"tool_intent"' in runs[0].read_text():
            break
        time.sleep(0.05)
    else:
        pytest.fail("the turn never started its shell step")
    child.sendcontrol("c")
    child.expect_exact("resume with: agent run --resume")
    child.expect_exact(PROMPT)  # the chat is still there
    child.sendline("list the files")
    child.expect_exact("run this plan?")
    child.sendline("y")
    child.expect_exact("listed")
    child.expect_exact(PROMPT)
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    s = SessionRecord.open(data, "last")
    first, second = (RunRecord.read(find_run(data, t.run_id)) for t in s.chain())
    assert first.status == "FAILED" and first.reason == "interrupted" and second.status == "COMPLETE"
    ledger = second.plans[0].planner_calls[0].request.messages[-1]["content"]
    assert '## Turn 1 (FAILED)' in ledger and '"wait a while"' in ledger


def test_feedback_and_a_steer_in_chat_reach_the_ledger_and_replay(workspace: Path, tmp_path: Path) -> None:
    script = [
        one_step("write_file", "Add greet", path="greet.py", content="def greet():\n    return 'hi'\n"),
        # The plan again, for the feedback typed at its prompt.
        one_step("write_file", "Add greet", path="hello.py", content="def greet():\n    return 'hi'\n"),
        complete("Added greet() to hello.py."),
        {"steps": {"s1": {"call": {"tool": "run_shell", "args": {"command": "sleep 4"}}, "depends_on": [],
                          "title": "Wait"},
                   "s2": {"call": {"tool": "list_files", "args": {"pattern": "*.py"}}, "depends_on": ["s1"],
                          "title": "List"}}},
        # The re-plan for the message typed while s1 ran: s1 kept, a new step numbered after the plan's.
        {"steps": {"s3": {"call": {"tool": "write_file", "args": {"path": "bye.py", "content": "BYE = 1\n"}},
                          "depends_on": [], "title": "Write bye"}}},
        complete("Waited and wrote bye.py."),
    ]
    env = env_for(tmp_path, script)
    child = spawn(workspace, env)
    child.logfile_read = (tmp_path / "screen.txt").open("w")  # what the person saw, if the test fails
    child.sendline("add a function greet")
    child.expect_exact("run this plan?")
    child.sendline("put it in hello.py instead")
    child.expect_exact("the plan changed for your feedback")
    child.expect_exact("run this plan?")
    child.sendline("y")
    child.expect_exact("run it?")
    child.sendline("y")
    child.expect_exact("Added greet() to hello.py.")
    child.expect_exact(PROMPT)
    child.sendline("wait, then list the python files")
    child.expect_exact("run this plan?")
    child.sendline("y")
    child.expect_exact("run it?")
    child.sendline("y")
    data = workspace / ".agent"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = sorted((data / "runs").glob("*/events.jsonl"))
        if len(runs) == 2 and '"type":"tool_intent"' in runs[-1].read_text():
            break
        time.sleep(0.05)
    else:
        pytest.fail("turn 2 never started its shell step")
    child.sendline("write bye.py instead of listing")
    child.expect_exact("queued for the next step boundary")
    child.expect_exact("the plan changed for your message")
    answered = 0
    while True:  # the revision adds a write: confirmed again, then approved
        i = child.expect_exact(["run this plan?", "run it?", "Waited and wrote bye.py."])
        if i == 2:
            break
        answered += 1
        child.sendline("y")
    assert answered == 2
    child.expect_exact(PROMPT)
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert (workspace / "hello.py").exists() and not (workspace / "greet.py").exists()
    assert (workspace / "bye.py").read_text() == "BYE = 1\n"
    s = SessionRecord.open(data, "last")
    second = RunRecord.read(find_run(data, s.chain()[-1].run_id))
    said = [(m.data.kind, m.data.text) for m in second.user_messages]
    assert said == [("steer", "write bye.py instead of listing")]
    # Turn 2's planner was told turn 1's feedback, word for word.
    planner = second.plans[0].planner_calls[0].request.messages[-1]["content"]
    assert 'feedback: "put it in hello.py instead"' in planner
    out = subprocess.run([sys.executable, "-m", "agentcli", "replay", s.session_id, "--json"], cwd=workspace,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["identical"]
    ledger = subprocess.run([sys.executable, "-m", "agentcli", "sessions", s.session_id, "--ledger"], cwd=workspace,
                            env=env, capture_output=True, text=True, timeout=120).stdout
    assert 'steer: "write bye.py instead of listing"' in ledger


def test_a_line_typed_while_the_verify_command_runs_is_applied_after_it(workspace: Path, tmp_path: Path) -> None:
    """A message typed in chat while the verify command runs is not lost at the end of the turn: it is
    queued, and once the command passed the plan is revised for it, shown as a diff, and run."""
    script = [
        one_step("write_file", "Write a", path="a.txt", content="a\n"),
        complete("Wrote a.txt."),
        {"steps": {"s2": {"call": {"tool": "write_file", "args": {"path": "b.txt", "content": "b\n"}},
                          "depends_on": [], "title": "Write b"}}},
        complete("Wrote a.txt and b.txt."),
    ]
    env = {**env_for(tmp_path, script),
           "AGENT_VERIFY__COMMAND": "while [ ! -f go.flag ]; do sleep 0.05; done; true"}
    child = spawn(workspace, env)
    child.logfile_read = (tmp_path / "screen.txt").open("w")
    child.sendline("write a.txt")
    data = workspace / ".agent"
    deadline = time.monotonic() + 60
    while True:  # the plan, the write and the verify command are asked about first
        i = child.expect_exact(["run this plan?", "run it?", pexpect.TIMEOUT], timeout=1)
        if i < 2:
            child.sendline("y")
        runs = sorted((data / "runs").glob("*/events.jsonl"))
        if runs and any('"type":"tool_intent"' in x and '"step_id":"verify"' in x
                        for x in runs[-1].read_text().splitlines()):
            break  # the verify command is running
        assert time.monotonic() < deadline, "the verify command never started"
    child.sendline("also write b.txt")
    child.expect_exact("queued for the next step boundary")
    (workspace / "go.flag").write_text("")
    child.expect_exact("the plan changed for your message")
    while True:
        i = child.expect_exact(["run this plan?", "run it?", "Wrote a.txt and b.txt."])
        if i == 2:
            break
        child.sendline("y")
    child.expect_exact(PROMPT)
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert (workspace / "b.txt").read_text() == "b\n"
    s = SessionRecord.open(data, "last")
    rec = RunRecord.read(find_run(data, s.chain()[-1].run_id))
    assert [(m.data.text, m.data.boundary) for m in rec.user_messages] == [("also write b.txt", "verify")]
    assert [v.data.status for v in rec.of(Verified)] == ["passed", "passed"]
    out = subprocess.run([sys.executable, "-m", "agentcli", "replay", s.session_id, "--json"], cwd=workspace,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and json.loads(out.stdout)["identical"], out.stdout + out.stderr


@pytest.mark.real_model
def test_ctrl_c_while_the_embedded_model_thinks_stops_the_turn_not_the_chat(workspace: Path) -> None:
    # The embedded model thinks in a worker thread that cannot be cancelled: an interrupted
    # `agent run` leaves the process without waiting for it, and a chat's turn must not.
    (workspace / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS") and not k.startswith("AGENT_")}
    env.update({"AGENT_MEMORY__ENABLED": "false", "AGENT_ALLOW_MODEL_REQUESTS": "1", "TERM": "xterm-256color",
                "PROMPT_TOOLKIT_NO_CPR": "1", "PYTHONPATH": os.pathsep.join(sys.path)})
    child = spawn(workspace, env)
    child.sendline("what does calc.py define?")
    child.expect_exact("waiting for local/smollm2", timeout=120)
    child.sendcontrol("c")
    child.expect_exact("resume with: agent run --resume", timeout=60)
    child.expect_exact("0+0 tokens · $0 · ", timeout=60)  # a free model's cost, not $0.000000
    child.expect_exact("interrupted\r\n", timeout=60)  # the error line, not the hint again
    child.expect_exact(PROMPT, timeout=60)  # the chat is still there
    child.sendline("/help")
    child.expect_exact("/fork TURN")
    child.expect_exact(NEW_PROMPT)  # a Ctrl-D before the new prompt reads keys is not a key
    child.expect_exact(PROMPT)
    child.sendcontrol("d")
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    assert child.exitstatus == 0
    run = RunRecord.read(find_run(workspace / ".agent", SessionRecord.open(workspace / ".agent", "last")
                                  .chain()[0].run_id))
    assert run.status == "FAILED" and run.reason == "interrupted"
