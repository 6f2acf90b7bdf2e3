"""One task end to end, a set of tasks with resumable results, and the predictions export.

A task's run: a fresh workspace of the base release (a git repository with one commit, so the
run's patch is ``git diff``; outside the repository checkout: :func:`workspace_dir`), the agent on
the problem statement, the patch, then grading. A run that changed a test file the grading replaces
is caught (``tampered``) and counts as not resolved. Results go to ``results.jsonl`` (one record per
task, ``schema_version`` on each); a re-run skips the tasks already there, except those that failed
for a reason of the harness (``infra_error``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.swe import fetch, grade
from bench.swe.agents import RUNNERS, AgentResult
from bench.swe.tasks import Task

SCHEMA_VERSION = 1
RESULTS_NAME = "results.jsonl"
PREDICTIONS_NAME = "predictions.jsonl"
_GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false"]


@dataclass
class Options:
    """How to run a set of tasks."""

    agent: str
    model: str
    out: Path
    api_base: str | None = None
    jobs: int = 1
    #: Seconds one agent run may take.
    timeout: float = 1800.0
    #: Keep each task's workspace after grading (it is large; off by default).
    keep: bool = False
    #: Extra environment for the agent (tests pass a scripted model's answers this way).
    env: dict[str, str] = field(default_factory=dict)


def shard(tasks: list[Task], spec: str | None) -> list[Task]:
    """Tasks ``i`` of every ``n`` (``spec`` = ``i/n``, 1-based), so ``n`` machines split a set."""
    if not spec:
        return tasks
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard must be i/n, e.g. 1/4 (got '{spec}')") from None
    if not 1 <= i <= n:
        raise ValueError(f"--shard {spec}: i must be between 1 and n")
    return [t for k, t in enumerate(tasks) if k % n == i - 1]


def _git(ws: Path, *args: str) -> str:
    return subprocess.run([*_GIT, *args], cwd=ws, capture_output=True, text=True, check=True).stdout


def make_workspace(task: Task, ws: Path) -> None:
    """A fresh copy of the base release, committed once (hidden tests never come here)."""
    shutil.rmtree(ws, ignore_errors=True)
    fetch.base_tree(task, ws)
    _git(ws, "init", "-q", "-b", "main")
    _git(ws, "add", "-A")
    _git(ws, "commit", "-q", "-m", "base")


def workspace_patch(ws: Path) -> tuple[str, list[str]]:
    """The run's changes against the base commit: (patch, changed paths)."""
    _git(ws, "add", "-A")
    _git(ws, "reset", "-q", "--", ".agent")
    # Bytecode a run's test commands wrote is not part of its change (grading drops it too).
    _git(ws, "reset", "-q", "--", ":(glob)**/__pycache__/**", ":(glob)**/*.py[co]")
    names = [n for n in _git(ws, "diff", "--cached", "--name-only", "HEAD").splitlines() if n]
    patch = _git(ws, "diff", "--cached", "--binary", "HEAD")
    return patch, names


def workspace_dir(out: Path, task: Task) -> Path:
    """Where a run of ``task`` for the results in ``out`` works: outside the repository checkout
    (``$BENCH_SWE_WORK``, default the cache's ``work/ws``), so tools run in the workspace (pytest looking
    for its configuration, git) never take the checkout that holds ``out`` as the project."""
    root = Path(os.environ.get("BENCH_SWE_WORK") or fetch.cache_dir() / "work" / "ws")
    key = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:10]
    return root / f"{out.name}-{key}" / task.id / "workspace"


def run_task(task: Task, opts: Options) -> dict[str, Any]:
    """Run and grade one task; the record written to ``results.jsonl``."""
    rundir = opts.out / "runs" / task.id
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    ws = workspace_dir(opts.out, task)
    ws.parent.mkdir(parents=True, exist_ok=True)
    rec: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "instance_id": task.id, "project": task.project,
                           "language": task.language, "kind": task.kind, "agent": opts.agent, "model": opts.model,
                           "resolved": False}
    t0 = time.monotonic()
    try:
        make_workspace(task, ws)
    except (fetch.FetchError, subprocess.CalledProcessError, OSError) as exc:
        rec["infra_error"] = f"workspace: {exc}"
        return rec
    result: AgentResult = RUNNERS[opts.agent](task.problem, ws, rundir, opts.model, opts.api_base, opts.timeout,
                                              opts.env)
    try:
        patch, changed = workspace_patch(ws)
    except subprocess.CalledProcessError as exc:
        rec["infra_error"] = f"reading the run's changes: {exc.stderr.strip()[:200]}"
        return rec
    tampered = grade.touched_tests(task, changed, fetch.release(task.registry, task.project, task.base))
    try:
        g = grade.grade(task, ws, rundir)
    except (fetch.FetchError, RuntimeError, OSError) as exc:
        rec["infra_error"] = f"grading: {exc}"
        return rec
    (rundir / "model.patch").write_text(patch)
    (rundir / "tests.log").write_text(g.output_tail)
    rec.update(resolved=g.resolved and not tampered, tampered=tampered, changed_files=changed,
               grade=g.as_dict(), agent_result=result.as_dict(), total_s=round(time.monotonic() - t0, 3),
               model_patch=patch)
    if opts.keep:
        rec["workspace"] = str(ws)
    else:
        shutil.rmtree(ws.parent, ignore_errors=True)
    return rec


def read_results(out: Path) -> list[dict[str, Any]]:
    path = out / RESULTS_NAME
    if not path.is_file():
        return []
    recs = []
    for line in path.read_text().splitlines():
        try:
            recs.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill: the task runs again
    return recs


def latest(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last record per task (a task re-run after an infrastructure failure appears twice)."""
    return {r["instance_id"]: r for r in records}


def run_tasks(tasks: list[Task], opts: Options, on_record: Callable[[dict[str, Any]], None] | None = None
              ) -> list[dict[str, Any]]:
    """Run the tasks not already done in ``opts.out``; every task's latest record, in task order."""
    opts.out.mkdir(parents=True, exist_ok=True)
    done = {k: r for k, r in latest(read_results(opts.out)).items() if "infra_error" not in r}
    todo = [t for t in tasks if t.id not in done]
    lock = threading.Lock()

    def one(task: Task) -> dict[str, Any]:
        rec = run_task(task, opts)
        with lock, open(opts.out / RESULTS_NAME, "a") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()
        if on_record is not None:
            on_record(rec)
        return rec

    with ThreadPoolExecutor(max(1, opts.jobs)) as pool:
        list(pool.map(one, todo))
    recs = latest(read_results(opts.out))
    out = [recs[t.id] for t in tasks if t.id in recs]
    write_predictions(out, opts.out / PREDICTIONS_NAME)
    return out


def write_predictions(records: list[dict[str, Any]], path: Path) -> None:
    """The patches in SWE-bench's predictions format, one JSON object per line."""
    with open(path, "w") as f:
        for r in records:
            if "model_patch" in r:
                pred = {"instance_id": r["instance_id"], "model_name_or_path": f"{r['agent']}:{r['model']}",
                        "model_patch": r["model_patch"]}
                f.write(json.dumps(pred, ensure_ascii=False) + "\n")


def check_task(task: Task, work: Path) -> list[str]:
    """Problems with a task's test lists: every fail-to-pass fails on the base and passes on the fix,
    every pass-to-pass passes on both. Empty: verified."""
    problems: list[str] = []
    for name, build in (("base", fetch.base_tree), ("fix", fetch.fix_tree)):
        tree = work / f"{task.id}-{name}"
        shutil.rmtree(tree, ignore_errors=True)
        try:
            build(task, tree)
            g = grade.grade(task, tree, work)
        finally:
            shutil.rmtree(tree, ignore_errors=True)
        if g.error:
            problems.append(f"{name}: {g.error}")
            continue
        for t, ok in g.fail_to_pass.items():
            if ok and name == "base":
                problems.append(f"base: fail-to-pass {t} passes")
            if not ok and name == "fix":
                problems.append(f"fix: fail-to-pass {t} fails")
        problems += [f"{name}: pass-to-pass {t} fails" for t, ok in g.pass_to_pass.items() if not ok]
    return problems


def select(tasks: list[Task], pattern: str) -> list[Task]:
    pats = [p.strip() for p in pattern.split(",") if p.strip()]
    return [t for t in tasks if any(fnmatch.fnmatch(t.id, p) for p in pats)]
