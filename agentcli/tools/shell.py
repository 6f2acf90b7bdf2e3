"""run_shell, and the subprocess runner the git tools share.

A child process gets an environment built from an allow-list (no credentials), runs in its own
process group inside the workspace, has its output captured with a bounded head
and tail, and on timeout or cancellation its whole process group is killed.
run_shell's commands run inside the OS sandbox (:mod:`agentcli.tools.sandbox`);
no child outlives the agent, even under ``kill -9``.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import fnmatch
import functools
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentcli.tools.base import ArgsModel, Capped, Tool, ToolContext, ToolFailure
from agentcli.tools.paths import rel_posix, resolve_in_workspace
from agentcli.tools.sandbox import Sandbox, SandboxUnavailable, parent_death
from agentcli.tools.text import FailureLines, strip_ansi

__all__ = ["ProcessResult", "ShellOutput", "child_env", "run_process", "shell_tool"]

#: What any command needs from our environment. Everything else is withheld unless the user allows
#: it (``tools.shell_env_allow``): an allow-list, so a credential under a name nobody thought of
#: (a telemetry header list, a CI token) never reaches a command the model wrote.
BASE_ENV_ALLOW: tuple[str, ...] = ("PATH", "HOME", "LANG", "LANGUAGE", "LC_*", "TERM", "TZ", "USER", "LOGNAME",
                                   "SHELL", "TMPDIR")
_GRACE_SECONDS = 5.0


def is_passed(name: str, allow: Sequence[str] = ()) -> bool:
    """Whether an environment variable reaches child processes: on the base allow-list or the
    user's (exact names, or ``fnmatch`` patterns)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in (*BASE_ENV_ALLOW, *allow))


def child_env(
    environ: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None,
    allow: Sequence[str] = (),
) -> dict[str, str]:
    """The environment for a child process, built from the allow-list (never by removing known
    names), with pagers and prompts off, then ``extra``."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if is_passed(k, allow)}
    # A pager or a credential prompt would wait forever on a terminal nobody watches.
    env.update({"PAGER": "cat", "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0"})
    env.update(extra or {})
    return env


class _HeadTail:
    """Keeps the first and last ``limit/2`` characters of a stream of unbounded length."""

    def __init__(self, limit: int) -> None:
        self.half = max(limit // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        # What falls out of the middle keeps its lines that report a failure (a tenth of the room).
        self.failures = FailureLines(max(limit // 10, 200))
        self._partial = bytearray()  # the start of a dropped line whose end is still in the tail

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.half:
                cut = len(self.tail) - self.half
                self._dropped(bytes(self.tail[:cut]))
                del self.tail[:cut]

    def _dropped(self, data: bytes) -> None:
        self._partial += data
        *lines, rest = bytes(self._partial).split(b"\n")
        self._partial = bytearray(rest[-1000:])  # a line longer than that is no failure report
        for line in lines:
            self.failures.add(line.decode("utf-8", errors="replace"))

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        if not self.truncated:
            return head + tail
        dropped = self.total - len(self.head) - len(self.tail)
        found = self.failures.text()
        if found:
            return (f"{head}\n[... output truncated: {dropped} bytes omitted from the middle; the lines there "
                    f"that report a failure:]\n{found}\n[... end of the output:]\n{tail}")
        return f"{head}\n[... output truncated: {dropped} bytes omitted from the middle ...]\n{tail}"


@dataclass
class ProcessResult:
    exit_code: int
    output: str
    truncated: bool
    timed_out: bool


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def run_process(
    argv: Sequence[str] | str,
    *,
    cwd: Path,
    timeout: float,
    limit: int,
    env: Mapping[str, str] | None = None,
    sandbox: Sandbox | None = None,
    on_output: Callable[[str], None] | None = None,
) -> ProcessResult:
    """Run a command (a string goes to ``/bin/sh -c``) with stdout and stderr merged.

    Never waits past ``timeout``: the process group is killed and ``timed_out`` set.
    If the awaiting task is cancelled, the process group is killed too. With a ``sandbox``
    the command runs inside it; without one (agentcli's own fixed commands, e.g. git) it
    still dies with the agent. ``on_output`` is told the output as it arrives (what is captured
    is the same).
    """
    env = dict(env) if env is not None else child_env()
    cmd = ["/bin/sh", "-c", argv] if isinstance(argv, str) else list(argv)
    if sandbox is not None:
        env.update(sandbox.env())
        preexec = sandbox.preexec()
        try:
            cmd = sandbox.wrap(cmd, cwd)
        except SandboxUnavailable as exc:
            raise ToolFailure(str(exc)) from None
    else:
        cmd, preexec = parent_death(cmd)
    kwargs: dict[str, Any] = {
        "cwd": str(cwd),
        "env": env,
        "stdin": asyncio.subprocess.DEVNULL,
        "stdout": asyncio.subprocess.PIPE,
        "stderr": asyncio.subprocess.STDOUT,
        "start_new_session": True,  # its own process group, so a kill reaches grandchildren
        "preexec_fn": preexec,
    }
    try:
        proc = await asyncio.create_subprocess_exec(*cmd, **kwargs)
    except OSError as exc:
        name = argv.split()[0] if isinstance(argv, str) and argv.split() else str(argv[0])
        raise ToolFailure(f"cannot start {name!r}: {exc.strerror or exc}") from None
    buf = _HeadTail(limit)

    async def pump() -> None:
        assert proc.stdout is not None
        decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        while chunk := await proc.stdout.read(65536):
            buf.add(chunk)
            if on_output is not None:
                on_output(decode(chunk))
        await proc.wait()

    timed_out = False
    try:
        await asyncio.wait_for(pump(), timeout)
    except TimeoutError:
        timed_out = True
        _kill_group(proc)
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        if proc.returncode is None:
            # A grandchild that left the group may keep the pipe open; do not wait on it.
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await asyncio.wait_for(proc.wait(), _GRACE_SECONDS)
    code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    return ProcessResult(exit_code=code, output=buf.text(), truncated=buf.truncated, timed_out=timed_out)


class ShellOutput(BaseModel):
    """What run_shell returns."""

    exit_code: int = Field(..., description="The command's exit code.")
    output: str = Field(..., description="stdout and stderr, merged; head and tail when long.")
    sandbox: str = Field(..., description="How the command was confined, e.g. 'bubblewrap workspace-write, "
                         "network off'.")


class RunShellArgs(ArgsModel):
    command: str = Field(..., min_length=1, max_length=10_000, description="Command for /bin/sh -c.")
    timeout: float | None = Field(
        None, gt=0, le=3600, description="Seconds before the command is killed. Default: the tool timeout."
    )
    cwd: str = Field(".", min_length=1, description="Working directory relative to the workspace root.")
    network: bool = Field(
        False, description="Run with network access (the call then also needs the `network` approval). "
        "Without it the command has no network at all."
    )


def _shell_cwd(args: RunShellArgs, ctx: ToolContext) -> Path:
    cwd = resolve_in_workspace(ctx.workspace, args.cwd, what="cwd")
    if not cwd.is_dir():
        raise ToolFailure(f"cwd {args.cwd!r} is not a directory")
    return cwd


def _timeout(args: RunShellArgs, ctx: ToolContext) -> float:
    return args.timeout if args.timeout is not None else ctx.config.default_timeout_seconds


def shell_sandbox(args: RunShellArgs, ctx: ToolContext) -> Sandbox:
    """The sandbox this call runs in; :class:`ToolFailure` (one line) when none is available."""
    try:
        return Sandbox.from_config(ctx.sandbox, ctx.workspace, ctx.data_dir, network=args.network,
                                   protected=ctx.protected)
    except SandboxUnavailable as exc:
        raise ToolFailure(f"run_shell {exc}") from None


async def run_shell(args: RunShellArgs, ctx: ToolContext) -> dict[str, Any] | Capped:
    cwd = _shell_cwd(args, ctx)
    seconds = _timeout(args, ctx)
    sandbox = shell_sandbox(args, ctx)
    return await _sandboxed(args.command, cwd, seconds, sandbox, ctx)


async def _sandboxed(command: str, cwd: Path, seconds: float, sandbox: Sandbox, ctx: ToolContext,
                     extra_env: dict[str, str] | None = None) -> Capped:
    """One command in its sandbox, for run_shell and run_readonly: output bounded, its last line shown
    live where someone watches (``ctx.on_output``), colour codes stripped, a timeout one clear failure."""
    total = ctx.config.output_limit_chars
    limit = total - min(200, total // 4)  # room for the truncation note
    watch = ctx.on_output
    try:
        res = await run_process(command, cwd=cwd, timeout=seconds, limit=limit, sandbox=sandbox,
                                env=child_env(extra=extra_env, allow=ctx.config.shell_env_allow),
                                on_output=functools.partial(watch, command) if watch is not None else None)
    finally:
        if watch is not None:
            watch(command, None)
    # Colour codes (pytest, compilers) only cost a model room: the output is kept as text.
    output = strip_ansi(res.output)
    if res.timed_out:
        tail = output[-2000:].strip()
        raise ToolFailure(f"command timed out after {seconds:g} s and was killed (whole process group)"
                          + (f"; last output:\n{tail}" if tail else ""), error_type="timeout")
    return Capped({"exit_code": res.exit_code, "output": output, "sandbox": sandbox.describe()},
                  truncated=res.truncated)


class RunReadonlyArgs(ArgsModel):
    command: str = Field(..., min_length=1, max_length=10_000, description="Command for /bin/sh -c.")
    timeout: float | None = Field(
        None, gt=0, le=3600, description="Seconds before the command is killed. Default: the tool timeout."
    )
    cwd: str = Field(".", min_length=1, description="Working directory relative to the workspace root.")


def readonly_sandbox(ctx: ToolContext) -> Sandbox:
    """The sandbox of a read-only command: the workspace mounted read-only, no network; refused
    (:class:`ToolFailure`) without a working OS sandbox, ``sandbox.mode = "off"`` included: a
    command only counts as a read because the sandbox makes it one."""
    if ctx.sandbox.mode == "off":
        raise ToolFailure("run_readonly refused: it needs the OS sandbox (sandbox.mode is \"off\")")
    try:
        return Sandbox.from_config(ctx.sandbox, ctx.workspace, ctx.data_dir).read_only()
    except SandboxUnavailable as exc:
        raise ToolFailure(f"run_readonly {exc}") from None


#: Tools write caches beside the code (bytecode, pytest's cache); in a read-only workspace each
#: attempt is a warning in the output the model reads.
_READONLY_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTEST_ADDOPTS": "-p no:cacheprovider"}


async def run_readonly(args: RunReadonlyArgs, ctx: ToolContext) -> dict[str, Any] | Capped:
    cwd = resolve_in_workspace(ctx.workspace, args.cwd, what="cwd")
    if not cwd.is_dir():
        raise ToolFailure(f"cwd {args.cwd!r} is not a directory")
    seconds = args.timeout if args.timeout is not None else ctx.config.default_timeout_seconds
    sandbox = readonly_sandbox(ctx)
    return await _sandboxed(args.command, cwd, seconds, sandbox, ctx, _READONLY_ENV)


def readonly_tool() -> Tool:
    """``run_readonly``: a command in the sandbox with the workspace read-only and no network, a read.
    Only an investigate step's model calls it (``planned`` False): plans run commands with run_shell."""
    return Tool(
        name="run_readonly",
        description="Run a shell command to look, not to change: the workspace is mounted read-only and "
        "there is no network (tests, linters, scripts that only read run; writes fail). Returns exit_code and "
        "combined stdout+stderr. Its environment holds only PATH, HOME, locale, terminal and what the user "
        "allowed; stdin is empty.",
        args_model=RunReadonlyArgs,
        func=run_readonly,
        risk="read",
        returns=ShellOutput,
        small_planner=False,
        planned=False,
        timeout_for=lambda a, default: (a.timeout if a.timeout is not None else default) + _GRACE_SECONDS,
    )


def preview_shell(args: RunShellArgs, ctx: ToolContext) -> str:
    cwd = rel_posix(ctx.workspace, _shell_cwd(args, ctx))
    try:
        where = shell_sandbox(args, ctx).describe()
    except ToolFailure as exc:
        where = exc.message
    return f"$ {args.command}\n(cwd: {cwd}, timeout: {_timeout(args, ctx):g} s, sandbox: {where})"


def shell_tool() -> Tool:
    return Tool(
        name="run_shell",
        description="Run a shell command in the workspace; returns exit_code and combined stdout+stderr. "
        "It runs in a sandbox: it may write only inside the workspace and $TMPDIR, and has no network "
        "unless `network` is true. Its environment holds only PATH, HOME, locale, terminal and what the "
        "user allowed; stdin is empty.",
        args_model=RunShellArgs,
        func=run_shell,
        risk="exec",
        preview_func=preview_shell,
        returns=ShellOutput,
        call_risks=lambda a: ("network",) if a.network else (),
        # The registry waits for the command's own timeout plus time to kill and collect it.
        timeout_for=lambda a, default: (a.timeout if a.timeout is not None else default) + _GRACE_SECONDS,
    )
