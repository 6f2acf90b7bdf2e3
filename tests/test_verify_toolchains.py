"""A project's own test command as the verify command, in the real sandbox: `npm test` on a JavaScript
project whose dependencies are installed (node_modules, a lock file, a posttest that checks them)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models.fakes import ScriptedModel
from agentcli.tools.sandbox import sandbox_status

ENV = {"AGENT_MODEL": "test/scripted", "AGENT_MEMORY__ENABLED": "false", "AGENT_PLANNER__SURVEY_CALLS": "0"}


def _npm(ws: Path, *args: str) -> None:
    subprocess.run(["npm", *args, "--offline", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ws, check=True,
                   capture_output=True, timeout=120)


def js_project(ws: Path) -> None:
    """A project with one dependency installed from a tarball in the workspace (no network)."""
    dep = ws / "vendor" / "tiny-add"
    dep.mkdir(parents=True)
    (dep / "package.json").write_text(json.dumps({"name": "tiny-add", "version": "1.0.0", "main": "index.js"}))
    (dep / "index.js").write_text("module.exports = (a, b) => a + b;\n")
    _npm(dep, "pack", "--pack-destination", "..")
    (ws / "package.json").write_text(json.dumps({
        "name": "proj", "version": "1.0.0", "private": True,
        # posttest reads node_modules and the lock file: the dependencies must be installed as declared.
        "scripts": {"test": "node test.js", "posttest": "npm ls --offline"}}))
    (ws / "lib.js").write_text("const add = require('tiny-add');\nmodule.exports = { twice: (x) => add(x, x) };\n")
    (ws / "test.js").write_text("const { twice } = require('./lib');\n"
                                "require('assert').strictEqual(twice(2), 4);\nconsole.log('tests pass');\n")
    _npm(ws, "install", "./vendor/tiny-add-1.0.0.tgz")
    assert (ws / "node_modules" / "tiny-add" / "index.js").is_file()


@pytest.mark.skipif(shutil.which("npm") is None or not sandbox_status().available, reason="needs npm and bwrap")
def test_npm_test_as_the_verify_command_passes_in_the_sandbox(workspace: Path) -> None:
    js_project(workspace)
    plan = {"steps": {"s1": {"call": {"tool": "write_file", "args": {"path": "NOTES.md", "content": "checked\n"}},
                             "depends_on": [], "title": "Write notes"}}}
    review = {"outcome": "complete", "answer": "notes written", "reason": ""}
    r = CliRunner().invoke(app, ["run", "write notes", "--yes", "--json"],
                           obj=State(backend=ScriptedModel([plan, review]),
                                     environ={**ENV, "AGENT_VERIFY__COMMAND": "npm test"}))
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["status"] == "COMPLETE"
    verify = out["verify"]
    assert verify["command"] == "npm test" and verify["status"] == "passed" and verify["exit_code"] == 0, verify
    assert "tests pass" in verify["output"] and "tiny-add@1.0.0" in verify["output"]
