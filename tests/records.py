"""The committed run records of this release (tests/fixtures/records/<version>/<name>/), and how
they are made: ``make records`` (``python -m tests.records``) records them again.

Each is a real `agent run` through the CLI with the scripted model answering (the planner, llm
steps, the reviewer, the answer shaper), in a small workspace made here. tests/test_fixture_records.py
replays every committed one: a change that breaks them breaks the replay of every record users
already have. Re-record on purpose, when a prompt or a schema changed (CHANGELOG.md says which), and
commit the new records with that change.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent / "fixtures" / "records"

#: What every recorded run runs with: the scripted model, no memory (no embedder, no store).
ENV = {"AGENT_MODEL": "test/scripted", "AGENT_MEMORY__ENABLED": "false"}


def complete(answer: str) -> dict[str, str]:
    return {"outcome": "complete", "answer": answer, "reason": ""}


@dataclass(frozen=True)
class Scenario:
    """One recorded run: the workspace's files, the task and flags, the model's answers in order."""

    name: str
    files: dict[str, str]
    args: list[str]
    answers: list[Any]
    #: Files the scenario writes before the run, outside the workspace (name -> content).
    extra: dict[str, str] = field(default_factory=dict)


_SCHEMA = {"type": "object", "properties": {"files": {"type": "array", "items": {"type": "string"}}},
           "required": ["files"], "additionalProperties": False}

SCENARIOS: tuple[Scenario, ...] = (
    # A read, an llm step on its output, the reviewer's verdict.
    Scenario(
        "read-and-summarise",
        {"main.py": "print('hi')\n", "util.py": "X = 1\n", "README.md": "# demo\n"},
        ["run", "say what main.py does", "--yes"],
        [{"steps": {
            "s1": {"call": {"tool": "list_files", "args": {"pattern": "**/*.py"}}, "depends_on": [], "title": "List"},
            "s2": {"call": {"tool": "read_file", "args": {"path": "main.py"}}, "depends_on": [], "title": "Read"},
            "s3": {"prompt": "Say in one line what this does:\n{{s2.output}}", "depends_on": ["s2"],
                   "title": "Summarise"}}},
         "It prints hi.",
         complete("main.py prints hi.")],
    ),
    # A change: a failed step and a re-plan, an edits answer applied, the workspace's changes reviewed.
    Scenario(
        "edit-after-replan",
        {"util.py": "X = 1\n"},
        ["run", "set X to 2 in util.py", "--yes"],
        [{"steps": {
            "s1": {"call": {"tool": "read_file", "args": {"path": "utils.py"}}, "depends_on": [], "title": "Read"}}},
         {"outcome": "replan", "answer": "", "reason": "utils.py does not exist; the file is util.py"},
         {"steps": {  # a re-plan's steps are numbered on from the plan's
             "s2": {"call": {"tool": "read_file", "args": {"path": "util.py"}}, "depends_on": [], "title": "Read"},
             "s3": {"prompt": "Set X to 2:\n{{s2.output}}", "answer": "edits", "depends_on": ["s2"], "title": "Edit"},
             "s4": {"call": {"tool": "apply_edits", "args": {"edits": "{{s3.output}}"}}, "depends_on": ["s3"],
                    "title": "Apply"}}},
         {"edits": [{"path": "util.py", "search": "X = 1", "replace": "X = 2"}]},
         complete("X is 2 in util.py.")],
    ),
    # The work is right, its check ran wrong: the review gives the command that checks it, which runs
    # as the re-plan's step (no planner call), and a second review completes the run.
    Scenario(
        "check-from-review",
        {"data.txt": "one line\n"},
        ["run", "check that data.txt is in place", "--yes"],
        [{"steps": {"s1": {"call": {"tool": "run_shell", "args": {"command": "cat missing.txt"}}, "depends_on": [],
                           "title": "Check"}}},
         {"outcome": "replan", "answer": "", "reason": "the check read the wrong file; run `cat data.txt`",
          "commands": ["cat data.txt"]},
         complete("data.txt is in place: one line.")],
    ),
    # The final answer shaped to a JSON Schema (one re-ask).
    Scenario(
        "answer-schema",
        {"main.py": "print('hi')\n", "util.py": "X = 1\n"},
        ["run", "list the python files", "--yes", "--output-schema", "{extra}/schema.json"],
        [{"steps": {"s1": {"call": {"tool": "list_files", "args": {"pattern": "**/*.py"}}, "depends_on": [],
                           "title": "List"}}},
         complete("main.py and util.py"), {"files": "main.py"}, {"files": ["main.py", "util.py"]}],
        extra={"schema.json": json.dumps(_SCHEMA)},
    ),
)


def version_dir() -> Path:
    from agentcli import __version__

    return ROOT / __version__


def record(scenario: Scenario, workspace: Path, extra: Path,
           invoke: Callable[[list[str], list[Any]], Any]) -> Path:
    """Run ``scenario`` in ``workspace`` (empty) through the CLI; the run's events.jsonl."""
    for name, text in scenario.files.items():
        (workspace / name).write_text(text)
    for name, text in scenario.extra.items():
        (extra / name).write_text(text)
    args = [a.replace("{extra}", str(extra)) for a in scenario.args]
    result = invoke(args, list(scenario.answers))
    if result.exit_code != 0:
        raise RuntimeError(f"{scenario.name}: agent {' '.join(args)} exited {result.exit_code}: {result.output}")
    runs = sorted((workspace / ".agent" / "runs").iterdir())
    return runs[-1] / "events.jsonl"


def cli_invoke(args: list[str], answers: list[Any]) -> Any:
    from typer.testing import CliRunner

    from agentcli.cli.app import app
    from agentcli.cli.commands.common import State
    from agentcli.models.fakes import ScriptedModel

    return CliRunner().invoke(app, args, obj=State(backend=ScriptedModel(answers), environ=ENV))


#: The committed session of this release (tests/fixtures/sessions/<version>-two-turns/): two turns of
#: one conversation, each ``(args, the model's answers)``; tests/test_sessions.py reads, replays and
#: resumes it, and makes the same two turns itself.
SESSION_TURNS: tuple[tuple[list[str], list[Any]], ...] = (
    (["run", "add a function greet to greet.py", "--yes"],
     [{"steps": {"s1": {"call": {"tool": "write_file", "args": {
         "path": "greet.py", "content": "def greet(name):\n    return 'hi ' + name\n"}},
         "depends_on": [], "title": "Add greet"}}},
      complete("Added greet() to greet.py.")]),
    (["run", "--continue", "rename the function you just added to welcome", "--yes"],
     [{"steps": {"s1": {"call": {"tool": "edit_file", "args": {
         "path": "greet.py", "search": "def greet(", "replace": "def welcome("}},
         "depends_on": [], "title": "Edit"}}},
      complete("Renamed greet to welcome.")]),
)


def record_session(target: Path) -> None:
    """The two turns of :data:`SESSION_TURNS` in an empty workspace; its session and runs (their
    events and call logs) copied to ``target``."""
    import os

    with tempfile.TemporaryDirectory(prefix="agentcli-record-") as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        cwd = Path.cwd()
        os.chdir(ws)
        try:
            for args, answers in SESSION_TURNS:
                result = cli_invoke(args, list(answers))
                if result.exit_code != 0:
                    raise RuntimeError(f"session: agent {' '.join(args)} exited {result.exit_code}: {result.output}")
        finally:
            os.chdir(cwd)
        shutil.rmtree(target, ignore_errors=True)
        data = ws / ".agent"
        shutil.copytree(data / "sessions", target / "sessions")
        for run in sorted((data / "runs").iterdir()):
            (target / "runs" / run.name).mkdir(parents=True)
            for name in ("events.jsonl", "llm_calls.jsonl"):
                shutil.copyfile(run / name, target / "runs" / run.name / name)
    print(f"recorded {target.relative_to(ROOT.parents[2])}", file=sys.stderr)


def main() -> int:
    import os

    os.environ["AGENT_ALLOW_MODEL_REQUESTS"] = "0"  # the scripted model only
    target = version_dir()
    for scenario in SCENARIOS:
        with tempfile.TemporaryDirectory(prefix="agentcli-record-") as tmp:
            ws, extra = Path(tmp) / "ws", Path(tmp) / "extra"
            ws.mkdir()
            extra.mkdir()
            cwd = Path.cwd()
            os.chdir(ws)
            try:
                events = record(scenario, ws, extra, cli_invoke)
            finally:
                os.chdir(cwd)
            out = target / scenario.name
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            shutil.copyfile(events, out / "events.jsonl")
            print(f"recorded {out.relative_to(ROOT.parents[2])}", file=sys.stderr)
    from agentcli import __version__

    record_session(ROOT.parent / "sessions" / f"{__version__}-two-turns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
