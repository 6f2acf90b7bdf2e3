"""The OS sandbox around the processes agentcli starts: run_shell commands, hooks and MCP servers.

On Linux the sandbox is bubblewrap (``bwrap``, installed by ``make setup``): one short-lived
set of namespaces per process, built from these rules:

* file system: all of it readable; writable only the workspace (``workspace-write``), a private
  ``/tmp`` (a tmpfs of ``sandbox.tmp_size_mb``, ``TMPDIR`` points at it) and a private cache of the
  package managers (below); the data dir stays read-only even when it lies inside the workspace,
  so a command cannot rewrite its own record or checkpoints; so are the files that run or
  configure things outside the sandbox later (``protected``: agent.toml, AGENTS.md, hook and MCP
  scripts, ``.git/config``, ``.git/hooks``, see :mod:`agentcli.tools.trust`); a symlink in the
  workspace that points elsewhere leads to a read-only place; the host's ``/tmp`` is hidden except
  the interpreters and toolchains that live there (the agent's own, a virtualenv, PATH entries,
  ``sandbox.read_paths``), bound back read-only;
* kernel: ``/proc/sys``, ``/proc/sysrq-trigger``, ``/proc/irq``, ``/proc/bus`` and the like are
  read-only (a process of uid 0 could otherwise change the host's kernel settings, or set a
  ``|program`` core pattern the kernel runs as root outside every namespace); when agentcli runs
  as root, commands run as uid 1000 in a user namespace that cannot make further ones (where the
  kernel allows: probed once). File ownership is still judged by the host's uid (root's files stay
  writable in the workspace): the read-only mounts are what protect the kernel;
* unix sockets: a seccomp filter makes ``socket(AF_UNIX)`` fail (:mod:`agentcli.tools.sandbox_bpf`)
  unless ``sandbox.unix_sockets``, so no host socket is reachable;
* network: a new network namespace (no interface but a loopback of its own: no TCP, UDP, DNS,
  nor the host's loopback services) unless the call's network was approved or
  ``sandbox.network`` is on;
* resources: at most ``sandbox.max_processes`` processes and threads (a pids cgroup per command
  when agentcli is root and one is writable; else ``RLIMIT_NPROC``, counted in the command's own
  user namespace; root is exempt from it), files of at most ``sandbox.max_file_size_mb``
  (``RLIMIT_FSIZE``, set by the launcher in front of bubblewrap), no core dumps;
* privileges: ``no_new_privs`` (setuid binaries do not elevate), every capability dropped (even
  when the agent runs as root), a new session (no typing into the user's terminal);
* lifetime: a PID namespace and ``--die-with-parent``: when the agent dies, even by ``kill -9``,
  the kernel kills everything the command started, double-forked daemons included.

Package managers get a writable, private, per-workspace cache (``<data_dir>/toolchain-cache``; in
``read-only`` mode one inside the private /tmp): npm, pip, uv, yarn, go's build cache, Gradle's
user home (with the host's dependency cache as its read-only cache). Package *homes* whose
content builds need offline (``~/.cargo``, ``~/go/pkg/mod``, ``~/.m2``) stay the host's,
read-only, unless listed in ``sandbox.writable_paths``.

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
import hashlib
import itertools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from agentcli.config import SandboxConfig, SandboxMode
from agentcli.tools.sandbox_bpf import unix_socket_filter

__all__ = ["Sandbox", "SandboxFeatures", "SandboxStatus", "SandboxUnavailable", "parent_death",
           "pdeathsig_preexec", "sandbox_features", "sandbox_status"]

_PR_SET_PDEATHSIG = 1
_PROBE_TIMEOUT = 10.0
#: The uid (and gid) a command runs as when agentcli is root.
SANDBOX_UID = 1000
#: Kernel interfaces a process of uid 0 could write without a capability (Docker's read-only
#: list): bound read-only over the sandbox's own /proc. Each bind costs ~1.5 ms (bubblewrap reads
#: the mount table again), so those absent on this kernel are left out.
_PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs")
#: Runs in front of bubblewrap (``sh -c``, then ``exec``: the same process): no core dumps, files
#: up to $3 blocks of 512 bytes (POSIX sh's unit), joins the command's pids cgroup ($2), and opens
#: the seccomp program ($1) as fd 3, which nothing else could hand to a process the MCP SDK starts.
#: The limits are inherited through bubblewrap (which writes no file) by the command.
_LAUNCH = ('f=$1; c=$2; b=$3; shift 3; ulimit -c 0 || exit 125; if [ -n "$b" ]; then ulimit -f "$b" || exit 125; '
           'fi; if [ -n "$c" ]; then echo $$ > "$c/cgroup.procs" || exit 125; fi; '
           'if [ -n "$f" ]; then exec "$@" 3<"$f"; fi; exec "$@"')
#: A per-command cgroup older than this with no process left is removed by the next command.
_CGROUP_STALE_SECONDS = 60


class SandboxUnavailable(Exception):
    """The configured sandbox cannot be used here; the message says why and what to do."""


@dataclass(frozen=True)
class SandboxStatus:
    """Whether the OS sandbox works on this machine, and with what."""

    available: bool
    backend: str  # "bubblewrap 0.8.0", or "" when unavailable
    reason: str  # why it is unavailable ("" when it works)


@dataclass(frozen=True)
class SandboxFeatures:
    """The protections this machine allows on top of the base sandbox (probed once)."""

    #: A user namespace that cannot make further ones (and, for root, a non-zero uid inside).
    userns: bool
    #: The seccomp program denying unix sockets, or None (an unknown architecture, or refused).
    seccomp: bytes | None
    #: Where per-command pids cgroups are made (root only), or None.
    pids_cgroup: Path | None
    #: util-linux's prlimit, which sets RLIMIT_NPROC inside the sandbox, or None.
    prlimit: str | None
    #: bubblewrap sizes a tmpfs (``--size``, bubblewrap >= 0.8).
    tmp_size: bool


def _bwrap_base(network: bool) -> list[str]:
    args = ["--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--cap-drop", "ALL"]
    if not network:
        args.append("--unshare-net")
    return args


def _probe(argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT, check=False,
                              **kwargs)  # type: ignore[call-overload]
    except (OSError, subprocess.TimeoutExpired):
        return None


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


def _userns_args() -> list[str]:
    args = ["--unshare-user", "--disable-userns"]
    if os.geteuid() == 0:
        args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    return args


def _own_cgroup_dirs() -> list[Path]:
    """This process's cgroup directories that may hold a pids controller (v1, then v2)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    out: list[Path] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if "pids" in controllers.split(","):
            out.append(Path("/sys/fs/cgroup/pids") / rel)
        elif controllers == "":
            for root in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
                if (root / "cgroup.controllers").is_file():
                    out.append(root / rel)
                    break
    return out


def _find_pids_cgroup() -> Path | None:
    """A directory where agentcli may make a pids cgroup per command: root only (an ordinary user
    rarely has a delegated one, and RLIMIT_NPROC works for them)."""
    if os.geteuid() != 0:
        return None
    for base in _own_cgroup_dirs():
        parent = base / "agentcli"
        probe = parent / f"probe-{os.getpid()}"
        try:
            parent.mkdir(exist_ok=True)
            if (base / "cgroup.subtree_control").exists():  # v2: children need the controller handed down
                (parent / "cgroup.subtree_control").write_text("+pids")
            probe.mkdir(exist_ok=True)
            try:
                (probe / "pids.max").write_text("10")
            finally:
                probe.rmdir()
        except OSError:
            continue
        return parent
    return None


@functools.cache
def sandbox_features() -> SandboxFeatures:
    """Probe once per process what this machine allows (bubblewrap must work: see :func:`sandbox_status`)."""
    bwrap = shutil.which("bwrap") or "bwrap"
    base = [bwrap, *_bwrap_base(network=False), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
    program = unix_socket_filter()
    parts = {"userns": _userns_args(), "tmp_size": ["--size", str(1 << 20)],
             "seccomp": ["--seccomp", "3"] if program is not None else []}

    def works(*names: str) -> bool:
        argv = [*base, *(a for n in names for a in parts[n]), "--tmpfs", "/tmp", "true"]
        with tempfile.TemporaryFile() as f:
            f.write(program or b"")
            f.seek(0)
            res = _probe(["/bin/sh", "-c", 'exec "$@" 3<&0', "sh", *argv], stdin=f)
        return res is not None and res.returncode == 0

    # One probe when everything works (the usual case); one per protection otherwise.
    every = works(*parts)
    userns = every or works("userns")
    tmp_size = every or works("tmp_size")
    if program is not None and not (every or works("seccomp")):
        program = None
    return SandboxFeatures(userns=userns, seccomp=program, pids_cgroup=_find_pids_cgroup(),
                           prlimit=shutil.which("prlimit"), tmp_size=tmp_size)


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


@functools.cache
def _proc_read_only() -> tuple[str, ...]:
    return tuple(p for p in _PROC_READ_ONLY if os.path.exists(p))


def _tmp_top(path: str) -> str | None:
    """``/tmp/x`` for a path under ``/tmp/x``; None for any other path."""
    parts = os.path.abspath(path).split("/")
    return "/tmp/" + parts[2] if len(parts) > 2 and parts[1] == "tmp" and parts[2] else None


@functools.cache
def _toolchain_tmp_paths() -> tuple[str, ...]:
    """The top-level /tmp entries holding this agent's interpreter, its virtualenv or a PATH entry:
    the private /tmp would hide them (a fresh clone under /tmp could not run its own venv)."""
    candidates = [sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)),
                  os.environ.get("VIRTUAL_ENV", ""), os.environ.get("CONDA_PREFIX", ""),
                  *os.environ.get("PATH", "").split(os.pathsep)]
    return tuple(sorted({top for c in candidates if c and (top := _tmp_top(c)) is not None}))


_cgroup_counter = itertools.count()


def _command_cgroup(parent: Path, max_processes: int) -> str:
    """A fresh pids cgroup for one command (``""`` if it cannot be made); stale ones are removed."""
    now = int(time.time())
    for old in parent.glob("cmd-*"):
        try:
            if now - int(old.name.split("-")[1]) > _CGROUP_STALE_SECONDS:
                old.rmdir()  # fails (busy) while a process is still in it
        except (OSError, ValueError, IndexError):
            continue
    path = parent / f"cmd-{now}-{os.getpid()}-{next(_cgroup_counter)}"
    try:
        path.mkdir()
        # bubblewrap's own two processes (outside and as pid 1 inside) count too.
        (path / "pids.max").write_text(str(max_processes + 2))
    except OSError:
        return ""
    return str(path)


def _filter_file(data_dir: Path, program: bytes) -> str:
    """The seccomp program as a file the launcher opens (kept in the data dir, read-only inside)."""
    name = f"seccomp-{hashlib.sha256(program).hexdigest()[:12]}.bpf"
    for folder in (data_dir / "sandbox", Path(tempfile.gettempdir()) / f"agentcli-{os.geteuid()}"):
        path = folder / name
        try:
            if path.is_file() and not path.is_symlink() and path.read_bytes() == program:
                return str(path)
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".seccomp-")
            with os.fdopen(fd, "wb") as f:
                f.write(program)
            os.replace(tmp, path)
            return str(path)
        except OSError:
            continue
    raise SandboxUnavailable("refused: the sandbox's seccomp program cannot be written (data dir and "
                             "temporary directory not writable)")


@dataclass(frozen=True)
class Sandbox:
    """The confinement of one process: mode, network, limits, and the paths the rules are about."""

    mode: SandboxMode
    network: bool
    workspace: Path
    data_dir: Path
    #: The limits and switches of ``[sandbox]`` (mode and network aside).
    config: SandboxConfig = field(default_factory=SandboxConfig)
    #: Files and directories inside the workspace kept read-only (they run unconfined later).
    protected: tuple[Path, ...] = ()

    @classmethod
    def from_config(cls, cfg: SandboxConfig, workspace: Path, data_dir: Path, *, network: bool = False,
                    protected: Sequence[Path] = ()) -> Sandbox:
        """The sandbox for one process; ``network`` is this call's approved network access,
        ``protected`` the files that must stay read-only (:func:`agentcli.tools.trust.protected_paths`).

        Raises :class:`SandboxUnavailable` when the mode needs a sandbox and none works here."""
        sb = cls(cfg.mode, network or cfg.network, workspace.resolve(), data_dir.resolve(), cfg, tuple(protected))
        if sb.active and not sandbox_status().available:
            raise SandboxUnavailable(f"refused: no OS sandbox ({sandbox_status().reason})")
        return sb

    def read_only(self) -> Sandbox:
        """The same sandbox in ``read-only`` mode (the git tools), limits kept."""
        return self if not self.active else replace(self, mode="read-only", network=False)

    @property
    def active(self) -> bool:
        return self.mode != "off"

    def describe(self) -> str:
        """One line for approval prompts, results and records: ``bubblewrap workspace-write, network off``."""
        if not self.active:
            return "none (sandbox.mode = off)"
        net = "network on" if self.network else "network off"
        return f"bubblewrap {self.mode}, {net}"

    @property
    def cache_dir(self) -> Path:
        """The package managers' private cache: in the data dir, or the private /tmp when the
        workspace is read-only."""
        if self.mode == "workspace-write":
            return self.data_dir / "toolchain-cache"
        return Path("/tmp/toolchain-cache")

    def env(self) -> dict[str, str]:
        """Variables the sandboxed process needs on top of its environment."""
        if not self.active:
            return {}
        cache = self.cache_dir
        env = {"TMPDIR": "/tmp", "npm_config_cache": str(cache / "npm"), "npm_config_update_notifier": "false",
               "PIP_CACHE_DIR": str(cache / "pip"), "UV_CACHE_DIR": str(cache / "uv"),
               "YARN_CACHE_FOLDER": str(cache / "yarn"), "GOCACHE": str(cache / "go-build"),
               "GRADLE_USER_HOME": str(cache / "gradle")}
        gradle_deps = Path.home() / ".gradle" / "caches"
        if gradle_deps.is_dir():  # what Gradle downloaded before still serves, read-only
            env["GRADLE_RO_DEP_CACHE"] = str(gradle_deps)
        return env

    def wrap(self, argv: Sequence[str], cwd: Path, reads: Sequence[str] = ()) -> list[str]:
        """``argv`` as run inside the sandbox (when the mode is ``off``: only made to die with the
        agent, see :func:`parent_death`; run it with :meth:`preexec`). ``reads``: the words of a
        configured command (a hook's, an MCP server's): those naming a place under /tmp stay
        readable there.

        Raises :class:`SandboxUnavailable` when a protection cannot be set up."""
        if not self.active:
            return parent_death(argv)[0]
        feats = sandbox_features()
        cfg = self.config
        bwrap = shutil.which("bwrap") or "bwrap"
        args = [bwrap, *_bwrap_base(self.network)]
        if feats.userns:
            args += _userns_args()
        args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for path in _proc_read_only():
            args += ["--ro-bind", path, path]
        # A private /tmp first: the binds below may lie inside /tmp and must stay visible.
        if cfg.tmp_size_mb and feats.tmp_size:
            args += ["--size", str(cfg.tmp_size_mb << 20)]
        args += ["--tmpfs", "/tmp"]
        tops = set(_toolchain_tmp_paths())
        for word in reads:
            if word.startswith("/tmp/") and (top := _tmp_top(word)) is not None:
                tops.add(top)
        for extra in cfg.read_paths:
            p = os.path.abspath(os.path.expanduser(extra))
            if _tmp_top(p) is not None:
                tops.add(p)
        for top in sorted(tops):
            args += ["--ro-bind-try", top, top]
        ws, data = str(self.workspace), str(self.data_dir)
        if self.mode == "workspace-write":
            args += ["--bind", ws, ws]
            for extra in cfg.writable_paths:
                p = os.path.abspath(os.path.expanduser(extra))
                args += ["--bind-try", p, p]
        else:
            args += ["--ro-bind", ws, ws]
        if self.data_dir.is_dir():  # after the workspace bind: read-only wins inside it
            args += ["--ro-bind", data, data]
        if self.mode == "workspace-write":
            cache = self.cache_dir
            try:
                cache.mkdir(parents=True, exist_ok=True)
                args += ["--bind", str(cache), str(cache)]
            except OSError:
                pass  # the caches stay read-only: a package manager says so itself
            for kept in self.protected:  # last: read-only over the writable workspace
                if kept.exists() and not kept.is_symlink():
                    args += ["--ro-bind", str(kept), str(kept)]
        program = None if cfg.unix_sockets else feats.seccomp
        if program is not None:
            args += ["--seccomp", "3"]
        args += ["--chdir", str(cwd), "--"]
        if cfg.max_processes and feats.prlimit is not None and os.geteuid() != 0:
            # Inside the sandbox: RLIMIT_NPROC counts the processes of the uid in its own user
            # namespace there, not every process the user has on the host. (Root is exempt from
            # it: a pids cgroup bounds root's commands.)
            args += [feats.prlimit, f"--nproc={cfg.max_processes}", "--"]
        args += list(argv)
        cgroup = ""
        if cfg.max_processes and feats.pids_cgroup is not None:
            cgroup = _command_cgroup(feats.pids_cgroup, cfg.max_processes)
            if not cgroup:
                raise SandboxUnavailable("refused: the pids cgroup of the command cannot be made")
        filter_path = _filter_file(self.data_dir, program) if program is not None else ""
        blocks = str(cfg.max_file_size_mb << 11) if cfg.max_file_size_mb else ""
        return ["/bin/sh", "-c", _LAUNCH, "agentcli-sandbox", filter_path, cgroup, blocks, *args]

    def preexec(self) -> Callable[[], None] | None:
        """What the child runs before exec, if anything: bwrap's ``--die-with-parent`` or setpriv
        usually make it nothing."""
        return None if self.active else parent_death([])[1]


def hook_words(command: str) -> list[str]:
    """The words of a configured shell command (for :meth:`Sandbox.wrap`'s ``reads``)."""
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def protections(cfg: SandboxConfig) -> list[str]:
    """What protects the host beyond the namespaces, one phrase each (for ``agent doctor``)."""
    feats = sandbox_features()
    root = os.geteuid() == 0
    out = [f"{', '.join(_proc_read_only())} read-only"]
    if feats.userns:
        out.append(f"runs as uid {SANDBOX_UID} in a user namespace" if root else "own user namespace")
        out.append("no nested user namespaces")
    else:
        out.append("NO user namespace (the kernel refuses one)" + (": commands run as uid 0" if root else ""))
    if cfg.unix_sockets:
        out.append("unix sockets ALLOWED (sandbox.unix_sockets)")
    elif feats.seccomp is not None:
        out.append("unix sockets denied (seccomp)")
    else:
        out.append("unix sockets NOT filtered (no seccomp program for this machine)")
    if not cfg.max_processes:
        out.append("no process limit (sandbox.max_processes = 0)")
    elif root and feats.pids_cgroup is not None:
        out.append(f"at most {cfg.max_processes} processes (pids cgroup)")
    elif not root and feats.prlimit is not None:
        out.append(f"at most {cfg.max_processes} processes (RLIMIT_NPROC in the user namespace)")
    else:
        out.append("NO process limit (" + ("root is exempt from RLIMIT_NPROC and no pids cgroup is writable"
                                          if root else "prlimit is not installed") + ")")
    if cfg.tmp_size_mb and feats.tmp_size:
        out.append(f"/tmp {cfg.tmp_size_mb} MiB")
    if cfg.max_file_size_mb:
        out.append(f"files up to {cfg.max_file_size_mb} MiB")
    return out
