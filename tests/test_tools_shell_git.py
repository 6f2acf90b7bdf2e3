"""run_shell (confinement, scrubbed env, capped output, process-group kill) and the git tools."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from toolkit import call, make_registry

from agentcli.tools import ToolRegistry
from agentcli.tools.shell import child_env, is_passed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie nobody reaped yet is dead for our purposes
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


@pytest.fixture
def reg(tmp_path: Path) -> ToolRegistry:
    (tmp_path / "sub").mkdir()
    return make_registry(tmp_path)


def test_run_shell_output_and_exit_code(reg: ToolRegistry) -> None:
    res = call(reg, "run_shell", {"command": "echo out; echo err >&2; exit 3"})
    assert res.ok and res.output["exit_code"] == 3
    assert "out" in res.output["output"] and "err" in res.output["output"]


def test_run_shell_output_has_no_colour_codes(reg: ToolRegistry) -> None:
    res = call(reg, "run_shell", {"command": "printf '\\033[32mPASSED\\033[0m 3 tests\\n'"})
    assert res.ok and res.output["output"] == "PASSED 3 tests\n"


def test_run_shell_cwd_is_confined_and_relative(reg: ToolRegistry, tmp_path: Path) -> None:
    assert call(reg, "run_shell", {"command": "pwd"}).output["output"].strip() == str(tmp_path)
    assert call(reg, "run_shell", {"command": "pwd", "cwd": "sub"}).output["output"].strip() == str(
        tmp_path / "sub"
    )
    res = call(reg, "run_shell", {"command": "pwd", "cwd": "missing"})
    assert res.error is not None and res.error.type == "tool_error" and "not a directory" in res.error.message
    res = call(reg, "run_shell", {"command": "pwd", "cwd": "../.."})
    assert res.error is not None and res.error.type == "path_outside_workspace"


def test_run_shell_scrubs_secrets(reg: ToolRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OPENAI_API_KEY",
        "GITHUB_TOKEN",
        "db_password",
        "MY_SECRET",
        "AWS_REGION",
        "ANTHROPIC_BASE_URL",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "HTTP_AUTH",
    ):
        monkeypatch.setenv(name, "hunter2-value")
    monkeypatch.setenv("HARMLESS_SETTING", "visible")
    out = call(reg, "run_shell", {"command": "env"}).output["output"]
    assert "hunter2-value" not in out
    # Built from an allow-list: a variable nobody listed is withheld too, whatever its name.
    assert "HARMLESS_SETTING" not in out and "PATH=" in out


def test_child_env_is_an_allow_list() -> None:
    env = child_env({"PATH": "/bin", "Api_Key": "x", "XAI_ORG": "y", "HOME": "/h", "SESSION_TOKEN": "z",
                     "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer abc", "LC_CTYPE": "C.UTF-8",
                     "WHATEVER_NOBODY_LISTED": "w", "PYTHONPATH": "/p"})
    assert env["PATH"] == "/bin" and env["HOME"] == "/h" and env["PAGER"] == "cat" and env["LC_CTYPE"] == "C.UTF-8"
    assert not {"Api_Key", "XAI_ORG", "SESSION_TOKEN", "OTEL_EXPORTER_OTLP_HEADERS", "WHATEVER_NOBODY_LISTED",
                "PYTHONPATH"} & env.keys()
    allowed = child_env({"PYTHONPATH": "/p", "PYTHONHASHSEED": "0", "EDITOR": "vi"}, allow=["PYTHON*"])
    assert allowed.keys() >= {"PYTHONPATH", "PYTHONHASHSEED"} and "EDITOR" not in allowed
    assert is_passed("LC_ALL") and not is_passed("EDITOR") and is_passed("EDITOR", ["EDITOR"])


def _pids_running(marker: str) -> list[int]:
    """Host pids whose command line holds ``marker`` (a sandboxed child's own pid is namespaced)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline and "/bin/sh" not in cmdline and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("mode", ["workspace-write", "off"])
def test_run_shell_timeout_kills_the_process_group(tmp_path: Path, mode: str) -> None:
    reg = make_registry(tmp_path, sandbox=mode)
    marker = f"300.{os.getpid()}{len(mode)}"
    cmd = f"sleep {marker} & echo started; wait"
    # Long enough for the sandbox to start the command under load ("started" must be seen).
    res = call(reg, "run_shell", {"command": cmd, "timeout": 2.0})
    assert res.error is not None and res.error.type == "timeout"
    assert "killed" in res.error.message and "started" in res.error.message
    for _ in range(50):
        if not _pids_running(marker):
            break
        time.sleep(0.05)
    assert not _pids_running(marker)


def test_run_shell_default_timeout(tmp_path: Path) -> None:
    res = call(make_registry(tmp_path, default_timeout_seconds=0.3), "run_shell", {"command": "sleep 30"})
    assert res.error is not None and res.error.type == "timeout"


def test_run_shell_huge_output_keeps_head_and_tail(tmp_path: Path) -> None:
    reg = make_registry(tmp_path, output_limit_chars=1000)
    res = call(reg, "run_shell", {"command": "seq 1 100000"})
    assert res.ok and res.truncated
    out = res.output["output"]
    assert out.startswith("1\n2\n3\n") and out.rstrip().endswith("100000")
    assert "output truncated" in out and len(out) < 1200


@pytest.mark.parametrize(
    ("args", "err_type"),
    [
        ({}, "missing"),
        ({"command": ""}, "string_too_short"),
        ({"command": "ls", "timeout": 0}, "greater_than"),
        ({"command": "ls", "timeout": 99999}, "less_than_equal"),
        ({"command": "ls", "timeout": "soon"}, "float_parsing"),
        ({"command": "ls", "env": {"A": "1"}}, "extra_forbidden"),
        ({"command": ["ls"]}, "string_type"),
    ],
)
def test_run_shell_invalid_args(reg: ToolRegistry, args: dict[str, Any], err_type: str) -> None:
    res = call(reg, "run_shell", args)
    assert res.error is not None and res.error.type == "invalid_args"
    assert res.error.details[0]["type"] == err_type


def test_run_shell_preview(reg: ToolRegistry) -> None:
    preview = reg.preview("run_shell", {"command": "make test", "cwd": "sub", "timeout": 12})
    assert preview == "$ make test\n(cwd: sub, timeout: 12 s, sandbox: bubblewrap workspace-write, network off)"
    assert reg.preview("run_shell", {"command": "ls", "cwd": "../.."}) is None


# -- git -----------------------------------------------------------------------------------------

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    (root / "a.py").write_text("x = 1\n")
    (root / "b.py").write_text("y = 1\n")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "init")
    return root


@needs_git
def test_git_status_and_diff(repo: Path) -> None:
    reg = make_registry(repo)
    assert call(reg, "git_status", {}).output.startswith("## ")
    assert call(reg, "git_diff", {}).output == "(no unstaged changes)"
    (repo / "a.py").write_text("x = 2\n")
    (repo / "b.py").write_text("y = 2\n")
    (repo / "new.txt").write_text("n\n")
    status = call(reg, "git_status", {}).output
    assert " M a.py" in status and "?? new.txt" in status
    diff = call(reg, "git_diff", {}).output
    assert "-x = 1" in diff and "+y = 2" in diff
    only_a = call(reg, "git_diff", {"path": "a.py"}).output
    assert "+x = 2" in only_a and "b.py" not in only_a
    _git(repo, "add", "b.py")
    staged = call(reg, "git_diff", {"staged": True}).output
    assert "+y = 2" in staged and "a.py" not in staged


@needs_git
def test_git_tools_bad_input(repo: Path) -> None:
    reg = make_registry(repo)
    for args in ({"staged": "perhaps"}, {"path": ""}, {"color": True}):
        res = call(reg, "git_diff", args)
        assert res.error is not None and res.error.type == "invalid_args"
    res = call(reg, "git_status", {"verbose": True})
    assert res.error is not None and res.error.details[0]["type"] == "extra_forbidden"


@needs_git
def test_git_outside_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    res = call(make_registry(tmp_path), "git_status", {})
    assert res.error is not None and res.error.type == "tool_error"
    assert "not inside a git repository" in res.error.message


TAPE_LIKE = (
    "for i in $(seq 1 3000); do echo \"ok $i should be equal\"; "
    "if [ $i = 1500 ]; then printf 'not ok 1500 parses a[b]=c\\n  ---\\n    expected: 1\\n    actual:   2\\n"
    "    at: Test.<anonymous> (test/parse.js:42:7)\\n  ...\\n'; fi; done; echo '# fail  1'; exit 1"
)


def test_a_failure_reported_in_the_middle_of_a_long_output_is_kept(tmp_path: Path) -> None:
    # tape (TAP) names a failing assertion where it happens and only counts failures at the end: the
    # part of the output cut from the middle keeps the lines that report one, with what follows them.
    from agentcli.engine.executor import EXIT_TAIL_CHARS, exit_code_failure

    res = call(make_registry(tmp_path, output_limit_chars=4000), "run_shell", {"command": TAPE_LIKE})
    assert res.ok and res.truncated
    out = res.output["output"]
    assert out.startswith("ok 1 should") and out.rstrip().endswith("# fail  1")
    assert "not ok 1500 parses a[b]=c" in out and "actual:   2" in out and "test/parse.js:42:7" in out
    assert "ok 2000 should" not in out  # the passing lines of the middle are still cut
    # And the step error of the failed command (what a review or a re-plan reads) keeps it too,
    # from an output longer than its own limit.
    full = "\n".join(f"ok {i} should be equal" for i in range(1, 3000))
    full = full.replace("ok 1500 should be equal", "not ok 1500 parses a[b]=c\n  ---\n    expected: 1\n    actual:   2")
    err = exit_code_failure({"exit_code": 1, "output": full + "\n# fail  1\n"}, None)
    assert err is not None and len(err["message"]) < EXIT_TAIL_CHARS + 200
    assert "not ok 1500 parses a[b]=c" in err["message"] and "actual:   2" in err["message"]
    assert err["message"].rstrip().endswith("# fail  1")


def test_an_investigation_sees_the_head_the_failures_and_the_end_of_a_long_output() -> None:
    from agentcli.tools.text import tail_with_failures

    lines = ["TAP version 13"] + [f"ok {i} fine" for i in range(1, 2000)] + ["# fail  1"]
    lines[900] = "not ok 900 merges functions\n  ---\n    expected: [Function]\n    actual:   undefined"
    shown = tail_with_failures("\n".join(lines), 3000, head_share=0.3)
    assert shown.startswith("TAP version 13\nok 1 fine") and shown.endswith("# fail  1")
    assert "not ok 900 merges functions" in shown and "actual:   undefined" in shown and len(shown) < 3100
    # No failure line in the part cut out: plain head and tail.
    plain = tail_with_failures("\n".join(f"line {i}" for i in range(2000)), 1000, head_share=0.3)
    assert plain.startswith("line 0\n") and plain.endswith("line 1999") and "chars omitted" in plain
