"""The OS sandbox, for real: escape attempts from run_shell with the sandbox on (0 escapes) and
off (the same commands succeed, so it is the sandbox that blocks them), refusal where no sandbox
works, and no child outliving the agent under kill -9."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from toolkit import call, make_registry

from agentcli.tools import ToolRegistry
from agentcli.tools.sandbox import sandbox_status

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")


class _Listener:
    """A loopback TCP server that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
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
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    srv = _Listener()
    yield srv
    srv.close()


@pytest.fixture
def targets(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Places outside the sandbox's writable set, each with a unique name; removed afterwards."""
    ws = tmp_path / "ws"
    (ws / ".agent").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws / "link").symlink_to(outside)
    tag = uuid.uuid4().hex[:10]
    paths = {
        "ws": ws,
        "home": Path.home() / f".agentcli-escape-{tag}",
        "tmp": Path("/tmp") / f"agentcli-escape-{tag}",
        "symlink": outside / "x",
        "data_dir": ws / ".agent" / f"escape-{tag}",
    }
    yield paths
    for key in ("home", "tmp"):
        paths[key].unlink(missing_ok=True)


def _sh(reg: ToolRegistry, command: str, **extra: object) -> dict[str, object]:
    res = call(reg, "run_shell", {"command": command, "timeout": 20, **extra})
    assert res.ok, res.error
    return res.output  # type: ignore[no-any-return]


def _escapes(reg: ToolRegistry, targets: dict[str, Path], listener: _Listener) -> dict[str, bool]:
    """Try every escape; True for each that got through (judged outside the sandbox)."""
    got: dict[str, bool] = {}
    for name, cmd in {"home": f"echo x > {targets['home']}", "tmp": f"echo x > {targets['tmp']}",
                      "symlink": "echo x > link/x", "data_dir": f"echo x > {targets['data_dir']}"}.items():
        _sh(reg, cmd)
        got[name] = targets[name].exists()
    before = listener.accepted
    connect = (f"{shlex.quote(sys.executable)} -c 'import socket; "
               f"socket.create_connection((\"127.0.0.1\", {listener.port}), timeout=3)'")
    got["tcp_connect"] = _sh(reg, connect)["exit_code"] == 0
    deadline = time.monotonic() + 2
    while listener.accepted == before and time.monotonic() < deadline and got["tcp_connect"]:
        time.sleep(0.02)
    got["tcp_accepted"] = listener.accepted > before
    resolve = f"{shlex.quote(sys.executable)} -c 'import socket; socket.getaddrinfo(\"pypi.org\", 443)'"
    got["dns"] = _sh(reg, resolve)["exit_code"] == 0
    return got


def _host_resolves() -> bool:
    try:
        socket.getaddrinfo("pypi.org", 443)
    except OSError:
        return False
    return True


def test_sandbox_is_available_here() -> None:
    # CI installs bubblewrap (make setup); the suite must exercise the real sandbox, not skip it.
    status = sandbox_status()
    assert status.available, status.reason
    assert status.backend.startswith("bubblewrap")


def test_escape_suite_zero_escapes_with_the_sandbox(targets: dict[str, Path], listener: _Listener) -> None:
    reg = make_registry(targets["ws"])
    got = _escapes(reg, targets, listener)
    assert not any(got.values()), got
    assert listener.accepted == 0


def test_same_commands_succeed_with_mode_off(targets: dict[str, Path], listener: _Listener) -> None:
    reg = make_registry(targets["ws"], sandbox="off")
    got = _escapes(reg, targets, listener)
    expected = {"home", "tmp", "symlink", "data_dir", "tcp_connect", "tcp_accepted"}
    assert {k for k, v in got.items() if v} >= expected, got
    if _host_resolves():
        assert got["dns"]


def test_inside_the_sandbox_work_still_works(targets: dict[str, Path]) -> None:
    ws = targets["ws"]
    out = _sh(make_registry(ws), 'echo a > made.txt && mkdir -p d && echo b > d/f && t=$(mktemp) && '
              'echo c > "$t" && cat "$t" && echo "TMPDIR=$TMPDIR" && grep -E "NoNewPrivs|CapEff" /proc/self/status')
    text = str(out["output"])
    assert out["exit_code"] == 0 and (ws / "made.txt").read_text() == "a\n" and (ws / "d/f").exists()
    assert "TMPDIR=/tmp" in text and "c\n" in text
    assert "NoNewPrivs:\t1" in text and "CapEff:\t0000000000000000" in text
    assert out["sandbox"] == "bubblewrap workspace-write, network off"


def test_read_only_mode_blocks_the_workspace(targets: dict[str, Path]) -> None:
    ws = targets["ws"]
    out = _sh(make_registry(ws, sandbox="read-only"), "echo x > nope.txt; echo x > /tmp/ok && cat /tmp/ok")
    assert not (ws / "nope.txt").exists()
    assert "x" in str(out["output"]) and "read-only" in str(out["sandbox"])


def test_approved_network_opens_the_network(targets: dict[str, Path], listener: _Listener) -> None:
    reg = make_registry(targets["ws"])
    connect = (f"{shlex.quote(sys.executable)} -c 'import socket; "
               f"socket.create_connection((\"127.0.0.1\", {listener.port}), timeout=3)'")
    out = _sh(reg, connect, network=True)
    assert out["exit_code"] == 0 and out["sandbox"] == "bubblewrap workspace-write, network on"
    # ... and asking for it raises the approval: exec and network policies both apply.
    tool = reg.get("run_shell")
    assert tool is not None
    checked = reg.validate("run_shell", {"command": "true", "network": True})
    assert tool.risks_for(checked) == ("exec", "network")  # type: ignore[arg-type]


def test_network_call_needs_the_network_approval(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agentcli.cli.app import app

    (tmp_path / "agent.toml").write_text('[approval]\nexec = "auto"\nnetwork = "deny"\n')
    args = ["--workspace", str(tmp_path), "tools", "call", "run_shell", "--json", "--yes"]
    ok = CliRunner().invoke(app, [*args, "--args", json.dumps({"command": "echo hi"})])
    assert ok.exit_code == 0, ok.output
    denied = CliRunner().invoke(app, [*args, "--args", json.dumps({"command": "echo hi", "network": True})])
    assert denied.exit_code == 4 and "approval.network is 'deny'" in denied.output


def test_no_sandbox_means_refusal_not_downgrade(targets: dict[str, Path], monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    # A machine without bubblewrap: PATH without it (a real lookup, nothing patched inside agentcli).
    bare = targets["ws"].parent / "bin"
    bare.mkdir()
    for tool in ("sh", "echo"):
        (bare / tool).symlink_to(f"/bin/{tool}")
    monkeypatch.setenv("PATH", str(bare))
    sandbox_status.cache_clear()
    try:
        reg = make_registry(targets["ws"])
        res = call(reg, "run_shell", {"command": "echo ran > ran.txt"})
        assert res.error is not None and "refused: no OS sandbox" in res.error.message
        assert "bubblewrap" in res.error.message and "\n" not in res.error.message
        assert not (targets["ws"] / "ran.txt").exists()
        assert "refused" in (reg.preview("run_shell", {"command": "true"}) or "")
        off = call(make_registry(targets["ws"], sandbox="off"), "run_shell", {"command": "echo ran > ran.txt"})
        assert off.ok and (targets["ws"] / "ran.txt").exists()
    finally:
        monkeypatch.undo()
        sandbox_status.cache_clear()


def _pids_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Any process on the machine: its arguments need not be UTF-8 (a fuzzed argv).
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "status").read_text()
        except OSError:
            continue
        if marker in cmdline and "\nState:\tZ" not in state:
            pids.append(int(entry.name))
    return pids


@pytest.mark.parametrize("mode", ["workspace-write", "off"])
def test_no_child_outlives_the_agent_under_kill_9(tmp_path: Path, mode: str) -> None:
    marker = f"{40 + len(mode)}.{os.getpid() % 1000}1"
    if mode == "off":
        # Unconfined, only the direct child is guaranteed (parent-death signal): a shell that
        # would write later.
        command = f"echo started > started.txt; sleep {marker}; echo late > late.txt"
        marker = f"sleep {marker}"
    else:
        # In the sandbox even a double-forked background job dies with the agent (PID namespace).
        command = (f"(sleep 1.5; echo late > late.txt) & (sleep {marker}) & "
                   f"echo started > started.txt; wait")
    (tmp_path / "agent.toml").write_text(f'[sandbox]\nmode = "{mode}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    agent = subprocess.Popen(
        [sys.executable, "-m", "agentcli", "--workspace", str(tmp_path), "tools", "call", "run_shell", "--yes",
         "--args", json.dumps({"command": command, "timeout": 60})],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "started.txt").exists():
            assert agent.poll() is None and time.monotonic() < deadline, "the command never started"
            time.sleep(0.02)
        assert _pids_with(marker)
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(10)
        if mode != "off":  # unconfined, the shell's own child (the sleep) is not reaped
            deadline = time.monotonic() + 5
            while _pids_with(marker) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not _pids_with(marker)
        time.sleep(2)  # past the moment the background job would have written
        assert not (tmp_path / "late.txt").exists()
    finally:
        if agent.poll() is None:
            agent.kill()
        for pid in _pids_with(marker):
            os.kill(pid, signal.SIGKILL)


def _hostile_repo(ws: Path, marker: Path) -> None:
    """A repository whose own config runs commands on `git status`: fsmonitor and a clean filter."""
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=ws, check=True,
                       capture_output=True)

    git("init", "-q")
    (ws / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("commit", "-qm", "base")
    git("config", "core.fsmonitor", f"echo fsmonitor >> {marker}; false")
    git("config", "filter.evil.clean", f"sh -c 'echo filter >> {marker}'; cat")
    (ws / ".gitattributes").write_text("* filter=evil\n")
    (ws / "a.txt").write_text("two\n")  # modified: status runs the clean filter on it


@pytest.mark.parametrize("mode", ["workspace-write", "off"])
def test_git_tools_do_not_run_a_repositorys_commands(tmp_path: Path, mode: str) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    marker = Path.home() / f".agentcli-git-escape-{uuid.uuid4().hex[:8]}"
    try:
        _hostile_repo(ws, marker)
        res = call(make_registry(ws, sandbox=mode), "git_status", {})
        assert res.ok, res.error
        ran = marker.read_text() if marker.exists() else ""
        assert "fsmonitor" not in ran  # switched off by a flag, sandbox or not
        # A clean filter has no flag: the read-only sandbox is what stops it writing anywhere.
        assert ("filter" in ran) == (mode == "off")
    finally:
        marker.unlink(missing_ok=True)


def test_runs_show_names_the_sandbox(workspace: Path) -> None:
    from typer.testing import CliRunner

    from agentcli.cli.app import app
    from agentcli.cli.commands.common import State
    from agentcli.models.fakes import ScriptedModel

    plan = {"steps": [{"title": "shell", "tool": "run_shell", "args": {"command": "echo hi"}}]}
    done = {"outcome": "complete", "answer": "ok", "reason": ""}
    env = {"AGENT_MODEL": "test/scripted", "COLUMNS": "250"}
    r = CliRunner().invoke(app, ["run", "say hi", "--yes", "--json"],
                           obj=State(backend=ScriptedModel([plan, done]), environ=env))
    assert r.exit_code == 0, r.output
    run_id = json.loads(r.stdout)["run_id"]
    shown = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["runs", "show", run_id],
                                                     obj=State(environ=env))
    assert shown.exit_code == 0 and "sandbox: bubblewrap workspace-write, network off" in shown.stdout
