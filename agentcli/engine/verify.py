"""Which command verifies a run's changes, and what its failure says about the environment.

The runner runs it (state VERIFYING) when the reviewer judges a run complete and the run
changed files; see :meth:`agentcli.engine.executor.Executor.verify`. Project instructions
(AGENTS.md) may state the command (parsed by
:func:`agentcli.planning.instructions.parse_verify_command`); :func:`verify_command` is the one
place that decides between the two.

A verify command that fails because the environment it runs in lacks a dependency (a Python
module, a Node package, a command) is not something a new plan can fix: the sandbox cannot
install it. :func:`missing_dependency` finds such a failure in the command's output; the runner
stops with it instead of re-planning. A module the run itself should have made (the task names
it, the change adds an import of it or a file of that name) is a normal failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from agentcli.config import Config

__all__ = ["MissingDependency", "missing_dependency", "verify_command"]


def verify_command(config: Config, project_command: str | None = None) -> str:
    """The command a run verifies with: ``[verify] command`` when set, else the one the
    project instructions state (``project_command``), else ``""`` (no check)."""
    return config.verify.command.strip() or (project_command or "").strip()


#: ``ModuleNotFoundError: No module named 'x.y'`` (and Python 2's ``ImportError: No module named x``).
_PY = re.compile(r"(?:ModuleNotFoundError|ImportError): No module named '?([A-Za-z_][\w.]*)'?")
#: ``Error: Cannot find module 'x'`` (CommonJS) and ``[ERR_MODULE_NOT_FOUND]: Cannot find package 'x'`` (ESM).
_NODE = re.compile(r"Cannot find (?:module|package) '([^'\s]+)'")
#: A shell's "command not found": ``sh: 1: x: not found``, ``bash: x: command not found``,
#: ``bash: line 1: x: command not found``, ``env: 'x': No such file or directory``.
_CMD = re.compile(r"^(?:[^:\n]*sh|env)(?:: (?:line )?\d+)?: '?([^':\s]+)'?: "
                  r"(?:command not found|not found|No such file or directory)\s*$", re.M)


@dataclass(frozen=True)
class MissingDependency:
    """A dependency the verify command's environment lacks: ``kind`` (python, node, command),
    its ``name`` as the output says it, and the output's line that says so (``evidence``)."""

    kind: Literal["python", "node", "command"]
    name: str
    evidence: str

    @property
    def top(self) -> str:
        """What to install: a Python module's top-level package, a Node package (``@scope/name``)."""
        if self.kind == "python":
            return self.name.split(".")[0]
        if self.kind == "node":
            parts = self.name.split("/")
            return "/".join(parts[:2]) if self.name.startswith("@") else parts[0]
        return self.name

    def describe(self) -> str:
        return {"python": f"the Python module `{self.top}`", "node": f"the Node package `{self.top}`",
                "command": f"the command `{self.top}`"}[self.kind]

    def message(self) -> str:
        """One line for the user: what is missing, where, and what to do."""
        advice = {
            "python": "install it in the environment the verify command uses, or set [verify] command to run in "
                      "the project's own (e.g. `.venv/bin/python -m pytest`)",
            "node": "install it in the environment the verify command uses (`npm install` in the workspace "
                    "before the run), or set [verify] command to one that has it",
            "command": "install it in the environment the verify command uses (on its PATH), or set [verify] "
                       "command to one that has it",
        }[self.kind]
        # The output's line is in the verify event and the report; the name says it here.
        return (f"{self.describe()} is not installed where the verify command runs; a new plan cannot install "
                f"it: {advice}")


def missing_dependency(output: str, exit_code: int | None, *, task: str = "", paths: Iterable[str] = (),
                       added: str = "") -> MissingDependency | None:
    """The dependency a failed verify command's ``output`` says is missing, when it is not part of
    the run's own work; else None.

    Part of the run's own work (a normal failure, for a new plan): a relative or absolute module
    path or command (``./x``, ``'/w/x.js'``), a name the ``task`` says, a name that is a file or
    folder of ``paths`` (the files the run changed or its steps name: ``helper.py``,
    ``src/pkg/a.py``), a name in the lines the run's change ``added`` (an import it added), and a
    Python module inside a package (``pkg.helpers``: ``pkg`` was found, most likely the project's
    own). When any of the output's missing names is the run's own, none is taken for the
    environment's. A command counts only with exit code 127, the shell's "not found"."""
    found: list[MissingDependency] = []
    for m in _PY.finditer(output):
        found.append(MissingDependency("python", m.group(1).rstrip("."), _line(output, m.start())))
    for m in _NODE.finditer(output):
        found.append(MissingDependency("node", m.group(1), _line(output, m.start())))
    if exit_code == 127:
        for m in _CMD.finditer(output):
            found.append(MissingDependency("command", m.group(1), _line(output, m.start())))
    if not found:
        return None
    own = _own_names(paths)
    for dep in found:
        if dep.name.startswith((".", "/", "~")) or ("/" in dep.name and dep.kind == "command"):
            return None  # a path: the workspace's own file
        if dep.kind == "python" and "." in dep.name:
            return None  # its package was found: a module of it is missing
        top = dep.top
        if top in own or dep.name in own or _said(top, task) or _said(top, added):
            return None
    return found[0]


def _line(text: str, at: int) -> str:
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n", at)
    return text[start:end if end >= 0 else len(text)]


def _own_names(paths: Iterable[str]) -> set[str]:
    """Every file stem and folder name of ``paths``: the module names the run's files make."""
    names: set[str] = set()
    for p in paths:
        parts = [x for x in re.split(r"[\\/]", p) if x and x not in (".", "..")]
        for i, part in enumerate(parts):
            names.add(part.split(".")[0] if i == len(parts) - 1 else part)
    return names


def _said(name: str, text: str) -> bool:
    """``name`` is a word of ``text`` (``text_unidecode`` is not said by ``text``)."""
    return bool(text) and re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text) is not None
