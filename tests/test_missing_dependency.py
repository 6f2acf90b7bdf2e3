"""A verify command that fails because its environment lacks a dependency: the run stops with one
line naming it and what to do (exit 5, reason ``missing_dependency``), instead of spending its
re-plans on something no plan can install; a module the run itself should have made is a normal
failure and re-planned. Real subprocesses of ``agent run`` with the verify command in the sandbox.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from test_first_contact import DONE, WRITE, agent, one_error_line

from agentcli.engine.verify import missing_dependency
from agentcli.errors import ExitCode

PYTEST = f"{sys.executable} -m pytest -q -p no:cacheprovider"


def events(ws: Path, run_id: str) -> list[dict[str, object]]:
    path = ws / ".agent" / "runs" / run_id / "events.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_a_dependency_the_environment_lacks_stops_the_run_with_one_line(workspace: Path) -> None:
    """The reproduction: the project's declared dependency is not installed where the verify
    command runs; every test fails to import it. No re-plan is spent: one line says what is missing
    and what to do, exit 5, and the record replays identical."""
    (workspace / "slug").mkdir()
    (workspace / "slug" / "__init__.py").write_text(
        "from text_unidecode_zz import unidecode\n\ndef slugify(s):\n    return unidecode(s).lower()\n")
    (workspace / "test_slug.py").write_text("from slug import slugify\n\ndef test_it():\n"
                                           "    assert slugify('A') == 'a'\n")
    (workspace / "setup.py").write_text("from setuptools import setup\nsetup(name='slug', "
                                        "install_requires=['text-unidecode-zz'])\n")
    proc = agent(workspace, "run", "--yes", "--json", "write a note about the slug tests",
                 script=[WRITE, DONE], env={"AGENT_VERIFY__COMMAND": PYTEST})
    assert proc.returncode == ExitCode.ENVIRONMENT == 5, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["status"], out["reason"], out["exit_code"]) == ("FAILED", "missing_dependency", 5)
    assert out["verify"]["status"] == "failed" and "No module named 'text_unidecode_zz'" in out["verify"]["output"]
    assert "`text_unidecode_zz`" in out["answer"] and "[verify] command" in out["answer"]
    ev = events(workspace, out["run_id"])
    assert sum(e["type"] == "plan_created" for e in ev) == 1  # no re-plan, no investigation
    [verify] = [e for e in ev if e["type"] == "verify"]
    assert verify["data"]["missing"] == {"kind": "python", "name": "text_unidecode_zz",
                                         "evidence": "E   ModuleNotFoundError: No module named 'text_unidecode_zz'"}
    assert [e["data"]["to"] for e in ev if e["type"] == "transition"][-3:] == ["VERIFYING", "FAILED", "IDLE"]
    finished = ev[-1]["data"]
    assert ev[-1]["type"] == "run_finished" and (finished["reason"], finished["exit_code"]) == ("missing_dependency", 5)
    # The text report says the same on one line, after the report.
    (workspace / "note.txt").unlink()
    text = agent(workspace, "run", "--yes", "write a note about the slug tests", script=[WRITE, DONE],
                 env={"AGENT_VERIFY__COMMAND": PYTEST})
    assert text.returncode == 5 and "verify: FAILED" in text.stdout
    line = one_error_line(text)
    assert line.startswith("error: missing_dependency: the Python module `text_unidecode_zz` is not installed "
                           "where the verify command runs; a new plan cannot install it: ")
    assert "install it in the environment the verify command uses" in line and "[verify] command" in line
    replay = agent(workspace, "replay", out["run_id"])
    assert replay.returncode == 0 and "identical" in replay.stdout, replay.stdout + replay.stderr


def test_a_module_the_change_should_have_made_is_re_planned(workspace: Path) -> None:
    """The task names the module the verify command cannot import: the run's own work, not the
    environment's. The failure goes to the re-planner, whose plan makes it; the run completes."""
    helper = {"steps": [{"title": "Write helper", "tool": "write_file",
                         "args": {"path": "helper.py", "content": "def greet():\n    return 'hi'\n"}}]}
    proc = agent(workspace, "run", "--yes", "--json", "add a module helper with a function greet",
                 script=[WRITE, DONE, helper, DONE],
                 env={"AGENT_VERIFY__COMMAND": f"{sys.executable} -c 'import helper; print(helper.greet())'"})
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["status"] == "COMPLETE" and out["verify"]["status"] == "passed"
    verifies = [e["data"] for e in events(workspace, out["run_id"]) if e["type"] == "verify"]
    assert [v["status"] for v in verifies] == ["failed", "passed"] and "missing" not in verifies[0]


def test_what_counts_as_missing_and_what_is_the_runs_own_work() -> None:
    py = ("Traceback (most recent call last):\n  File \"t.py\", line 1\n"
          "ModuleNotFoundError: No module named 'yaml'\n")
    dep = missing_dependency(py, 1)
    assert dep is not None and (dep.kind, dep.name, dep.top) == ("python", "yaml", "yaml")
    # A module inside a package that was found: the project's own package, most likely.
    assert missing_dependency("E   ModuleNotFoundError: No module named 'mypkg.helpers'\n", 1) is None
    assert missing_dependency(py, 1, task="parse the config with yaml") is None  # the task names it
    assert missing_dependency(py, 1, paths=["src/yaml/loader.py"]) is None  # the run's own package
    assert missing_dependency(py, 1, paths=["yaml.py"]) is None
    assert missing_dependency(py, 1, added="+import yaml\n") is None  # the change added the import
    assert missing_dependency(py, 1, task="parse the config with pyyaml", added="+x = 1") is not None
    node = "node:internal/modules/cjs/loader:1147\nError: Cannot find module 'lodash/fp'\nRequire stack:\n"
    dep = missing_dependency(node, 1)
    assert dep is not None and (dep.kind, dep.top) == ("node", "lodash")
    esm = "Error [ERR_MODULE_NOT_FOUND]: Cannot find package '@scope/pkg' imported from /w/a.mjs"
    assert (d := missing_dependency(esm, 1)) is not None and d.top == "@scope/pkg"
    assert missing_dependency("Error: Cannot find module './util'\n", 1) is None  # a workspace file
    assert missing_dependency("Error: Cannot find module '/w/src/util.js'\n", 1) is None
    for shell in ("sh: 1: tox: not found", "bash: tox: command not found", "bash: line 1: tox: command not found",
                  "/bin/sh: tox: command not found", "env: 'tox': No such file or directory"):
        dep = missing_dependency(f"{shell}\n", 127)
        assert dep is not None and (dep.kind, dep.name) == ("command", "tox"), shell
        assert missing_dependency(f"{shell}\n", 1) is None  # only the shell's own exit code says so
    assert missing_dependency("sh: 1: ./run_tests.sh: not found\n", 127) is None  # a workspace script
    assert missing_dependency("1 failed, 3 passed\n", 1) is None
    assert missing_dependency("ImportError: cannot import name 'x' from 'pkg'\n", 1) is None
