"""Releases fetched by pinned version from their registry, cached outside the repository.

A Python release is its sdist (``pip download --no-deps --no-binary NAME``), a JavaScript one its
package tarball (``npm pack NAME@VERSION``). Each is unpacked once under the cache directory
(``$BENCH_SWE_CACHE``, default ``~/.cache/agentcli-swe``) and copied into a fresh workspace per run.
``$BENCH_SWE_REGISTRY`` names a local directory to read archives from instead
(``pypi/NAME-VERSION.tar.gz``, ``npm/NAME-VERSION.tgz``): the harness's tests use it, offline.
"""

from __future__ import annotations

import difflib
import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from bench.swe.tasks import Task

#: Files of a release never copied into a workspace (build leftovers that differ between runs).
_SKIP = {".git", "__pycache__", ".pytest_cache", "node_modules"}


class FetchError(RuntimeError):
    """A release that could not be fetched or unpacked."""


def cache_dir() -> Path:
    return Path(os.environ.get("BENCH_SWE_CACHE") or Path.home() / ".cache" / "agentcli-swe")


def _download(registry: str, project: str, version: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    local = os.environ.get("BENCH_SWE_REGISTRY")
    if local:
        for cand in sorted((Path(local) / registry).glob(f"{project}-{version}.*")):
            shutil.copy2(cand, dest / cand.name)
            return dest / cand.name
        raise FetchError(f"{project} {version}: not in the local registry {local}")
    if registry == "pypi":
        # Only the project itself as an sdist: its build backend may come as a wheel (building
        # setuptools from source too takes minutes).
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", project,
               "-d", str(dest), f"{project}=={version}"]
    else:
        cmd = ["npm", "pack", "--silent", f"{project}@{version}", "--pack-destination", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    archives = [p for p in dest.iterdir() if p.suffix in (".gz", ".tgz", ".zip", ".bz2")]
    if proc.returncode != 0 or not archives:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no archive"]
        raise FetchError(f"{project} {version}: {' '.join(cmd[:4])} failed: {tail[0]}")
    return archives[0]


def _unpack(archive: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(tmp, filter="data")
    tops = list(tmp.iterdir())
    root = tops[0] if len(tops) == 1 and tops[0].is_dir() else tmp
    shutil.rmtree(dest, ignore_errors=True)
    if root is tmp:
        tmp.rename(dest)
    else:
        root.rename(dest)
        shutil.rmtree(tmp, ignore_errors=True)


def release(registry: str, project: str, version: str) -> Path:
    """The unpacked release (cached; fetched on first use). Safe across concurrent processes."""
    base = cache_dir() / registry / f"{project}-{version}"
    src = base / "src"
    if (base / "ok").exists():
        return src
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (base / "ok").exists():
            shutil.rmtree(base / "dl", ignore_errors=True)
            archive = _download(registry, project, version, base / "dl")
            _unpack(archive, src)
            (base / "ok").write_text(archive.name + "\n")
    return src


def copy_tree(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(*_SKIP), symlinks=True, dirs_exist_ok=True)


def _files(root: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if p.is_file() and not _SKIP.intersection(rel.parts):
            out[rel.as_posix()] = p
    return out


def apply_patch(patch: Path, root: Path) -> None:
    proc = subprocess.run(["patch", "-p1", "--batch", "--silent", "-d", str(root), "-i", str(patch.resolve())],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise FetchError(f"{patch}: does not apply: {(proc.stdout + proc.stderr).strip()[:200]}")


def base_tree(task: Task, dest: Path) -> None:
    """The task's starting point: the base release, with ``base_patch`` applied for an injected bug."""
    copy_tree(release(task.registry, task.project, task.base), dest)
    if task.base_patch:
        apply_patch(task.dir / task.base_patch, dest)


def fix_changes(task: Task) -> dict[str, bytes | None]:
    """The reference fix as file contents (None: deleted), relative to :func:`base_tree` (a feature's:
    the base tree with its solution patch applied)."""
    if task.kind == "injected":
        with_bug = cache_dir() / "work" / f"inj-{task.id}-{os.getpid()}"
        shutil.rmtree(with_bug, ignore_errors=True)
        try:
            base_tree(task, with_bug)
            good = release(task.registry, task.project, task.fix)
            return _diff_trees(with_bug, good, lambda rel: True)
        finally:
            shutil.rmtree(with_bug, ignore_errors=True)
    if task.kind == "feature":
        solved = cache_dir() / "work" / f"sol-{task.id}-{os.getpid()}"
        shutil.rmtree(solved, ignore_errors=True)
        try:
            base_tree(task, solved)
            apply_patch(task.dir / task.solution, solved)
            return _diff_trees(release(task.registry, task.project, task.base), solved, lambda rel: True)
        finally:
            shutil.rmtree(solved, ignore_errors=True)
    base = release(task.registry, task.project, task.base)
    fix = release(task.registry, task.project, task.fix)
    return _diff_trees(base, fix, task.is_fix_file)


def _diff_trees(old: Path, new: Path, keep: object) -> dict[str, bytes | None]:
    a, b = _files(old), _files(new)
    out: dict[str, bytes | None] = {}
    for rel in sorted(set(a) | set(b)):
        if not keep(rel):  # type: ignore[operator]
            continue
        if rel not in b:
            out[rel] = None
        elif rel not in a or a[rel].read_bytes() != b[rel].read_bytes():
            out[rel] = b[rel].read_bytes()
    return out


def fix_tree(task: Task, dest: Path) -> None:
    """The base tree with the reference fix applied (what ``--check`` grades as the fix)."""
    base_tree(task, dest)
    for rel, data in fix_changes(task).items():
        target = dest / rel
        if data is None:
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


def unified_diff(old: dict[str, bytes | None], new: dict[str, bytes | None]) -> str:
    """A git-style patch from ``old`` to ``new`` contents per path (None: absent)."""
    chunks: list[str] = []
    for rel in sorted(set(old) | set(new)):
        a, b = old.get(rel), new.get(rel)
        if a == b:
            continue
        a_lines = (a or b"").decode("utf-8", "replace").splitlines(keepends=True)
        b_lines = (b or b"").decode("utf-8", "replace").splitlines(keepends=True)
        head = f"diff --git a/{rel} b/{rel}\n"
        if a is None:
            head += "new file mode 100644\n"
        elif b is None:
            head += "deleted file mode 100644\n"
        body = difflib.unified_diff(a_lines, b_lines, "/dev/null" if a is None else f"a/{rel}",
                                    "/dev/null" if b is None else f"b/{rel}")
        text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in body)
        chunks.append(head + text)
    return "".join(chunks)


def gold_patch(task: Task) -> str:
    """The reference fix as a patch against the base tree."""
    changes = fix_changes(task)
    base = cache_dir() / "work" / f"gold-{task.id}-{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    try:
        base_tree(task, base)
        old = {rel: (base / rel).read_bytes() if (base / rel).is_file() else None for rel in changes}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return unified_diff(old, changes)
