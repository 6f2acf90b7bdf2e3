"""The command line's side of steering and feedback (:mod:`agentcli.engine.steering`).

- :func:`render_revision`: a plan revised for the user's words, shown as its diff (``+`` added,
  ``-`` removed, ``~`` changed steps), for ``agent run`` and any other front end.
- :class:`TerminalSteering`: in ``agent chat``, what is typed at the terminal while a turn runs (and
  no question is open) is edited key by key (:class:`LineEditor`) with the terminal's echo off
  (:func:`agentcli.cli.live.quiet_keys`), drawn under the status line, and each message ended by Enter is queued
  as a steering message; a paste is one message, its newlines kept (bracketed paste, see :class:`LineEditor`).
  A line that starts with ``/`` is a chat command, not a message (``on_command``); ``//`` sends a
  message that starts with one ``/``.
- :func:`parse_steer_line` and :func:`read_steering`: with ``agent run --output jsonl``, each
  line on stdin is a JSON object; ``{"type": "steer", "text": "..."}`` queues a message that steers
  the running plan at its next step boundary. A line that is not one is refused with one line on
  stderr (``error: stdin line N: ...; ignored``) and the run goes on.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape

from agentcli.cli.live import PASTE_END, PASTE_START, escape_end, more_lines, quiet_keys
from agentcli.engine.steering import MAX_MESSAGE_CHARS, PlanRevision, SteeringQueue, check_words
from agentcli.untrusted import InputError, load_json

__all__ = ["STEER_TYPES", "LineEditor", "TerminalSteering", "one_line", "parse_steer_line", "read_steering",
           "render_revision"]

#: The types of line stdin takes with ``--output jsonl``.
STEER_TYPES = ("steer",)
#: The longest line read (a message and its JSON around it).
_MAX_LINE = 4 * MAX_MESSAGE_CHARS + 1024
_STYLE = {"+": "green", "-": "red", "~": "yellow"}


def render_revision(rev: PlanRevision, console: Console) -> None:
    """``the plan changed for your feedback (+1 -0 ~1):`` and a line per changed step."""
    why = {"plan": "your feedback", "approval": f"your feedback at step {rev.change.step_id}",
           "boundary": "your message"}[rev.change.at]
    if rev.diff.empty:  # not "the plan changed (+0 -0 ~0)": the planner kept every step as it was
        console.print(f"[bold yellow]the plan is unchanged after {escape(why)}[/bold yellow]: the planner kept "
                      "every step as it was", highlight=False, soft_wrap=True)
        return
    console.print(f"[bold yellow]the plan changed for {escape(why)}[/bold yellow] ({rev.diff.summary()}):",
                  highlight=False)
    for line in rev.diff.lines():
        style = _STYLE.get(line[:1])
        text = escape(line)
        console.print(f"  [{style}]{text}[/{style}]" if style else f"  {text}", highlight=False, soft_wrap=True)


def parse_steer_line(line: bytes, n: int) -> str | None:
    """The message of stdin's line ``n`` (None: a blank line); :class:`InputError`, one line
    naming the line, when it is not a steer."""
    what = f"stdin line {n}"
    if not line.strip():
        return None
    if len(line) > _MAX_LINE:
        raise InputError(f"{what} is too long ({len(line)} bytes; at most {_MAX_LINE})")
    value: Any = load_json(line, what, max_bytes=_MAX_LINE, max_depth=4)
    if not isinstance(value, dict):
        raise InputError(f'{what} is not a JSON object (expected {{"type": "steer", "text": "..."}})')
    kind = value.get("type")
    if kind not in STEER_TYPES:
        raise InputError(f"{what} has type {kind!r}; the types taken are: {', '.join(STEER_TYPES)}")
    text = value.get("text")
    if not isinstance(text, str):
        raise InputError(f'{what} has no "text" string')
    try:
        return check_words(text)
    except ValueError as e:
        raise InputError(f"{what}: {e}") from None


def read_steering(queue: SteeringQueue, fd: int, on_error: Callable[[str], None]) -> threading.Thread:
    """Read lines from ``fd`` until its end, in a daemon thread, queuing each steer; a bad line is
    reported through ``on_error`` (one line) and skipped. Raw reads, not ``sys.stdin``: a thread
    blocked in a read must never hold the interpreter's stdin lock at exit."""

    def take(line: bytes, n: int) -> None:
        try:
            words = parse_steer_line(line, n)
        except InputError as e:
            on_error(f"{e.one_line()}; ignored")
            return
        if words is not None:
            queue.put(words)

    def read() -> None:
        buf, n, skipping = b"", 0, False
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if skipping:  # the end of a line too long to read
                    skipping = False
                    continue
                n += 1
                take(line, n)
            if len(buf) > _MAX_LINE and not skipping:  # no end of line in sight: refuse it, read on
                n += 1
                on_error(f"stdin line {n} is too long (more than {_MAX_LINE} bytes); ignored")
                skipping = True
            if skipping:
                buf = b""
        if buf.strip() and not skipping:
            take(buf, n + 1)

    t = threading.Thread(target=read, name="agent-steering-stdin", daemon=True)
    t.start()
    return t


class LineEditor:
    """The message a person types while a turn runs, key by key (the terminal does not edit it: see
    :func:`quiet_keys`): printable characters are added, Backspace takes the last one back, Ctrl-U
    clears the message, Ctrl-W takes back the last word, a Tab is a space, Alt-Enter (or Esc then
    Enter) is a new line within the message, as at the chat's prompt; arrow and other escape
    sequences and other control keys are ignored. :meth:`feed` returns the messages ended by Enter.

    A paste is one message, its newlines kept, as at the chat's prompt: the terminal marks it
    (bracketed paste, ``ESC [200~`` ... ``ESC [201~``, turned on by :func:`quiet_keys` with
    ``paste``), and its text goes into the message as it is (tabs too; line ends as ``\\n``) for
    the person to send with Enter. A terminal that does not mark pastes sends a paste as keys, in
    one read where a person's keys come one at a time: so within one :meth:`feed` an Enter followed
    by more text is a new line of the message, not its end (a paste that ends with a line end is
    then sent whole, as one message; one longer than a read, 4,096 bytes, may be cut where a read
    ends on a line end: never more than one message per read).

    A paste's start mark without its end mark (a broken terminal, a paste cut short) would make
    every later Enter a new line of the paste, never its end, until the turn ends: the reader ends
    a paste in progress when the burst of reads that carried it is over (:meth:`end_paste`: no more
    bytes waiting, :data:`PASTE_GAP` after a read). A terminal writes a paste at once, so a whole
    paste arrives in one burst; what is pasted stays on the line, and Enter then sends it."""

    def __init__(self) -> None:
        import codecs

        self.text = ""
        self._decode = codecs.getincrementaldecoder("utf-8")("replace").decode
        self._escape = ""  # an escape sequence being read (its keys are not text)
        self._pasting = False  # between a paste's marks
        self._cr = False  # the last character of a paste was a carriage return (a "\r\n" is one line end)

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        chars = self._decode(data)
        for i, ch in enumerate(chars):
            if self._escape:
                self._escape += ch
                # Arrows, function keys, Alt-x: all of it ignored, but for a paste's marks and
                # Alt-Enter (a new line).
                end = escape_end(self._escape)
                if end is None:
                    continue
                seq, self._escape = self._escape, ""
                if not end and ch in "\r\n":
                    self.text += "\n"
                elif seq in (PASTE_START, PASTE_END):
                    self._pasting, self._cr = seq == PASTE_START, False
                continue
            if ch == "\x1b":
                self._escape = ch
            elif self._pasting:
                self._pasted(ch)
            elif ch == "\n" and i and chars[i - 1] == "\r":
                continue  # the second half of one line end
            elif ch in "\r\n":
                if chars[i + 1:].lstrip("\n"):  # more in this read: a line end of a paste
                    self.text += "\n"
                else:
                    lines.append(self.take())
            elif ch in "\x7f\x08":
                self.text = self.text[:-1]
            elif ch == "\x15":  # Ctrl-U
                self.text = ""
            elif ch == "\x17":  # Ctrl-W
                kept = self.text.rstrip()
                while kept and not kept[-1].isspace():
                    kept = kept[:-1]
                self.text = kept
            elif ch == "\t":
                self.text += " "
            elif ch.isprintable():
                self.text += ch
        return lines

    @property
    def pasting(self) -> bool:
        """Whether a paste's start mark was read and not its end mark."""
        return self._pasting

    def end_paste(self) -> None:
        """The paste in progress is over (its end mark never came): the keys after it are keys."""
        self._pasting = self._cr = False

    def _pasted(self, ch: str) -> None:
        """A character of a paste: kept as it is, but line ends as ``\\n`` and no control characters."""
        cr, self._cr = self._cr, ch == "\r"
        if ch == "\n" and cr:
            return
        if ch in "\r\n":
            self.text += "\n"
        elif ch == "\t" or ch.isprintable():
            self.text += ch

    def take(self) -> str:
        """The message as typed so far, and the line emptied."""
        text, self.text = self.text, ""
        return text


class TerminalSteering:
    """While a turn runs: what is typed at the terminal is edited here, key by key, and each line
    ended by Enter is put on the turn's steering queue (applied at the next step boundary). The
    terminal does not echo the keys meanwhile (:func:`agentcli.cli.live.quiet_keys`): the line being typed is drawn by
    the status line, in its own place under it (:attr:`typed`; ``on_key`` after each key), so it
    never lands inside the status line. Keys are read only while no question is open
    (:mod:`agentcli.cli.prompts` holds its lock while it opens one), so an answer to a prompt is never
    taken for a message; a line half typed when a question opens is kept, and shown again after.
    On leaving, the terminal's mode is put back; :meth:`unsent` is the line typed and not sent.

    With ``on_command``, a line that starts with ``/`` is not a message: it is given to
    ``on_command`` (the chat's slash commands), which returns whether it was done; one that was not
    (a command that waits for the turn's end, an unknown one) goes back on the line, for the next
    prompt or to edit. A line that starts with ``//`` is a message starting with one ``/``."""

    def __init__(self, queue: Any, on_queued: Callable[[str], None], on_error: Callable[[str], None],
                 fd: int = 0, on_key: Callable[[], None] | None = None, out: int | None = None,
                 on_command: Callable[[str], bool] | None = None) -> None:
        self.queue = queue
        self.on_command = on_command
        self.on_queued = on_queued
        self.on_error = on_error
        self.on_key = on_key
        self.fd = fd
        #: The terminal's output, where bracketed paste is turned on (standard error's by default).
        self.out = out
        #: Whether the terminal's echo is off (the caller draws :attr:`typed`); False on a pipe.
        self.quiet = False
        self._editor = LineEditor()
        self._lock = threading.Lock()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._mode: Any = None

    @property
    def typed(self) -> str:
        """The line being typed (not sent yet)."""
        with self._lock:
            return self._editor.text

    def unsent(self) -> str:
        """What was typed and not sent (after the turn: for the next prompt)."""
        return self.typed.strip()

    def __enter__(self) -> TerminalSteering:
        out = self.out if self.out is not None else _stderr_fd()
        self._mode = quiet_keys(self.fd, paste_to=out if out >= 0 else None)
        self.quiet = self._mode.__enter__()
        self._thread = threading.Thread(target=self._read, name="chat-steering", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join(timeout=1)
        if self._mode is not None:
            self._mode.__exit__(None, None, None)

    def _read(self) -> None:
        import select
        import time

        from agentcli.cli import prompts

        while not self._stop:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.1)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            with prompts.between_questions() as free:  # a question waits until these keys are read
                # Ready again, now that no question can open: what select saw may have been read by a
                # question that opened and closed since (a read that blocked here would hold the next).
                if not free or not select.select([self.fd], [], [], 0)[0]:
                    ready = []
                else:
                    try:
                        data = os.read(self.fd, 4096)
                    except OSError:
                        return
            if not ready:
                time.sleep(0.05)  # the open question reads it
                continue
            if not data:
                return  # end of input
            with self._lock:
                lines = self._editor.feed(data)
                pasting = self._editor.pasting
            if pasting and not _more(self.fd):  # the burst that carried the paste is over: no end mark
                with self._lock:
                    self._editor.end_paste()
            for line in lines:
                self._send(line)
            if self.on_key is not None:
                self.on_key()

    def _send(self, line: str) -> None:
        text = line.strip()
        if not text:
            return
        if self.on_command is not None and text.startswith("/"):
            if text.startswith("//"):  # a message that starts with a slash
                text = text[1:]
            else:
                if not self.on_command(text):  # not done now: kept, as typed
                    with self._lock:
                        self._editor.text = line + self._editor.text
                return
        try:
            self.queue.put(text)
        except ValueError as e:
            with self._lock:  # not lost: back in the line, for the person to shorten or to keep
                self._editor.text = line + self._editor.text
            self.on_error(f"not queued: {e}")
        else:
            self.on_queued(text)


#: How long after a read a paste in progress waits for its next bytes before it is over (seconds).
PASTE_GAP = 0.05


def _more(fd: int) -> bool:
    """Whether bytes come at ``fd`` within :data:`PASTE_GAP`."""
    import select

    try:
        return bool(select.select([fd], [], [], PASTE_GAP)[0])
    except (OSError, ValueError):
        return False


def _stderr_fd() -> int:
    """Standard error's descriptor, or -1 when it has none (a test's replaced stderr)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return -1


def one_line(text: str) -> str:
    """A message as one line to show: its first line and how many follow (``[+2 lines]``)."""
    lines = text.strip().split("\n")
    return lines[0] + more_lines(len(lines) - 1)
