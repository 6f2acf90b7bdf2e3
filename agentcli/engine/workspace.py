"""What a run changed in the workspace: a snapshot at the start, a diff against it later.

The snapshot is a git tree of the whole working tree (tracked and untracked files, .gitignored
ones and the data dir left out), written through a temporary index so the user's index and
working tree are never touched. A later snapshot diffed against the first gives exactly the
run's changes, even in a repository that was already dirty, new files included. Outside a git
repository nothing is known (``None``): the run falls back to the paths its write steps named.

The reviewer, the re-planner and the final report read these changes; the runner records each
one as a ``workspace_changes`` event, and a replay serves them from there (the replayed run does
not change the workspace).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentcli.tools.shell import child_env, run_process
from agentcli.tools.text import head_tail

__all__ = ["GitSnapshots", "WorkspaceChanges"]

#: What the reviewer and the re-planner see of the diff at most (the --stat always whole).
DIFF_CHARS = 6000
_GIT = ["git", "-c", "core.quotepath=off", "-c", "color.ui=never", "--no-pager"]
_TIMEOUT = 30.0


@dataclass
class WorkspaceChanges:
    """The run's changes so far: changed paths, ``git diff --stat`` and the (bounded) diff."""

    files: list[str] = field(default_factory=list)
    stat: str = ""
    diff: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"files": list(self.files), "stat": self.stat, "diff": self.diff}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkspaceChanges:
        return cls(files=[str(f) for f in data.get("files") or []], stat=str(data.get("stat") or ""),
                   diff=str(data.get("diff") or ""))

    def text(self, limit: int = DIFF_CHARS) -> str:
        """The changes as a model reads them: the stat, then the diff's head and tail."""
        if not self.files:
            return "no file changed"
        return f"{self.stat.rstrip()}\n\n{head_tail(self.diff.rstrip(), limit, head_share=0.5)}"


class GitSnapshots:
    """Snapshots of a workspace's files as git trees (see the module docstring)."""

    def __init__(self, workspace: Path, data_dir: Path | None = None) -> None:
        self.workspace = workspace
        self.data_dir = data_dir
        self.base: str | None = None
        self._started = False

    async def _git(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        res = await run_process([*_GIT, *args], cwd=self.workspace, timeout=_TIMEOUT, limit=400_000,
                                env=env or child_env(extra={"GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}))
        return (-1 if res.timed_out else res.exit_code), res.output

    def _excludes(self) -> list[str]:
        if self.data_dir is None:
            return []
        try:
            rel = self.data_dir.resolve().relative_to(self.workspace.resolve())
        except ValueError:
            return []  # the data dir is outside the workspace: nothing to leave out
        return [f":(exclude){rel.as_posix()}"] if str(rel) != "." else []

    async def snapshot(self) -> str | None:
        """A tree id for the working tree as it is now, or None outside a git repository."""
        code, out = await self._git("rev-parse", "--absolute-git-dir")
        if code != 0:
            return None
        git_dir = Path(out.strip())
        tmp = tempfile.mkdtemp(prefix="agentcli-index-")
        try:
            index = Path(tmp) / "index"
            real = git_dir / "index"
            if real.is_file():
                # Starting from the real index lets git reuse its stat cache: unchanged files
                # are not read and hashed again.
                shutil.copyfile(real, index)
            env = child_env(extra={"GIT_INDEX_FILE": str(index), "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})
            code, _ = await self._git("add", "-A", "--", ".", *self._excludes(), env=env)
            if code != 0:
                return None
            code, out = await self._git("write-tree", env=env)
            return out.strip() if code == 0 and out.strip() else None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    async def start(self) -> None:
        """Take the run's base snapshot (once)."""
        if not self._started:
            self._started = True
            self.base = await self.snapshot()

    async def changes(self) -> WorkspaceChanges | None:
        """The changes since :meth:`start`, or None when they cannot be known."""
        await self.start()
        if self.base is None:
            return None
        now = await self.snapshot()
        if now is None:
            return None
        if now == self.base:
            return WorkspaceChanges()
        code, names = await self._git("diff", "--name-only", "--no-renames", self.base, now)
        if code != 0:
            return None
        _, stat = await self._git("diff", "--stat=100", "--no-renames", self.base, now)
        _, diff = await self._git("diff", "--no-renames", self.base, now)
        files = [line for line in names.splitlines() if line.strip()]
        return WorkspaceChanges(files=files, stat=stat, diff=diff)

