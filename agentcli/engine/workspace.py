"""What a run changed in the workspace, from its checkpoints.

The run's checkpoints (a shadow git repository in the data dir, taken around every step that may
change the workspace) diffed first against latest give exactly the run's changes, in a dirty
repository or in none, new and deleted files included. Without checkpoints (turned off, or one
failed) nothing is known (``None``): the run falls back to the paths its write steps named.

The reviewer, the re-planner and the final report read these changes; the runner records each
one as a ``workspace_changes`` event, and a replay serves them from there (the replayed run does
not change the workspace).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from agentcli.record.checkpoints import Checkpointer, CheckpointError
from agentcli.tools.text import head_tail

__all__ = ["CheckpointChanges", "WorkspaceChanges"]

#: What the reviewer and the re-planner see of the diff at most (the --stat always whole).
DIFF_CHARS = 6000


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

    def whole(self, limit: int = DIFF_CHARS) -> bool:
        """Whether :meth:`text` shows the whole diff (not its head and tail)."""
        return len(self.diff.rstrip()) <= limit


class CheckpointChanges:
    """The run's changes from its workspace checkpoints (:mod:`agentcli.record.checkpoints`):
    the first checkpoint (before the first step that may change anything) against the latest
    (after the newest such step). No checkpoint yet means nothing could have changed; a
    checkpoint that failed means the changes are unknown."""

    def __init__(self, checkpoints: Checkpointer) -> None:
        self.checkpoints = checkpoints

    async def start(self) -> None:
        return None

    def _read(self, first: str, last: str) -> WorkspaceChanges:
        repo = self.checkpoints.repo
        files = [c.path for c in repo.changes(first, last, sources_only=True)]
        return WorkspaceChanges(files=files, stat=repo.diff(first, last, stat=True, for_reading=True),
                                diff=repo.diff(first, last, for_reading=True))

    async def changes(self) -> WorkspaceChanges | None:
        cp = self.checkpoints
        if cp.error:
            return None
        if cp.first is None or cp.last is None or cp.first == cp.last:
            return WorkspaceChanges()
        try:
            return await asyncio.to_thread(self._read, cp.first, cp.last)
        except CheckpointError:
            return None
