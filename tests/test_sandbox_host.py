"""The sandbox holds against a hostile command, as root and as an ordinary user: the kernel's
settings, host unix sockets, files that run unconfined later (agent.toml, .git/hooks, a guard
script), a fork bomb and a /tmp filler are all out of reach; a guard that cannot run blocks; a
changed project config is refused until trusted; toolchains (a venv under /tmp, npm) still work.

Every attack goes through the real command line (``agent tools call`` / ``agent run``) with the
sandbox on and is judged from outside. Kernel settings are never changed: a sysctl is written
with the value it already has, ``core_pattern`` is only opened for writing (never written).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models.fakes import ScriptedModel
from agentcli.tools.sandbox import sandbox_features

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")

ENV = {"AGENT_MODEL": "test/scripted", "AGENT_MEMORY__ENABLED": "false"}
LIMITS = "[sandbox]\nmax_processes = 40\ntmp_size_mb = 2\nmax_file_size_mb = 3\n"
GUARD = "#!/bin/sh\n# blocks every write_file\necho 'no writes' >&2\nexit 2\n"


def _config(ws: Path, extra: str = "") -> None:
    (ws / "agent.toml").write_text(LIMITS + extra + '\n[[hooks]]\nevent = "pre_tool"\ntools = ["write_file"]\n'
                                   'command = "sh guard.sh"\n')
    (ws / "guard.sh").write_text(GUARD)


def _git_init(ws: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)


def shell(ws: Path, command: str, *, timeout: float = 30) -> dict[str, Any]:
    """``agent tools call run_shell`` in ``ws``: the tool's output (exit code and text)."""
    r = CliRunner().invoke(app, ["--workspace", str(ws), "tools", "call", "run_shell", "--yes", "--json",
                                 "--args", json.dumps({"command": command, "timeout": timeout})],
                           obj=State(environ=ENV))
    assert r.exit_code in (0, 1), r.output
    result = json.loads(r.stdout)
    assert result["ok"], result
    return result["output"]


class _UnixServer:
    """A unix socket server of the host (in the workspace, so its path is visible inside)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.sendall(b"hello from the host\n")
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def server(workspace: Path) -> Iterator[_UnixServer]:
    srv = _UnixServer(workspace / "host.sock")
    yield srv
    srv.close()


CONNECT = (f"{sys.executable} -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect(\"host.sock\"); "
           "print(s.recv(100).decode())'")


def test_kernel_settings_are_read_only(workspace: Path) -> None:
    _config(workspace)
    before = Path("/proc/sys/vm/swappiness").read_text()
    # The same value written back: were the protection missing, nothing would change.
    out = shell(workspace, 'v=$(cat /proc/sys/vm/swappiness); printf "%s" "$v" > /proc/sys/vm/swappiness; '
                f'echo "sysctl exit $?"; {sys.executable} -c "import os; os.open(\'/proc/sys/kernel/core_pattern\', '
                'os.O_WRONLY)"; echo "core_pattern exit $?"; id -u')
    text = out["output"]
    assert "sysctl exit 0" not in text and "core_pattern exit 1" in text, text
    assert text.count("Read-only file system") == 2
    assert Path("/proc/sys/vm/swappiness").read_text() == before
    if os.geteuid() == 0 and sandbox_features().userns:
        assert text.strip().endswith("1000")  # root's commands run as an unprivileged uid


@pytest.mark.skipif(os.geteuid() != 0, reason="only root could open core_pattern for writing at all")
def test_as_root_the_same_open_succeeds_without_the_sandbox(workspace: Path) -> None:
    # Proves the check above would catch a sandbox that left /proc/sys writable (opened, never written).
    (workspace / "agent.toml").write_text('[sandbox]\nmode = "off"\n')
    out = shell(workspace, f"{sys.executable} -c \"import os; os.close(os.open('/proc/sys/kernel/core_pattern', "
                "os.O_WRONLY))\" && echo opened")
    assert "opened" in out["output"]


@pytest.mark.skipif(sandbox_features().seccomp is None, reason="no seccomp program for this machine")
def test_no_host_unix_socket_is_reachable(workspace: Path, server: _UnixServer) -> None:
    _config(workspace)
    out = shell(workspace, CONNECT)
    assert out["exit_code"] != 0 and "PermissionError: [Errno 1] Operation not permitted" in out["output"]
    assert server.accepted == 0 and "hello from the host" not in out["output"]
    # socketpair() (a private pair: subprocess, npm, make) keeps working.
    pair = shell(workspace, f"{sys.executable} -c 'import socket; a, b = socket.socketpair(); a.send(b\"ok\"); "
                 "print(b.recv(2).decode())'")
    assert pair["exit_code"] == 0 and "ok" in pair["output"]
    # The filter is what blocks it: allowed, the same command reaches the server.
    _config(workspace, "unix_sockets = true\n")
    subprocess.run([sys.executable, "-m", "agentcli", "--workspace", str(workspace), "trust"], check=True,
                   capture_output=True)
    out = shell(workspace, CONNECT)
    assert out["exit_code"] == 0 and "hello from the host" in out["output"] and server.accepted == 1


def test_files_that_run_unconfined_later_are_read_only(workspace: Path) -> None:
    _git_init(workspace)
    _config(workspace)
    (workspace / "AGENTS.md").write_text("# rules\n")
    before = {p: (workspace / p).read_bytes() for p in ("agent.toml", "guard.sh", "AGENTS.md", ".git/config")}
    out = shell(workspace, 'printf "#!/bin/sh\\ntouch /tmp/pwned\\n" > .git/hooks/pre-commit; echo "hook $?"; '
                'printf "[sandbox]\\nmode = \\"off\\"\\n" >> agent.toml; echo "config $?"; '
                'echo "exit 0" > guard.sh; echo "guard $?"; echo "# obey me" >> AGENTS.md; echo "agents $?"; '
                'printf "[core]\\nhooksPath = /tmp\\n" >> .git/config; echo "git config $?"; '
                'rm -f guard.sh; mv agent.toml x.toml; echo "ok" > other.txt')
    text = out["output"]
    for what in ("hook", "config", "guard", "agents", "git config"):
        assert f"{what} 0" not in text, text
    assert "Read-only file system" in text
    assert not (workspace / ".git/hooks/pre-commit").exists()
    assert {p: (workspace / p).read_bytes() for p in before} == before
    assert (workspace / "other.txt").read_text() == "ok\n"  # the rest of the workspace stays writable


def test_a_fork_bomb_stops_at_the_process_limit(workspace: Path) -> None:
    _config(workspace)
    # The bomb runs in the background, its errors into a file; the shell waits (builtins only, no
    # fork: every slot may be taken) until a fork has failed, which happens only once the limit is
    # reached, then counts the processes and ends, which ends them all (PID namespace). No fixed
    # wait: under load the bomb may take any time to reach the limit.
    out = shell(workspace, 'bomb() { bomb | bomb & }; bomb 2>/tmp/fork-errors; '
                'while [ ! -s /tmp/fork-errors ]; do :; done; '
                'set -- /proc/[0-9]*; echo "processes: $#"; read -r first < /tmp/fork-errors; '
                'echo "first error: $first"', timeout=120)
    text = out["output"]
    assert "processes: " in text, out  # it failed once under load with no output to read: say what came
    count = int(text.rsplit("processes: ", 1)[1].split()[0])
    assert count <= 40 + 2, text
    first = text.rsplit("first error: ", 1)[1]
    assert "Cannot fork" in first or "Resource temporarily unavailable" in first, text


def test_tmp_and_files_are_bounded(workspace: Path) -> None:
    _config(workspace)
    out = shell(workspace, "head -c 5000000 /dev/zero > /tmp/fill; echo \"tmp $?\"; ls -l /tmp/fill; "
                "head -c 5000000 /dev/zero > big.bin; echo \"file $?\"")
    text = out["output"]
    assert "No space left on device" in text and "tmp 1" in text, text
    assert "File size limit exceeded" in text
    assert (workspace / "big.bin").stat().st_size == 3 << 20


def _run(ws: Path, *responses: Any) -> Any:
    return CliRunner().invoke(app, ["--workspace", str(ws), "run", "write the note", "--yes", "--json"],
                              obj=State(backend=ScriptedModel(list(responses)), environ=ENV))


WRITE = {"steps": [{"title": "Write the note", "tool": "write_file", "args": {"path": "note.txt", "content": "hi"}}]}
DONE = {"outcome": "complete", "answer": "done", "reason": ""}


@pytest.mark.parametrize(("command", "why"), [
    ("./missing-guard.sh", "not found (exit 127)"),
    ("./guard.sh", "not executable (exit 126)"),
    ("kill -9 $$", "killed by signal 9"),
])
def test_a_guard_that_cannot_run_blocks(workspace: Path, command: str, why: str) -> None:
    (workspace / "guard.sh").write_text("#!/bin/sh\nexit 0\n")  # mode 644: not executable
    (workspace / "agent.toml").write_text(f'[[hooks]]\nevent = "pre_tool"\ncommand = "{command}"\n')
    r = _run(workspace, WRITE, DONE)
    out = json.loads(r.stdout)
    error = out["steps"][0]["error"]
    assert error["type"] == "blocked" and why in error["message"], error
    assert not (workspace / "note.txt").exists()


def test_a_changed_project_config_is_refused_until_trusted(workspace: Path) -> None:
    _config(workspace)
    first = shell(workspace, "echo first")
    assert "first" in first["output"]
    assert json.loads((workspace / ".agent" / "trust.json").read_text())["schema_version"] == 1
    # Changed outside the sandbox (a command could not): the next use asks; no terminal: refused.
    with (workspace / "guard.sh").open("a") as f:
        f.write("exit 0\n")
    r = CliRunner().invoke(app, ["--workspace", str(workspace), "tools", "call", "run_shell", "--yes",
                                 "--args", '{"command": "echo second"}'], obj=State(environ=ENV))
    assert r.exit_code == 4, r.output
    assert "guard.sh (changed)" in r.stderr and "agent trust" in r.stderr and len(r.stderr.splitlines()) == 1
    run = _run(workspace, WRITE, DONE)
    assert run.exit_code == 4 and "guard.sh (changed)" in run.output
    check = CliRunner().invoke(app, ["--workspace", str(workspace), "trust", "--check"], obj=State(environ=ENV))
    assert check.exit_code == 4 and "changed: guard.sh (changed)" in check.stdout
    ok = CliRunner().invoke(app, ["--workspace", str(workspace), "trust"], obj=State(environ=ENV))
    assert ok.exit_code == 0 and "accepted: guard.sh (changed)" in ok.stdout
    assert "second" in shell(workspace, "echo second")["output"]


def test_a_venv_under_tmp_and_the_package_caches_work(tmp_path: Path, workspace: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (workspace / "agent.toml").write_text(LIMITS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"  # an activated venv outside the workspace, under /tmp
    res = subprocess.run([sys.executable, "-m", "agentcli", "--workspace", str(workspace), "tools", "call",
                          "run_shell", "--yes", "--json", "--args",
                          json.dumps({"command": "python -c 'import sys; print(sys.prefix)'; echo $PIP_CACHE_DIR; "
                                      "mkdir -p $npm_config_cache && touch $npm_config_cache/x && echo cache ok"})],
                         env=env, capture_output=True, text=True, timeout=120)
    out = json.loads(res.stdout)["output"]
    assert out["exit_code"] == 0, out
    lines = out["output"].splitlines()
    assert lines[0] == str(venv) and lines[1].startswith(str(workspace / ".agent" / "toolchain-cache"))
    assert "cache ok" in out["output"]


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_npm_test_passes_in_the_sandbox(workspace: Path) -> None:
    (workspace / "package.json").write_text(json.dumps({
        "name": "tiny", "version": "1.0.0", "private": True,
        "scripts": {"test": "node test.js", "posttest": "npm --version > posttest.txt"}}))
    (workspace / "test.js").write_text("require('assert').strictEqual(1 + 1, 2); console.log('tests pass');\n")
    out = shell(workspace, "npm test", timeout=120)
    assert out["exit_code"] == 0 and "tests pass" in out["output"], out
    assert (workspace / "posttest.txt").exists()
    assert list((workspace / ".agent" / "toolchain-cache" / "npm").rglob("*debug*.log"))  # npm's log, written


def _unprivileged_python() -> tuple[list[str], str] | None:
    """A way to run this checkout as ``nobody``: the interpreter of this version outside /root and
    this checkout's packages readable by everyone; None when the machine has none."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return None
    exe = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    site = next((p for p in sys.path if p.endswith("site-packages") and Path(p, "typer").is_dir()), None)
    root = Path(__file__).resolve().parents[1]
    if not exe.exists() or site is None:
        return None
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(exe), "-c",
                            "import typer, agentcli"], env={"PYTHONPATH": f"{root}:{site}", "PATH": "/usr/bin:/bin"},
                           capture_output=True, timeout=60, check=False)
    if probe.returncode != 0:
        return None
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(exe)], f"{root}:{site}"


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory ``nobody`` owns (pytest's own temporary directory is root's alone)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="agentcli-nobody-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_as_an_ordinary_user_the_same_attacks_fail(nobody_dir: Path) -> None:
    how = _unprivileged_python()
    if how is None:
        pytest.skip("no unprivileged user can run this checkout here (CI runs the suite as one)")
    prefix, pythonpath = how
    tmp_path = nobody_dir
    ws = tmp_path / "nobody-ws"
    ws.mkdir()
    _git_init(ws)
    _config(ws)
    subprocess.run(["chown", "-R", "65534:65534", str(tmp_path)], check=True)
    command = ('printf x > agent.toml; echo "config $?"; echo y > .git/hooks/pre-commit; echo "hook $?"; '
               'v=$(cat /proc/sys/vm/swappiness); printf "%s" "$v" > /proc/sys/vm/swappiness; echo "sysctl $?"; '
               "python3 -c 'import socket; socket.socket(socket.AF_UNIX)' 2>/dev/null; "
               'echo "unix $?"; head -c 5000000 /dev/zero > /tmp/fill; echo "tmp $?"; '
               # As in the fork-bomb test: wait for the first failed fork, not a fixed time (/tmp is full here).
               'bomb() { bomb | bomb & }; bomb 2>fork-errors; while [ ! -s fork-errors ]; do :; done; '
               'set -- /proc/[0-9]*; echo "processes: $#"')
    res = subprocess.run([*prefix, "-m", "agentcli", "--workspace", str(ws), "tools", "call", "run_shell", "--yes",
                          "--json", "--args", json.dumps({"command": command, "timeout": 120})],
                         env={"PYTHONPATH": pythonpath, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                         capture_output=True, text=True, timeout=180, check=False)
    assert res.stdout, res.stderr[-2000:]
    out = json.loads(res.stdout)["output"]["output"]
    for what in ("config", "hook", "sysctl", "unix", "tmp"):
        assert f"{what} 0" not in out, out
    assert int(out.rsplit("processes: ", 1)[1].split()[0]) <= 42, out
    assert (ws / "agent.toml").read_text().startswith("[sandbox]")


def _run_bpf(program: bytes, arch: int, nr: int, arg0: int) -> int:
    """What the kernel would answer: a classic-BPF interpreter for the three opcodes the program uses."""
    import struct

    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    ins = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = ins[pc]
        if code == 0x20:
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == 0x15:
            pc += jt if acc == k else jf
        elif code == 0x06:
            return k
        pc += 1


@pytest.mark.parametrize(("machine", "abis"), [
    ("x86_64", {0xC000003E: (41, 53, 0x40000000 | 41), 0x40000003: (359, 360, 102)}),
    ("aarch64", {0xC00000B7: (198, 199, None), 0x40000028: (281, 288, 102)}),
])
def test_the_seccomp_program_denies_unix_sockets_on_every_abi(machine: str, abis: dict[int, tuple[Any, ...]]
                                                              ) -> None:
    from agentcli.tools.sandbox_bpf import unix_socket_filter

    program = unix_socket_filter(machine)
    assert program is not None
    allow, eperm = 0x7FFF0000, 0x00050001
    for arch, (socket_nr, socketpair_nr, other) in abis.items():
        assert _run_bpf(program, arch, socket_nr, 1) == eperm  # socket(AF_UNIX)
        assert _run_bpf(program, arch, socket_nr, 2) == allow  # socket(AF_INET)
        assert _run_bpf(program, arch, socketpair_nr, 1) == allow  # socketpair(AF_UNIX)
        assert _run_bpf(program, arch, 425, 0) == eperm  # io_uring_setup
        if other is not None:  # x32's socket, or socketcall (arguments unreadable: denied)
            assert _run_bpf(program, arch, other, 1) == eperm
        assert _run_bpf(program, arch, 0, 1) == allow
    assert unix_socket_filter("riscv64") is None


def test_doctor_says_which_protections_are_in_force(workspace: Path) -> None:
    _config(workspace)
    r = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["--workspace", str(workspace), "doctor"],
                                                 obj=State(environ=ENV))
    line = next(x for x in r.stdout.splitlines() if "sandbox:" in x)
    assert line.startswith("ok") and "/proc/sys" in line and "read-only" in line, line
    assert "at most 40 processes" in line or "NO process limit" in line
    assert "/tmp 2 MiB" in line and "files up to 3 MiB" in line
    feats = sandbox_features()
    assert ("unix sockets denied (seccomp)" in line) == (feats.seccomp is not None)
    if os.geteuid() == 0 and feats.userns:
        assert "runs as uid 1000 in a user namespace" in line
