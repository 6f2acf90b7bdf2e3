"""The OS sandbox around the processes agentcli starts: run_shell commands and MCP servers.

On Linux the sandbox is bubblewrap (``bwrap``, installed by ``make setup``): one short-lived
set of namespaces per process, built from these rules:

* file system: all of it readable; writable only the workspace (``workspace-write``) and a
  private ``/tmp`` (a fresh tmpfs, ``TMPDIR`` points at it); the data dir stays read-only even
  when it lies inside the workspace, so a command cannot rewrite its own record or checkpoints;
  a symlink in the workspace that points elsewhere leads to a read-only place;
* network: a new network namespace (no interface but a loopback of its own: no TCP, UDP, DNS,
  nor the host's loopback services) unless the call's network was approved or
  ``sandbox.network`` is on;
* privileges: ``no_new_privs`` (setuid binaries do not elevate), every capability dropped (even
  when the agent runs as root), a new session (no typing into the user's terminal);
* lifetime: a PID namespace and ``--die-with-parent``: when the agent dies, even by ``kill -9``,
  the kernel kills everything the command started, double-forked daemons included.

Why bubblewrap rather than Landlock (measured, see docs/architecture.md and bench/RESULTS.md):
Landlock rules only ever *grant* access below a directory, so a data dir inside a writable
workspace cannot be kept read-only; its network rules (ABI 4..7) cover TCP only, leaving UDP,
DNS and unix sockets open; and it cannot reap a double-forked child when the agent dies.

When no sandbox works (no ``bwrap``, a kernel without user namespaces, macOS), commands are
refused with a one-line reason unless ``sandbox.mode = "off"``: never a silent downgrade. With
``off``, a child still gets a parent-death signal (its direct child only; grandchildren that
leave the process group are not reaped), set by ``setpriv --pdeathsig`` (util-linux) in front of
the command: a ``preexec_fn`` would do the same but forces a real ``fork()`` of the agent, which
costs ~60 ms for a process of its size against ~5 ms for one more exec (bench/RESULTS.md).
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agentcli.config import SandboxConfig, SandboxMode

__all__ = ["Sandbox", "SandboxStatus", "SandboxUnavailable", "parent_death", "pdeathsig_preexec",
           "sandbox_status"]

_PR_SET_PDEATHSIG = 1
_PROBE_TIMEOUT = 10.0


class SandboxUnavailable(Exception):
    """The configured sandbox cannot be used here; the message says why and what to do."""


@dataclass(frozen=True)
class SandboxStatus:
    """Whether the OS sandbox works on this machine, and with what."""

    available: bool
    backend: str  # "bubblewrap 0.8.0", or "" when unavailable
    reason: str  # why it is unavailable ("" when it works)


def _bwrap_base(network: bool) -> list[str]:
    args = ["--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--cap-drop", "ALL"]
    if not network:
        args.append("--unshare-net")
    return args


@functools.cache
def sandbox_status() -> SandboxStatus:
    """Probe once per process: can bubblewrap build every namespace the sandbox needs here?"""
    if not sys.platform.startswith("linux"):
        return SandboxStatus(False, "", f"no OS sandbox for {sys.platform} yet (macOS sandbox-exec is not "
                             "supported); set [sandbox] mode = \"off\" to run commands unconfined")
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return SandboxStatus(False, "", "bubblewrap (bwrap) is not installed: install the `bubblewrap` "
                             "package (make setup does), or set [sandbox] mode = \"off\"")
    probe = [bwrap, *_bwrap_base(network=False), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
             "--tmpfs", "/tmp", "true"]
    try:
        res = subprocess.run(probe, capture_output=True, text=True, timeout=_PROBE_TIMEOUT, check=False)
        version = subprocess.run([bwrap, "--version"], capture_output=True, text=True,
                                 timeout=_PROBE_TIMEOUT, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return SandboxStatus(False, "", f"bubblewrap does not start: {exc}")
    if res.returncode != 0:
        why = " ".join(res.stderr.split())[:300] or f"exit code {res.returncode}"
        return SandboxStatus(False, "", f"bubblewrap cannot create namespaces here ({why}); enable user "
                             "namespaces, or set [sandbox] mode = \"off\"")
    return SandboxStatus(True, version or "bubblewrap", "")


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def pdeathsig_preexec() -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child die with this process (its direct child only)."""
    parent = os.getpid()
    prctl = _libc().prctl  # looked up before the fork: the child only makes the call

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The agent died between fork and prctl: the signal will never come, so leave now.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def parent_death(argv: Sequence[str]) -> tuple[list[str], Callable[[], None] | None]:
    """``argv`` made to die with this process: behind ``setpriv --pdeathsig KILL`` when there is
    one (spawned without a fork of the agent), else with a ``preexec_fn`` doing the same."""
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        return [setpriv, "--pdeathsig", "KILL", "--", *argv], None
    return list(argv), pdeathsig_preexec()


@dataclass(frozen=True)
class Sandbox:
    """The confinement of one process: mode, network, and the paths the rules are about."""

    mode: SandboxMode
    network: bool
    workspace: Path
    data_dir: Path

    @classmethod
    def from_config(cls, cfg: SandboxConfig, workspace: Path, data_dir: Path, *, network: bool = False
                    ) -> Sandbox:
        """The sandbox for one process; ``network`` is this call's approved network access.

        Raises :class:`SandboxUnavailable` when the mode needs a sandbox and none works here."""
        sb = cls(cfg.mode, network or cfg.network, workspace.resolve(), data_dir.resolve())
        if sb.active and not sandbox_status().available:
            raise SandboxUnavailable(f"refused: no OS sandbox ({sandbox_status().reason})")
        return sb

    @property
    def active(self) -> bool:
        return self.mode != "off"

    def describe(self) -> str:
        """One line for approval prompts, results and records: ``bubblewrap workspace-write, network off``."""
        if not self.active:
            return "none (sandbox.mode = off)"
        net = "network on" if self.network else "network off"
        return f"bubblewrap {self.mode}, {net}"

    def env(self) -> dict[str, str]:
        """Variables the sandboxed process needs on top of its environment."""
        return {"TMPDIR": "/tmp"} if self.active else {}

    def wrap(self, argv: Sequence[str], cwd: Path) -> list[str]:
        """``argv`` as run inside the sandbox (when the mode is ``off``: only made to die with the
        agent, see :func:`parent_death`; run it with :meth:`preexec`)."""
        if not self.active:
            return parent_death(argv)[0]
        bwrap = shutil.which("bwrap") or "bwrap"
        args = [bwrap, *_bwrap_base(self.network),
                "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                # A private /tmp first: the binds below may lie inside /tmp and must stay visible.
                "--tmpfs", "/tmp"]
        ws, data = str(self.workspace), str(self.data_dir)
        if self.mode == "workspace-write":
            args += ["--bind", ws, ws]
        else:
            args += ["--ro-bind", ws, ws]
        if self.data_dir.is_dir():  # after the workspace bind: read-only wins inside it
            args += ["--ro-bind", data, data]
        args += ["--chdir", str(cwd), "--", *argv]
        return args

    def preexec(self) -> Callable[[], None] | None:
        """What the child runs before exec, if anything: bwrap's ``--die-with-parent`` or setpriv
        usually make it nothing."""
        return None if self.active else parent_death([])[1]
