"""Sandbox and checkpoint benchmark: what confinement and undo cost, and why bubblewrap.

    .venv/bin/python bench/sandbox_bench.py            # full (~2 minutes on 2 cores)
    .venv/bin/python bench/sandbox_bench.py --smoke    # tiny sizes, a functional check
    .venv/bin/python bench/sandbox_bench.py --write    # also replace its section of bench/RESULTS.md

What is measured, all in one process so the figures compare (medians of interleaved rounds):

* the sandbox's added cost per ``run_shell`` call: the same command (``true``) through the real
  tool registry with ``sandbox.mode = "off"`` and ``"workspace-write"``, interleaved;
* the alternative that needs no package, Landlock (ABI here: see the table), applied by a small
  ctypes ``preexec_fn`` in the child: its cost per call, and the same escape attempts as the test
  suite's (plus UDP and a double-forked child surviving ``kill -9``) under Landlock and under
  bubblewrap. That is the evidence for the choice (docs/architecture.md);
* checkpoints on a repository of 1,000 and of 10,000 files (2 KB each, 100 per folder): the first
  checkpoint ever in a workspace (every file hashed), one with nothing changed (also what a later
  run's first checkpoint costs: the shadow index's stat cache is shared by runs), one step
  (``before`` + ``after`` around a step that edits a file), a whole three-step run, and an undo
  of that run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agentcli.config import load_settings  # noqa: E402
from agentcli.record.checkpoints import ShadowRepo, run_checkpoints, undo_run  # noqa: E402
from agentcli.record.events import EventLog  # noqa: E402
from agentcli.record.reader import RunRecord  # noqa: E402
from agentcli.tools import build_registry  # noqa: E402
from agentcli.tools.sandbox import parent_death, pdeathsig_preexec, sandbox_status  # noqa: E402
from bench.report import write_section  # noqa: E402

HEADING = "## Sandbox and checkpoints (bench/sandbox_bench.py)"

# ------------------------------------------------------------------ Landlock, for comparison

_SYS_CREATE, _SYS_ADD, _SYS_RESTRICT = 444, 445, 446  # x86_64 and aarch64 share these numbers
_FS_WRITE = sum(1 << b for b in (1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14))  # write, remove, make_*, refer, truncate
_NET_TCP = 0b11  # bind + connect


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.syscall(_SYS_CREATE, None, 0, 1))


def landlock_preexec(writable: list[Path]) -> Callable[[], None]:
    """Landlock in the child: writes only below ``writable``, no TCP at all, no new privileges."""
    libc = ctypes.CDLL(None, use_errno=True)
    paths = [str(p).encode() for p in writable]

    def apply() -> None:
        attr = _RulesetAttr(_FS_WRITE, _NET_TCP)
        fd = libc.syscall(_SYS_CREATE, ctypes.byref(attr), ctypes.sizeof(attr), 0)
        if fd < 0:
            os._exit(97)
        for p in paths:
            dfd = os.open(p, os.O_PATH | os.O_DIRECTORY)
            rule = _PathBeneath(_FS_WRITE, dfd)
            if libc.syscall(_SYS_ADD, fd, 1, ctypes.byref(rule), 0) != 0:
                os._exit(98)
            os.close(dfd)
        libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
        if libc.syscall(_SYS_RESTRICT, fd, 0) != 0:
            os._exit(99)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: the direct child only

    return apply


# ------------------------------------------------------------------ helpers


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _fmt(ms: float) -> str:
    return f"{ms:.2f} ms" if ms < 100 else f"{ms:.0f} ms"


class _Tcp:
    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            c.close()


class _Udp:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self.stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                self.sock.recvfrom(100)
            except (TimeoutError, OSError):
                continue
            self.received += 1


def _escape_attempts(ws: Path, tag: str, tcp: _Tcp, udp: _Udp) -> dict[str, str]:
    py = sys.executable
    return {
        "write $HOME": f"echo x > {Path.home()}/.agentcli-bench-{tag}",
        "write /tmp outside the private tmp": f"echo x > /tmp/agentcli-bench-{tag}",
        "write through a symlink to outside": "echo x > link/x",
        "write the data dir inside the workspace": f"echo x > .agent/bench-{tag}",
        "TCP connect to a loopback server": f"{py} -c 'import socket; socket.create_connection((\"127.0.0.1\", "
                                             f"{tcp.port}), timeout=2)'",
        "UDP datagram to a loopback server": f"{py} -c 'import socket; s=socket.socket(socket.AF_INET, "
                                              f"socket.SOCK_DGRAM); s.sendto(b\"x\", (\"127.0.0.1\", {udp.port}))'",
        "resolve a host name": f"{py} -c 'import socket; socket.getaddrinfo(\"pypi.org\", 443)'",
    }


def _judge(name: str, ws: Path, outside: Path, tag: str, rc: int, tcp0: int, tcp: _Tcp, udp0: int, udp: _Udp
           ) -> bool:
    """True when the attempt got through, judged outside the sandbox."""
    if name == "write $HOME":
        return (Path.home() / f".agentcli-bench-{tag}").exists()
    if name.startswith("write /tmp"):
        return Path(f"/tmp/agentcli-bench-{tag}").exists()
    if name.startswith("write through"):
        return (outside / "x").exists()
    if name.startswith("write the data dir"):
        return (ws / ".agent" / f"bench-{tag}").exists()
    if name.startswith("TCP"):
        time.sleep(0.3)
        return tcp.accepted > tcp0
    if name.startswith("UDP"):
        time.sleep(0.3)
        return udp.received > udp0
    return rc == 0


def _cleanup(ws: Path, outside: Path, tag: str) -> None:
    for p in (Path.home() / f".agentcli-bench-{tag}", Path(f"/tmp/agentcli-bench-{tag}"), outside / "x",
              ws / ".agent" / f"bench-{tag}"):
        with contextlib.suppress(OSError):
            p.unlink()


def _outlives(argv: list[str], preexec: Callable[[], Callable[[], None] | None], cwd: Path) -> bool:
    """Does a double-forked background job survive a kill -9 of its parent? A forked copy of this
    process stands in for the agent: it starts the command and is killed once the job runs."""
    marker, started = cwd / "late.txt", cwd / "started.txt"
    marker.unlink(missing_ok=True)
    started.unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:  # the stand-in agent
        try:
            subprocess.Popen(argv, cwd=cwd, preexec_fn=preexec())  # made here: it checks its parent's pid
            time.sleep(60)
        finally:
            os._exit(0)
    deadline = time.monotonic() + 10
    while not started.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the job never started: {argv}")
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    time.sleep(1.6)
    return marker.exists()


def sandbox_section(tmp: Path, rounds: int) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    ws = tmp / "ws"
    (ws / ".agent").mkdir(parents=True)
    outside = tmp / "outside"
    outside.mkdir()
    (ws / "link").symlink_to(outside)
    status = sandbox_status()
    rows.append(("bubblewrap", status.backend or f"unavailable: {status.reason}"))
    abi = landlock_abi()
    rows.append(("Landlock ABI of this kernel", str(abi) if abi > 0 else "none"))

    # Cost per run_shell call through the registry, interleaved.
    async def timed(reg: Any) -> float:
        t0 = time.perf_counter()
        res = await reg.call("run_shell", {"command": "true"})
        assert res.ok, res.error
        return time.perf_counter() - t0

    async def per_call() -> dict[str, list[float]]:
        regs = {}
        for mode in ("off", "workspace-write"):
            settings = load_settings(workspace=ws, use_user_config=False, environ={},
                                     overrides={"sandbox.mode": mode})
            regs[mode] = await build_registry(settings, plugins=False, mcp=False)
        out: dict[str, list[float]] = {m: [] for m in regs}
        for m in regs:  # warm-up
            await timed(regs[m])
        for _ in range(rounds):
            for m, reg in regs.items():
                out[m].append(await timed(reg))
        return out

    samples = asyncio.run(per_call())
    off, on = _median_ms(samples["off"]), _median_ms(samples["workspace-write"])
    rows.append((f"run_shell `true`, sandbox off (median of {rounds})", _fmt(off)))
    rows.append(("run_shell `true`, bubblewrap workspace-write, network off", _fmt(on)))
    rows.append(("added by the sandbox per run_shell call", f"{on - off:+.2f} ms ({on / off:.2f}x)"))

    ll = landlock_preexec([ws, tmp / "private-tmp"])
    (tmp / "private-tmp").mkdir()
    from agentcli.tools.sandbox import Sandbox

    sb = Sandbox.from_config(load_settings(workspace=ws, use_user_config=False, environ={}).config.sandbox,
                             ws, ws / ".agent")
    true = ["/bin/sh", "-c", "true"]
    # The namespaces alone: what the sandbox was before the root hardening (read-only /proc/sys,
    # user namespace, seccomp launcher, limits through prlimit, a pids cgroup as root).
    bare = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--new-session", "--unshare-pid",
            "--unshare-ipc", "--unshare-uts", "--cap-drop", "ALL", "--unshare-net", "--ro-bind", "/", "/",
            "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--bind", str(ws), str(ws),
            "--ro-bind", str(ws / ".agent"), str(ws / ".agent"), "--chdir", str(ws), "--", *true]
    spawn: dict[str, list[float]] = {"plain": [], "setpriv": [], "preexec": [], "landlock": [], "bwrap": [],
                                     "bwrap-bare": []}
    for _ in range(rounds):
        for kind in spawn:
            t0 = time.perf_counter()
            if kind == "bwrap":
                subprocess.run(sb.wrap(true, ws), cwd=ws, check=True)
            elif kind == "bwrap-bare":
                subprocess.run(bare, cwd=ws, check=True)
            elif kind == "setpriv":
                subprocess.run(parent_death(true)[0], cwd=ws, check=True)
            else:
                pre = {"plain": None, "preexec": pdeathsig_preexec(), "landlock": ll}[kind]
                subprocess.run(true, cwd=ws, check=True, preexec_fn=pre)
            spawn[kind].append(time.perf_counter() - t0)
    med = {k: _median_ms(v) for k, v in spawn.items()}
    rows.append(("spawn `sh -c true` directly (posix_spawn/vfork)", _fmt(med["plain"])))
    rows.append(("... behind setpriv --pdeathsig (what mode = off does)", _fmt(med["setpriv"])))
    rows.append(("... with a preexec_fn doing the same (forces a fork)", _fmt(med["preexec"])))
    rows.append(("... in bubblewrap, namespaces only (no network)", _fmt(med["bwrap-bare"])))
    rows.append(("... in the full sandbox (+ /proc read-only, user namespace, seccomp, limits)", _fmt(med["bwrap"])))
    rows.append(("added by the hardening per command", f"{med['bwrap'] - med['bwrap-bare']:+.2f} ms "
                 f"({med['bwrap'] / med['bwrap-bare']:.2f}x)"))
    rows.append(("... with a Landlock preexec_fn (ctypes)", _fmt(med["landlock"])))

    # The escape attempts under each.
    tcp, udp = _Tcp(), _Udp()
    tag = f"{os.getpid()}"
    results: dict[str, dict[str, bool]] = {"bubblewrap": {}, "Landlock": {}, "off": {}}
    for name, cmd in _escape_attempts(ws, tag, tcp, udp).items():
        for label in results:
            t0, u0 = tcp.accepted, udp.received
            argv = ["/bin/sh", "-c", cmd]
            if label == "bubblewrap":
                res = subprocess.run(sb.wrap(argv, ws), cwd=ws, capture_output=True, env={**os.environ, **sb.env()})
            elif label == "Landlock":
                res = subprocess.run(argv, cwd=ws, capture_output=True, preexec_fn=ll)
            else:
                res = subprocess.run(argv, cwd=ws, capture_output=True)
            results[label][name] = _judge(name, ws, outside, tag, res.returncode, t0, tcp, u0, udp)
            _cleanup(ws, outside, tag)
    tcp.stop = udp.stop = True
    job = ["/bin/sh", "-c", "(sleep 1; echo late > late.txt) & echo s > started.txt; wait"]
    outlive = "a double-forked job outlives the agent's kill -9"
    results["bubblewrap"][outlive] = _outlives(sb.wrap(job, ws), lambda: None, ws)
    results["Landlock"][outlive] = _outlives(job, lambda: ll, ws)  # ll sets the parent-death signal too
    results["off"][outlive] = _outlives(job, pdeathsig_preexec, ws)  # what mode = "off" does
    for name in results["bubblewrap"]:
        cells = ", ".join(f"{label}: {'ESCAPED' if results[label][name] else 'blocked'}" for label in results)
        rows.append((f"escape: {name}", cells))
    for label in results:
        n = sum(results[label].values())
        rows.append((f"escapes, {label}", f"{n} of {len(results[label])}"))
    return rows


# ------------------------------------------------------------------ checkpoints


def _make_repo(root: Path, n: int) -> None:
    blob = ("x" * 63 + "\n") * 32  # 2 KB
    for i in range(n):
        d = root / f"pkg{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i:05d}.py").write_text(f"# file {i}\n{blob}")
    (root / ".gitignore").write_text(".agent/\n")


def checkpoint_section(tmp: Path, sizes: list[int]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for n in sizes:
        ws = tmp / f"repo{n}"
        ws.mkdir()
        _make_repo(ws, n)
        data = ws / ".agent"
        data.mkdir()
        repo = ShadowRepo(ws, data, 2_000_000)
        t0 = time.perf_counter()
        first = repo.snapshot({"run_id": "r0"})
        cold = time.perf_counter() - t0
        unchanged = []
        for _ in range(5):
            t0 = time.perf_counter()
            cp = repo.snapshot({"run_id": "r0"}, parent=first.commit)
            unchanged.append(time.perf_counter() - t0)
            assert not cp.changed
        # One run of three steps, each editing one file: first checkpoint, then before + after each.
        log = EventLog(data / "runs" / "r1" / "events.jsonl", "r1")
        from agentcli.record.checkpoints import Checkpointer

        ck = Checkpointer(repo, log, "r1")
        run_t0 = time.perf_counter()
        step_times = []
        for s in range(3):
            t0 = time.perf_counter()
            ck.take(f"s{s + 1}", "before")
            target = ws / "pkg000" / f"mod{s:05d}.py"
            target.write_text(target.read_text() + f"# edited by step {s}\n")
            ck.take(f"s{s + 1}", "after")
            step_times.append(time.perf_counter() - t0)
        log.append("run_finished", {"status": "COMPLETE"})
        run_total = time.perf_counter() - run_t0
        log.close()
        rec = RunRecord.read(data / "runs" / "r1" / "events.jsonl")
        assert run_checkpoints(rec).first
        t0 = time.perf_counter()
        res = undo_run(repo, rec, apply=True)
        undo_s = time.perf_counter() - t0
        assert res.applied and len(res.files) == 3
        rows += [
            (f"{n:,} files: first checkpoint ever (hashes every file)", _fmt(cold * 1000)),
            (f"{n:,} files: checkpoint, nothing changed (median of 5)", _fmt(_median_ms(unchanged))),
            (f"{n:,} files: per step (before + after, 1 file edited; median of 3)", _fmt(_median_ms(step_times))),
            (f"{n:,} files: per run (3 such steps)", _fmt(run_total * 1000)),
            (f"{n:,} files: undo of that run (3 files)", _fmt(undo_s * 1000)),
            (f"{n:,} files: shadow repository size", f"{_du(data / 'checkpoints') / 1e6:.1f} MB"),
        ]
    return rows


def _du(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def render(rows: list[tuple[str, str]], load: str) -> str:
    width = max(len(r[0]) for r in rows)
    lines = [HEADING, "", f"| {'measure'.ljust(width)} | result |", f"|{'-' * (width + 2)}|--------|"]
    lines += [f"| {a.ljust(width)} | {b} |" for a, b in rows]
    lines += ["", f"Machine: {os.cpu_count()} cores, load average {load}; Python {sys.version.split()[0]}, "
              f"uid {os.getuid()}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--write", action="store_true", help="replace this section of bench/RESULTS.md")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="agentcli-sbx-bench-"))
    # The agent's size when it spawns commands (litellm and pydantic loaded): forking costs with it.
    import litellm  # noqa: F401

    try:
        rows = sandbox_section(tmp, rounds=5 if args.smoke else 40)
        rows += checkpoint_section(tmp, [100] if args.smoke else [1_000, 10_000])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = render(rows, ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(text)
    if args.write:
        write_section(text, ROOT / "bench" / "RESULTS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
