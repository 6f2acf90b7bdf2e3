"""Grading by the SWE-bench rule, inside bubblewrap with no network.

A graded copy is the workspace (without ``.git``) whose test files are put back as the task wants them:
hidden tests (written here, or the fix release's) and the base release's own tests, so a run that
edited a test cannot grade itself. The task's tests then run in that copy, and a task is resolved
when every fail-to-pass test passes and every pass-to-pass test still passes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.swe import fetch
from bench.swe.tasks import Task, test_file

#: Outcomes that count as passing (as in SWE-bench's log parsers).
PASSING = {"passed", "skipped", "xfailed"}
_REPORT_DIR = ".swe_grade"

_PYTEST_PLUGIN = '''"""Writes each test's outcome to $SWE_REPORT as JSON (written by the benchmark's grader)."""
import json
import os

_out = {}


def pytest_runtest_logreport(report):
    if report.when != "call" and report.outcome == "passed":
        return
    outcome = report.outcome
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    if _out.get(report.nodeid) == "failed":
        return
    _out[report.nodeid] = outcome


def pytest_sessionfinish(session):
    with open(os.environ["SWE_REPORT"], "w") as f:
        json.dump(_out, f)
'''

_NODE_REPORTER = '''// Writes each test's outcome as one JSON line (written by the benchmark's grader).
export default async function* report(source) {
  for await (const item of source) {
    if (item.type !== "test:pass" && item.type !== "test:fail") continue;
    const { data: test } = item;
    const ok = item.type === "test:pass";
    yield JSON.stringify({ file: test.file || "", name: test.name, ok, skip: !!test.skip }) + "\\n";
  }
}
'''


@dataclass
class Grade:
    """The outcome of grading one tree."""

    resolved: bool
    fail_to_pass: dict[str, bool] = field(default_factory=dict)
    pass_to_pass: dict[str, bool] = field(default_factory=dict)
    #: A line saying why the tests could not run at all ("" when they did).
    error: str = ""
    output_tail: str = ""

    def as_dict(self) -> dict[str, object]:
        """As recorded: every fail-to-pass test's outcome; of the (often hundreds of) pass-to-pass
        tests, the count that passed and the ids that failed."""
        return {"resolved": self.resolved, "fail_to_pass": self.fail_to_pass,
                "pass_to_pass_passed": sum(self.pass_to_pass.values()),
                "pass_to_pass_failed": sorted(t for t, ok in self.pass_to_pass.items() if not ok),
                "error": self.error}


def touched_tests(task: Task, changed: list[str], base: Path | None = None) -> list[str]:
    """The changed paths that are test files the grading replaces (a run must not edit them).

    With ``base`` (the tree the run started from), only the test files that exist there count: a run
    that adds a test file of its own whose name happens to be a hidden test's (which it cannot know)
    has not tampered with anything; the grading puts the hidden test in its place."""
    tests = task.test_files()
    return sorted(p for p in changed if p in tests and (base is None or (base / p).exists()))


def prepare(task: Task, tree: Path, dest: Path) -> None:
    """``dest``: a copy of ``tree`` with the task's test files put back (hidden tests included)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(tree, dest, ignore=shutil.ignore_patterns(".git", ".agent", "__pycache__", _REPORT_DIR),
                    symlinks=True)
    pristine = dest.with_name(dest.name + ".base")
    shutil.rmtree(pristine, ignore_errors=True)
    try:
        fetch.base_tree(task, pristine)
        fix = fetch.release(task.registry, task.project, task.fix) if task.hidden_from_fix else None
        local = {str(p) for p in task.local_tests}
        for rel in sorted(task.test_files()):
            if rel in local:
                src: Path | None = task.dir / "tests" / rel
            elif fix is not None and rel in task.hidden_from_fix:
                src = fix / rel
            else:
                src = pristine / rel
            target = dest / rel
            if src is not None and src.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
            else:
                target.unlink(missing_ok=True)
    finally:
        shutil.rmtree(pristine, ignore_errors=True)


def sandbox_cmd(root: Path, argv: list[str], env: dict[str, str]) -> list[str]:
    """``argv`` inside bubblewrap: the system read-only, ``root`` writable, no network."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed; grading needs it")
    cmd = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    # The private /tmp would hide an interpreter that lives there (a checkout under /tmp, its venv).
    prefix = Path(sys.prefix).resolve()
    if prefix.is_relative_to("/tmp"):
        cmd += ["--ro-bind", str(prefix), str(prefix)]
    cmd += ["--bind", str(root), str(root), "--unshare-all", "--die-with-parent", "--new-session",
            "--chdir", str(root), "--clearenv"]
    for key, val in env.items():
        cmd += ["--setenv", key, val]
    return cmd + argv


def run_tests(task: Task, root: Path) -> tuple[dict[str, str], str, str]:
    """Run the task's tests in ``root``: (outcome per test id the runner reported, error, output tail)."""
    rep = root / _REPORT_DIR
    rep.mkdir(exist_ok=True)
    files = sorted({test_file(i) for i in task.fail_to_pass + task.pass_to_pass})
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp", "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1"}
    if task.language == "python":
        (rep / "swe_report.py").write_text(_PYTEST_PLUGIN)
        env["PYTHONPATH"] = os.pathsep.join([str(rep)] + [str(root / p) for p in task.pythonpath or ["."]])
        env["SWE_REPORT"] = str(rep / "report.json")
        argv = [sys.executable, "-m", "pytest", "-p", "swe_report", "-p", "no:cacheprovider", "-o", "addopts=",
                "-q", "--rootdir", str(root), *files]
    else:
        (rep / "reporter.mjs").write_text(_NODE_REPORTER)
        argv = ["node", "--test", f"--test-reporter={rep / 'reporter.mjs'}",
                f"--test-reporter-destination={rep / 'report.jsonl'}", *files]
    try:
        proc = subprocess.run(sandbox_cmd(root, argv, env), capture_output=True, text=True,
                              timeout=task.test_timeout)
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
    except subprocess.TimeoutExpired:
        return {}, f"the tests took longer than {task.test_timeout:.0f} s", ""
    results: dict[str, str] = {}
    if task.language == "python":
        try:
            results = json.loads((rep / "report.json").read_text())
        except (OSError, ValueError):
            return {}, "the test run wrote no report (it could not start)", tail
    else:
        try:
            lines = (rep / "report.jsonl").read_text().splitlines()
        except OSError:
            return {}, "the test run wrote no report (it could not start)", tail
        for line in lines:
            ev = json.loads(line)
            rel = os.path.relpath(ev["file"].removeprefix("file://"), root) if ev["file"] else ""
            key = f"{rel}::{ev['name']}"
            outcome = "skipped" if ev["skip"] else ("passed" if ev["ok"] else "failed")
            if results.get(key) != "failed":
                results[key] = outcome
    return results, "", tail


def passes(test_id: str, results: dict[str, str]) -> bool:
    """Whether ``test_id`` passed: exactly, or (an id naming a file or a class) every test under it."""
    if test_id in results:
        return results[test_id] in PASSING
    under = [v for k, v in results.items() if k.startswith(test_id + "::")]
    return bool(under) and all(v in PASSING for v in under)


def grade(task: Task, tree: Path, work: Path) -> Grade:
    """Grade ``tree`` (a workspace after a run, or a release) for ``task``; ``work`` is scratch space."""
    dest = work / "graded"
    prepare(task, tree, dest)
    try:
        results, error, tail = run_tests(task, dest)
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    f2p = {t: passes(t, results) for t in task.fail_to_pass}
    p2p = {t: passes(t, results) for t in task.pass_to_pass}
    ok = not error and all(f2p.values()) and all(p2p.values())
    return Grade(resolved=ok, fail_to_pass=f2p, pass_to_pass=p2p, error=error, output_tail=tail)
