"""The command line's side of steering and feedback (:mod:`agentcli.engine.steering`).

- :func:`render_revision`: a plan revised for the user's words, shown as its diff (``+`` added,
  ``-`` removed, ``~`` changed steps), for ``agent run`` and any other front end.
- :class:`TerminalSteering`: in ``agent chat``, each line typed at the terminal while a turn runs
  (and no question is open) is queued as a steering message.
- :func:`parse_steer_line` and :func:`read_steering`: with ``agent run --output jsonl``, each
  line on stdin is a JSON object; ``{"type": "steer", "text": "..."}`` queues a message that steers
  the running plan at its next step boundary. A line that is not one is refused with one line on
  stderr (``error: stdin line N: ...; ignored``) and the run goes on.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape

from agentcli.engine.steering import MAX_MESSAGE_CHARS, PlanRevision, SteeringQueue, check_words
from agentcli.untrusted import InputError, load_json

__all__ = ["STEER_TYPES", "TerminalSteering", "parse_steer_line", "read_steering", "render_revision"]

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


class TerminalSteering:
    """While a turn runs: each line typed at the terminal is put on the turn's steering queue (applied
    at the next step boundary). Lines are read only while no question is open (:mod:`agentcli.cli.
    prompts` holds its lock while it opens one), so an answer to a prompt is never taken for a
    message; the terminal is in its line mode then, so a line arrives whole, when Enter is pressed."""

    def __init__(self, queue: Any, on_queued: Any, on_error: Any, fd: int = 0) -> None:
        self.queue = queue
        self.on_queued = on_queued
        self.on_error = on_error
        self.fd = fd
        self._stop = False
        self._thread: Any = None

    def __enter__(self) -> TerminalSteering:
        import threading

        self._thread = threading.Thread(target=self._read, name="chat-steering", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join(timeout=1)

    def _read(self) -> None:
        import os
        import select
        import time

        from agentcli.cli import prompts

        buf = b""
        while not self._stop:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.1)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            with prompts.between_questions() as free:  # a question waits until this line is read
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
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode("utf-8", "replace").strip()
                if not text:
                    continue
                try:
                    self.queue.put(text)
                except ValueError as e:
                    self.on_error(f"not queued: {e}")
                else:
                    self.on_queued(text)
