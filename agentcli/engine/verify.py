"""Which command verifies a run's changes: ``[verify] command``, else the project's own.

The runner runs it (state VERIFYING) when the reviewer judges a run complete and the run
changed files; see :meth:`agentcli.engine.executor.Executor.verify`. Project instructions
(AGENTS.md and the like) may state the command; :func:`instructions_verify_command` finds it
in their text, and :func:`verify_command` is the one place that decides.
"""

from __future__ import annotations

import re

from agentcli.config import Config

__all__ = ["instructions_verify_command", "verify_command"]

# "Verify: `pytest -q`", "- Test command: make test", "Run the tests with `npm test`".
_LINE_RE = re.compile(
    r"^\s*(?:[-*]\s+)?(?:\*\*)?(?:verify(?:\s+command)?|tests?(?:\s+command)?|run\s+(?:the\s+)?tests?\s+with)"
    r"(?:\*\*)?\s*[:=]?\s*`([^`\n]+)`\s*\.?\s*$"
    r"|^\s*(?:[-*]\s+)?(?:verify(?:\s+command)?|test(?:\s+command)?)\s*[:=]\s*([^`\n]+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def instructions_verify_command(text: str | None) -> str:
    """The verify command project instructions state (the first ``Verify: `cmd```, ``Test
    command: cmd`` or ``Run the tests with `cmd``` line), or ``""``."""
    if not text:
        return ""
    m = _LINE_RE.search(text)
    if m is None:
        return ""
    return (m.group(1) or m.group(2) or "").strip()


def verify_command(config: Config, instructions: str | None = None) -> str:
    """The command a run verifies with: ``[verify] command`` when set, else the one the
    project instructions (their text, if any) state, else ``""`` (no check)."""
    return config.verify.command.strip() or instructions_verify_command(instructions)
