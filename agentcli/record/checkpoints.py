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

Undo restores the paths a run (or the run from one step on) changed to their state in the
checkpoint before it: changed files get their content and mode back, created ones are deleted,
deleted ones come back. If any of those paths changed after the run, undo touches nothing and
reports the conflicts (unless forced). Every undo checkpoints the workspace before and after,
so an undo can itself be undone (``redo``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator, Sequence
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


class CheckpointError(AgentError):
    """A checkpoint could not be taken or read (git missing, a broken shadow repository)."""


@dataclass(frozen=True)
class Checkpoint:
    """One snapshot of the workspace."""

    commit: str
    tree: str
    changed: bool  # differs from the parent checkpoint
    skipped: list[str] = field(default_factory=list)  # files over max_file_bytes, not recorded
    ms: float = 0.0

    def as_event(self, step_id: str | None, phase: str) -> dict[str, Any]:
        return {"schema_version": CHECKPOINT_SCHEMA_VERSION, "phase": phase, "commit": self.commit,
                "tree": self.tree, "changed": self.changed, "skipped": self.skipped, "ms": round(self.ms, 2),
                "step": step_id}


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

    def __init__(self, workspace: Path, data_dir: Path, max_file_bytes: int) -> None:
        self.workspace = workspace.resolve()
        self.data_dir = data_dir.resolve()
        self.root = self.data_dir / CHECKPOINTS_DIR
        self.git_dir = self.root / "repo.git"
        self.index = self.root / "index"
        self.max_file_bytes = max_file_bytes
        # commit -> (tree, skipped) of the checkpoints this process made: saves two git calls
        # per checkpoint (each a process start) when comparing with the parent.
        self._known: dict[str, tuple[str, list[str]]] = {}

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
            bare: bool = False) -> bytes:
        git = shutil.which("git")
        if git is None:
            raise CheckpointError("checkpoints need git, which is not installed")
        try:
            res = subprocess.run([git, "-c", "safe.directory=*", *args], input=stdin, capture_output=True,
                                 env=self._env(index, bare=bare), cwd=self.workspace, timeout=_GIT_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CheckpointError(f"git {args[0]}: {exc}") from None
        if check and res.returncode != 0:
            why = " ".join(res.stderr.decode(errors="replace").split())[:300]
            raise CheckpointError(f"git {args[0]} failed in the shadow repository: {why}")
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

    def snapshot(self, message: dict[str, Any], parent: str | None = None) -> Checkpoint:
        """Commit the workspace as it is now (child of ``parent``, else of nothing)."""
        t0 = time.perf_counter()
        with self.locked():
            self._init()
            add: list[str] = []
            drop: list[str] = []
            skipped = self._skipped_in_index()
            for rel in self._candidates():
                if rel.endswith("/"):  # a nested repository: its own history, not ours
                    skipped.add(rel)
                    continue
                try:
                    st = (self.workspace / rel).lstat()
                except FileNotFoundError:
                    add.append(rel)  # deleted: update-index --remove drops it
                    skipped.discard(rel)
                    continue
                except OSError:
                    continue
                if st.st_size > self.max_file_bytes and not stat.S_ISLNK(st.st_mode):
                    drop.append(rel)
                    skipped.add(rel)
                else:
                    add.append(rel)
                    skipped.discard(rel)
            # Files skipped before may have been deleted since: they are not candidates any more.
            skipped = {p for p in skipped if p.endswith("/") or os.path.lexists(self.workspace / p)}
            if add:
                self.git("update-index", "-z", "--add", "--remove", "--stdin", stdin=_nul(add))
            if drop:
                self.git("update-index", "-z", "--force-remove", "--stdin", stdin=_nul(drop))
            skipped_list = sorted(skipped)
            if skipped_list != sorted(self._skipped_in_index()):
                (self.root / "skipped.json").write_text(json.dumps(skipped_list))
            tree = self.git("write-tree").decode().strip()
            if parent is not None:
                parent_tree, parent_skipped = self._known.get(parent) or (
                    self.git("rev-parse", f"{parent}^{{tree}}").decode().strip(),
                    _message(self, parent).get("skipped", []))
                if parent_tree == tree and parent_skipped == skipped_list:
                    return Checkpoint(parent, tree, False, skipped_list, (time.perf_counter() - t0) * 1000)
            body = json.dumps({**message, "skipped": skipped_list}, sort_keys=True)
            args = ["commit-tree", tree, "-m", body] + (["-p", parent] if parent else [])
            commit = self.git(*args).decode().strip()
            self._known[commit] = (tree, skipped_list)
            ref = message.get("run_id")
            if ref:
                self.git("update-ref", f"refs/agentcli/runs/{ref}", commit)
        return Checkpoint(commit, tree, True, skipped_list, (time.perf_counter() - t0) * 1000)

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

    def restore(self, target: str, paths: Sequence[str], keep: set[str]) -> list[str]:
        """Make ``paths`` in the workspace what they are in ``target``: write those it has, delete
        those it lacks (except ``keep``: files never recorded). Returns the paths it could not touch."""
        if not paths:
            return []
        present = set(self.git("ls-tree", "-r", "-z", "--name-only", target, "--", *paths)
                      .decode("utf-8", "surrogateescape").split("\0")) - {""}
        untouched: list[str] = []
        for rel in paths:
            if rel in present:
                continue
            if rel in keep:
                untouched.append(rel)
                continue
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
        return untouched


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

    def take(self, step_id: str | None, phase: Literal["before", "after"]) -> Checkpoint | None:
        """Checkpoint now; ``before`` of a later step is free when nothing changed since."""
        try:
            cp = self.repo.snapshot({"run_id": self.run_id, "step": step_id, "phase": phase}, parent=self.last)
        except CheckpointError as exc:
            self.error = exc.one_line()
            self.events.append("checkpoint", {"schema_version": CHECKPOINT_SCHEMA_VERSION, "phase": phase,
                                              "error": self.error}, step_id=step_id)
            return None
        if self.first is None:
            self.first = cp.commit
        if self.last is not None and cp.commit != self.last:
            self.changed = True
        self.last = cp.commit
        # Durable at once: after a kill -9 the checkpoint must be findable for undo.
        self.events.append("checkpoint", cp.as_event(step_id, phase), step_id=step_id, durable=True)
        return cp

    async def before(self, step_id: str) -> None:
        import asyncio

        await asyncio.to_thread(self.take, step_id, "before")

    async def after(self, step_id: str) -> None:
        import asyncio

        await asyncio.to_thread(self.take, step_id, "after")

    @classmethod
    def resuming(cls, repo: ShadowRepo, events: EventLog, rec: Recording) -> Checkpointer:
        """A checkpointer that continues the checkpoints a resumed run already has."""
        cps = run_checkpoints(rec)
        first, last = cps.first, cps.last
        return cls(repo, events, rec.run_id, last=last, first=first, changed=first is not None and first != last)

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
    files = repo.changes(expected, target, scope) if scope != [] else []
    paths = [f.path for f in files]
    # A path that differs now from the run's end was changed after it: a conflict.
    after_run = {f.path for f in repo.changes(expected, now.commit, paths)} if paths else set()
    conflicts = sorted(after_run)
    # Never-recorded files: over the size limit in the target or now.
    target_skipped = set(_message(repo, target).get("skipped", []))
    not_restorable = sorted((target_skipped | set(now.skipped)) & set(paths))
    kind: Literal["undo", "redo"] = "redo" if redo else "undo"
    result = UndoResult(rec.run_id, kind, target, [_invert(f) for f in files], conflicts, not_restorable,
                        applied=False, forced=force, unfinished=unfinished, before_undo=now.commit,
                        to_step=to_step)
    if not apply or (conflicts and not force):
        return result
    untouched = repo.restore(target, paths, keep=target_skipped | set(now.skipped))
    result.not_restorable = sorted(set(not_restorable) | set(untouched))
    after = repo.snapshot({"run_id": rec.run_id, "phase": f"after_{kind}"}, parent=now.commit)
    result.after_undo = after.commit
    result.applied = True
    return result


def _invert(change: FileChange) -> FileChange:
    # changes(expected, target) says how to get from the run's end back to its start; users
    # want what the run did: a file the undo deletes is one the run added.
    return FileChange({"A": "D", "D": "A"}.get(change.status, change.status), change.path)
