"""What a command is doing while it works, on the terminal, and Ctrl-C that stops it at once.

:class:`RunStatus` draws one status line on stderr (rich's ``Live``, redrawn 4 times a second) with
the phase (planning, surveying ``read_file src/x.py``, running ``s3 run_shell``, reviewing,
verifying, replanning), the elapsed time, the tokens and the cost so far, and the model call in
flight with its own timer. It is fed by the run's progress callbacks (``on_step``,
``on_transition``) and the LLM client (``on_send`` before a request, ``observers`` after it); it is
drawn only on a terminal and never with ``--quiet`` or machine output, so pipes see exactly what
they saw before. While a question is asked (:meth:`RunStatus.paused`) it is taken off the screen.

:func:`run_interruptible` runs a command's coroutine with its own Ctrl-C handling: the first
Ctrl-C cancels the run's task (a model call in flight is abandoned, a command's process group is
killed: the run records ``interrupted``), without waiting for worker threads that cannot be
stopped (a blocking HTTP request, the embedded model); a second Ctrl-C ends the process at once
(exit 130). :func:`leave` ends an interrupted process without joining such threads.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from rich.live import Live

    from agentcli.models.types import CallRecord, PreCall, RunTotals

__all__ = ["RunStatus", "leave", "run_interruptible"]

T = TypeVar("T")

#: The documented exit code of an interrupted command (``ExitCode.INTERRUPTED``).
INTERRUPTED_EXIT = 130

#: Set by the entry point when it wrote ``starting…`` before the imports (one line, to replace).
early_line = False

_HINT = "  (Ctrl-C to stop)"
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

    # -- drawing

    def line(self) -> Text:
        """The status line as it is now (also what a test or a log can read)."""
        with self._lock:
            phase = self.phase
            if self._running and phase == "running":
                phase = "running " + ", ".join(self._running.values())
            parts = [f"{time.monotonic() - self.started:.1f}s"]
            t = self.totals
            if t is not None and (t.input_tokens or t.output_tokens):
                parts.append(f"{t.input_tokens + t.output_tokens:,} tokens")
                parts.append(f"${t.cost_usd:.4f}")
            if self._call is not None:
                model, since = self._call
                parts.append(f"waiting for {model} {time.monotonic() - since:.1f}s")
        text = Text(phase, style="bold")
        text.append(" · " + " · ".join(parts))
        return text

    def __rich__(self) -> Text:
        frames = self._frames
        text = Text(frames[int((time.monotonic() - self.started) * 12.5) % len(frames)] + " ", style="cyan")
        text.append_text(self.line())
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
            live = self._live = Live(self, console=self.console, transient=True, refresh_per_second=4,
                                     redirect_stdout=False, redirect_stderr=False)
        global early_line
        if early_line:  # the entry point's line (agentcli.cli.first): the status line takes its place
            early_line = False
            self.console.file.write("\x1b[1A\r\x1b[2K")
        # Outside our lock: Live's refresh thread takes its own lock, then ours (to read the line).
        live.start(refresh=True)

    def stop(self) -> None:
        """Take the line off the screen for good (before the result is printed)."""
        with self._lock:
            self._closed = True
        self._hide()

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
        """The run's progress callbacks, also feeding the line."""
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
        return step, transition

    def watch_client(self, client: Any) -> None:
        """Follow ``client``'s calls: its totals, the call in flight, the planner's survey."""
        self.totals = client.totals
        client.on_send.append(self._sent)
        client.observers.append(self._answered)

    def _sent(self, pre: PreCall) -> None:
        with self._lock:
            self._call = (pre.model, time.monotonic())

    def _answered(self, rec: CallRecord) -> None:
        with self._lock:
            self._call = None
            if rec.role != "planner" or not self.phase.startswith(("planning", "replanning", "surveying")):
                return
            calls = rec.response.tool_calls if rec.response is not None else []
            if calls:  # the planner looks before it plans: what it reads next
                self.phase = "surveying " + ", ".join(_call_words(c) for c in calls[:3])
            elif self.phase.startswith("surveying"):
                self.phase = "planning"


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


def _quit_now() -> None:
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
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    os._exit(code)
