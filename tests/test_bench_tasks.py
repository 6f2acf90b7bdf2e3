"""The task suite's runner (bench/tasks): its checks, its memory modes and its report, without a model.

The suite itself runs the real local model and takes minutes (``make bench-tasks``); here the parts
that decide pass or fail and write bench/RESULTS.md are checked on a synthetic pass.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.tasks.run import (  # noqa: E402
    MEMORY_SECTION,
    SECTION,
    TaskResult,
    check,
    load_tasks,
    pass_label,
    prepare,
    render,
    write_section,
)


def test_the_suite_has_30_plus_tasks_each_checked_by_effect_or_answer() -> None:
    tasks = load_tasks()
    assert len(tasks) >= 30 and len({t["id"] for t in tasks}) == len(tasks)
    for t in tasks:
        assert t.get("answer") or t.get("files") or t.get("absent"), t["id"]


def test_check_by_answer_and_by_effect(tmp_path: Path) -> None:
    task: dict[str, Any] = {"id": "x", "task": "t", "answer": ["README.md"], "files": {"a.txt": "new"},
                            "absent": {"a.txt": "old"}}
    (tmp_path / "a.txt").write_text("new\n")
    assert check(task, tmp_path, {"status": "COMPLETE", "answer": "readme.md and more"}) == (True, "ok")
    assert check(task, tmp_path, {"status": "FAILED", "answer": "README.md"})[0] is False
    assert check(task, tmp_path, {"status": "COMPLETE", "answer": "nothing"}) == (False, "answer lacks 'README.md'")
    (tmp_path / "a.txt").write_text("old new\n")
    assert check(task, tmp_path, {"status": "COMPLETE", "answer": "README.md"}) == (False, "a.txt still has 'old'")


def test_prepare_makes_a_git_copy_with_the_setup_uncommitted(tmp_path: Path) -> None:
    import subprocess

    ws = prepare({"id": "t1", "setup": {"README.md": "\nmore\n"}}, tmp_path)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=ws, capture_output=True, text=True).stdout
    assert status.strip() == "M README.md"


def _result(tid: str, ok: bool, *, recalled: list[str] | None = None, heldout: bool = False) -> TaskResult:
    return TaskResult(tid, f"task {tid}", ok, "ok" if ok else "answer lacks 'x'", "COMPLETE", "", True, 0, 1.5,
                      2.0, ["list_files"], [], heldout, f"run-{tid}", recalled or [])


def test_report_marks_memory_passes_and_replaces_its_section(tmp_path: Path) -> None:
    fresh = [_result("a", True), _result("b", False, heldout=True)]
    loo = [_result("a", True, recalled=["run-x"]), _result("b", True, recalled=["run-a"], heldout=True)]
    text = render({pass_label("default", "fresh"): fresh, pass_label("default", "loo"): loo},
                  mode="in-process CLI", limit=None, memory=["fresh", "loo"])
    assert text.startswith(MEMORY_SECTION + "\n")
    assert "--lever default --memory fresh --memory loo" in text
    rows = [line for line in text.splitlines() if line.startswith("| default")]
    assert "**= default**" in rows[0] and "1/2 (50%)" in rows[0] and rows[0].endswith("| 0 |")
    assert "memory loo" in rows[1] and "2/2 (100%)" in rows[1] and rows[1].endswith("| 2 |")
    # Each task's wall time next to its result, and the CPU the suite ran on.
    assert "| b | - list_files (answer lacks 'x') 2.0 s | + (m) list_files 2.0 s |" in text
    assert "; CPU: " in text and " cores)" in text
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n" + SECTION + "\n\nlevers\n\n" + MEMORY_SECTION + "\n\nold\n\n## Later\n\nkept\n")
    write_section(text, results)
    out = results.read_text()
    assert "old" not in out and out.count(MEMORY_SECTION) == 1 and out.endswith("## Later\n\nkept\n")
    assert SECTION + "\n\nlevers\n" in out  # the levers' section is another one, kept


@pytest.mark.parametrize("mode", ["online", "loo"])
def test_pass_labels(mode: str) -> None:
    assert pass_label("default", "fresh") == "default"
    assert pass_label("all", mode) == f"all · memory {mode}"
