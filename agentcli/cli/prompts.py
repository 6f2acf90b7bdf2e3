"""The questions the command line asks a person: one function draws and reads every one of them.

:func:`ask` prints a question and its legend (``[y]es / [n]o``) as plain text, never rich markup,
so no bracketed letter is eaten, and reads one answer from the terminal. Ctrl-C at a prompt is an
answer: :data:`STOP`, which every caller takes as "stop the run" (the run records it as denied or
aborted and exits 4, see the README). It is read as a key (the terminal's ISIG is off while asking),
so it reaches the prompt also when the prompt runs in a worker thread, where a SIGINT never would.

A question may take the person's own words instead of a key (``words=``, the plan's confirmation
and a step's approval): any answer longer than one character that is not a key comes back as
:class:`Words`, which the caller turns into feedback. Enter alone is still the default.

While a prompt is open, progress lines from steps running in parallel wait (:func:`say`) and are
printed after the answer: nothing lands inside the prompt's line.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from rich.text import Text

from agentcli.cli.commands.common import err_console

__all__ = ["STOP", "Words", "ask", "between_questions", "legend", "say"]

#: What :func:`ask` returns for Ctrl-C (or end of input): stop the run.
STOP = "\x03"



class Words(str):
    """An answer in the person's own words (not one of the keys): what to change."""


_lock = threading.Lock()
_open = False
_waiting: list[Callable[[], None]] = []


def legend(choices: Sequence[tuple[str, str]]) -> str:
    """``[y]es / [n]o, stop``: each choice's label, which holds its key in brackets (``a[b]ort``);
    a label without its key in brackets gets it in front (``[1] 20261207-…``)."""
    return " / ".join(label if f"[{key}]" in label else f"[{key}] {label}" for key, label in choices)


def say(show: Callable[[], None]) -> None:
    """Run ``show`` (which prints) now, or after the open prompt is answered."""
    with _lock:
        if _open:
            _waiting.append(show)
            return
    show()


def ask(question: str, choices: Sequence[tuple[str, str]], *, default: str, words: str | None = None) -> str:
    """Ask ``question`` until one of ``choices``' keys is answered (Enter: ``default``); returns
    the key, or :data:`STOP` for Ctrl-C or end of input. With ``words`` (the legend's hint, e.g.
    "or type what to change"), an answer of two characters or more that is not a key is returned
    as :class:`Words`, stripped and as typed."""
    global _open
    keys = [k for k, _ in choices]
    with _lock:
        _open = True
    try:
        hint = f", {words}" if words else ""
        line = f"{question} {legend(choices)}{hint} ({default}): "
        if words and len(line) > err_console.width:
            # A narrow terminal: the hint starts the line the answer is typed on, so the prompt is
            # not folded mid-word by the terminal, and typed words have the line's room.
            line = f"{question} {legend(choices)},\n{words} ({default}): "
        prompt = Text(line)

        def show() -> None:
            err_console.print(prompt, end="", highlight=False, markup=False, soft_wrap=True)

        while True:
            answer = _read_line(show)
            if answer is None:
                return STOP
            typed = answer.strip()
            answer = typed.lower() or default
            if answer in keys:
                return answer
            if words and len(typed) > 1:
                return Words(typed)
            err_console.print(f"please answer one of: {', '.join(keys)}{hint}", style="red", highlight=False,
                              markup=False)
    finally:
        with _lock:
            _open = False
            waiting = list(_waiting)
            _waiting.clear()
        for show in waiting:
            show()


def _read_line(show_prompt: Callable[[], None]) -> str | None:
    """Show the prompt, then read one line from the terminal; None for Ctrl-C or end of input. On a
    terminal the prompt is shown only once Ctrl-C is a plain byte here (signals off): a Ctrl-C
    typed the moment the question appears is this answer, never a signal that lands elsewhere."""
    stdin = sys.stdin
    try:
        fd = stdin.fileno()
        tty = os.isatty(fd)
    except (AttributeError, OSError, ValueError):
        tty = False
    if not tty:
        show_prompt()
        try:
            line = stdin.readline()
        except KeyboardInterrupt:
            return None
        return line.rstrip("\n") if line else None
    import codecs
    import termios

    from agentcli.cli.live import PASTE_END, PASTE_START, escape_end

    saved = termios.tcgetattr(fd)
    raw = termios.tcgetattr(fd)
    # No line editing, no echo, no signals: Ctrl-C arrives as a byte, read here.
    raw[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG)
    raw[6][termios.VMIN], raw[6][termios.VTIME] = 1, 0
    out = sys.stderr
    buf: list[str] = []
    # Bytes to characters as they come: a word typed in any script arrives a byte at a time.
    decode = codecs.getincrementaldecoder("utf-8")("replace").decode
    try:
        termios.tcsetattr(fd, termios.TCSADRAIN, raw)
        show_prompt()
        out.flush()
        escape, pasting = "", False
        while True:
            data = os.read(fd, 1)
            ch = decode(data) if data else "\x04"
            if not ch:  # the first bytes of a longer character
                continue
            if escape or ch == "\x1b":  # an arrow key, or a paste's marks (bracketed paste, on in a chat's turn)
                escape += ch
                end = escape_end(escape)
                if end is not None:
                    pasting = {PASTE_START: True, PASTE_END: False}.get(escape, pasting) if end else pasting
                    escape = ""
                continue
            if pasting and ch in ("\r", "\n", "\t"):
                ch = " "  # a pasted line end: the answer is one line
            if ch in ("\x03", "\x04") and (ch == "\x03" or not buf):
                out.write("^C\n" if ch == "\x03" else "\n")
                return None
            if ch in ("\r", "\n"):
                out.write("\n")
                return "".join(buf)
            if ch in ("\x7f", "\x08"):
                if buf:
                    buf.pop()
                    out.write("\b \b")
            elif ch.isprintable():
                buf.append(ch)
                out.write(ch)
            out.flush()
    finally:
        out.flush()
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextmanager
def between_questions() -> Iterator[bool]:
    """For a reader of the terminal besides :func:`ask` (``agent chat``'s steering while a turn runs):
    yields whether no question is open; while it is held, no question opens, so what the reader takes
    cannot be an answer."""
    with _lock:
        yield not _open
