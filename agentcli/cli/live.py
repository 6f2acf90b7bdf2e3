"""What a command is doing while it works, on the terminal, and Ctrl-C that stops it at once.

:class:`RunStatus` draws one status line on stderr (rich's ``Live``, redrawn 4 times a second) with
the phase (planning, surveying ``read_file src/x.py``, running ``s3 run_shell``, reviewing,
verifying, replanning), the elapsed time, the tokens and the cost so far, and the model call in
flight with its own timer. It is fed by the run's progress callbacks (``on_step``,
``on_transition``) and the LLM client (``on_send`` before a request, ``observers`` after it); it is
drawn only on a terminal and never with ``--quiet`` or machine output, so pipes see exactly what
they saw before. While a question is asked (:meth:`RunStatus.paused`) it is taken off the screen,
and what arrives meanwhile waits for the answer. From its first showing to its stop the terminal
does not echo keys (:func:`quiet_keys`): the terminal would write them on the row the line is
redrawn on; they wait for the next reader (a question, the shell, a chat's own line).

Under the line, while they arrive: the last lines of a model's answer as it streams (the client's
``on_text``, only wired on a terminal, so a model streams only when someone watches; the line then
counts the answer's pieces, about one token each) and the last line of each running command's
output (run_shell, the verify command, hooks: :meth:`RunStatus.command_output`). Neither is
recorded: the record keeps the whole answer and the command's output as it always has. Text from a
model or a command is shown as plain text, control characters removed, one screen line each. Last,
in ``agent chat``, the line the person is typing (:meth:`RunStatus.show_typing`): the terminal does
not echo keys while a turn runs (:mod:`agentcli.cli.steer`), so what is typed is drawn here, in its
own place, never inside the status line.

:func:`run_interruptible` runs a command's coroutine with its own Ctrl-C handling: the first
Ctrl-C cancels the run's task (a model call in flight is abandoned, a command's process group is
killed: the run records ``interrupted``), without waiting for worker threads that cannot be
stopped (a blocking HTTP request, the embedded model); a second Ctrl-C ends the process at once
(exit 130), first putting back what :func:`at_quit` was given (the terminal's mode). :func:`leave`
ends an interrupted process without joining such threads.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console, RenderableType
from rich.text import Text

if TYPE_CHECKING:
    from rich.live import Live

    from agentcli.models.types import CallRecord, PreCall, RunTotals

__all__ = ["RunStatus", "at_quit", "leave", "quiet_keys", "run_interruptible", "sane_keys"]

T = TypeVar("T")

#: The documented exit code of an interrupted command (``ExitCode.INTERRUPTED``).
INTERRUPTED_EXIT = 130

#: Set by the entry point when it wrote ``starting…`` before the imports (one line, to replace).
early_line = False

_HINT = "  (Ctrl-C to stop)"
#: What starts the line typed while a run works (:meth:`RunStatus.show_typing`).
TYPING_PROMPT = "steer> "
_PHASES = {"PLANNING": "planning", "REVIEWING": "reviewing", "REPLANNING": "replanning",
           "VERIFYING": "verifying", "EXECUTING": "running"}


class RunStatus:
    """The status line of one command (a no-op unless ``enabled``). Thread-safe: steps, model
    calls and questions report from the event loop and from worker threads."""

    def __init__(self, console: Console, *, enabled: bool) -> None:
        self.console = console
        self.enabled = enabled
        self.started = time.monotonic()
        self.phase = "starting"
        self.totals: RunTotals | None = None
        self._running: dict[str, str] = {}
        self._call: tuple[str, float] | None = None
        self._lock = threading.RLock()
        self._live: Live | None = None
        self._paused = 0
        self._closed = False
        self._frames = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"  # rich's "dots" spinner
        #: The answers streaming in, per step (parallel `llm` steps stream at once; "" for the
        #: planner's and the reviewer's): model, when sent, the last characters, how many pieces.
        self._streams: dict[str, _Stream] = {}
        #: Per running command (its label): the last characters of its output.
        self._output: dict[str, str] = {}
        #: The line a person is typing while the run works (``agent chat``), and what the empty
        #: line says: drawn last, in its own place (:meth:`show_typing`).
        self._typing: tuple[Callable[[], str], str] | None = None
        #: The terminal's echo, off from the first start to the stop (:func:`quiet_keys`).
        self._keys: ExitStack | None = None

    # -- drawing

    def line(self, *, short: bool = False) -> Text:
        """The status line as it is now (also what a test or a log can read); ``short``: the model
        in flight without its provider (``gpt-4o-mini``), for a narrow terminal."""
        with self._lock:
            phase = self.phase
            if self._running and phase == "running":
                phase = "running " + ", ".join(self._running.values())
            parts = [f"{time.monotonic() - self.started:.1f}s"]
            t = self.totals
            if t is not None and (t.input_tokens or t.output_tokens):
                parts.append(f"{t.input_tokens + t.output_tokens:,} tokens")
                parts.append(f"${t.cost_usd:.4f}")
            stream = self._newest()
            if stream is not None:
                # Short: the answer's own lines follow under the line.
                who = f"{stream.key}: " if stream.key and len(self._streams) > 1 else ""
                parts.append(f"{who}{stream.model.rsplit('/', 1)[-1]} answering "
                             f"{time.monotonic() - stream.since:.1f}s, {stream.pieces:,} tokens")
            elif self._call is not None:
                model, since = self._call
                parts.append(f"waiting for {model.rsplit('/', 1)[-1] if short else model} "
                             f"{time.monotonic() - since:.1f}s")
        text = Text(phase, style="bold")
        text.append(" · " + " · ".join(parts))
        return text

    def tail(self, width: int) -> list[Text]:
        """The lines under the status line: the streaming answer's last lines (a long one cut to
        ``width`` keeping its end, the newest text), each running command's last line (keeping its
        start)."""
        with self._lock:
            stream = self._newest()
            answer = stream.text if stream is not None else ""
            outputs = list(self._output.items())
        lines: list[Text] = []
        for text in _last_lines(answer, ANSWER_LINES):
            lines.append(_tail_line("  │ ", text, width, "dim"))
        for label, out in outputs[:COMMANDS_SHOWN]:
            last = _last_lines(out, 1)
            name = _clean(label)
            room = max(8, min(40, width // 3))
            name = name if len(name) <= room else name[:room - 1] + "…"
            # A command's line is whole when shown: its start says what it is about.
            lines.append(_tail_line(f"  $ {name} → ", last[0] if last else "", width, "dim", keep_end=False))
        return lines

    def typing_line(self, width: int) -> Text | None:
        """The input line under the others (:meth:`show_typing`): ``steer>`` and what is typed, a long
        line cut keeping its end (where the cursor is), the cursor; the hint while nothing is. A
        message of several lines (a paste) is one line here too: its first line, cut keeping its
        start, and how many follow (``[+2 lines]``)."""
        with self._lock:
            typing = self._typing
        if typing is None:
            return None
        lines, hint = typing[0]().strip("\n").split("\n"), typing[1]
        typed, more = _clean(lines[0]), len(lines) - 1
        line = Text()
        line.append(TYPING_PROMPT, style="bold cyan")
        if not typed and not more:
            line.append(hint, style="dim")
        else:
            from rich.cells import cell_len

            marker = more_lines(more)
            room = max(2, width - len(TYPING_PROMPT) - len(marker) - 2)  # the cursor, an ellipsis
            if cell_len(typed) > room:
                if more:  # its start: what the message is about
                    while cell_len(typed) > room - 1:
                        typed = typed[:-1]
                    typed += "…"
                else:  # its end: where the cursor is
                    while cell_len(typed) > room - 1:
                        typed = typed[1:]
                    typed = "…" + typed
            line.append(typed)
            line.append(marker, style="dim")
            line.append(" ", style="reverse")  # the cursor (the terminal's own is hidden while drawn)
        line.no_wrap = True
        line.truncate(max(1, width), overflow="ellipsis")
        return line

    def __rich__(self) -> RenderableType:
        width = self.console.width
        line = self._status_line()
        tail = self.tail(width - 1)
        typing = self.typing_line(width - 1)
        if typing is not None:
            tail.append(typing)
        if not tail:
            return line
        from rich.console import Group

        return Group(line, *tail)

    def _status_line(self) -> Text:
        frames = self._frames
        spinner = frames[int((time.monotonic() - self.started) * 12.5) % len(frames)] + " "
        text = Text(spinner, style="cyan")
        line = self.line()
        if len(spinner) + len(line) >= self.console.width:  # the call's timer would be cut: the model's short name
            line = self.line(short=True)
        text.append_text(line)
        if len(text) + len(_HINT) < self.console.width:  # the hint only where it fits whole
            text.append(_HINT, style="dim")
        # One line, never wrapped (a wrapped line is not erased whole), short of the last column.
        text.no_wrap = True
        text.truncate(max(10, self.console.width - 1), overflow="ellipsis")
        return text

    # -- showing

    def start(self) -> None:
        """Put the line on the screen (at once: the first thing a user sees)."""
        if not self.enabled:
            return
        from rich.live import Live

        with self._lock:
            if self._live is not None or self._paused or self._closed:
                return
            if self._keys is None:  # a key typed must not be echoed onto the line (a question hides the line)
                self._keys = ExitStack()
                self._keys.enter_context(quiet_keys(_stdin_fd(), by_key=False))
            live = self._live = Live(self, console=self.console, transient=True, refresh_per_second=4,
                                     redirect_stdout=False, redirect_stderr=False)
        global early_line
        if early_line:  # the entry point's line (agentcli.cli.first): the status line takes its place
            early_line = False
            self.console.file.write("\x1b[1A\r\x1b[2K")
        # Outside our lock: Live's refresh thread takes its own lock, then ours (to read the line).
        live.start(refresh=True)

    def refresh(self) -> None:
        """Draw again now (a key typed shows at once, not at the next tick)."""
        with self._lock:
            live = self._live
        if live is not None:
            with suppress(Exception):
                live.refresh()

    def show_typing(self, typed: Callable[[], str], hint: str) -> None:
        """Draw, under the status line, the line a person types while the run works (``typed()``:
        the text so far; ``hint``: what the line says while empty)."""
        with self._lock:
            self._typing = (typed, hint)

    def stop(self) -> None:
        """Take the line off the screen for good (before the result is printed), and give the
        terminal its echo back."""
        with self._lock:
            self._closed = True
            keys, self._keys = self._keys, None
        self._hide()
        if keys is not None:
            keys.close()

    def _hide(self) -> None:
        with self._lock:
            live, self._live = self._live, None
        if live is not None:
            with suppress(Exception):  # the terminal went away: nothing left to erase
                live.stop()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Off the screen while a question is asked, back after the answer."""
        with self._lock:
            self._paused += 1
        self._hide()
        try:
            yield
        finally:
            with self._lock:
                self._paused -= 1
            self.start()

    def pausing(self, ask: Callable[..., T]) -> Callable[..., T]:
        """``ask`` (a prompt callback), with the line off the screen while it asks."""
        def wrapped(*args: Any, **kwargs: Any) -> T:
            with self.paused():
                return ask(*args, **kwargs)
        return wrapped

    # -- what the run reports

    def set_phase(self, phase: str) -> None:
        with self._lock:
            self.phase = phase

    def watch(self, on_step: Callable[[Any], None], on_transition: Callable[[Any], None]
              ) -> tuple[Callable[[Any], None], Callable[[Any], None]]:
        """The run's progress callbacks, also feeding the line (when it is shown: two calls a step)."""
        def step(run: Any) -> None:
            with self._lock:
                if run.status == "running":
                    self._running[run.step.id] = f"{run.step.id} {run.step.tool or run.step.kind}"
                else:
                    self._running.pop(run.step.id, None)
            on_step(run)

        def transition(t: Any) -> None:
            phase = _PHASES.get(str(getattr(t.dst, "value", t.dst)))
            if phase is not None:
                self.set_phase(phase)
            on_transition(t)
        return (step if self.enabled else on_step), transition

    def watch_client(self, client: Any) -> None:
        """Follow ``client``'s calls: its totals, the call in flight, the planner's survey."""
        self.totals = client.totals
        client.on_send.append(self._sent)
        client.observers.append(self._answered)
        if self.enabled:  # a model streams only when its answer is shown
            client.on_text.append(self._streamed)

    def _newest(self) -> _Stream | None:
        """The answer that streamed last (the one shown), if any is streaming."""
        with self._lock:
            live = [s for s in self._streams.values() if s.pieces]
            return max(live, key=lambda s: s.updated) if live else None

    def _sent(self, pre: PreCall) -> None:
        with self._lock:
            self._call = (pre.model, time.monotonic())
            # A retry starts its answer again.
            self._streams[pre.step_id or ""] = _Stream(pre.step_id or "", pre.model, time.monotonic())

    def _streamed(self, step_id: str | None, text: str) -> None:
        with self._lock:
            stream = self._streams.get(step_id or "")
            if stream is None:
                return
            stream.text = (stream.text + text)[-_KEEP:]
            stream.pieces += 1
            stream.updated = time.monotonic()
            first, live = stream.pieces == 1, self._live
        if first and live is not None:  # the first text at once, not at the next tick
            with suppress(Exception):
                live.refresh()

    def command_output(self, label: str, text: str | None) -> None:
        """A piece of the output of the running command ``label`` (None: it ended)."""
        if not self.enabled:
            return
        with self._lock:
            if text is None:
                self._output.pop(label, None)
            else:
                self._output[label] = (self._output.get(label, "") + text)[-_KEEP:]

    def _answered(self, rec: CallRecord) -> None:
        with self._lock:
            self._call = None
            self._streams.pop(rec.step_id or "", None)
            if rec.role != "planner" or not self.phase.startswith(("planning", "replanning", "surveying")):
                return
            calls = rec.response.tool_calls if rec.response is not None else []
            if calls:  # the planner looks before it plans: what it reads next
                self.phase = "surveying " + ", ".join(_call_words(c) for c in calls[:3])
            elif self.phase.startswith("surveying"):
                self.phase = "planning"


def _stdin_fd() -> int:
    """Standard input's descriptor, or -1 when it has none (a test's replaced stdin)."""
    try:
        return sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return -1


@dataclass
class _Stream:
    """One answer streaming in."""

    key: str
    model: str
    since: float
    text: str = ""
    pieces: int = 0
    updated: float = 0.0


#: How many last lines of a streaming answer, and how many running commands, are shown.
ANSWER_LINES = 3
COMMANDS_SHOWN = 2
#: How much of an answer or an output is kept for its last lines.
_KEEP = 4000
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _clean(text: str) -> str:
    """``text`` safe to draw: escape sequences and control characters out, tabs as spaces."""
    return _CONTROL.sub("", text.replace("\t", "    "))


def _last_lines(text: str, n: int) -> list[str]:
    """The last ``n`` non-blank lines of ``text`` (a line redrawn after a carriage return, as a
    progress bar is, shows its last state)."""
    lines = [_clean(line.rsplit("\r", 1)[-1]).rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return [line for line in lines if line.strip()][-n:]


def _tail_line(prefix: str, text: str, width: int, style: str, *, keep_end: bool = True) -> Text:
    room = max(1, width - len(prefix))
    if len(text) > room and keep_end:
        text = "…" + text[-(room - 1):] if room > 1 else "…"
    line = Text(prefix, style="dim")
    line.append(text, style=style)
    line.no_wrap = True
    line.truncate(max(1, width), overflow="ellipsis")
    return line


def _call_words(call: Any) -> str:
    """``read_file src/x.py``: a tool call as a person reads it."""
    args = call.arguments if isinstance(call.arguments, dict) else {}
    first = next((v for v in args.values() if isinstance(v, str)), "")
    return f"{call.name} {first[:60]}".strip()


def run_interruptible(make: Callable[[], Coroutine[Any, Any, T]], status: RunStatus) -> tuple[T | None, bool]:
    """Run ``make()`` to its end on a fresh event loop; returns ``(result, interrupted)``.

    The first Ctrl-C cancels the task at once (its result, if it still returns one, is kept: the
    run returns its ``interrupted`` outcome); worker threads are not waited for. A second Ctrl-C
    ends the process on the spot with exit code 130."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    task = loop.create_task(make())
    presses = 0

    def on_sigint(signum: int, frame: Any) -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            status.set_phase("stopping (Ctrl-C again to quit at once)")
            loop.call_soon_threadsafe(task.cancel)
            return
        _quit_now()

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main else None
    result: T | None = None
    try:
        try:
            result = loop.run_until_complete(task)
        except asyncio.CancelledError:
            if not presses:
                raise
        return result, presses > 0
    finally:
        try:
            _close_loop(loop, wait_threads=presses == 0)
        finally:
            asyncio.set_event_loop(None)
            # Interrupted, the handler stays: a second Ctrl-C while the run winds down quits at once.
            if main and not presses:
                signal.signal(signal.SIGINT, previous)


def _close_loop(loop: asyncio.AbstractEventLoop, *, wait_threads: bool) -> None:
    """As ``asyncio.run`` ends a loop, but an interrupted run does not wait for its worker threads
    (a blocking request in flight may take minutes to return)."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    if wait_threads:
        loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


#: What a quit at once does first (:func:`at_quit`): a terminal's mode put back.
_AT_QUIT: list[Callable[[], None]] = []


def at_quit(fn: Callable[[], None]) -> Callable[[], None]:
    """Run ``fn`` if the process quits at once (a second Ctrl-C); returns what takes it back."""
    _AT_QUIT.append(fn)

    def undo() -> None:
        with suppress(ValueError):
            _AT_QUIT.remove(fn)
    return undo


@contextmanager
def quiet_keys(fd: int = 0, *, by_key: bool = True, paste_to: int | None = None) -> Iterator[bool]:
    """The terminal at ``fd`` while a command works: keys are not echoed by the terminal, which would
    write them on the row the status line redraws (mixed into it, or erased with it). With
    ``by_key`` (``agent chat``'s turns, which draw what is typed in its own place) they also arrive
    one at a time, not a line at a time, and Ctrl-Z is off, as at the chat's prompt; without it
    (``agent run``, which reads no keys while it works) the keys wait, unseen, for the next reader:
    a question, the shell. Ctrl-C stays a signal (it stops the run at once). With ``paste_to`` (the
    descriptor the terminal's output goes to, when it is one) the terminal's bracketed paste is on
    too (``ESC [?2004h``: a paste comes marked, for the reader to take as one message, see
    :class:`agentcli.cli.steer.LineEditor`), as prompt_toolkit turns it on at the chat's prompt.
    Yields whether ``fd`` is a terminal (a pipe is left as it is). The mode before is put back on
    leaving (bracketed paste off), and also if the process quits at once (:func:`at_quit`). Nested,
    the inner one changes nothing more."""
    try:
        import termios
    except ImportError:  # no POSIX terminal here
        yield False
        return
    try:
        saved = termios.tcgetattr(fd) if os.isatty(fd) else None
    except (termios.error, OSError):
        saved = None
    if saved is None:
        yield False
        return
    quiet = termios.tcgetattr(fd)
    quiet[3] = (quiet[3] & ~termios.ECHO) | termios.ISIG
    if by_key:
        quiet[3] &= ~termios.ICANON
        quiet[6][termios.VMIN], quiet[6][termios.VTIME] = 1, 0
        try:  # Ctrl-Z does not suspend a turn half done
            quiet[6][termios.VSUSP] = os.fpathconf(fd, "PC_VDISABLE")
        except (OSError, ValueError):
            quiet[6][termios.VSUSP] = 0  # Linux's _POSIX_VDISABLE

    out = paste_to if by_key and paste_to is not None and _isatty(paste_to) else None

    def restore() -> None:
        with suppress(termios.error, OSError):
            # TCSANOW: the keys typed and not read yet stay for the reader that comes next (the prompt).
            termios.tcsetattr(fd, termios.TCSANOW, saved)
        if out is not None:
            with suppress(OSError):  # one write, whole: never inside a frame of the status line
                os.write(out, PASTE_OFF)

    try:
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
        if out is not None:
            os.write(out, PASTE_ON)
    except (termios.error, OSError):
        restore()
        yield False
        return
    undo = at_quit(restore)
    try:
        yield True
    finally:
        undo()
        restore()


def sane_keys(fd: int = 0) -> bool:
    """Put back the mode :func:`quiet_keys` (or a question) found, when a process killed meanwhile
    (``kill -9``: nothing of it runs to restore) left the terminal at ``fd`` with neither echo nor
    line mode, a mode no shell leaves a person in: echo, line mode, Ctrl-C and Ctrl-Z on again.
    Returns whether it did (False: a sane terminal, or none)."""
    try:
        import termios
    except ImportError:
        return False
    try:
        if not _isatty(fd):
            return False
        mode = termios.tcgetattr(fd)
        if mode[3] & (termios.ECHO | termios.ICANON):
            return False
        mode[3] |= termios.ECHO | termios.ICANON | termios.ISIG
        if mode[6][termios.VSUSP] in (0, b"\0", b"\xff"):  # Ctrl-Z as quiet_keys turned it off
            mode[6][termios.VSUSP] = b"\x1a"
        termios.tcsetattr(fd, termios.TCSANOW, mode)
    except (termios.error, OSError):
        return False
    return True


#: The terminal's bracketed paste turned on and off (xterm's private mode 2004).
PASTE_ON, PASTE_OFF = b"\x1b[?2004h", b"\x1b[?2004l"
#: The marks a terminal puts around a paste while bracketed paste is on.
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"


def escape_end(seq: str) -> bool | None:
    """Where an escape sequence read key by key (``seq``, from its ESC) stands, for the readers of
    keys (the line under the status line, a question's answer): None while it goes on; True once it
    is whole (``ESC [ ... final``: arrows, a paste's marks; ``ESC O x``: function keys); False when
    it was ESC and one key (Alt-x, Alt-Enter)."""
    if len(seq) < 2:
        return None
    if len(seq) == 2:
        return None if seq[1] in "[O" else False
    return True if seq[1] == "O" or "@" <= seq[-1] <= "~" else None


def more_lines(more: int) -> str:
    """What stands for the lines of a message after its first, where it is shown on one line."""
    return f" [+{more} line{'s' if more > 1 else ''}]" if more else ""


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _at_quit_now() -> None:
    """What :func:`at_quit` was given, the last first (a mode set inside another is undone first)."""
    for fn in reversed(list(_AT_QUIT)):
        with suppress(Exception):
            fn()


def _quit_now() -> None:
    _at_quit_now()
    with suppress(Exception):
        sys.stderr.flush()
    os.write(2, b"\ninterrupted\n")
    os._exit(INTERRUPTED_EXIT)


def leave(code: int, *, grace: float = 0.5) -> None:
    """End an interrupted process with ``code`` without joining worker threads that cannot be
    stopped (they would hold the exit for as long as their call takes). Threads that finish
    their work (a memory write) get ``grace`` seconds. Returns only when no such thread is left."""
    deadline = time.monotonic() + grace
    for t in threading.enumerate():
        if t is threading.current_thread() or t.daemon or t.name.startswith("asyncio_"):
            continue
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon
             and t.is_alive()]
    if not stuck:
        return
    _at_quit_now()
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    os._exit(code)
