"""Project instructions: ``AGENTS.md`` files, read into the planner's and the executor's prompts.

As in Codex CLI (and ``CLAUDE.md``/``GEMINI.md`` in the others), a project tells agents
how it works in a Markdown file at its root, and a directory may add its own. The files
named by ``instructions.file_names`` are read from the repository root (the nearest
directory above the workspace holding ``.git``) down to the workspace, nearest last, so
the most specific words come last. The text is bounded by ``instructions.max_tokens``
(when it must be cut, the nearest files keep their words first), hashed, and recorded in
the run's ``run_started`` event: a replay uses the recorded text and warns when the files
changed since.

A test command stated there is parsed out (:attr:`ProjectInstructions.verify_command`)
for the verify step: a ``Test command: `make test``` line, or the first command in a
section whose heading speaks of tests or checks.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentcli.config import InstructionsConfig
from agentcli.models import tokens

__all__ = ["ProjectInstructions", "find_instruction_files", "load_project_instructions", "parse_verify_command"]

#: Encoding used to count instruction tokens (any model: the bound is approximate by design).
_COUNT_MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class ProjectInstructions:
    """What the project's instruction files say, as the prompts get it."""

    #: The files read, farthest first (the repository root's) and nearest last.
    files: tuple[Path, ...]
    #: The text the prompts get: each file under a ``## <path>`` heading, bounded.
    text: str
    tokens: int
    truncated: bool
    #: A test command stated in the files (the nearest file's first), for the verify step.
    verify_command: str | None

    @property
    def hash(self) -> str:
        """sha256 of :attr:`text`, first 16 hex digits: what a replay compares."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def record(self) -> dict[str, Any]:
        """The ``instructions`` field of ``run_started``."""
        return {"files": [str(f) for f in self.files], "hash": self.hash, "tokens": self.tokens,
                "truncated": self.truncated, "verify_command": self.verify_command, "text": self.text}

    @classmethod
    def from_record(cls, data: Any) -> ProjectInstructions | None:
        """Back from a ``run_started`` event's ``instructions`` field (None if absent)."""
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            return None
        return cls(files=tuple(Path(f) for f in data.get("files") or []), text=data["text"],
                   tokens=int(data.get("tokens") or 0), truncated=bool(data.get("truncated")),
                   verify_command=data.get("verify_command"))


def repository_root(workspace: Path) -> Path | None:
    """The nearest directory at or above ``workspace`` that holds ``.git``."""
    for d in (workspace, *workspace.parents):
        if (d / ".git").exists():
            return d
    return None


def find_instruction_files(workspace: Path, names: list[str]) -> list[Path]:
    """Instruction files from the repository root down to the workspace (nearest last); only the
    workspace's own when it is not in a repository."""
    workspace = workspace.resolve()
    root = repository_root(workspace) or workspace
    dirs = [workspace]
    d = workspace
    while d != root and d.parent != d:
        d = d.parent
        dirs.append(d)
    found: list[Path] = []
    for folder in reversed(dirs):
        for name in names:
            f = folder / name
            if f.is_file():
                found.append(f)
                break  # one file per directory: the first name that exists
    return found


_STATED = re.compile(r"(?im)^[\s>*-]*(?:test|tests|verify|verification|check)(?:\s+command)?(?:\*\*)?"
                     r"\s*[:=]\s*(?:\*\*)?\s*`([^`\n]+)`")
_HEADING = re.compile(r"(?m)^#{1,6}\s+(.*)$")
_ABOUT_TESTS = re.compile(r"(?i)\b(test|tests|testing|verify|verification|checks?|ci)\b")
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
_INLINE = re.compile(r"`([^`\n]+)`")


def parse_verify_command(markdown: str) -> str | None:
    """The test command a Markdown file states: a ``Test command: `...``` line, else the first
    command (fenced block line or inline code) in a section whose heading is about tests."""
    m = _STATED.search(markdown)
    if m:
        return m.group(1).strip() or None
    fences = [f.span() for f in _FENCE.finditer(markdown)]
    # A "# comment" inside a fenced block is not a heading.
    headings = [h for h in _HEADING.finditer(markdown) if not any(a < h.start() < b for a, b in fences)]
    for i, h in enumerate(headings):
        if not _ABOUT_TESTS.search(h.group(1)):
            continue
        end = headings[i + 1].start() if i + 1 < len(headings) else len(markdown)
        body = markdown[h.end():end]
        fence = _FENCE.search(body)
        if fence:
            for line in fence.group(1).splitlines():
                line = line.strip().removeprefix("$ ").strip()
                if line and not line.startswith("#"):
                    return line
        inline = _INLINE.search(body)
        if inline and inline.group(1).strip():
            return inline.group(1).strip()
    return None


def _label(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _cut(text: str, max_tokens: int) -> str:
    if max_tokens <= 0:
        return ""
    if tokens.count_text(text, _COUNT_MODEL) <= max_tokens:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix within the bound
        mid = (lo + hi + 1) // 2
        if tokens.count_text(text[:mid], _COUNT_MODEL) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "\n[... cut: the instructions are longer than instructions.max_tokens ...]"


def load_project_instructions(workspace: Path, config: InstructionsConfig) -> ProjectInstructions | None:
    """The workspace's project instructions, or None when it has none (or they are off)."""
    if not config.enabled:
        return None
    files = find_instruction_files(workspace, config.file_names)
    if not files:
        return None
    root = repository_root(workspace.resolve()) or workspace.resolve()
    texts = [f.read_text(encoding="utf-8", errors="replace").strip() for f in files]
    budget = config.max_tokens
    parts: list[str] = []
    truncated = False
    # The nearest file is the most specific: it keeps its words first when the bound bites.
    for f, body in reversed(list(zip(files, texts, strict=True))):
        section = f"## {_label(f, root)}\n{body}"
        cut = _cut(section, budget)
        truncated = truncated or cut != section
        if cut:
            parts.append(cut)
        budget -= tokens.count_text(cut, _COUNT_MODEL) if cut else 0
    text = "\n\n".join(reversed(parts))
    verify = next((v for v in (parse_verify_command(t) for t in reversed(texts)) if v), None)
    return ProjectInstructions(files=tuple(files), text=text, tokens=tokens.count_text(text, _COUNT_MODEL),
                               truncated=truncated, verify_command=verify)


#: The share of a model's context window project instructions may take in its prompts.
CONTEXT_SHARE = 4


def within_context(instructions: ProjectInstructions | None, context_tokens: int | None
                   ) -> ProjectInstructions | None:
    """``instructions`` cut to a quarter of a model's context window (a small local model's window
    is a few thousand tokens: instructions must not crowd out the task); unchanged if they fit."""
    if instructions is None or context_tokens is None or instructions.tokens <= context_tokens // CONTEXT_SHARE:
        return instructions
    text = _cut(instructions.text, context_tokens // CONTEXT_SHARE)
    return ProjectInstructions(files=instructions.files, text=text, tokens=tokens.count_text(text, _COUNT_MODEL),
                               truncated=True, verify_command=instructions.verify_command)


def with_instructions(messages: list[dict[str, Any]], instructions: ProjectInstructions | None,
                      context_tokens: int | None = None, *, into: int = -1) -> list[dict[str, Any]]:
    """The planner's messages with a ``# Project instructions`` section at the end of one of them,
    the last unless ``into`` says which (a hosted planner keeps them in its stable system message,
    a prefix a provider caches); bounded by the planner model's context (:func:`within_context`);
    unchanged, the same list, without instructions."""
    instructions = within_context(instructions, context_tokens)
    if instructions is None or not instructions.text:
        return messages
    out = list(messages)
    msg = dict(out[into])
    msg["content"] = f"{msg['content']}\n\n# Project instructions (follow them)\n{instructions.text}"
    out[into] = msg
    return out
