"""Hooks: the user's shell commands at fixed points of a run (``[[hooks]]``).

As in Claude Code and Gemini CLI, a hook is a command that gets the event as JSON on its
stdin: ``pre_tool`` before a tool call, ``post_tool`` after it, ``run_finished`` when the
run has ended. The JSON has the shape of an event line, ``{"type", "run_id", "step_id",
"data"}``: for ``pre_tool`` the data is the tool and its resolved, validated and approved
args; ``post_tool`` gets the ``tool_call`` event (the result included); ``run_finished``
the ``run_finished`` event.

* A ``pre_tool`` hook that exits 2 blocks the call: the step fails with a ``blocked``
  :class:`~agentcli.tools.ToolError` whose message is the hook's stderr, which the reviewer
  (and a re-plan) sees like any tool error.
* Any other non-zero exit is a warning: the run goes on; so are a timeout and a command that
  cannot run (exit 127: not found, 126: not executable, or killed by a signal), except for a
  pre_tool hook (below).
* A hook runs as run_shell's commands do: inside the OS sandbox (``[sandbox]``; a hook with
  ``sandbox = false`` runs unconfined), in the workspace, with the environment run_shell's
  commands get (:func:`agentcli.tools.shell.child_env`: the base allow-list plus
  ``tools.shell_env_allow``) plus the hook's own ``env`` names, in its own process group, killed
  whole at its timeout, dying with the agent. Where no sandbox works, the hook is not run. A
  pre_tool hook that gives no verdict (not run, could not start, not found, not executable,
  killed by a signal, timed out) blocks the call unless it says ``fail_closed = false`` (then a
  warning, as for the other events). The scripts a hook names in the workspace are read-only to
  sandboxed commands (:mod:`agentcli.tools.trust`), so no step can rewrite its own guard.
* Every hook that runs is one ``hook`` event, written through its payload model. Where a hook's
  result comes from is a port (:class:`HookResults`): by default the command runs; a replay
  passes the recorded results (:class:`agentcli.engine.replay.RecordedHookResults`), so the
  same :class:`Hooks` records the same events without running anything.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import fnmatch
import functools
import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from agentcli.config import HookConfig, SandboxConfig
from agentcli.record.events import EventLog, Hooked
from agentcli.redact import current as current_redactor
from agentcli.tools.sandbox import Sandbox, SandboxUnavailable, hook_words, parent_death
from agentcli.tools.shell import child_env

__all__ = ["BLOCK_EXIT_CODE", "HookResult", "HookResults", "Hooks"]

#: The exit code with which a pre_tool hook blocks the call.
BLOCK_EXIT_CODE = 2
#: The exit codes of /bin/sh for a command it could not run, and what they mean.
_CANNOT_RUN = {126: "command is not executable (exit 126)", 127: "command was not found (exit 127)"}
#: How much of a hook's stdout and stderr is kept in its event.
OUTPUT_CHARS = 2000

HookEvent = Literal["pre_tool", "post_tool", "run_finished"]
Outcome = Literal["ok", "blocked", "warning"]


@dataclass(frozen=True)
class HookResult:
    """What one hook did, as its ``hook`` event records it."""

    index: int
    event: str
    command: str
    tool: str | None
    exit_code: int | None
    outcome: Outcome
    stdout: str
    stderr: str
    message: str
    duration_ms: float
    #: Where it ran: the sandbox's description (as run_shell results say).
    sandbox: str = ""

    def __post_init__(self) -> None:
        # A hook's output and message reach the model (a blocked call's error) and the record:
        # masked here, as text, before anything embeds them.
        redact = current_redactor()
        for name in ("stdout", "stderr", "message"):
            object.__setattr__(self, name, redact.text(getattr(self, name)))

    def payload(self) -> Hooked:
        """The ``hook`` event's payload."""
        return Hooked(hook=self.index, event=self.event, command=self.command, tool=self.tool,
                      exit_code=self.exit_code, outcome=self.outcome, message=self.message,
                      stdout=self.stdout, stderr=self.stderr, duration_ms=round(self.duration_ms, 3),
                      sandbox=self.sandbox)

    @classmethod
    def recorded(cls, d: Hooked) -> HookResult:
        """The result a ``hook`` event recorded."""
        outcome: Outcome = "blocked" if d.outcome == "blocked" else "warning" if d.outcome == "warning" else "ok"
        return cls(index=d.hook, event=d.event, command=d.command, tool=d.tool, exit_code=d.exit_code,
                   outcome=outcome, stdout=d.stdout, stderr=d.stderr, message=d.message,
                   duration_ms=d.duration_ms, sandbox=d.sandbox)


class HookResults(Protocol):
    """Where hook results come from instead of running the commands (a replay: its record).
    ``serve`` returns the result, or None to run the hook here (a fork's live steps)."""

    def serve(self, index: int, event: HookEvent, step_id: str | None) -> HookResult | None: ...


def _tail(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    return text if len(text) <= OUTPUT_CHARS else "[...]" + text[-OUTPUT_CHARS:]


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def run_hook_process(command: str, stdin: bytes, *, cwd: Path, timeout: float,
                           sandbox: Sandbox | None = None,
                           env_allow: Sequence[str] = (),
                           on_output: Callable[[str], None] | None = None) -> tuple[int | None, bytes, bytes, bool]:
    """``/bin/sh -c command`` with ``stdin``: (exit code, stdout, stderr, timed out). Confined as
    run_shell's commands are: inside ``sandbox`` (the OS sandbox, as run_shell's), the workspace as
    cwd, an environment from the allow-list (plus ``env_allow``), its own process group, the whole
    group killed at the timeout or on cancellation, and it dies with the agent. ``on_output`` is
    told its output (stdout and stderr) as it arrives; what is returned is the same."""
    env = child_env(allow=env_allow)
    if sandbox is not None:
        env.update(sandbox.env())
        argv = sandbox.wrap(["/bin/sh", "-c", command], cwd, reads=hook_words(command))
        preexec = sandbox.preexec()
    else:
        argv, preexec = parent_death(["/bin/sh", "-c", command])
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=str(cwd), env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
        preexec_fn=preexec)
    try:
        if on_output is None:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        else:
            out, err = await asyncio.wait_for(_communicate(proc, stdin, on_output), timeout)
    except TimeoutError:
        _kill_group(proc)
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.wait_for(proc.wait(), 5.0)
        return None, b"", b"", True
    except BaseException:
        _kill_group(proc)
        raise
    return proc.returncode, out, err, False


async def _communicate(proc: asyncio.subprocess.Process, stdin: bytes,
                       on_output: Callable[[str], None]) -> tuple[bytes, bytes]:
    """``proc.communicate(stdin)``, telling ``on_output`` each piece of output as it comes."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

    async def feed() -> None:
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(stdin)
            await proc.stdin.drain()
        proc.stdin.close()

    async def pump(stream: asyncio.StreamReader) -> bytes:
        data = bytearray()
        decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        while chunk := await stream.read(65536):
            data += chunk
            on_output(decode(chunk))
        return bytes(data)

    _, out, err = await asyncio.gather(feed(), pump(proc.stdout), pump(proc.stderr))
    await proc.wait()
    return out, err


class Hooks:
    """Runs the configured hooks of one run and records each as a ``hook`` event."""

    def __init__(self, hooks: Sequence[HookConfig], workspace: Path, events: EventLog, run_id: str, *,
                 sandbox: SandboxConfig | None = None, data_dir: Path | None = None,
                 env_allow: Sequence[str] = (), protected: Sequence[Path] = (),
                 results: HookResults | None = None) -> None:
        self.hooks = list(hooks)
        #: What the sandbox keeps read-only in the workspace (a guard script among them).
        self.protected = tuple(protected)
        #: Results served instead of running the commands (None: every hook runs).
        self.results = results
        #: What every hook's environment allows besides the base list (``tools.shell_env_allow``).
        self.env_allow = tuple(env_allow)
        self.workspace = workspace
        self.sandbox_config = sandbox or SandboxConfig()
        self.data_dir = data_dir or workspace / ".agent"
        self.events = events
        self.run_id = run_id
        #: Called with each result that is a warning (the command line prints them).
        self.on_warning: Callable[[HookResult], None] | None = None
        #: Told a running hook's output as it arrives (a live display; never recorded).
        self.on_output: Callable[[str, str | None], None] | None = None

    def _matching(self, event: HookEvent, tool: str | None) -> list[tuple[int, HookConfig]]:
        out = []
        for i, h in enumerate(self.hooks):
            if h.event != event:
                continue
            if event != "run_finished" and h.tools and not any(fnmatch.fnmatchcase(tool or "", p) for p in h.tools):
                continue
            out.append((i, h))
        return out

    async def _execute(self, index: int, hook: HookConfig, event: HookEvent, tool: str | None,
                       payload: dict[str, Any]) -> HookResult:
        stdin = (json.dumps(payload, ensure_ascii=False, default=str) + "\n").encode()
        t0 = time.monotonic()
        sandbox: Sandbox | None = None
        refused = ""
        try:
            if hook.sandbox:
                sandbox = Sandbox.from_config(self.sandbox_config, self.workspace, self.data_dir,
                                              protected=self.protected)
        except SandboxUnavailable as e:
            refused = str(e)
        code, out, err, timed_out = None, b"", b"", False
        if not refused:
            try:
                label = f"hook {hook.command}"
                watch = self.on_output
                try:
                    code, out, err, timed_out = await run_hook_process(
                        hook.command, stdin, cwd=self.workspace, timeout=hook.timeout_seconds, sandbox=sandbox,
                        env_allow=(*self.env_allow, *hook.env),
                        on_output=functools.partial(watch, label) if watch is not None else None)
                finally:
                    if watch is not None:
                        watch(label, None)
            except OSError as e:
                err = str(e.strerror or e).encode()
            except SandboxUnavailable as e:
                refused = str(e)
        ms = (time.monotonic() - t0) * 1000
        stderr = _tail(err)
        where = sandbox.describe() if sandbox is not None else "none (hook sandbox = false)"
        # A guard that gave no verdict must not let the call through unchecked (unless told to).
        no_verdict: Outcome = "blocked" if event == "pre_tool" and hook.fail_closed else "warning"
        if refused:
            outcome: Outcome = no_verdict
            message = f"hook not run: {refused}"
        elif code is None and not timed_out:
            outcome = no_verdict
            message = f"hook could not start: {' '.join(stderr.split())[:300]}"
        elif timed_out:
            outcome = no_verdict
            message = f"hook timed out after {hook.timeout_seconds:g} s and was killed"
        elif code == 0:
            outcome, message = "ok", ""
        elif code == BLOCK_EXIT_CODE and event == "pre_tool":
            outcome = "blocked"
            message = " ".join(stderr.split()) or f"blocked by the hook `{hook.command}`"
        elif code is not None and (code in _CANNOT_RUN or code < 0 or 128 < code <= 128 + 64):
            # /bin/sh's 127 (not found) and 126 (not executable), or killed by a signal (a shell,
            # and bubblewrap, report one as 128 + its number): the hook gave no verdict.
            outcome = no_verdict
            why = _CANNOT_RUN.get(code) or f"was killed by signal {-code if code < 0 else code - 128}"
            message = f"hook {why}" + (f": {' '.join(stderr.split())[:300]}" if stderr.strip() else "")
        else:
            outcome = "warning"
            message = f"hook exited with {code}" + (f": {' '.join(stderr.split())[:300]}" if stderr.strip() else "")
        return HookResult(index, event, hook.command, tool, code, outcome, _tail(out), stderr, message, ms, where)

    async def _result(self, index: int, hook: HookConfig, event: HookEvent, step_id: str | None,
                      tool: str | None, payload: dict[str, Any]) -> HookResult:
        """The hook's result: served by :attr:`results` when it has it, else run here."""
        if self.results is not None:
            served = self.results.serve(index, event, step_id)
            if served is not None:
                return served
        return await self._execute(index, hook, event, tool, payload)

    async def _fire(self, event: HookEvent, step_id: str | None, tool: str | None,
                    data: dict[str, Any]) -> HookResult | None:
        """Run the matching hooks in order; the first that blocks stops the rest and is returned."""
        payload = {"type": event, "run_id": self.run_id, "step_id": step_id, "data": data}
        for index, hook in self._matching(event, tool):
            result = await self._result(index, hook, event, step_id, tool, payload)
            self.events.emit(result.payload(), step_id=step_id)
            if result.outcome == "warning" and self.on_warning is not None:
                self.on_warning(result)
            if result.outcome == "blocked":
                return result
        return None

    async def pre_tool(self, step_id: str, tool: str, args: dict[str, Any]) -> HookResult | None:
        """Before a tool call: the blocking result, or None to go ahead."""
        return await self._fire("pre_tool", step_id, tool, {"tool": tool, "args": args})

    async def post_tool(self, step_id: str, tool: str, call_data: dict[str, Any]) -> None:
        """After a tool call, given the ``tool_call`` event's data."""
        await self._fire("post_tool", step_id, tool, call_data)

    async def run_finished(self, finished_data: dict[str, Any]) -> None:
        """After the ``run_finished`` event, given its data."""
        await self._fire("run_finished", None, None, finished_data)
