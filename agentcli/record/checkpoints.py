"""Checkpoints of the workspace in a shadow git repository, and undo.

Before the first step of a run that may change the workspace (a ``write`` or ``exec`` tool:
shell commands included) and after each such step, the workspace is committed to a shadow
repository inside the data dir: ``<data_dir>/checkpoints/repo.git``, driven by git plumbing
with its own ``GIT_DIR``, ``GIT_WORK_TREE`` and ``GIT_INDEX_FILE``. The user's ``.git``, index
and stash are never read or written; neither are their git config or hooks (system and global
config are off for these commands).

* It follows the workspace's ``.gitignore`` files; the data dir itself and nested ``.git``
  folders are never recorded.
* Files over ``tools.max_file_bytes`` are not recorded (each checkpoint lists them), and undo
  never deletes or overwrites a file it could not record.
* Cheap when nothing changed: the shared index keeps every file's stat data, so a checkpoint
  re-reads only files whose stat changed, and an unchanged tree reuses the previous commit.
* What git's tree does not hold is kept beside it, in the commit message (:class:`Meta`): empty
  directories, and the modes of files and directories that are not git's own.
* A directory replaced by a symlink or a file (and back) is taken like any change; a snapshot
  that git fails is taken again from a fresh index, so a broken index cannot fail every later run.
* Bounded: a run's checkpoint that would read more than ``checkpoints.max_files`` files (the
  first one in a workspace reads every file) is skipped before reading any, with a warning; the
  run then takes no more checkpoints and cannot be undone (undo says why).

Undo restores the paths a run (or the run from one step on) changed to their state in the
checkpoint before it: changed files get their content and mode back, created ones are deleted,
deleted ones come back, and so do symlinks, empty directories and modes. If any of those paths
changed after the run, undo touches nothing and reports the conflicts (unless forced). Every undo
checkpoints the workspace before and after, so an undo can itself be undone (``redo``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agentcli.errors import AgentError, UsageError
from agentcli.record.events import CheckpointMade, EventLog, Recording, RunFinished, Undone
from agentcli.record.reader import RunRecord

__all__ = [
    "CHECKPOINT_SCHEMA_VERSION",
    "Checkpoint",
    "CheckpointError",
    "CheckpointSkipped",
    "Checkpointer",
    "FileChange",
    "RunCheckpoints",
    "ShadowRepo",
    "UndoResult",
    "run_checkpoints",
    "undo_run",
]

CHECKPOINT_SCHEMA_VERSION = 1
CHECKPOINTS_DIR = "checkpoints"
_GIT_TIMEOUT = 600.0
_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

log = logging.getLogger(__name__)
#: From this many files to add in one checkpoint, they go into a pack of their own.
_BULK_FILES = 500


class CheckpointError(AgentError):
    """A checkpoint could not be taken or read (git missing, a broken shadow repository)."""


class CheckpointSkipped(CheckpointError):
    """A checkpoint would read more files than the cap (``checkpoints.max_files``): not taken."""

    def __init__(self, files: int, cap: int) -> None:
        self.files, self.cap = files, cap
        super().__init__(f"checkpoint skipped: {files:,} files to read is over checkpoints.max_files = {cap:,} "
                         "(raise it in agent.toml, 0 for no limit); undo is unavailable for this run")


class _GitRefused(CheckpointError):
    """git ran and exited with an error (not killed, not timed out): what a damaged index does."""


@dataclass(frozen=True)
class Checkpoint:
    """One snapshot of the workspace."""

    commit: str
    tree: str
    changed: bool  # differs from the parent checkpoint
    skipped: list[str] = field(default_factory=list)  # files over max_file_bytes, not recorded
    ms: float = 0.0

    def as_event(self, step_id: str | None, phase: str) -> CheckpointMade:
        return CheckpointMade(schema_version=CHECKPOINT_SCHEMA_VERSION, phase=phase, commit=self.commit,
                              tree=self.tree, changed=self.changed, skipped=self.skipped, ms=round(self.ms, 2),
                              step=step_id)


@dataclass(frozen=True)
class FileChange:
    """One path between two checkpoints: ``A`` added, ``M`` modified, ``D`` deleted (git's letters)."""

    status: str
    path: str


#: What tools generate in a workspace (bytecode, test and linter caches): checkpointed like any
#: file (an undo restores the workspace as it was), but left out of what a model reads of a run's
#: changes, where a few .pyc patches would push the real diff out.
GENERATED = (":(exclude,glob)**/__pycache__/**", ":(exclude,glob)**/*.py[co]", ":(exclude,glob)**/.pytest_cache/**",
             ":(exclude,glob)**/.mypy_cache/**", ":(exclude,glob)**/.ruff_cache/**")


class ShadowRepo:
    """The shadow repository of one workspace, inside its data dir. Safe across processes: every
    operation holds an exclusive lock on ``checkpoints/lock``."""

    def __init__(self, workspace: Path, data_dir: Path, max_file_bytes: int, max_files: int = 0) -> None:
        self.workspace = workspace.resolve()
        self.data_dir = data_dir.resolve()
        self.root = self.data_dir / CHECKPOINTS_DIR
        self.git_dir = self.root / "repo.git"
        self.index = self.root / "index"
        self.max_file_bytes = max_file_bytes
        #: A snapshot with more files than this to read is refused (:class:`CheckpointSkipped`); 0: any.
        self.max_files = max_files
        # commit -> (tree, skipped, meta) of the checkpoints this process made: saves two git
        # calls per checkpoint (each a process start) when comparing with the parent.
        self._known: dict[str, tuple[str, list[str], Meta]] = {}
        # The last tree's directories, and each directory's mtime and subdirectories (where an
        # empty directory can appear): what a checkpoint of an unchanged workspace reuses.
        self._trees: dict[str, set[str]] = {}
        self._subdirs: dict[str, tuple[int, tuple[str, ...]]] = {}

    # ------------------------------------------------------------------ plumbing

    def _env(self, index: Path | None = None, *, bare: bool = False) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        if not bare:
            env.update({"GIT_DIR": str(self.git_dir), "GIT_WORK_TREE": str(self.workspace),
                        "GIT_INDEX_FILE": str(index or self.index)})
        env.update({
            # Neither the user's nor the system's git config: no hooks, fsmonitor or filters of theirs.
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_AUTHOR_NAME": "agentcli", "GIT_AUTHOR_EMAIL": "agentcli@localhost",
            "GIT_COMMITTER_NAME": "agentcli", "GIT_COMMITTER_EMAIL": "agentcli@localhost",
            "LC_ALL": "C",
        })
        return env

    def git(self, *args: str, stdin: bytes | None = None, index: Path | None = None, check: bool = True,
            bare: bool = False, config: Sequence[str] = ()) -> bytes:
        git = shutil.which("git")
        if git is None:
            raise CheckpointError("checkpoints need git, which is not installed")
        try:
            res = subprocess.run([git, "-c", "safe.directory=*", *(a for c in config for a in ("-c", c)), *args],
                                 input=stdin, capture_output=True,
                                 env=self._env(index, bare=bare), cwd=self.workspace, timeout=_GIT_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CheckpointError(f"git {args[0]}: {exc}") from None
        if check and res.returncode != 0:
            why = " ".join(res.stderr.decode(errors="replace").split())[:300]
            error = _GitRefused if res.returncode > 0 else CheckpointError
            raise error(f"git {args[0]} failed in the shadow repository: {why}")
        return res.stdout

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "lock").open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            # Holding the lock, no live process uses the index: a lock file of git's left next to
            # it is from a process killed mid-checkpoint, and would block every later one.
            for stale in self.root.glob("index*.lock"):
                stale.unlink(missing_ok=True)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _init(self) -> None:
        if (self.git_dir / "HEAD").is_file():
            return
        self.git("init", "-q", "--bare", str(self.git_dir), bare=True)
        for key, value in (("core.bare", "false"), ("core.autocrlf", "false"), ("core.symlinks", "true"),
                           ("core.filemode", "true"), ("gc.auto", "0"), ("core.untrackedCache", "true"),
                           ("index.version", "4")):
            self.git("config", key, value)
        excludes = ["/.git", ".git"]
        with contextlib.suppress(ValueError):
            rel = self.data_dir.relative_to(self.workspace).as_posix()
            if rel != ".":
                excludes.append(f"/{rel}/")
        (self.git_dir / "info").mkdir(exist_ok=True)
        (self.git_dir / "info" / "exclude").write_text("\n".join(excludes) + "\n")

    # ------------------------------------------------------------------ snapshots

    def _candidates(self) -> list[str]:
        # Untracked (not ignored) and modified or deleted tracked paths: stat-only for unchanged files.
        out = self.git("ls-files", "-z", "--others", "--modified", "--exclude-standard")
        return sorted({p for p in out.decode("utf-8", "surrogateescape").split("\0") if p})

    def _skipped_in_index(self) -> set[str]:
        note = self.root / "skipped.json"
        try:
            return set(json.loads(note.read_text()))
        except (OSError, ValueError):
            return set()

    def _beyond_link(self, rel: str, seen: dict[str, bool]) -> bool:
        """Whether a leading directory of ``rel`` is now a symlink or a file (the path is gone,
        though lstat through the link may find a file there)."""
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            lead = "/".join(parts[:i])
            if lead not in seen:
                p = self.workspace / lead
                seen[lead] = p.is_symlink() or not p.is_dir()
            if seen[lead]:
                return True
        return False

    def snapshot(self, message: dict[str, Any], parent: str | None = None) -> Checkpoint:
        """Commit the workspace as it is now (child of ``parent``, else of nothing)."""
        t0 = time.perf_counter()
        with self.locked():
            self._init()
            try:
                return self._snapshot(message, parent, t0)
            except _GitRefused as exc:
                # A damaged index, or one git refuses to update, would fail this and every later
                # checkpoint: it is rebuilt from the workspace (the commits are untouched).
                log.warning("the shadow index was rebuilt: %s", exc.one_line())
                for kept in (self.index, self.root / "skipped.json"):
                    kept.unlink(missing_ok=True)
                return self._snapshot(message, parent, t0)

    def _snapshot(self, message: dict[str, Any], parent: str | None, t0: float) -> Checkpoint:
        add: list[str] = []
        gone: list[str] = []
        drop: list[str] = []
        skipped = self._skipped_in_index()
        seen: dict[str, bool] = {}
        candidates = self._candidates()
        # Counted before any file is read: listing them is a stat pass, reading them is the cost.
        if self.max_files and len(candidates) > self.max_files:
            raise CheckpointSkipped(len(candidates), self.max_files)
        for rel in candidates:
            if rel.endswith("/"):  # a nested repository: its own history, not ours
                skipped.add(rel)
                continue
            if self._beyond_link(rel, seen):  # its directory became a symlink or a file
                gone.append(rel)
                skipped.discard(rel)
                continue
            try:
                st = (self.workspace / rel).lstat()
            except FileNotFoundError:
                gone.append(rel)
                skipped.discard(rel)
                continue
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):  # a file became a directory: its files are candidates too
                gone.append(rel)
                skipped.discard(rel)
            elif st.st_size > self.max_file_bytes and not stat.S_ISLNK(st.st_mode):
                drop.append(rel)
                skipped.add(rel)
            else:
                add.append(rel)
                skipped.discard(rel)
        # Files skipped before may have been deleted since: they are not candidates any more.
        skipped = {p for p in skipped if p.endswith("/") or os.path.lexists(self.workspace / p)}
        if gone or drop:
            self.git("update-index", "-z", "--force-remove", "--stdin", stdin=_nul(gone + drop))
        if add:
            # --replace: a file where a directory was (or the reverse) takes the other's place.
            # Many files at once (a first checkpoint): streamed into one pack rather than a loose
            # object file each, ~8x less system time (for this command only: a diff still reads
            # them as text).
            bulk = ["core.bigFileThreshold=1"] if len(add) >= _BULK_FILES else []
            self.git("update-index", "-z", "--add", "--remove", "--replace", "--stdin", stdin=_nul(add), config=bulk)
        skipped_list = sorted(skipped)
        if skipped_list != sorted(self._skipped_in_index()):
            (self.root / "skipped.json").write_text(json.dumps(skipped_list))
        tree = self.git("write-tree").decode().strip()
        meta = self._meta(tree, skipped)
        if parent is not None:
            known = self._known.get(parent)
            if known is None:
                parent_message = _message(self, parent)
                known = (self.git("rev-parse", f"{parent}^{{tree}}").decode().strip(),
                         parent_message.get("skipped", []), _meta_of(parent_message))
            if known == (tree, skipped_list, meta):
                return Checkpoint(parent, tree, False, skipped_list, (time.perf_counter() - t0) * 1000)
        body = json.dumps({**message, "skipped": skipped_list, **_meta_fields(meta)}, sort_keys=True)
        args = ["commit-tree", tree, "-m", body] + (["-p", parent] if parent else [])
        commit = self.git(*args).decode().strip()
        self._known[commit] = (tree, skipped_list, meta)
        ref = message.get("run_id")
        if ref:
            self.git("update-ref", f"refs/agentcli/runs/{ref}", commit)
        return Checkpoint(commit, tree, True, skipped_list, (time.perf_counter() - t0) * 1000)

    # ------------------------------------------------------------------ what git does not keep

    def _tree_dirs(self, tree: str) -> set[str]:
        """The directories of a tree (``ls-tree -d``: tree objects only, a small listing)."""
        if tree not in self._trees:
            out = self.git("ls-tree", "-r", "-d", "-z", "--name-only", "--full-tree", tree)
            self._trees = {tree: {p for p in out.decode("utf-8", "surrogateescape").split("\0") if p}}
        return self._trees[tree]

    def _odd_file_modes(self, dirs: set[str]) -> dict[str, int]:
        """The files directly in ``dirs`` (and the root) whose mode is not git's own: 644, or 755
        when executable. find does the lstat of every file (a Python loop costs ~10x more)."""
        find = shutil.which("find")
        if find is None:
            return {}
        found: dict[str, int] = {}
        starts = ["."] + [f"./{d}" for d in sorted(dirs)]
        for i in range(0, len(starts), 2000):  # argv stays far under the system's limit
            res = subprocess.run([find, *starts[i:i + 2000], "-mindepth", "1", "-maxdepth", "1", "!", "-type", "d",
                                  "!", "-type", "l", "!", "-perm", "644", "!", "-perm", "755", "-printf", "%m %p\\0"],
                                 cwd=self.workspace, capture_output=True, timeout=_GIT_TIMEOUT, check=False)
            for item in res.stdout.split(b"\0"):
                mode, _, path = item.partition(b" ")
                if path.startswith(b"./"):
                    found[path[2:].decode("utf-8", "surrogateescape")] = int(mode, 8)
        return found

    def _meta(self, tree: str, skipped: set[str]) -> Meta:
        """What git does not record of the workspace: empty directories, and every mode that is
        not git's own (files 644, or 755 when executable; directories 755)."""
        dirs = self._tree_dirs(tree)
        root = f"{self.workspace}/"  # str paths: a Path per directory costs more than its lstat
        odd = {p: m for p, m in self._odd_file_modes(dirs).items() if p not in skipped}
        empty: list[str] = []
        modes: dict[str, int] = {}
        for rel in sorted(dirs | {""}):
            try:
                st = os.lstat(root + rel)
                if rel and stat.S_IMODE(st.st_mode) != 0o755:
                    modes[rel + "/"] = stat.S_IMODE(st.st_mode)
                # Its subdirectories change only with its mtime: listed again only then.
                cached = self._subdirs.get(rel)
                if cached is None or cached[0] != st.st_mtime_ns:
                    with os.scandir(root + rel) as it:
                        names = tuple(e.name for e in it if e.is_dir(follow_symlinks=False) and e.name != ".git")
                    cached = self._subdirs[rel] = (st.st_mtime_ns, names)
            except OSError:
                continue
            for name in cached[1]:
                sub = f"{rel}/{name}" if rel else name
                if sub not in dirs:
                    empty += _empty_tree(self.workspace, sub)
        # An ignored file or empty directory is none of the checkpoint's business.
        ask = sorted(odd) + empty
        if ask:
            out = self.git("check-ignore", "-z", "--stdin", stdin=_nul(ask), check=False)
            ignored = set(out.decode("utf-8", "surrogateescape").split("\0"))
            modes.update((p, m) for p, m in odd.items() if p not in ignored)
            empty = [d for d in empty if d not in ignored]
            for d in empty:
                with contextlib.suppress(OSError):
                    mode = stat.S_IMODE(os.lstat(root + d).st_mode)
                    if mode != 0o755:
                        modes[d + "/"] = mode
        return Meta(tuple(sorted(empty)), tuple(sorted(modes.items())))

    def meta(self, commit: str) -> Meta | None:
        """The empty directories and modes of a checkpoint (None: taken before they were kept)."""
        known = self._known.get(commit)
        if known is not None:
            return known[2]
        message = _message(self, commit)
        return _meta_of(message) if "meta" in message else None

    # ------------------------------------------------------------------ reading

    def changes(self, old: str, new: str, paths: Sequence[str] | None = None, *,
                sources_only: bool = False) -> list[FileChange]:
        """Paths that differ between two checkpoints (no rename detection: a move is D + A);
        ``sources_only`` leaves out what tools generate (:data:`GENERATED`)."""
        args = ["diff-tree", "-r", "-z", "--no-renames", "--name-status", old, new]
        spec = [*(paths or []), *(GENERATED if sources_only else ())]
        if sources_only and not paths:
            spec.insert(0, ".")
        out = self.git(*args, *(["--", *spec] if spec else []))
        parts = [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]
        return [FileChange(parts[i][0], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]

    def diff(self, old: str, new: str, *, stat: bool = False, for_reading: bool = False) -> str:
        """A unified diff (or ``--stat``) between two checkpoints: one that applies (binary files
        as patches), or ``for_reading`` (by a model): binary files named only, no generated files."""
        kind = ["--stat"] if stat else [] if for_reading else ["--binary"]
        args = ["diff", "--no-color", "--no-ext-diff", "--no-renames", *kind, old, new]
        if for_reading:
            args += ["--", ".", *GENERATED]
        return self.git(*args).decode("utf-8", "replace")

    def has(self, commit: str, path: str) -> bool:
        out = self.git("ls-tree", "-z", "--name-only", commit, "--", path)
        return bool(out.strip(b"\0"))

    # ------------------------------------------------------------------ restoring

    def restore(self, target: str, paths: Sequence[str], keep: set[str], *, meta: Meta | None = None,
                meta_changes: Sequence[FileChange] = ()) -> list[str]:
        """Make ``paths`` in the workspace what they are in ``target``: write those it has, delete
        those it lacks (except ``keep``: files never recorded). With the target's ``meta``, the
        files written get its modes, and ``meta_changes`` (:meth:`meta_changes`) are made: empty
        directories created or removed, modes set. Returns the paths it could not touch."""
        untouched: list[str] = []
        present: set[str] = set()
        if paths:
            present = set(self.git("ls-tree", "-r", "-z", "--name-only", target, "--", *paths)
                          .decode("utf-8", "surrogateescape").split("\0")) - {""}
        seen: dict[str, bool] = {}
        for rel in paths:
            if rel in present:
                continue
            if rel in keep:
                untouched.append(rel)
                continue
            if self._beyond_link(rel, seen):
                continue  # never through a symlink: the link itself is a path of its own
            p = self.workspace / rel
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            _prune_empty_parents(p.parent, self.workspace)
        if present:
            tmp_index = self.root / f"index.restore-{os.getpid()}"
            try:
                self.git("read-tree", target, index=tmp_index)
                for rel in present:  # a directory now where a file was: make room for the file
                    p = self.workspace / rel
                    if p.is_dir() and not p.is_symlink():
                        shutil.rmtree(p)
                self.git("checkout-index", "-f", "-z", "--stdin", stdin=_nul(sorted(present)), index=tmp_index)
            finally:
                tmp_index.unlink(missing_ok=True)
        if meta is None:
            return untouched
        for rel in sorted(present):  # git writes with the umask; the checkpoint's mode it is
            _set_mode(self.workspace / rel, meta.mode(rel))
        for change in sorted(meta_changes, key=lambda c: c.path):
            p = self.workspace / change.path.rstrip("/")
            if change.path.endswith("/") and change.status == "A":
                p.mkdir(parents=True, exist_ok=True)
        for change in sorted(meta_changes, key=lambda c: c.path, reverse=True):  # the deepest first
            p = self.workspace / change.path.rstrip("/")
            if change.path.endswith("/") and change.status == "D" and not p.is_symlink():
                with contextlib.suppress(OSError):
                    p.rmdir()
            elif change.status in ("A", "M"):
                _set_mode(p, meta.mode(change.path))
        return untouched

    def meta_changes(self, old: str, new: str, paths: Sequence[str] | None = None) -> list[FileChange] | None:
        """What differs between two checkpoints beside git's tree: ``A``/``D`` of an empty
        directory (``path/``), ``M`` of a mode. None when either checkpoint predates them."""
        a, b = self.meta(old), self.meta(new)
        if a is None or b is None:
            return None
        changes = [FileChange("A", d + "/") for d in sorted(set(b.dirs) - set(a.dirs))]
        changes += [FileChange("D", d + "/") for d in sorted(set(a.dirs) - set(b.dirs))]
        moved = {c.path for c in changes}
        am, bm = dict(a.modes), dict(b.modes)
        changes += [FileChange("M", k) for k in sorted(set(am) | set(bm)) if am.get(k) != bm.get(k) and k not in moved]
        if paths is not None:
            scope = set(paths)
            changes = [c for c in changes if c.path in scope]
        return changes

@dataclass(frozen=True)
class Meta:
    """What a checkpoint keeps beside git's tree: the empty directories (every directory of a
    subtree that holds no file), and the modes git does not keep (``path`` of a file,
    ``path/`` of a directory) where they are not 644 (755 executable) and 755."""

    dirs: tuple[str, ...] = ()
    modes: tuple[tuple[str, int], ...] = ()

    def mode(self, path: str) -> int | None:
        return dict(self.modes).get(path)


def _meta_of(message: dict[str, Any]) -> Meta:
    modes = message.get("modes") or {}
    return Meta(tuple(sorted(str(d) for d in message.get("dirs") or [])),
                tuple(sorted((str(k), int(v)) for k, v in modes.items())) if isinstance(modes, dict) else ())


def _meta_fields(meta: Meta) -> dict[str, Any]:
    fields: dict[str, Any] = {"meta": 1}
    if meta.dirs:
        fields["dirs"] = list(meta.dirs)
    if meta.modes:
        fields["modes"] = {k: v for k, v in meta.modes}
    return fields


#: A subtree of more directories than this, and no file, is not recorded as empty directories.
_MAX_EMPTY_DIRS = 10_000


def _empty_tree(root: Path, rel: str) -> list[str]:
    """Every directory of the subtree ``rel`` when it holds no file (nor a link or a ``.git``),
    else nothing."""
    found: list[str] = []
    todo = [rel]
    while todo:
        d = todo.pop()
        found.append(d)
        if len(found) > _MAX_EMPTY_DIRS:
            return []
        try:
            with os.scandir(root / d) as it:
                for e in it:
                    if not e.is_dir(follow_symlinks=False) or e.name == ".git":
                        return []
                    todo.append(f"{d}/{e.name}")
        except OSError:
            return []
    return found


def _set_mode(p: Path, mode: int | None) -> None:
    """Give a file or directory its recorded mode, else git's (644, 755 executable or a directory)."""
    with contextlib.suppress(OSError):
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode):
            return
        if mode is None:
            mode = 0o755 if stat.S_ISDIR(st.st_mode) or st.st_mode & stat.S_IXUSR else 0o644
        if stat.S_IMODE(st.st_mode) != mode:
            os.chmod(p, mode)


def _message(repo: ShadowRepo, commit: str) -> dict[str, Any]:
    raw = repo.git("log", "-1", "--format=%B", commit).decode("utf-8", "replace").strip()
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _nul(paths: Sequence[str]) -> bytes:
    return b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in paths)


def _prune_empty_parents(d: Path, root: Path) -> None:
    while d != root and root in d.parents:
        try:
            d.rmdir()
        except OSError:
            return
        d = d.parent


# ---------------------------------------------------------------------- during a run


@dataclass
class Checkpointer:
    """Takes a run's checkpoints and records each as a ``checkpoint`` event of the run.

    A failure to checkpoint never fails the run: it is recorded (``error``) and later undo
    says what it lacks."""

    repo: ShadowRepo
    events: EventLog
    run_id: str
    last: str | None = None
    first: str | None = None
    changed: bool = False
    error: str | None = None
    #: Told once, in one line, when a checkpoint is skipped over the cap.
    on_warning: Callable[[str], None] | None = None
    #: A checkpoint was skipped over the cap: the run takes no more (it cannot be undone anyway).
    capped: bool = False

    def take(self, step_id: str | None, phase: Literal["before", "after"]) -> Checkpoint | None:
        """Checkpoint now; ``before`` of a later step is free when nothing changed since."""
        if self.capped:
            return None
        try:
            cp = self.repo.snapshot({"run_id": self.run_id, "step": step_id, "phase": phase}, parent=self.last)
        except CheckpointError as exc:
            self.error = exc.one_line()
            capped = isinstance(exc, CheckpointSkipped)
            self.events.emit(CheckpointMade(schema_version=CHECKPOINT_SCHEMA_VERSION, phase=phase,
                                            error=self.error, capped=capped), step_id=step_id, durable=capped)
            if capped:
                self.capped, self.changed = True, False
                if self.on_warning is not None:
                    self.on_warning(self.error)
            return None
        if self.first is None:
            self.first = cp.commit
        if self.last is not None and cp.commit != self.last:
            self.changed = True
        self.last = cp.commit
        # Durable at once: after a kill -9 the checkpoint must be findable for undo.
        self.events.emit(cp.as_event(step_id, phase), step_id=step_id, durable=True)
        return cp

    async def before(self, step_id: str) -> None:
        import asyncio

        await asyncio.to_thread(self.take, step_id, "before")

    async def after(self, step_id: str) -> None:
        import asyncio

        await asyncio.to_thread(self.take, step_id, "after")

    @classmethod
    def resuming(cls, repo: ShadowRepo, events: EventLog, rec: Recording,
                 on_warning: Callable[[str], None] | None = None) -> Checkpointer:
        """A checkpointer that continues the checkpoints a resumed run already has (none more when
        one was skipped over the cap)."""
        cps = run_checkpoints(rec)
        first, last = cps.first, cps.last
        capped = cps.capped is not None
        made = cls(repo, events, rec.run_id, last=last, first=first,
                   changed=first is not None and first != last and not capped, on_warning=on_warning, capped=capped)
        taken = [e for e in cps.events if e.get("commit")]
        if taken and taken[-1].get("phase") == "before":
            # Killed after a step's "before" and before its "after": what that step did is the
            # run's too (its report, `agent runs diff`, `agent undo`), checkpointed now.
            step = taken[-1].get("step_id")
            made.take(str(step) if step else None, "after")
        return made

    def undo_hint(self) -> str | None:
        """How to undo this run, when it changed the workspace."""
        return f"agent undo {self.run_id}" if self.changed else None


# ---------------------------------------------------------------------- after a run


@dataclass
class RunCheckpoints:
    """A run's checkpoints as its events recorded them."""

    run_id: str
    events: list[dict[str, Any]]  # checkpoint events: data plus "step_id"
    undos: list[dict[str, Any]]  # undo events, oldest first
    finished: bool
    last_seq: int

    @property
    def capped(self) -> str | None:
        """Why the run cannot be undone when one of its checkpoints was skipped over the cap."""
        return next((str(e.get("error")) for e in self.events if e.get("capped")), None)

    @property
    def first(self) -> str | None:
        for e in self.events:
            if e.get("commit"):
                return str(e["commit"])
        return None

    @property
    def last(self) -> str | None:
        for e in reversed(self.events):
            if e.get("commit"):
                return str(e["commit"])
        return None

    def before_step(self, step_id: str) -> str:
        for e in self.events:
            if e.get("step_id") == step_id and e.get("phase") == "before" and e.get("commit"):
                return str(e["commit"])
        steps = sorted({str(e["step_id"]) for e in self.events if e.get("step_id")})
        raise UsageError(f"run {self.run_id} has no checkpoint before step {step_id!r}"
                         + (f" (steps with checkpoints: {', '.join(steps)})" if steps else ""))

    def after_step(self, step_id: str) -> str:
        for e in reversed(self.events):
            if e.get("step_id") == step_id and e.get("phase") == "after" and e.get("commit"):
                return str(e["commit"])
        return self.last or self.before_step(step_id)


def run_checkpoints(rec: RunRecord | Recording) -> RunCheckpoints:
    """The checkpoints and undos recorded in a run's events."""
    typed = rec if isinstance(rec, RunRecord) else RunRecord(rec)
    cps = [{**t.data.event_data(), "step_id": t.step_id} for t in typed.of(CheckpointMade)]
    undos = [t.data.event_data() for t in typed.of(Undone)]
    return RunCheckpoints(typed.run_id, cps, undos, typed.last(RunFinished) is not None, typed.last_seq)


@dataclass
class UndoResult:
    """What an undo (or redo) did, or would do when it stopped at conflicts."""

    run_id: str
    kind: Literal["undo", "redo"]
    target: str
    files: list[FileChange]  # the paths restored, with what the run had done to each
    conflicts: list[str]  # paths changed after the run (undo stopped unless forced)
    not_restorable: list[str]  # paths undo could not record or touch (over max_file_bytes)
    applied: bool
    forced: bool = False
    unfinished: bool = False  # the run did not finish (killed): changes since its last checkpoint count
    before_undo: str | None = None
    after_undo: str | None = None
    to_step: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"schema_version": CHECKPOINT_SCHEMA_VERSION, "run_id": self.run_id, "kind": self.kind,
                "target": self.target, "to_step": self.to_step, "applied": self.applied, "forced": self.forced,
                "unfinished": self.unfinished,
                "files": [{"status": f.status, "path": f.path} for f in self.files],
                "conflicts": self.conflicts, "not_restorable": self.not_restorable,
                "before_undo": self.before_undo, "after_undo": self.after_undo}


def undo_run(repo: ShadowRepo, rec: RunRecord | Recording, *, to_step: str | None = None, redo: bool = False,
             force: bool = False, apply: bool = True) -> UndoResult:
    """Undo a run (from ``to_step`` on), or with ``redo`` undo its last undo.

    With ``apply=False`` nothing is touched: the result says what would be restored and which
    files conflict. When there are conflicts and not ``force``, nothing is touched either."""
    cps = run_checkpoints(rec)
    if cps.capped is not None:
        raise UsageError(f"run {rec.run_id} cannot be undone: {cps.capped}")
    if cps.first is None:
        raise UsageError(f"run {rec.run_id} has no checkpoints: it changed nothing undo could restore "
                         "(or it ran before checkpoints existed)")
    last_undo = cps.undos[-1] if cps.undos else None
    unfinished = False
    if redo:
        if last_undo is None or last_undo.get("kind") != "undo":
            raise UsageError(f"run {rec.run_id} has no undo to undo")
        target, expected = str(last_undo["before_undo"]), str(last_undo["after_undo"])
        scope = [str(f["path"]) for f in last_undo.get("files", [])]
    else:
        if last_undo is not None and last_undo.get("kind") == "undo":
            raise UsageError(f"run {rec.run_id} is already undone; `agent undo {rec.run_id} --redo` "
                             "restores its result")
        target = cps.before_step(to_step) if to_step else str(cps.first)
        if last_undo is not None:
            expected = str(last_undo["after_undo"])  # after a redo: what the redo left
        elif cps.finished:
            expected = str(cps.last)
        else:
            expected = ""  # killed mid-run: the workspace as it is now is the run's end
            unfinished = True
        scope = None
    latest = str(last_undo["after_undo"]) if last_undo else cps.last
    now = repo.snapshot({"run_id": rec.run_id, "phase": f"before_{'redo' if redo else 'undo'}"}, parent=latest)
    if unfinished:
        expected = now.commit
    # A redo is limited to the files its undo restored (none: nothing to do).
    git_scope = None if scope is None else [p for p in scope if not p.endswith("/")]
    files = repo.changes(expected, target, git_scope) if git_scope != [] else []
    paths = [f.path for f in files]
    # Empty directories and modes, which git's tree does not hold (none for older checkpoints).
    meta_changes = repo.meta_changes(expected, target, scope) if scope != [] else []
    meta_changes = [c for c in meta_changes or [] if c.path not in set(paths)]
    # A path that differs now from the run's end was changed after it: a conflict.
    after_run = {f.path for f in repo.changes(expected, now.commit, paths)} if paths else set()
    if meta_changes:
        since = repo.meta_changes(expected, now.commit, [c.path for c in meta_changes]) or []
        after_run |= {c.path for c in since}
    conflicts = sorted(after_run)
    # Never-recorded files: over the size limit in the target or now.
    target_skipped = set(_message(repo, target).get("skipped", []))
    not_restorable = sorted((target_skipped | set(now.skipped)) & set(paths))
    kind: Literal["undo", "redo"] = "redo" if redo else "undo"
    result = UndoResult(rec.run_id, kind, target, [_invert(f) for f in files + meta_changes], conflicts,
                        not_restorable,
                        applied=False, forced=force, unfinished=unfinished, before_undo=now.commit,
                        to_step=to_step)
    if not apply or (conflicts and not force):
        return result
    untouched = repo.restore(target, paths, keep=target_skipped | set(now.skipped), meta=repo.meta(target),
                             meta_changes=meta_changes)
    result.not_restorable = sorted(set(not_restorable) | set(untouched))
    after = repo.snapshot({"run_id": rec.run_id, "phase": f"after_{kind}"}, parent=now.commit)
    result.after_undo = after.commit
    result.applied = True
    return result


def _invert(change: FileChange) -> FileChange:
    # changes(expected, target) says how to get from the run's end back to its start; users
    # want what the run did: a file the undo deletes is one the run added.
    return FileChange({"A": "D", "D": "A"}.get(change.status, change.status), change.path)
