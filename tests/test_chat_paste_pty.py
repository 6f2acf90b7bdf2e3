"""Pasting text into `agent chat`, in a real pseudo-terminal (pexpect) drawn by a terminal emulator
(pyte) at 80 and 120 columns. A terminal marks a paste (bracketed paste, ``ESC [200~`` ...
``ESC [201~``) when the program turned the mode on: a turn turns it on while it reads keys, so a
paste of several lines is one steering message, newlines kept (the record says so), shown on the
``steer>`` line as its first line and how many follow; the mode is off again when the turn ends,
also by Ctrl-C, and what was pasted and not sent starts the next prompt with its newlines. At the
prompt itself (prompt_toolkit) a paste is one message too. A terminal left without echo by a chat
killed during a turn is put right by the next chat. Nothing here depends on timing: the turn's
step waits on a file the test writes."""

from __future__ import annotations

import io
import os
import pty
import sys
from pathlib import Path

import pytest
from test_chat_pty import complete, env_for, one_step
from test_chat_typing_pty import HINT, WAIT, Terminal, chat, last_line, status_lines, steered_script

from agentcli.record.reader import RunRecord, find_run
from agentcli.record.sessions import SessionRecord

pytest.importorskip("pexpect")
pytest.importorskip("pyte")

#: What the terminal sends for a paste of three lines (a terminal sends a pasted line end as Enter).
PASTE = "\x1b[200~line one\rline two\rline three\x1b[201~"
PASTED = "line one\nline two\nline three"
ON, OFF = "\x1b[?2004h", "\x1b[?2004l"


def paste_mode_at(seen: str, at: str) -> str | None:
    """Whether bracketed paste was on (``h``) or off (``l``) where ``at`` was first written, by the
    last switch before it in the bytes the terminal was sent."""
    end = seen.index(at)
    last = max(seen.rfind(ON, 0, end), seen.rfind(OFF, 0, end))
    return None if last < 0 else seen[last + len(ON) - 1]


def records(workspace: Path) -> list[RunRecord]:
    data = workspace / ".agent"
    return [RunRecord.read(find_run(data, t.run_id)) for t in SessionRecord.open(data, "last").chain()]


@pytest.mark.parametrize("columns", [80, 120])
def test_a_paste_of_three_lines_during_a_turn_is_one_steering_message(
        workspace: Path, tmp_path: Path, columns: int) -> None:
    term = chat(workspace, tmp_path, steered_script(), columns, then="stty -a")
    seen = io.StringIO()  # every byte the terminal is sent from here on
    term.child.logfile_read = seen
    term.child.send("wait, then list the files\r")
    term.wait(lambda lines: "running s1 run_shell" in "\n".join(lines) and any(x.startswith(HINT) for x in lines))
    assert term.reading()  # bracketed paste is on while the turn reads keys

    term.child.send(PASTE)
    shown = "steer> line one [+2 lines]"
    lines = term.wait(lambda lines: last_line(lines) == shown)
    # One line under the status line, which is whole and unbroken: no pasted line on the screen.
    [status] = status_lines(lines)
    assert lines.index(status) == lines.index(shown) - 1
    assert len(status) < columns and not any("line two" in x or "line three" in x for x in lines)

    term.child.send("\r")  # Enter: the whole paste is queued, as one message
    lines = term.wait(lambda lines: any(x.startswith(HINT) for x in lines)
                      and any("queued for the next step boundary of this turn: line one [+2 lines]" in x
                              for x in lines))
    (workspace / "go.flag").write_text("")
    term.wait("Waited and listed the python files.")
    assert paste_mode_at(seen.getvalue(), "Waited and listed") == "l"  # off before the turn's result
    term.wait(lambda lines: last_line(lines) == "agent>" and term.reading())
    term.child.sendcontrol("d")
    term.wait("speed")  # `stty -a` after the chat: the terminal as it was
    term.wait_end()
    settings = term.text()
    assert " icanon " in settings and " echo " in settings and "-echo " not in settings
    assert not term.reading()  # bracketed paste off for the shell
    [rec] = records(workspace)
    assert [(m.data.kind, m.data.text) for m in rec.user_messages] == [("steer", PASTED)]
    assert sum("the plan changed for your message" in x for x in term.lines()) <= 1


def test_a_paste_not_sent_when_ctrl_c_stops_the_turn_starts_the_next_prompt_with_its_lines(
        workspace: Path, tmp_path: Path) -> None:
    script = [one_step("run_shell", "Wait", command=WAIT, timeout=600),
              one_step("list_files", "List", pattern="*"), complete("Listed.")]
    # The shell goes on after the chat although Ctrl-C was typed (its trap is the chat's default again).
    argv = ["/bin/sh", "-c", 'trap : INT; "$@"; stty -a', "sh", sys.executable, "-m", "agentcli", "chat", "--yes"]
    term = Terminal(argv, workspace, env_for(tmp_path, script), 80, tmp_path / "screen.txt")
    term.wait("agent>")
    seen = io.StringIO()
    term.child.logfile_read = seen
    term.child.send("wait for the flag\r")
    term.wait(lambda lines: any(x.startswith(HINT) for x in lines) and "running s1" in "\n".join(lines))
    term.child.send(PASTE)
    term.wait("steer> line one [+2 lines]")
    term.child.sendcontrol("c")  # stops the turn at once; the paste was not sent
    term.wait("resume with: agent run --resume")
    assert paste_mode_at(seen.getvalue(), "resume with") == "l"  # off before the chat's prompt
    lines = term.wait(lambda lines: any(x.startswith("agent> line one") for x in lines) and term.reading())
    start = next(i for i, x in enumerate(lines) if x.startswith("agent> line one"))
    assert [x.strip() for x in lines[start:start + 3]] == ["agent> line one", "line two", "line three"]
    term.child.send("\r")  # sent as the next turn: one task, its newlines kept
    term.wait("Listed.")
    term.wait(lambda lines: last_line(lines) == "agent>" and term.reading())
    term.child.sendcontrol("d")
    term.wait("speed")  # `stty -a` after the chat: the terminal as it was
    term.wait_end()
    settings = term.text()
    assert " icanon " in settings and " echo " in settings and not term.reading()
    first, second = records(workspace)
    assert first.reason == "interrupted" and not first.user_messages
    assert second.task == PASTED


def test_a_paste_at_the_chat_prompt_is_one_turn(workspace: Path, tmp_path: Path) -> None:
    term = chat(workspace, tmp_path, [one_step("list_files", "List", pattern="*"), complete("Listed.")], 120)
    term.wait(lambda lines: term.reading())
    term.child.send(PASTE)
    term.wait("line three")
    term.child.send("\r")
    term.wait("Listed.")
    term.wait(lambda lines: last_line(lines) == "agent>" and term.reading())
    term.child.sendcontrol("d")
    term.wait_end()
    [rec] = records(workspace)
    assert rec.task == PASTED


def test_a_chat_puts_back_the_echo_a_chat_killed_during_a_turn_left_off(workspace: Path, tmp_path: Path) -> None:
    env = env_for(tmp_path, [])
    # What a turn's terminal mode is, left by a `kill -9` (nothing of the process runs to put it back).
    argv = ["/bin/sh", "-c", 'stty -echo -icanon susp undef; "$@"; stty -a', "sh",
            sys.executable, "-m", "agentcli", "chat", "--yes"]
    term = Terminal(argv, workspace, env, 80, tmp_path / "screen.txt")
    term.wait(lambda lines: "agent>" in "\n".join(lines) and term.reading())
    assert "warning: the terminal's echo was off" in term.words()
    term.child.sendcontrol("d")
    term.wait("speed")
    term.wait_end()
    settings = term.text()
    assert " icanon " in settings and " echo " in settings and "susp = ^Z" in settings


def test_the_line_editor_takes_a_paste_as_one_message() -> None:
    from agentcli.cli.steer import LineEditor

    ed = LineEditor()
    # Marked: line ends kept (CR, CR LF, LF: one each), tabs kept, escape sequences inside dropped,
    # the marks split across reads; Enter sends it all.
    assert ed.feed(b"fix \x1b[20") == [] and ed.feed(b"0~a\r\nb\rc\td\x1b[31m\n") == []
    assert ed.feed(b"\x1b[2") == [] and ed.feed(b"01~") == [] and ed.text == "fix a\nb\nc\td\n"
    assert ed.feed(b"e\r") == ["fix a\nb\nc\td\ne"] and ed.text == ""
    # A CR at the end of one read and its LF at the start of the next: one line end.
    assert ed.feed(b"\x1b[200~a\r") == [] and ed.feed(b"\nb\x1b[201~") == [] and ed.text == "a\nb"
    ed.take()
    # Not marked (a terminal without bracketed paste): the lines of one read are one message.
    assert ed.feed(b"one\rtwo\r\nthree\r") == ["one\ntwo\nthree"]
    assert ed.feed(b"four\r\n") == ["four"]  # a line end alone at its read's end is Enter
    # Alt-Enter (or Esc then Enter) is a new line within the message, as at the chat's prompt.
    assert ed.feed(b"x\x1b\ry\x1b") == [] and ed.feed(b"\r") == [] and ed.take() == "x\ny\n"
    assert ed.feed(b"a b\nc\x17") == [] and ed.text == "a b\n"  # Ctrl-W across a line end


def test_a_message_of_many_lines_is_drawn_as_one_line() -> None:
    from rich.console import Console

    from agentcli.cli.live import RunStatus
    from agentcli.cli.steer import one_line

    typed = [""]
    for width in (80, 120, 30):
        status = RunStatus(Console(file=io.StringIO(), force_terminal=True, width=width), enabled=True)
        typed[0] = "first line of a pasted text " * 6 + "\nsecond\nthird\n"
        status.show_typing(lambda: typed[0], "type a message")
        line = status.typing_line(width - 1).plain
        assert line.startswith("steer> first") and line.endswith("… [+2 lines] ") and len(line) <= width - 1
        typed[0] = "\n\nshort\n\u4e2d\u6587"
        assert status.typing_line(width - 1).plain == "steer> short [+1 line] "
    assert one_line("  a\nb\nc\n") == "a [+2 lines]" and one_line("a") == "a"


def test_bracketed_paste_comes_back_off_however_the_process_leaves() -> None:
    """On a real pseudo-terminal: bracketed paste on inside, off on leaving and on a quit at once;
    only the reading of keys one at a time (a chat's turn) turns it on, and only on a terminal."""
    import termios

    from agentcli.cli import live

    parent, child = pty.openpty()
    os.set_blocking(parent, False)

    def sent() -> bytes:
        try:
            return os.read(parent, 1024)
        except BlockingIOError:
            return b""
    try:
        before = termios.tcgetattr(child)
        with live.quiet_keys(child, paste_to=child):
            assert sent() == live.PASTE_ON
            live._at_quit_now()  # what a quit at once does first
            assert sent() == live.PASTE_OFF and termios.tcgetattr(child) == before
        assert sent() == live.PASTE_OFF and not live._AT_QUIT
        with live.quiet_keys(child, by_key=False, paste_to=child):  # `agent run`'s: no keys read
            pass
        assert sent() == b""
        r, w = os.pipe()
        with live.quiet_keys(child, paste_to=w):  # the output is no terminal
            pass
        os.close(r)
        os.close(w)
        assert sent() == b"" and termios.tcgetattr(child) == before
    finally:
        os.close(parent)
        os.close(child)


def test_a_paste_at_a_question_of_a_turn_is_one_answer(workspace: Path, tmp_path: Path) -> None:
    """A question of the turn reads keys while bracketed paste is on: the marks are no part of the
    answer, and the pasted lines are one answer, on one line."""
    script = [one_step("list_files", "List", pattern="*"), one_step("list_files", "List py", pattern="*.py"),
              complete("Listed.")]
    term = Terminal([sys.executable, "-m", "agentcli", "chat"], workspace, env_for(tmp_path, script), 80,
                    tmp_path / "screen.txt")
    term.wait(lambda lines: "agent>" in "\n".join(lines) and term.reading())
    term.child.send("list the files\r")
    term.wait("run this plan?")
    term.child.send("\x1b[200~only the\rpython files\x1b[201~")
    term.wait("only the python files")
    term.child.send("\r")
    term.wait("the plan changed for your feedback")
    term.wait(lambda lines: sum("run this plan?" in x for x in lines) == 2)
    term.child.send("y\r")
    term.wait("Listed.")
    term.wait(lambda lines: last_line(lines) == "agent>" and term.reading())
    term.child.sendcontrol("d")
    term.wait_end()
    assert "200~" not in term.text()
    [rec] = records(workspace)
    assert [(m.data.kind, m.data.text) for m in rec.user_messages] == [("feedback", "only the python files")]
