"""A benchmark task as data: ``tasks/<id>/task.toml``, ``problem.md`` and the hidden tests.

``task.toml`` keys:

* ``project``, ``registry`` (``pypi`` | ``npm``), ``base`` and ``fix`` (pinned versions), ``language``
  (``python`` | ``javascript``), ``kind`` (``upstream`` | ``injected`` | ``feature``), ``source`` (the
  upstream issue or changelog entry the task comes from; for a feature, what it asks for);
* ``fix_files``: globs (relative to the unpacked release) whose base-to-fix difference is the
  reference fix; ``base_patch``: a patch in the task directory applied to the base release (an
  injected bug: ``fix`` is then the same release, unpatched); ``solution``: a patch in the task
  directory that implements a feature request (``kind = "feature"``: the reference solution, written
  here; ``fix`` is the same release as ``base``; default ``solution.patch``);
* ``hidden_from_fix``: test files taken from the fix release at grading time; every file under the
  task's ``tests/`` directory is a hidden test written here, copied at the same relative path;
* ``pythonpath``: directories put on ``PYTHONPATH`` when grading (``src`` for a src layout);
* ``fail_to_pass`` / ``pass_to_pass``: test ids: a pytest node id (``tests/test_x.py::test_y``), or
  for JavaScript ``file::test name`` of ``node --test``; an id naming a file alone means every test in it.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

TASKS_DIR = Path(__file__).parent / "tasks"
KINDS = ("upstream", "injected", "feature")
LANGUAGES = ("python", "javascript")
REGISTRIES = ("pypi", "npm")


class TaskError(ValueError):
    """A task directory that does not describe a valid task."""


@dataclass(frozen=True)
class Task:
    """One benchmark task."""

    id: str
    dir: Path
    project: str
    registry: str
    base: str
    fix: str
    language: str
    kind: str
    source: str
    problem: str
    fail_to_pass: list[str]
    pass_to_pass: list[str]
    fix_files: list[str] = field(default_factory=list)
    hidden_from_fix: list[str] = field(default_factory=list)
    base_patch: str = ""
    #: A feature's reference solution: a patch (in the task directory) applied to the base tree.
    solution: str = ""
    pythonpath: list[str] = field(default_factory=list)
    #: Seconds the test run may take when grading.
    test_timeout: float = 300.0

    @property
    def local_tests(self) -> list[Path]:
        """The hidden tests written here (relative paths under the task's ``tests/``)."""
        root = self.dir / "tests"
        if not root.is_dir():
            return []
        return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())

    def test_files(self) -> set[str]:
        """Every workspace path the grading replaces: hidden tests and the files the test ids name."""
        out = {str(p) for p in self.local_tests} | set(self.hidden_from_fix)
        out |= {test_file(i) for i in self.fail_to_pass + self.pass_to_pass}
        return out

    def is_fix_file(self, rel: str) -> bool:
        return any(fnmatch.fnmatch(rel, g) for g in self.fix_files)


def test_file(test_id: str) -> str:
    """The file a test id names."""
    return test_id.split("::", 1)[0]


def load(task_dir: Path) -> Task:
    """Read one task directory; :class:`TaskError` names what is wrong."""
    path = task_dir / "task.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TaskError(f"{path}: {exc}") from exc
    try:
        problem = (task_dir / "problem.md").read_text().strip()
    except OSError as exc:
        raise TaskError(f"{task_dir}: no problem.md ({exc})") from exc

    def need(key: str) -> str:
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise TaskError(f"{path}: '{key}' must be a non-empty string")
        return str(raw[key])

    def strs(key: str) -> list[str]:
        val = raw.get(key, [])
        if not isinstance(val, list) or not all(isinstance(x, str) for x in val):
            raise TaskError(f"{path}: '{key}' must be a list of strings")
        return list(val)

    task = Task(id=task_dir.name, dir=task_dir, project=need("project"), registry=need("registry"),
                base=need("base"), fix=need("fix"), language=need("language"), kind=need("kind"),
                source=need("source"), problem=problem, fail_to_pass=strs("fail_to_pass"),
                pass_to_pass=strs("pass_to_pass"), fix_files=strs("fix_files"),
                hidden_from_fix=strs("hidden_from_fix"), base_patch=str(raw.get("base_patch", "")),
                solution=str(raw.get("solution", "solution.patch" if raw.get("kind") == "feature" else "")),
                pythonpath=strs("pythonpath"), test_timeout=float(raw.get("test_timeout", 300.0)))
    for key, allowed in (("kind", KINDS), ("language", LANGUAGES), ("registry", REGISTRIES)):
        if getattr(task, key) not in allowed:
            raise TaskError(f"{path}: '{key}' must be one of {', '.join(allowed)}")
    if not task.fail_to_pass:
        raise TaskError(f"{path}: 'fail_to_pass' is empty")
    if task.kind == "injected" and not task.base_patch:
        raise TaskError(f"{path}: an injected task needs 'base_patch'")
    if task.kind == "feature" and (task.fix != task.base or not (task_dir / task.solution).is_file()):
        raise TaskError(f"{path}: a feature task needs 'fix' equal to 'base' and its solution patch "
                        f"({task.solution or 'solution.patch'})")
    if task.kind == "upstream" and not task.fix_files:
        raise TaskError(f"{path}: an upstream task needs 'fix_files'")
    return task


def load_all(root: Path = TASKS_DIR, pattern: str = "*") -> list[Task]:
    """Every task under ``root`` whose id matches the glob ``pattern``, sorted by id."""
    dirs = sorted(p for p in root.iterdir() if (p / "task.toml").is_file()) if root.is_dir() else []
    return [load(d) for d in dirs if fnmatch.fnmatch(d.name, pattern)]
