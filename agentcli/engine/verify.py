"""Which command verifies a run's changes: ``[verify] command``, else the project's own.

The runner runs it (state VERIFYING) when the reviewer judges a run complete and the run
changed files; see :meth:`agentcli.engine.executor.Executor.verify`. Project instructions
(AGENTS.md) may state the command (parsed by
:func:`agentcli.planning.instructions.parse_verify_command`); :func:`verify_command` is the one
place that decides between the two.
"""

from __future__ import annotations

from agentcli.config import Config

__all__ = ["verify_command"]


def verify_command(config: Config, project_command: str | None = None) -> str:
    """The command a run verifies with: ``[verify] command`` when set, else the one the
    project instructions state (``project_command``), else ``""`` (no check)."""
    return config.verify.command.strip() or (project_command or "").strip()
