"""Checkpoints of a large workspace: the first one (every file read and stored in the shadow
repository), the next ones (nothing changed; one file changed; a directory replaced by a symlink),
and an undo, for a workspace of 100,000 small files in 1,000 directories (10,000 with --smoke).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from agentcli.record.checkpoints import ShadowRepo
from bench.context import Context
from bench.report import Row, SectionResult
from bench.stats import Summary

SECTION = "checkpoints"


def make_workspace(root: Path, files: int, per_dir: int = 100) -> None:
    for i in range(files):
        d = root / f"pkg{i // per_dir // 20}" / f"mod{i // per_dir}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.py").write_text(f"value = {i}\nname = 'f{i}'\n")
    (root / "empty" / "dir").mkdir(parents=True)
    (root / ".gitignore").write_text(".agent/\n")


def run(ctx: Context) -> SectionResult:
    res = SectionResult(SECTION)
    sizes = (2_000, 10_000) if ctx.smoke else (10_000, 100_000)
    for files in sizes:
        ws = Path(tempfile.mkdtemp(prefix="cp-", dir=ctx.tmp))
        make_workspace(ws, files)
        data = ws / ".agent"
        repo = ShadowRepo(ws, data, 1 << 20)
        label = f"{files:,} files"
        t0 = time.perf_counter()
        first = repo.snapshot({"run_id": "bench", "phase": "before"})
        res.rows.append(Row(SECTION, f"first checkpoint, {label}", Summary.of([time.perf_counter() - t0], "s")))
        same: list[float] = []
        parent = first.commit
        for _ in range(3 if ctx.smoke else 5):
            t0 = time.perf_counter()
            cp = repo.snapshot({"run_id": "bench", "phase": "after"}, parent=parent)
            same.append(time.perf_counter() - t0)
            assert not cp.changed
        res.rows.append(Row(SECTION, f"  next checkpoint, nothing changed, {label}", Summary.of(same, "s")))
        one: list[float] = []
        for n in range(3 if ctx.smoke else 5):
            (ws / "pkg0" / "mod0" / "f0.py").write_text(f"value = {n}\n")
            t0 = time.perf_counter()
            cp = repo.snapshot({"run_id": "bench", "phase": "after"}, parent=parent)
            one.append(time.perf_counter() - t0)
            parent = cp.commit
        res.rows.append(Row(SECTION, f"  next checkpoint, one file changed, {label}", Summary.of(one, "s")))
        shutil.rmtree(ws / "pkg0" / "mod1")
        os.symlink("mod2", ws / "pkg0" / "mod1")
        t0 = time.perf_counter()
        cp = repo.snapshot({"run_id": "bench", "phase": "after"}, parent=parent)
        res.rows.append(Row(SECTION, f"  next checkpoint, a directory of 100 files became a symlink, {label}",
                            Summary.of([time.perf_counter() - t0], "s")))
        t0 = time.perf_counter()
        paths = [c.path for c in repo.changes(cp.commit, first.commit)]
        repo.restore(first.commit, paths, set(), meta=repo.meta(first.commit),
                     meta_changes=repo.meta_changes(cp.commit, first.commit) or [])
        res.rows.append(Row(SECTION, f"  restore the first checkpoint ({len(paths)} paths), {label}",
                            Summary.of([time.perf_counter() - t0], "s")))
        assert (ws / "pkg0" / "mod1").is_dir() and not (ws / "pkg0" / "mod1").is_symlink()
        shutil.rmtree(ws, ignore_errors=True)
    res.notes.append("ShadowRepo called directly (what a run's checkpoint does, without the event write); "
                     "one figure for a first checkpoint (it runs once per workspace), files of ~30 bytes.")
    return res
