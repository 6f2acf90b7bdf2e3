"""What `agent chat` does with a slash command typed during a turn, with a paste whose end mark never
comes, and with a first turn that fails before it is recorded. The first two in a real
pseudo-terminal (pexpect) drawn by a terminal emulator (pyte) at 80 columns, read off the screen and
the run's record; the turn waits on a file the test writes, so nothing depends on timing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_chat_pty import complete, one_step
from test_chat_typing_pty import HINT, chat, last_line, steered_script
from test_sessions import ENV
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models.fakes import ScriptedModel
from agentcli.record.reader import RunRecord, find_run
from agentcli.record.sessions import SessionRecord, sessions_root

pytest.importorskip("pexpect")
pytest.importorskip("pyte")


def steering_of(workspace: Path) -> list[tuple[str, str]]:
    data = workspace / ".agent"
    rec = RunRecord.read(find_run(data, SessionRecord.open(data, "last").chain()[-1].run_id))
    return [(m.data.kind, m.data.text) for m in rec.user_messages]


def test_a_slash_command_typed_during_a_turn_is_a_command_not_a_message(workspace: Path, tmp_path: Path) -> None:
    term = chat(workspace, tmp_path, steered_script(), 80)
    term.child.send("wait, then list the files\r")
    term.wait(lambda lines: "running s1 run_shell" in "\n".join(lines) and any(x.startswith(HINT) for x in lines))

    term.child.send("/help\r")  # runs at once, above the status line
    term.wait(lambda lines: any("/fork TURN" in x for x in lines) and any(x.startswith(HINT) for x in lines))
    term.child.send("/cost\r")
    term.wait(lambda lines: any(x.startswith("  turn 1: $") for x in lines) and any(x.startswith("session s-")
                                                                                  for x in lines))
    term.child.send("//usr/lib too\r")  # a message that starts with one slash
    term.wait("queued for the next step boundary of this turn: /usr/lib too")
    term.child.send("/undo\r")  # waits for the turn's end: kept on the line
    lines = term.wait(lambda lines: last_line(lines) == "steer> /undo")
    # One line at 80 columns, whole.
    assert "warning: /undo waits for the turn's end: kept on the line for the next prompt" in lines
    assert not any("queued" in x and ("/help" in x or "/cost" in x or "/undo" in x) for x in lines)

    (workspace / "go.flag").write_text("")
    term.wait("Waited and listed the python files.")
    term.wait(lambda lines: last_line(lines) == "agent> /undo" and term.reading())  # the next prompt starts with it
    term.child.sendcontrol("c")  # cleared, not run
    term.wait(lambda lines: last_line(lines) == "agent>" and term.reading())
    term.child.sendcontrol("d")
    term.wait_end()
    assert term.child.exitstatus == 0
    # Only the message was sent to the turn; the commands were not.
    assert steering_of(workspace) == [("steer", "/usr/lib too")]


def test_a_paste_whose_end_mark_never_comes_ends_with_its_burst(workspace: Path, tmp_path: Path) -> None:
    term = chat(workspace, tmp_path, steered_script(), 80)
    term.child.send("wait, then list the files\r")
    term.wait(lambda lines: "running s1 run_shell" in "\n".join(lines) and any(x.startswith(HINT) for x in lines))
    term.child.send("\x1b[200~line one\rline two")  # a broken terminal: the start mark alone
    term.wait(lambda lines: last_line(lines) == "steer> line one [+1 line]")
    term.child.send(" and more")  # keys, typed after the paste
    term.wait(lambda lines: last_line(lines) == "steer> line one [+1 line]")
    term.child.send("\r")  # Enter sends it, not a new line of the paste
    term.wait(lambda lines: any("queued for the next step boundary of this turn: line one [+1 line]" in x
                                for x in lines) and any(x.startswith(HINT) for x in lines))
    (workspace / "go.flag").write_text("")
    term.wait("Waited and listed the python files.")
    term.wait(lambda lines: last_line(lines) == "agent>" and term.reading())
    term.child.sendcontrol("d")
    term.wait_end()
    assert steering_of(workspace) == [("steer", "line one\nline two and more")]


def test_the_line_editor_ends_a_paste_without_its_end_mark_when_told() -> None:
    from agentcli.cli.steer import LineEditor

    ed = LineEditor()
    assert ed.feed(b"\x1b[200~a\rb") == [] and ed.pasting
    assert ed.feed(b"\r") == [] and ed.text == "a\nb\n"  # still in the paste: a line end
    ed.end_paste()
    assert not ed.pasting and ed.feed(b"c\r") == ["a\nb\nc"]


def test_slash_lines_go_to_the_command_not_the_queue() -> None:
    from agentcli.cli.steer import TerminalSteering

    queued: list[str] = []
    commands: list[str] = []

    class Queue:
        def put(self, text: str) -> None:
            queued.append(text)

    typed = TerminalSteering(Queue(), on_queued=lambda _: None, on_error=lambda _: None,
                             on_command=lambda text: commands.append(text) or text == "/help")
    typed._send("/help")
    typed._send("/undo")
    assert typed.typed == "/undo"  # not done: kept on the line
    typed._editor.take()
    typed._send("//etc is read-only")
    assert commands == ["/help", "/undo"] and queued == ["/etc is read-only"]


def _chat(workspace: Path, keys: str, env: dict[str, str], backend: Any = None) -> Any:
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    with create_pipe_input() as keyboard, create_app_session(input=keyboard, output=DummyOutput()):
        keyboard.send_text(keys)
        return CliRunner().invoke(app, ["chat", "--yes"], obj=State(backend=backend, environ=env))


def test_a_chat_whose_first_turn_fails_before_it_is_recorded_keeps_no_session(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    r = _chat(workspace, "do it\rdo it again\r\x04", {**ENV, "AGENT_MODEL": "openai/gpt-4o-mini"})
    assert r.exit_code == 0, r.output
    assert r.stderr.count("no API key") == 2
    assert "resume with" not in r.stderr  # nothing to resume
    root = sessions_root(workspace / ".agent")
    assert not root.is_dir() or not any(root.iterdir())

    # A turn recorded: the session is kept and offered, as before; `//` starts a task with a slash.
    m = ScriptedModel([one_step("list_files", "List", pattern="*"), complete("Listed.")])
    r = _chat(workspace, "//etc: list the files\r\x04", ENV, backend=m)
    assert r.exit_code == 0, r.output
    s = SessionRecord.open(workspace / ".agent", "last")
    assert f"resume with agent chat --resume {s.session_id}" in r.stderr.splitlines()  # one line, whole
    assert [t.task for t in s.chain()] == ["/etc: list the files"] and len(list(root.iterdir())) == 1
