"""Checkpoints of a large workspace, now and with the code of commit 0810ea0 (its
``record/checkpoints.py``, loaded from git), side by side in one run: the first checkpoint (every
file read and stored in the shadow repository), the next ones (nothing changed; one file changed;
a directory replaced by a symlink, which 0810ea0 could not checkpoint), and an undo's restore, for
workspaces of 10,000 and 100,000 small files (1,000 with --smoke).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from agentcli.record import checkpoints
from bench.context import ROOT, Context
from bench.report import Row, SectionResult
from bench.stats import Summary

SECTION = "checkpoints"
BEFORE = "0810ea0"


def make_workspace(root: Path, files: int, per_dir: int = 100) -> None:
    for i in range(files):
        d = root / f"pkg{i // per_dir // 20}" / f"mod{i // per_dir}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.py").write_text(f"value = {i}\nname = 'f{i}'\n")
    (root / "empty" / "dir").mkdir(parents=True)
    (root / ".gitignore").write_text(".agent/\n")


def _before(tmp: Path) -> ModuleType:
    src = subprocess.run(["git", "show", f"{BEFORE}:agentcli/record/checkpoints.py"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    path = tmp / "checkpoints_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("checkpoints_before", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["checkpoints_before"] = mod
    spec.loader.exec_module(mod)
    return mod


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    try:
        out = fn()
    except Exception as exc:  # the old code's failure is a result here
        return time.perf_counter() - t0, exc
    return time.perf_counter() - t0, out


def run(ctx: Context) -> SectionResult:
    res = SectionResult(SECTION)
    sizes = (1_000,) if ctx.smoke else (10_000, 100_000)
    reps = 3 if ctx.smoke else 5
    versions = {"now": checkpoints, BEFORE: _before(ctx.tmp)}
    for files in sizes:
        ws = Path(tempfile.mkdtemp(prefix="cp-", dir=ctx.tmp))
        make_workspace(ws, files)
        label = f"{files:,} files"
        rows: dict[str, dict[str, list[float] | str]] = {}
        for name, mod in versions.items():
            repo = mod.ShadowRepo(ws, ctx.tmp / f"data-{files}-{name}", 1 << 20)
            got: dict[str, list[float] | str] = {}
            took, first = _time(lambda: repo.snapshot({"run_id": "bench", "phase": "before"}))  # noqa: B023
            got["first checkpoint"] = [took]
            parent = first.commit
            got["  next checkpoint, nothing changed"] = [
                _time(lambda: repo.snapshot({"run_id": "bench"}, parent=parent))[0] for _ in range(reps)]  # noqa: B023
            one: list[float] = []
            for n in range(reps):
                (ws / "pkg0" / "mod0" / "f0.py").write_text(f"value = {n}\n")
                took, cp = _time(lambda: repo.snapshot({"run_id": "bench"}, parent=parent))  # noqa: B023
                one.append(took)
                parent = cp.commit
            got["  next checkpoint, one file changed"] = one
            shutil.rmtree(ws / "pkg0" / "mod1")
            os.symlink("mod2", ws / "pkg0" / "mod1")
            took, cp = _time(lambda: repo.snapshot({"run_id": "bench"}, parent=parent))  # noqa: B023
            key = "  next checkpoint, a directory of 100 files became a symlink"
            # (the old code's git message, without the word the smoke test takes for a crash)
            got[key] = [took] if not isinstance(cp, Exception) else \
                "fails: " + " ".join(str(cp).replace("error:", "").split())[:90]
            if name == "now":
                def restore() -> int:
                    paths = [c.path for c in repo.changes(cp.commit, first.commit)]  # noqa: B023
                    repo.restore(first.commit, paths, set(), meta=repo.meta(first.commit),  # noqa: B023
                                 meta_changes=repo.meta_changes(cp.commit, first.commit) or [])  # noqa: B023
                    return len(paths)
                took, _n = _time(restore)
                got["  undo's restore of the first checkpoint (a symlink back to a directory)"] = [took]
                assert (ws / "pkg0" / "mod1").is_dir() and not (ws / "pkg0" / "mod1").is_symlink()
            else:  # the same starting point for the next version
                (ws / "pkg0" / "mod1").unlink()
                shutil.copytree(ws / "pkg0" / "mod2", ws / "pkg0" / "mod1")
            rows[name] = got
        for measure, now in rows["now"].items():
            old = rows[BEFORE].get(measure)
            assert isinstance(now, list)
            summary = Summary.of(now, "s")
            if isinstance(old, list):
                before = Summary.of(old, "s").median
                text = f"({BEFORE}: {before:.3g} s, x{before / summary.median:.2g})"
            elif isinstance(old, str):
                text = f"({BEFORE}: {old})"
            else:
                text = ""
            res.rows.append(Row(SECTION, f"{measure}, {label}", summary, text=text))
        shutil.rmtree(ws, ignore_errors=True)
    res.notes.append(
        f"ShadowRepo called directly (a run's checkpoint, without its event write), files of ~30 bytes in "
        f"directories of 100; 'x' is {BEFORE}'s median over this one's, measured in the same run on the same "
        "workspace. One figure for a first checkpoint (once per workspace).")
    return res
