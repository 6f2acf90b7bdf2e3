"""`agent chat`: an interactive session. Each line is a turn that runs exactly as `agent run --session
S "LINE"` does (plan, confirm, execute, review, verify), its planner given the ledger of the earlier
turns; the session is a record (:mod:`agentcli.record.sessions`), so it can be left, killed, resumed
(`--resume`) and branched (`--fork TURN`).

The line editor is prompt_toolkit's: history (kept in ``<data_dir>/chat_history``), Alt-Enter (or
Esc then Enter) for a new line within the message, Ctrl-C clears the line, Ctrl-D leaves. Ctrl-C
during a turn stops that turn (recorded, resumable) and returns to the prompt. While a turn runs,
what is typed shows under the status line and Enter steers the turn (:mod:`agentcli.cli.steer`);
a paste is one message, newlines kept, there and at the prompt (prompt_toolkit's bracketed paste);
what the turn did not apply starts the next prompt. A terminal left without echo and line mode (a
chat killed during a turn) gets them back when the next chat starts.

Slash commands: /help, /plan (the last turn's final plan), /cost (per turn and in all), /undo (undo
the last turn and go back one turn), /fork TURN (continue in a new session branched after TURN).
Typed during a turn (on the ``steer>`` line) a slash command is not a message: /help, /plan and
/cost run at once, above the status line; /undo and /fork wait for the turn's end (they stay on the
line, and start the next prompt). A line that starts with ``//`` is a task or a message that starts
with one ``/``. A chat whose first turn failed before it was recorded (no API key, no server) keeps
no empty session.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from agentcli.cli.commands.common import (
    MAX_LIST,
    console,
    counted,
    err_console,
    in_range,
    print_error,
    print_warning,
    state_of,
)
from agentcli.errors import AgentError, ExitCode, UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from agentcli.config import Settings
    from agentcli.record.sessions import SessionRecord

#: The slash commands and what each does (``/help`` prints this).
COMMANDS = (
    ("/plan", "show the last turn's final plan"),
    ("/cost", "what each turn cost, and the session in all"),
    ("/undo", "undo the last turn's changes and go back one turn"),
    ("/fork TURN", "go on in a new session branched after TURN (this one stays)"),
    ("/help", "this list"),
)
HELP = ("Type a task and press Enter: it runs as a turn of this session (plan, confirm, execute, review), "
        "knowing what the earlier turns did. While a turn runs, type a message and press Enter to steer "
        "it at its next step boundary. Alt-Enter: a new line (a paste is one message). Ctrl-C: clear "
        "the line (during a turn: stop it). Ctrl-D: leave. During a turn /help, /plan and /cost run at once; "
        "/undo and /fork wait for the turn's end. //text: a line that starts with one /.\n"
        + "\n".join(f"  {c:<11} {d}" for c, d in COMMANDS))
#: The commands that run during a turn (they only read), and those that wait for its end.
IN_TURN, AFTER_TURN = ("/help", "/plan", "/cost"), ("/undo", "/fork")


def chat(
    ctx: typer.Context,
    session_id: Annotated[str | None, typer.Argument(
        metavar="SESSION", help="With --resume or --fork: the session (an id, a prefix, or `last`, the "
        "default).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Reopen a session (`agent chat --resume [SESSION|last]`); a turn it left unfinished "
        "is offered for resumption first.")] = False,
    fork: Annotated[int | None, typer.Option(
        "--fork", callback=in_range(0, MAX_LIST),
        help="Branch a new session from SESSION's turn TURN (default: the last session's): its chain up to TURN, "
        "then your new turns.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm every plan and approve `ask` steps.")] = False,
) -> None:
    """An interactive session: each line is a turn of plan, confirm, execute, review."""
    from agentcli.record.sessions import SessionRecord, start_session

    if not _has_terminal():
        raise UsageError("agent chat needs a terminal; without one add turns with agent run --continue")
    from agentcli.cli.commands.run import CHAT_META_KEY, CHAT_UNSENT_KEY

    ctx.meta[CHAT_META_KEY] = True  # an interrupted turn ends the turn, not the chat
    from agentcli.cli.live import sane_keys

    if sane_keys(0):  # a chat killed during a turn could not put its terminal back
        print_warning("the terminal's echo was off (a chat killed in a turn?): back on now")
    state = state_of(ctx)
    settings = state.settings
    session: SessionRecord | None = None
    if session_id is not None and not (resume or fork is not None):
        raise UsageError("open a session with: agent chat --resume SESSION (or --fork TURN SESSION)")
    if resume or fork is not None:
        session = SessionRecord.open(settings.data_dir, session_id or "last")
        for w in session.warnings:
            print_warning(w)
    if fork is not None and session is not None:
        if fork:
            session.turn(fork)  # a usage error when it has no such turn
        session = start_session(settings.data_dir, settings.workspace, forked_from=session, fork_turn=fork)
        err_console.print(f"forked session {session.session_id} after turn {fork}", highlight=False)
    if session is not None:
        _offer_unfinished(ctx, settings, session, yes)
    err_console.print(f"[bold]agent chat[/bold] · {escape(str(settings.workspace))} · "
                      + (f"session {session.session_id}, {counted(len(session.chain()), 'turn')}" if session is not None
                         else "a new session")
                      + " · /help · Ctrl-D leaves", highlight=False)
    prompt = _line_editor(settings)
    threads = set(threading.enumerate())  # what ran before any turn: never a turn's to leave behind
    stopped = False  # a turn was stopped by Ctrl-C
    while True:
        # What was typed during the last turn and not applied starts the line: sent with Enter,
        # edited, or cleared with Ctrl-C.
        unsent = ctx.meta.pop(CHAT_UNSENT_KEY, "")
        try:
            line = prompt.prompt("agent> ", default=unsent)
        except KeyboardInterrupt:
            continue  # the line is cleared
        except EOFError:
            break
        text = line.strip()
        if not text:
            continue
        if text.startswith("/") and not text.startswith("//"):
            session = _command(ctx, settings, session, text)
            continue
        if text.startswith("//"):  # a task that starts with a slash
            text = text[1:]
        fresh = session is None
        if session is None:
            session = start_session(settings.data_dir, settings.workspace)
        stopped = _turn(ctx, session, text, yes=yes) == ExitCode.INTERRUPTED or stopped
        session = SessionRecord(session.path)
        if fresh and not session.turns:  # the turn failed before it was recorded (no key, no server)
            _drop(session)
            session = None
    if session is not None and session.turns:  # one with no turn has nothing to resume
        # The command alone, so that it fits one line at 80 columns and is copied whole.
        err_console.print(f"resume with agent chat --resume {session.session_id}", highlight=False)
    if stopped and any(t not in threads and not t.daemon and t.is_alive() for t in threading.enumerate()):
        from agentcli.cli.live import leave

        # A turn stopped by Ctrl-C left its model call in flight in a worker thread: Ctrl-D leaves
        # now, not when that request ends (minutes later, or never for a hung server).
        leave(int(ExitCode.OK))


def _has_terminal() -> bool:
    """Whether the line editor has a terminal: stdin and stdout are one, or prompt_toolkit's session
    was given its input (a pipe: its telnet and ssh servers do that, and so do tests)."""
    from prompt_toolkit.application.current import get_app_session
    from prompt_toolkit.input import PipeInput

    given = getattr(get_app_session(), "_input", None)
    return isinstance(given, PipeInput) or (sys.stdin.isatty() and sys.stdout.isatty())


def _line_editor(settings: Settings) -> Any:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings

    keys = KeyBindings()

    @keys.add("escape", "enter")
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        history: Any = FileHistory(str(settings.data_dir / "chat_history"))
    except OSError:
        history = InMemoryHistory()
    return PromptSession(history=history, key_bindings=keys, multiline=False, enable_suspend=False)


def _run(ctx: typer.Context, session: SessionRecord, **kwargs: Any) -> int:
    """One `agent run` inside the chat: its exit code (an error is printed, and the chat goes on)."""
    from functools import partial

    from agentcli.cli.commands.run import CHAT_COMMAND_KEY, run
    from agentcli.cli.live import quiet_keys

    # A slash command typed while the turn runs (the meta is shared with the turn's context).
    ctx.meta[CHAT_COMMAND_KEY] = partial(_command_in_turn, state_of(ctx).settings, session.path)
    code = int(ExitCode.OK)
    try:
        # From the line's Enter to the next prompt, keys are not echoed onto the status line: the
        # turn draws them under it, and those typed after its end wait for the next prompt. The
        # turn's own context closes with it, so what it opened (its status line) ends with it, also
        # when it fails before its run starts.
        turn = typer.Context(ctx.command, parent=ctx, info_name=ctx.info_name)
        with quiet_keys(0) if err_console.is_terminal else contextlib.nullcontext(), turn:
            run(turn, **kwargs)
    except typer.Exit as e:
        code = int(e.exit_code)
    except AgentError as e:
        print_error(e.one_line())
        code = int(e.exit_code)
    except KeyboardInterrupt:
        print_error("interrupted")
        code = int(ExitCode.INTERRUPTED)
    finally:
        # A turn stopped by Ctrl-C leaves its "quit at once" handler: the prompt is ours again.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return code


def _turn(ctx: typer.Context, session: SessionRecord, task: str, *, yes: bool) -> int:
    return _run(ctx, session, task=task, session_id=session.session_id, yes=yes, steer_typed=True)


def _drop(session: SessionRecord) -> None:
    """Remove a session this chat started that has no turn (its first turn failed before it was
    recorded): nothing to list or resume."""
    with contextlib.suppress(OSError):
        session.path.unlink()
        session.path.parent.rmdir()


def _offer_unfinished(ctx: typer.Context, settings: Settings, session: SessionRecord, yes: bool) -> None:
    """A session reopened with its last turn unfinished (killed, stopped): offer to resume it."""
    from agentcli.cli.prompts import ask
    from agentcli.record.reader import RunRecord, find_run

    chain = session.chain()
    if not chain:
        return
    last = chain[-1]
    try:
        rec = RunRecord.read(find_run(settings.data_dir, last.run_id))
    except AgentError as e:
        print_warning(f"turn {last.turn}: {e.one_line()}")
        return
    if rec.finish is not None and rec.finish.exit_code not in (ExitCode.INTERRUPTED, ExitCode.BUDGET):
        return
    if not rec.plans:
        return  # stopped before it had a plan: nothing to resume, the next line is a new turn
    why = ("was interrupted" if rec.finish is None or rec.finish.exit_code == ExitCode.INTERRUPTED
           else f"stopped on its budget ({rec.finish.reason})")
    err_console.print(f"turn {last.turn} ({escape(last.task[:60])}) {why}", highlight=False)
    if ask("resume it?", [("y", "[y]es"), ("n", "[n]o")], default="y") == "y":
        _run(ctx, session, resume=last.run_id, yes=yes, steer_typed=True)


def _command(ctx: typer.Context, settings: Settings, session: SessionRecord | None, text: str
             ) -> SessionRecord | None:
    """A slash command; the session the chat goes on in."""
    name, _, arg = text.partition(" ")
    arg = arg.strip()
    try:
        if name == "/help":
            console.print(HELP, highlight=False, markup=False)
        elif session is None or not session.chain():
            err_console.print("no turn yet: type a task first", highlight=False)
        elif name == "/plan":
            _show_plan(settings, session)
        elif name == "/cost":
            _show_cost(settings, session)
        elif name == "/undo":
            return _undo(ctx, settings, session)
        elif name == "/fork":
            return _fork(settings, session, arg)
        else:
            err_console.print(f"unknown command {escape(name)}: /help lists them", highlight=False)
    except AgentError as e:
        print_error(e.one_line())
    except typer.Exit:
        pass
    return session


def _command_in_turn(settings: Settings, path: Path, text: str) -> bool:
    """A slash command typed during a turn (run from the thread that reads the keys): the commands
    that only read run now and print above the status line; /undo and /fork would change the
    workspace or the session under the running turn, so they wait for its end. Returns whether it
    was done (False: it stays on the line, for the next prompt or to edit)."""
    from agentcli.cli.prompts import say
    from agentcli.record.sessions import SessionRecord

    name = text.split(None, 1)[0]

    def show() -> None:
        try:
            if name == "/help":
                err_console.print(HELP, highlight=False, markup=False)
            elif name in IN_TURN and not SessionRecord(path).chain():  # the turn is not recorded yet
                err_console.print("no turn yet: the turn is starting", highlight=False)
            elif name == "/plan":
                _show_plan(settings, SessionRecord(path), err_console)
            elif name == "/cost":
                _show_cost(settings, SessionRecord(path), err_console)
            elif name in AFTER_TURN:
                # One line at 80 columns: the line itself shows it stays.
                print_warning(f"{name} waits for the turn's end: kept on the line for the next prompt")
            else:
                print_warning(f"unknown command {name[:12]}: kept on the line (//text: a message)")
        except AgentError as e:
            print_error(e.one_line())

    say(show)
    return name in IN_TURN


def _show_plan(settings: Settings, session: SessionRecord, out: Console = console) -> None:
    from agentcli.cli.render import render_plan
    from agentcli.record.reader import RunRecord, find_run

    last = session.chain()[-1]
    rec = RunRecord.read(find_run(settings.data_dir, last.run_id))
    if rec.last_plan is None:
        err_console.print(f"turn {last.turn} has no plan yet" if out is err_console else
                          f"turn {last.turn} has no plan", highlight=False)
        return
    render_plan(rec.last_plan, out)


def _show_cost(settings: Settings, session: SessionRecord, out: Console = console) -> None:
    from agentcli.cli.tables import format_cost
    from agentcli.record.reader import RunRecord, find_run

    total = 0.0
    for t in session.chain():
        rec = RunRecord.read(find_run(settings.data_dir, t.run_id))
        total += rec.cost_usd if not t.copied else 0.0
        out.print(f"  turn {t.turn}: {format_cost(rec.cost_usd)} · {len(rec.calls)} calls · "
                      f"{rec.input_tokens}+{rec.output_tokens} tokens · ledger {t.ledger.tokens} tokens"
                      + (" (forked from another session)" if t.copied else ""), highlight=False)
    out.print(f"session {session.session_id}: {format_cost(total)}", highlight=False)


def _undo(ctx: typer.Context, settings: Settings, session: SessionRecord) -> SessionRecord:
    from agentcli.cli.commands.undo import roll_back
    from agentcli.record.sessions import SessionRecord

    chain = session.chain()
    back_to = chain[-2].turn if len(chain) > 1 else 0
    roll_back(settings, session.session_id, back_to, force=False, yes=False, json_out=False)
    return SessionRecord(session.path)


def _fork(settings: Settings, session: SessionRecord, arg: str) -> SessionRecord:
    from agentcli.record.sessions import start_session

    if not arg.isdigit():
        raise UsageError("/fork TURN: the turn to branch after (a number; /cost lists them)")
    session.turn(int(arg))
    forked = start_session(settings.data_dir, settings.workspace, forked_from=session, fork_turn=int(arg))
    err_console.print(f"forked session {forked.session_id} after turn {arg} (files are as they are now; "
                      f"/undo or agent undo --session rolls them back)", highlight=False)
    return forked

