"""read_file, list_files, write_file, edit_file: good input, bad input, confinement."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from toolkit import call, make_registry

from agentcli.tools import ToolRegistry, ToolResult


def error_type(res: ToolResult) -> str:
    assert not res.ok and res.error is not None, res
    return res.error.type


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.txt").write_text("one\ntwo\nthree\nfour\n")
    (root / "src").mkdir()
    (root / "src" / "main.py").write_text("print('hi')\n")
    (tmp_path / "outside.txt").write_text("secret\n")
    (root / "escape").symlink_to(tmp_path / "outside.txt")
    (root / "escape_dir").symlink_to(tmp_path)
    (root / "inner_link").symlink_to(root / "a.txt")
    return root


@pytest.fixture
def reg(ws: Path) -> ToolRegistry:
    return make_registry(ws)


# -- confinement: every tool that takes a path -------------------------------------------------

PATH_CALLS = [
    ("read_file", lambda p: {"path": p}),
    ("write_file", lambda p: {"path": p, "content": "x"}),
    ("edit_file", lambda p: {"path": p, "search": "secret", "replace": "x"}),
    ("run_shell", lambda p: {"command": "pwd", "cwd": p}),
    ("git_diff", lambda p: {"path": p}),
]


@pytest.mark.parametrize(("name", "make"), PATH_CALLS, ids=[c[0] for c in PATH_CALLS])
@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_paths_outside_the_workspace_are_refused(
    reg: ToolRegistry, ws: Path, name: str, make: Any, kind: str
) -> None:
    outside = ws.parent / "outside.txt"
    target = {
        "dotdot": "../outside.txt" if name != "run_shell" else "..",
        "absolute": str(outside) if name != "run_shell" else str(ws.parent),
        "symlink": "escape" if name != "run_shell" else "escape_dir",
    }[kind]
    res = call(reg, name, make(target))
    assert error_type(res) == "path_outside_workspace"
    assert res.error is not None and "refused" in res.error.message
    expected = {"dotdot": "'..'", "absolute": "absolute path", "symlink": "symlink"}[kind]
    assert expected in res.error.message
    assert outside.read_text() == "secret\n"


def test_symlink_directory_escape_for_writes(reg: ToolRegistry, ws: Path) -> None:
    res = call(reg, "write_file", {"path": "escape_dir/new.txt", "content": "x"})
    assert error_type(res) == "path_outside_workspace"
    assert not (ws.parent / "new.txt").exists()


def test_list_files_refuses_escaping_patterns(reg: ToolRegistry) -> None:
    assert error_type(call(reg, "list_files", {"pattern": "../*"})) == "path_outside_workspace"
    assert error_type(call(reg, "list_files", {"pattern": "/etc/*"})) == "path_outside_workspace"


def test_inner_symlink_and_dotdot_inside_are_fine(reg: ToolRegistry) -> None:
    assert call(reg, "read_file", {"path": "inner_link"}).output.startswith("one")
    assert call(reg, "read_file", {"path": "src/../a.txt"}).ok


# -- read_file ---------------------------------------------------------------------------------


def test_read_file_whole_and_ranges(reg: ToolRegistry) -> None:
    assert call(reg, "read_file", {"path": "a.txt"}).output == "one\ntwo\nthree\nfour\n"
    assert call(reg, "read_file", {"path": "a.txt", "start_line": 2, "end_line": 3}).output == "two\nthree\n"
    assert call(reg, "read_file", {"path": "a.txt", "start_line": 4}).output == "four\n"
    assert call(reg, "read_file", {"path": "a.txt", "end_line": 1}).output == "one\n"


@pytest.mark.parametrize(
    ("args", "err_type"),
    [
        ({}, "missing"),
        ({"path": "a.txt", "mode": "r"}, "extra_forbidden"),
        ({"path": 3}, "string_type"),
        ({"path": "a.txt", "start_line": 0}, "greater_than_equal"),
        ({"path": "a.txt", "start_line": "x"}, "int_parsing"),
        ({"path": "a.txt", "start_line": 3, "end_line": 1}, "value_error"),
    ],
)
def test_read_file_invalid_args(reg: ToolRegistry, args: dict[str, Any], err_type: str) -> None:
    res = call(reg, "read_file", args)
    assert error_type(res) == "invalid_args"
    assert res.error is not None and res.error.details[0]["type"] == err_type


def test_read_file_failures(reg: ToolRegistry, ws: Path) -> None:
    (ws / "blob.bin").write_bytes(b"\x89PNG\x00\x01\x02")
    res = call(reg, "read_file", {"path": "blob.bin"})
    assert error_type(res) == "tool_error" and "binary" in res.error.message  # type: ignore[union-attr]
    res = call(reg, "read_file", {"path": "missing.txt"})
    assert error_type(res) == "tool_error" and "does not exist" in res.error.message  # type: ignore[union-attr]
    res = call(reg, "read_file", {"path": "src"})
    assert error_type(res) == "tool_error" and "directory" in res.error.message  # type: ignore[union-attr]
    res = call(reg, "read_file", {"path": "a.txt", "start_line": 50})
    assert error_type(res) == "tool_error" and "past the end" in res.error.message  # type: ignore[union-attr]


def test_read_file_huge_file_streams_requested_lines(ws: Path) -> None:
    reg = make_registry(ws, max_file_bytes=1000, output_limit_chars=500)
    with (ws / "huge.log").open("w") as f:
        for i in range(1, 20001):
            f.write(f"line {i}\n")
    res = call(reg, "read_file", {"path": "huge.log", "start_line": 10000, "end_line": 10002})
    assert res.ok and res.output == "line 10000\nline 10001\nline 10002\n" and not res.truncated
    res = call(reg, "read_file", {"path": "huge.log"})
    assert res.ok and res.truncated
    assert res.output.startswith("line 1\n") and len(res.output) < 700
    assert "truncated after line" in res.output and "start_line=" in res.output and "bytes" in res.output


def test_read_file_one_giant_line_is_not_loaded_whole(ws: Path) -> None:
    reg = make_registry(ws, output_limit_chars=100)
    (ws / "min.js").write_text("x" * 100_000 + "\nsecond\n")
    res = call(reg, "read_file", {"path": "min.js"})
    assert res.truncated and len(res.output) < 300
    assert call(reg, "read_file", {"path": "min.js", "start_line": 2}).output == "second\n"


# -- list_files --------------------------------------------------------------------------------


def test_list_files_respects_gitignore_and_skips(ws: Path) -> None:
    (ws / ".gitignore").write_text("*.log\nbuild/\n!keep.log\n")
    (ws / "debug.log").write_text("x")
    (ws / "keep.log").write_text("x")
    (ws / "build").mkdir()
    (ws / "build" / "out.py").write_text("x")
    (ws / "src" / "nested").mkdir()
    (ws / "src" / "nested" / ".gitignore").write_text("gen_*.py\n")
    (ws / "src" / "nested" / "gen_a.py").write_text("x")
    (ws / "src" / "nested" / "real.py").write_text("x")
    for skipped in (".git", ".venv", ".agent"):
        (ws / skipped).mkdir()
        (ws / skipped / "f.py").write_text("x")
    files = call(make_registry(ws), "list_files", {}).output
    assert "a.txt" in files and "src/main.py" in files and "src/nested/real.py" in files
    assert "keep.log" in files and ".gitignore" in files
    for gone in (
        "debug.log",
        "build/out.py",
        "src/nested/gen_a.py",
        ".git/f.py",
        ".venv/f.py",
        ".agent/f.py",
    ):
        assert gone not in files
    assert "escape" not in files  # a symlink pointing outside is not listed


def test_list_files_globs(reg: ToolRegistry, ws: Path) -> None:
    (ws / "src" / "pkg").mkdir()
    (ws / "src" / "pkg" / "mod.py").write_text("x")
    assert call(reg, "list_files", {"pattern": "**/*.py"}).output == ["src/main.py", "src/pkg/mod.py"]
    assert call(reg, "list_files", {"pattern": "src/*.py"}).output == ["src/main.py"]
    assert call(reg, "list_files", {"pattern": "*.txt"}).output == ["a.txt"]
    assert call(reg, "list_files", {"pattern": "src/**"}).output == ["src/main.py", "src/pkg/mod.py"]
    assert call(reg, "list_files", {"pattern": "a.tx?"}).output == ["a.txt"]
    assert error_type(call(reg, "list_files", {"pattern": ""})) == "invalid_args"
    assert error_type(call(reg, "list_files", {"pattern": "*", "recursive": True})) == "invalid_args"


def test_list_files_huge_output_is_truncated(ws: Path) -> None:
    for i in range(300):
        (ws / f"file_{i:03}.txt").write_text("x")
    res = call(make_registry(ws, output_limit_chars=200), "list_files", {})
    assert res.ok and res.truncated and "truncated" in res.output[-1]


# -- write_file and edit_file ------------------------------------------------------------------


def test_write_file_creates_and_overwrites(reg: ToolRegistry, ws: Path) -> None:
    diff = reg.preview("write_file", {"path": "new/dir/x.py", "content": "a = 1\n"})
    assert diff is not None and "+++ b/new/dir/x.py" in diff and "+a = 1" in diff
    res = call(reg, "write_file", {"path": "new/dir/x.py", "content": "a = 1\n"})
    assert res.ok and "created new/dir/x.py" in res.output
    assert (ws / "new" / "dir" / "x.py").read_text() == "a = 1\n"
    diff = reg.preview("write_file", {"path": "a.txt", "content": "one\n"})
    assert diff is not None and "-two" in diff and "--- a/a.txt" in diff
    assert call(reg, "write_file", {"path": "a.txt", "content": "one\n"}).output.startswith("overwrote")
    assert (ws / "a.txt").read_text() == "one\n"


def test_write_file_refusals(reg: ToolRegistry, ws: Path) -> None:
    assert error_type(call(reg, "write_file", {"path": "src", "content": "x"})) == "tool_error"
    assert error_type(call(reg, "write_file", {"path": "a.txt"})) == "invalid_args"
    assert error_type(call(reg, "write_file", {"path": "a.txt", "content": 1})) == "invalid_args"
    (ws / ".git").mkdir()
    res = call(reg, "write_file", {"path": ".git/hooks/pre-commit", "content": "x"})
    assert error_type(res) == "tool_error" and ".git" in res.error.message  # type: ignore[union-attr]
    (ws / "blob.bin").write_bytes(b"\x00\x01")
    assert error_type(call(reg, "write_file", {"path": "blob.bin", "content": "x"})) == "tool_error"


def test_write_keeps_file_mode(reg: ToolRegistry, ws: Path) -> None:
    script = ws / "run.sh"
    script.write_text("echo 1\n")
    script.chmod(0o755)
    assert call(reg, "write_file", {"path": "run.sh", "content": "echo 2\n"}).ok
    assert os.stat(script).st_mode & 0o777 == 0o755


def test_edit_file(reg: ToolRegistry, ws: Path) -> None:
    args = {"path": "a.txt", "search": "two\n", "replace": "TWO\n"}
    diff = reg.preview("edit_file", args)
    assert diff is not None and "-two" in diff and "+TWO" in diff
    assert (ws / "a.txt").read_text() == "one\ntwo\nthree\nfour\n"  # a preview changes nothing
    res = call(reg, "edit_file", args)
    assert res.ok and "replaced 1" in res.output
    assert (ws / "a.txt").read_text() == "one\nTWO\nthree\nfour\n"


def test_edit_file_refusals(reg: ToolRegistry, ws: Path) -> None:
    (ws / "dup.txt").write_text("x = 1\nx = 1\n")
    res = call(reg, "edit_file", {"path": "dup.txt", "search": "x = 1", "replace": "y"})
    assert error_type(res) == "tool_error" and "2 times" in res.error.message  # type: ignore[union-attr]
    res = call(reg, "edit_file", {"path": "a.txt", "search": "zzz", "replace": "y"})
    assert error_type(res) == "tool_error" and "not found" in res.error.message  # type: ignore[union-attr]
    res = call(reg, "edit_file", {"path": "nope.txt", "search": "a", "replace": "b"})
    assert error_type(res) == "tool_error" and "does not exist" in res.error.message  # type: ignore[union-attr]
    assert (
        error_type(call(reg, "edit_file", {"path": "a.txt", "search": "", "replace": "b"})) == "invalid_args"
    )
    assert error_type(call(reg, "edit_file", {"path": "a.txt", "search": "one"})) == "invalid_args"
    (ws / "blob.bin").write_bytes(b"ab\x00cd")
    res = call(reg, "edit_file", {"path": "blob.bin", "search": "ab", "replace": "x"})
    assert error_type(res) == "tool_error" and "binary" in res.error.message  # type: ignore[union-attr]
    assert reg.preview("edit_file", {"path": "a.txt", "search": "zzz", "replace": "y"}) is None
    assert (ws / "dup.txt").read_text() == "x = 1\nx = 1\n"


def test_a_new_file_gets_the_umask_mode_not_mkstemps(tmp_path: Path) -> None:
    reg = make_registry(tmp_path)
    umask = os.umask(0o022)
    os.umask(umask)
    assert call(reg, "write_file", {"path": "new.txt", "content": "x"}).ok
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "run.sh").chmod(0o750)
    assert call(reg, "write_file", {"path": "run.sh", "content": "#!/bin/sh\necho\n"}).ok
    assert (tmp_path / "run.sh").stat().st_mode & 0o777 == 0o750  # an existing file keeps its mode
