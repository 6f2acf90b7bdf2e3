"""Typing while a chat turn runs, read off the screen as a person sees it: `agent chat` in a real
pseudo-terminal (pexpect), its output drawn by a terminal emulator (pyte) at 80 and 120 columns.
What is typed shows on its own line under the status line (``steer> ...``), never inside it; Enter
queues it for the turn's next step boundary (said on screen) and the plan is revised for it; a
line not sent, or a message the turn ended before applying, is back at the next prompt; Ctrl-C
still stops the turn; the terminal is left as it was (echo and line mode back) when the chat ends.
The turn waits on a file the test writes, so nothing here depends on timing."""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_chat_pty import complete, env_for, one_step

from agentcli.record.reader import RunRecord, find_run
from agentcli.record.sessions import SessionRecord

pexpect = pytest.importorskip("pexpect")
pyte = pytest.importorskip("pyte")

ROWS = 30
#: The shell step of the turn: it waits until the test lets it go.
WAIT = "while [ ! -f go.flag ]; do sleep 0.05; done"
HINT = "steer> type a message"


class Terminal:
    """A child process in a pseudo-terminal, and its screen as a terminal emulator draws it."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], columns: int, log: Path) -> None:
        self.screen = pyte.Screen(columns, ROWS)
        self.stream = pyte.Stream(self.screen)
        self.child = pexpect.spawn(argv[0], argv[1:], cwd=str(cwd), env=env, encoding="utf-8",
                                   dimensions=(ROWS, columns))
        self.child.logfile_read = log.open("w")  # what the person saw, if the test fails
        self.ended = False

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def text(self) -> str:
        return "\n".join(self.lines())

    def words(self) -> str:
        """The screen's words in a row, a line the terminal wrapped put together again."""
        return " ".join("".join(self.screen.display).split())

    def _read(self) -> None:
        try:
            self.stream.feed(self.child.read_nonblocking(65536, timeout=0.1))
        except pexpect.TIMEOUT:
            pass
        except pexpect.EOF:
            self.ended = True

    def wait(self, what: str | Callable[[list[str]], bool], timeout: float = 60) -> list[str]:
        """The screen's lines once ``what`` (text on a line, or a test of the lines) is on it."""
        test = what if callable(what) else (lambda lines: any(what in line for line in lines))
        deadline = time.monotonic() + timeout
        while not test(self.lines()):
            if self.ended or time.monotonic() > deadline:
                pytest.fail(f"never on the screen: {what!r}; the screen:\n{self.text()}")
            self._read()
        return self.lines()

    def reading(self) -> bool:
        """Whether a prompt of the line editor is reading keys (it turns bracketed paste on while it
        does): a Ctrl-D before then would not be a key of the prompt."""
        return (2004 << 5) in self.screen.mode

    def wait_end(self) -> None:
        deadline = time.monotonic() + 60
        while not self.ended:
            assert time.monotonic() < deadline, self.text()
            self._read()
        self.child.close()


def status_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if "running s1 run_shell" in line]


def last_line(lines: list[str]) -> str:
    return [line for line in lines if line.strip()][-1]


def chat(workspace: Path, tmp_path: Path, script: list[Any], columns: int, *, then: str = "") -> Terminal:
    """`agent chat` (then, in the same terminal, the shell command ``then``), at its first prompt."""
    env = env_for(tmp_path, script)
    argv = [sys.executable, "-m", "agentcli", "chat", "--yes"]
    if then:
        argv = ["/bin/sh", "-c", '"$@"; ' + then, "sh", *argv]
    term = Terminal(argv, workspace, env, columns, tmp_path / "screen.txt")
    term.wait("agent>")
    return term


def steered_script() -> list[Any]:
    return [
        {"steps": {"s1": {"call": {"tool": "run_shell", "args": {"command": WAIT, "timeout": 600}}, "depends_on": [],
                          "title": "Wait"},
                   "s2": {"call": {"tool": "list_files", "args": {"pattern": "*"}}, "depends_on": ["s1"],
                          "title": "List"}}},
        # The re-plan for the message typed while s1 ran.
        {"steps": {"s3": {"call": {"tool": "list_files", "args": {"pattern": "*.py"}}, "depends_on": [],
                          "title": "List py"}}},
        complete("Waited and listed the python files."),
    ]


@pytest.mark.parametrize("columns", [80, 120])
def test_typing_during_a_turn_shows_under_the_status_line_and_steers_it(
        workspace: Path, tmp_path: Path, columns: int) -> None:
    term = chat(workspace, tmp_path, steered_script(), columns, then="stty -a")
    term.child.send("wait, then list the files\r")
    term.wait(lambda lines: "running s1 run_shell" in "\n".join(lines) and any(x.startswith(HINT) for x in lines))

    typed = "also list the python files"
    term.child.send(typed)
    lines = term.wait(f"steer> {typed}")
    # Its own line, under the status line; the status line holds none of it.
    [status] = status_lines(lines)
    assert "running s1 run_shell" in status and "also" not in status and "python" not in status
    assert lines.index(status) < lines.index(f"steer> {typed}") and last_line(lines) == f"steer> {typed}"
    assert sum(typed in line for line in lines) == 1

    term.child.send("\r")  # Enter: queued for the turn's next step boundary, and the line is empty again
    lines = term.wait(lambda lines: any(x.startswith(HINT) for x in lines)
                      and any("queued for the next step boundary of this turn: " + typed in x for x in lines))
    assert not any(x.startswith(f"steer> {typed}") for x in lines)
    (workspace / "go.flag").write_text("")
    lines = term.wait("Waited and listed the python files.")
    lines = term.wait(lambda lines: last_line(lines) == "agent>" and term.reading())  # the next prompt, clean
    screen = "\n".join(lines)
    assert "the plan changed for your message" in screen and "steer>" not in screen
    assert "Ctrl-C to stop" not in screen  # the status line is off the screen, no copy of it left behind

    term.child.sendcontrol("d")
    term.wait("speed")  # `stty -a` after the chat: the terminal as it was
    term.wait_end()
    settings = term.text()
    assert " icanon " in settings and " echo " in settings and "-echo " not in settings
    data = workspace / ".agent"
    rec = RunRecord.read(find_run(data, SessionRecord.open(data, "last").chain()[-1].run_id))
    assert [(m.data.kind, m.data.text) for m in rec.user_messages] == [("steer", typed)]


def test_ctrl_c_with_words_typed_stops_the_turn_and_keeps_them_for_the_next_prompt(
        workspace: Path, tmp_path: Path) -> None:
    script = [one_step("run_shell", "Wait", command=WAIT, timeout=600), complete("never")]
    term = chat(workspace, tmp_path, script, 80)
    term.child.send("wait for the flag\r")
    term.wait(lambda lines: any(x.startswith(HINT) for x in lines) and "running s1" in "\n".join(lines))
    term.child.send("then add a test\r")  # queued: the turn is stopped before another boundary
    term.wait("queued for the next step boundary of this turn: then add a test")
    term.child.send("and the docs")  # not sent
    term.wait("steer> and the docs")
    term.child.sendcontrol("c")  # stops the turn at once
    lines = term.wait("resume with: agent run --resume")
    lines = term.wait(lambda lines: any(x.startswith("agent> then add a test") for x in lines))
    screen = "\n".join(lines)
    said = term.words()
    assert "1 message typed was not applied" in said and "Enter sends it as the next turn" in said
    # Both, as typed, start the next message (the editor's second line holds the second).
    start = next(i for i, x in enumerate(lines) if x.startswith("agent> then add a test"))
    assert lines[start] == "agent> then add a test" and lines[start + 1].strip() == "and the docs"
    assert "steer>" not in screen and "Ctrl-C to stop" not in screen
    data = workspace / ".agent"
    first = RunRecord.read(find_run(data, SessionRecord.open(data, "last").chain()[0].run_id))
    assert first.status == "FAILED" and first.reason == "interrupted" and not first.user_messages
    term.child.sendcontrol("c")  # the person clears the line, and leaves
    term.wait(lambda lines: last_line(lines) == "agent>" and term.reading())
    term.child.sendcontrol("d")
    term.wait_end()
    assert term.child.exitstatus == 0


def test_the_line_editor_takes_keys_as_a_terminal_line_would() -> None:
    from agentcli.cli.steer import LineEditor

    ed = LineEditor()
    # Backspace, an arrow key and Alt-x (ignored), a Tab, a character split across two reads.
    assert ed.feed(b"ad\x7fdd\x1b[D\x1bx\tt\xc3") == []
    assert ed.feed(b"\xa9 ok") == []
    assert ed.text == "add t\u00e9 ok"
    assert ed.feed(b"\x17") == [] and ed.text == "add t\u00e9 "  # Ctrl-W: the last word
    # Ctrl-U: the whole line; Enter ends it (a key a read: the lines of one read are a paste's)
    assert ed.feed(b"\x15one\r") == ["one"] and ed.feed(b"two\n") == ["two"] and ed.feed(b"three") == []
    assert ed.feed(b"\x1bOP\x1b[1;5A\x03\x04") == [] and ed.take() == "three"  # keys that are not text
    assert ed.text == ""


def test_the_typed_line_is_drawn_on_its_own_line_the_end_kept() -> None:
    import io

    from rich.console import Console
    from rich.text import Text

    from agentcli.cli.live import RunStatus

    console = Console(file=io.StringIO(), force_terminal=True, width=40)
    status = RunStatus(console, enabled=True)
    assert status.typing_line(39) is None  # not in a chat: no such line
    typed = [""]
    status.show_typing(lambda: typed[0], "type a message")
    assert status.typing_line(39).plain == "steer> type a message"
    typed[0] = "fix the \x1b[2Jtests"
    assert status.typing_line(39).plain == "steer> fix the tests "  # the cursor after it
    typed[0] = "a long message " * 5 + "its end"
    line = status.typing_line(39).plain
    assert line.startswith("steer> …") and line.endswith("its end ") and len(line) <= 39
    with console.capture() as cap:
        console.print(status)
    drawn = [Text.from_ansi(x).plain.rstrip() for x in cap.get().splitlines()]
    assert len(drawn) == 2 and "starting · " in drawn[0] and drawn[1] == line.rstrip()


def test_a_turn_that_fails_before_it_runs_leaves_no_status_line_behind(workspace: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in env_for(tmp_path, []).items() if k != "OPENAI_API_KEY"}
    env["AGENT_MODEL"] = "openai/gpt-4o-mini"  # no key: the turn fails in its model check, exit 2
    term = Terminal([sys.executable, "-m", "agentcli", "chat", "--yes"], workspace, env, 80, tmp_path / "screen.txt")
    term.wait(lambda lines: "agent>" in "\n".join(lines) and term.reading())
    term.child.send("do it\r")
    term.wait("no API key", timeout=120)
    lines = term.wait(lambda lines: last_line(lines) == "agent>" and term.reading())
    assert "checking the model" not in "\n".join(lines)  # the status line ended with its turn
    term.child.send("typed after")
    term.wait(lambda lines: last_line(lines) == "agent> typed after")
    term.child.sendcontrol("c")
    term.wait(lambda lines: last_line(lines) == "agent>" and term.reading())
    term.child.sendcontrol("d")
    term.wait_end()


def test_keys_typed_while_agent_run_works_are_not_echoed_onto_its_status_line(
        workspace: Path, tmp_path: Path) -> None:
    """`agent run` reads no keys while it works: they are not echoed (onto the status line) and wait,
    whole, for the next reader, here the shell's `read`."""
    env = env_for(tmp_path, [one_step("run_shell", "Wait", command=WAIT, timeout=600), complete("Waited.")])
    argv = ["/bin/sh", "-c", '"$@"; read line; echo "the shell read: $line"; stty -a', "sh",
            sys.executable, "-m", "agentcli", "run", "--yes", "wait for the flag"]
    term = Terminal(argv, workspace, env, 80, tmp_path / "screen.txt")
    seen = io.StringIO()  # every byte the terminal was sent
    term.child.logfile_read = seen
    term.wait("running s1 run_shell")
    term.child.send("hello there\r")
    (workspace / "go.flag").write_text("")
    term.wait("Waited.")
    lines = term.wait("the shell read: hello there")
    term.wait("speed")
    term.wait_end()
    before = seen.getvalue().split("the shell read")[0]
    assert "hello" not in before  # never echoed by the terminal while the run worked
    settings = term.text()
    assert " icanon " in settings and " echo " in settings and "-echo " not in settings
    assert not any("hello" in line and "the shell read" not in line for line in lines)


def test_the_terminal_mode_comes_back_however_the_process_leaves() -> None:
    """On a real pseudo-terminal: echo and line mode off inside, back on leaving; a quit at once
    (a second Ctrl-C) puts back the first mode also from inside two, the inner undone first."""
    import os
    import pty
    import termios

    from agentcli.cli import live

    parent, child = pty.openpty()
    try:
        before = termios.tcgetattr(child)
        with live.quiet_keys(child) as quiet, live.quiet_keys(child, by_key=False):
            mode = termios.tcgetattr(child)
            assert quiet and not mode[3] & (termios.ECHO | termios.ICANON) and mode[3] & termios.ISIG
            live._at_quit_now()  # what a quit at once does first
            assert termios.tcgetattr(child) == before
        assert termios.tcgetattr(child) == before and not live._AT_QUIT
        with live.quiet_keys(child, by_key=False):  # `agent run`'s: echo off, line mode kept
            mode = termios.tcgetattr(child)
            assert not mode[3] & termios.ECHO and mode[3] & termios.ICANON
        r, w = os.pipe()
        with live.quiet_keys(r) as quiet:  # a pipe is left as it is
            assert not quiet
        os.close(r)
        os.close(w)
    finally:
        os.close(parent)
        os.close(child)
