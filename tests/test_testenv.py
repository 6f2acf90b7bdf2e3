"""The workspace summary's test-environment note: real workspaces with the traps that broke the
project's own test command on real tasks (a pyenv version not installed, pytest options of a plugin
not installed, a src layout shadowed by an installed copy, an npm test runner or files missing),
seen in the planner request the fake model receives from `agent plan`; the command the note gives
is run for real where it can be."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
from test_plan_cli import DRAFT
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.config import load_settings
from agentcli.models.fakes import ScriptedModel
from agentcli.planning.prompt import workspace_summary
from agentcli.planning.testenv import NOTE_HEADING, ShellView, environment_notes
from agentcli.tools import sandbox
from agentcli.tools.sandbox import sandbox_status

pytestmark = pytest.mark.skipif(not sandbox_status().available, reason="the checks run in the OS sandbox")

runner = CliRunner()


@pytest.fixture(autouse=True)
def _path_read_once() -> Any:
    # The sandbox reads PATH once a process for the toolchains under /tmp it keeps visible; these
    # tests set PATH each, as a process starting afresh would.
    sandbox._toolchain_tmp_paths.cache_clear()
    yield
    sandbox._toolchain_tmp_paths.cache_clear()
SITE = Path(importlib.util.find_spec("pytest").origin or "").parent.parent  # type: ignore[union-attr]


def planner_request(monkeypatch: pytest.MonkeyPatch, path_first: list[Path]) -> str:
    """The user message of the planner request `agent plan` sends, with ``path_first`` on PATH first."""
    monkeypatch.setenv("PATH", os.pathsep.join([*map(str, path_first), os.environ.get("PATH", "")]))
    model = ScriptedModel([DRAFT])
    result = runner.invoke(app, ["plan", "run the tests"], obj=State(backend=model,
                                                                         environ={"AGENT_MODEL": "test/scripted"}))
    assert result.exit_code == 0, result.output
    return str(model.requests[0].messages[-1]["content"])


def note_of(text: str) -> list[str]:
    """The note's lines in a request ([] when it has none)."""
    if NOTE_HEADING not in text:
        return []
    tail = text.split(NOTE_HEADING + "\n", 1)[1].split("\n\n", 1)[0]
    return [line.removeprefix("- ") for line in tail.splitlines()]


def notes(ws: Path, path_first: list[Path], monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> list[str]:
    monkeypatch.setenv("PATH", os.pathsep.join([*map(str, path_first), os.environ.get("PATH", "")]))
    cfg = load_settings(workspace=ws, environ={}, use_user_config=False, overrides=overrides).config
    return environment_notes(ws, ShellView.from_config(cfg, ws, ws / ".agent"))


def run_cmd(command: str, ws: Path, path_first: list[Path]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "PYTHON", "COV_", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join([*map(str, path_first), os.environ.get("PATH", "")])
    return subprocess.run(["/bin/sh", "-c", command], cwd=ws, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def the_command(lines: list[str]) -> str:
    m = re.fullmatch(r"run Python tests here as `(.+)`", lines[-1])
    assert m, lines
    return m.group(1)


# ------------------------------------------------------------------ pyenv


def fake_pyenv(root: Path, *, installed: dict[str, bool], global_version: str) -> Path:
    """pyenv's documented layout: ``shims/`` (a shim names its root), ``versions/<name>/bin`` and
    the global ``version`` file; ``installed`` maps a version to whether it has pytest."""
    (root / "shims").mkdir(parents=True)
    for name in ("python", "python3", "pytest"):
        shim = root / "shims" / name
        shim.write_text('#!/usr/bin/env bash\nset -e\nprogram="${0##*/}"\n\n'
                        f'export PYENV_ROOT="{root}"\nexec "{root}/libexec/pyenv" exec "$program" "$@"\n')
        shim.chmod(0o755)
    for version, with_pytest in installed.items():
        bin_ = root / "versions" / version / "bin"
        bin_.mkdir(parents=True)
        (bin_ / "python").symlink_to(sys.executable)
        if with_pytest:
            (bin_ / "pytest").write_text("#!/bin/sh\n")
    (root / "version").write_text(f"{global_version}\n")
    return root / "shims"


def test_a_python_version_file_naming_a_version_pyenv_has_not_installed(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shims = fake_pyenv(tmp_path / "pyenv", installed={"3.11.7": True, "3.12.1": False}, global_version="3.11.7")
    (workspace / ".python-version").write_text("sqlparse\n")
    (workspace / "pyproject.toml").write_text('[project]\nname = "sqlparse"\n')
    lines = note_of(planner_request(monkeypatch, [shims]))
    assert lines == [
        "`.python-version` names `sqlparse`, which pyenv has not installed here: `python` and `pytest` fail; "
        "`PYENV_VERSION=3.11.7` works (installed, with pytest)",
        "run Python tests here as `PYENV_VERSION=3.11.7 python -m pytest`",
    ]


def test_pyenv_picks_an_installed_version_with_pytest_when_the_global_one_has_none(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shims = fake_pyenv(tmp_path / "pyenv", installed={"3.9.18": True, "3.12.1": False}, global_version="3.12.1")
    (workspace / ".python-version").write_text("3.8.5/envs/sqlparse\n")
    (workspace / "setup.py").write_text("")
    [line, run] = notes(workspace, [shims], monkeypatch)
    assert line.startswith("`.python-version` names `3.8.5/envs/sqlparse`, which pyenv has not installed here")
    assert line.endswith("`PYENV_VERSION=3.9.18` works (installed, with pytest)")
    assert run == "run Python tests here as `PYENV_VERSION=3.9.18 python -m pytest`"


@pytest.mark.parametrize("named", ["3.11", "python-3.11.7", "3.11.7", "system"])
def test_a_version_pyenv_resolves_is_no_trap(named: str, workspace: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    shims = fake_pyenv(tmp_path / "pyenv", installed={"3.11.7": True}, global_version="3.11.7")
    (workspace / ".python-version").write_text(f"# the project's\n{named}\n")
    (workspace / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    text = planner_request(monkeypatch, [shims])
    assert NOTE_HEADING not in text
    assert text.count("# Workspace\n") == 1


def test_a_pyenv_version_the_commands_are_given_is_the_user_s_choice(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # PYENV_VERSION reaches a command only when the user lets it (tools.shell_env_allow); pyenv then
    # ignores .python-version.
    shims = fake_pyenv(tmp_path / "pyenv", installed={"3.11.7": True}, global_version="3.11.7")
    (workspace / ".python-version").write_text("gone\n")
    (workspace / "setup.py").write_text("")
    monkeypatch.setenv("PYENV_VERSION", "3.11.7")
    assert notes(workspace, [shims], monkeypatch, tools={"shell_env_allow": ["PYENV_VERSION"]}) == []
    assert notes(workspace, [shims], monkeypatch)[0].startswith("`.python-version` names `gone`")


# ------------------------------------------------------------------ pytest options of a missing plugin


def venv_without_pytest_cov(ws: Path) -> Path:
    """A real virtualenv in the workspace (as a project's own .venv on PATH is) that has pytest
    but not pytest-cov: the agent's own pytest linked into its site-packages."""
    env = ws / ".venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env)
    [site] = (env / "lib").glob("python3*/site-packages")
    wanted = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "py.py")
    for entry in SITE.iterdir():  # the modules and their metadata (pytest asks for pluggy's version)
        if entry.name.lower() in wanted or (entry.name.lower().split("-")[0] in wanted \
                and entry.name.endswith(".dist-info")):
            (site / entry.name).symlink_to(entry)
    return env / "bin"


CONFIGS = {
    "setup.cfg": "[tool:pytest]\ntestpaths = tests\naddopts =\n    --import-mode=importlib\n    --no-cov-on-fail\n"
                 "    --cov=demo\n    --cov-report=term-missing\n",
    "pyproject.toml": '[project]\nname = "demo"\n\n[tool.pytest.ini_options]\naddopts = "-ra --cov=demo"\n',
    "tox.ini": "[tox]\nenvlist = py3\n\n[pytest]\naddopts = --cov demo -p pytest_randomly -n 2\n",
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_pytest_options_of_a_plugin_that_is_not_installed(config: str, workspace: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (workspace / config).write_text(CONFIGS[config])
    if config != "pyproject.toml":
        (workspace / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    (workspace / "tests").mkdir()
    (workspace / "tests" / "test_demo.py").write_text("def test_it():\n    assert True\n")
    bin_ = venv_without_pytest_cov(workspace)
    lines = note_of(planner_request(monkeypatch, [bin_]))
    if config == "tox.ini":
        assert lines[0] == ("pytest's addopts (tox.ini) use `--cov`, `-p pytest_randomly`, `-n` but pytest-cov, "
                            "pytest-randomly, pytest-xdist are not installed: pytest fails at start")
    else:
        assert lines[0] == (f"pytest's addopts ({config}) use `--cov` but pytest-cov is not installed: pytest "
                            "fails at start")
    assert lines[1:] == ['run Python tests here as `python -m pytest -o addopts=""`']
    # Checked with the real pytest: as the project says it fails, as the note says it passes.
    plain = run_cmd("python -m pytest -q", workspace, [bin_])
    assert plain.returncode == 4 and re.search("unrecognized arguments|Error importing plugin", plain.stderr)
    fixed = run_cmd(the_command(lines), workspace, [bin_])
    assert fixed.returncode == 0 and "1 passed" in fixed.stdout, fixed.stdout + fixed.stderr


def test_pytest_reads_the_first_configuration_it_finds(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest.ini wins even without a [pytest] section: setup.cfg's options are then never used.
    bin_ = venv_without_pytest_cov(workspace)
    (workspace / "setup.cfg").write_text(CONFIGS["setup.cfg"])
    (workspace / "pytest.ini").write_text("# nothing\n")
    assert notes(workspace, [bin_], monkeypatch) == []
    (workspace / "pytest.ini").unlink()
    (workspace / "pyproject.toml").write_text('[project\nname = "broken"\n')  # unreadable: the next one counts
    assert notes(workspace, [bin_], monkeypatch)[0].startswith("pytest's addopts (setup.cfg) use `--cov`")


def test_pytest_options_of_an_installed_plugin_are_no_trap(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The agent's own environment has pytest-cov.
    (workspace / "setup.cfg").write_text(CONFIGS["setup.cfg"])
    assert notes(workspace, [Path(sys.executable).parent], monkeypatch) == []


# ------------------------------------------------------------------ a src layout shadowed by an installed copy


def src_layout(ws: Path, name: str, pyproject: str = "") -> None:
    (ws / "src" / name).mkdir(parents=True)
    (ws / "src" / name / "__init__.py").write_text("WHERE = 'workspace'\n")
    (ws / "pyproject.toml").write_text(f'[project]\nname = "{name}"\n' + pyproject)
    (ws / "tests").mkdir()
    (ws / "tests" / "test_where.py").write_text(
        f"import {name}\n\ndef test_the_workspace_copy():\n    assert getattr({name}, 'WHERE', None) == 'workspace'\n")


def test_a_src_package_also_installed_outside_the_workspace(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # click is installed in the agent's own environment (its python first on PATH), as it was in the
    # interpreter of the real task.
    src_layout(workspace, "click")
    bin_ = Path(sys.executable).parent
    lines = note_of(planner_request(monkeypatch, [bin_]))
    spec = importlib.util.find_spec("click")
    assert spec is not None and spec.origin is not None
    site = Path(spec.origin).parent.parent
    assert lines == [
        f"`src/click` is also installed outside the workspace ({site}): tests import that copy",
        "run Python tests here as `PYTHONPATH=src python -m pytest`",
    ]
    plain = run_cmd("python -m pytest -q -p no:cacheprovider", workspace, [bin_])
    assert plain.returncode != 0
    fixed = run_cmd(the_command(lines) + " -q -p no:cacheprovider", workspace, [bin_])
    assert fixed.returncode == 0 and "1 passed" in fixed.stdout, fixed.stdout + fixed.stderr


def test_a_src_layout_pytest_or_a_conftest_already_puts_on_the_path_is_no_trap(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_ = Path(sys.executable).parent
    src_layout(workspace, "click", '\n[tool.pytest.ini_options]\npythonpath = ["src"]\n')
    assert notes(workspace, [bin_], monkeypatch) == []
    other = tmp_path / "other"
    other.mkdir()
    src_layout(other, "click")
    (other / "conftest.py").write_text("import sys\nsys.path.insert(0, 'src')\n")
    assert notes(other, [bin_], monkeypatch) == []


def test_every_trap_at_once_gives_one_command(workspace: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    shims = fake_pyenv(tmp_path / "pyenv", installed={"3.11.7": True}, global_version="3.11.7")
    # The pyenv version's python is the agent's own (which has click, not pytest-timeout).
    src_layout(workspace, "click", '\n[tool.pytest.ini_options]\naddopts = "--timeout=30"\n')
    (workspace / ".python-version").write_text("click-dev\n")
    lines = notes(workspace, [shims], monkeypatch)
    assert len(lines) == 4
    assert lines[0].startswith("`.python-version` names `click-dev`")
    assert lines[1].startswith("pytest's addopts (pyproject.toml) use `--timeout` but pytest-timeout is not")
    assert lines[2].startswith("`src/click` is also installed outside the workspace")
    assert lines[3] == 'run Python tests here as `PYENV_VERSION=3.11.7 PYTHONPATH=src python -m pytest -o addopts=""`'


# ------------------------------------------------------------------ npm


def package(ws: Path, scripts: dict[str, str]) -> None:
    (ws / "package.json").write_text(json.dumps({"name": "demo", "version": "1.0.0", "scripts": scripts}))


def test_npm_test_naming_a_runner_and_files_that_are_not_here(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package(workspace, {"test": "tape test/*.js", "pretest": "npm run lint", "lint": "standard"})
    (workspace / "index.js").write_text("module.exports = 1\n")
    [line] = note_of(planner_request(monkeypatch, []))
    assert line.startswith("`npm test` runs `standard`, `tape`, not installed here (no node_modules/, not on PATH); "
                           "names `test/*.js`, which matches nothing here")
    if shutil.which("node"):
        assert re.search(r"; `node --test <files>` \(node v\d+[.\d]*, node:test\) needs no package$", line), line


def test_npm_test_with_its_runner_installed_and_its_files_present_is_no_trap(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package(workspace, {"test": "NODE_ENV=test tape test/*.js && node check.js", "posttest": "echo done"})
    (workspace / "node_modules" / ".bin").mkdir(parents=True)
    (workspace / "node_modules" / ".bin" / "tape").write_text("")
    (workspace / "test").mkdir()
    (workspace / "test" / "a.js").write_text("")
    (workspace / "check.js").write_text("")
    assert NOTE_HEADING not in planner_request(monkeypatch, [])


def test_npm_test_s_scripts_are_followed_as_npm_runs_them(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pretest -> `npm run build` (with its prebuild), test, posttest -> `npm run lint`.
    package(workspace, {"pretest": "npm run build", "prebuild": "rimraf dist", "build": "tsc -p .",
                        "test": "cross-env NODE_ENV=test npx mocha './spec/**/*.spec.js' && node ./check.js",
                        "posttest": "npm run lint", "lint": "eslint ."})
    (workspace / "node_modules" / ".bin").mkdir(parents=True)
    for name in ("mocha", "tsc"):
        (workspace / "node_modules" / ".bin" / name).write_text("")
    (workspace / "check.js").write_text("")
    [line] = notes(workspace, [], monkeypatch)
    assert line.startswith("`npm test` runs `rimraf`, `eslint`, not installed here (not in node_modules/.bin, not "
                           "on PATH); names `./spec/**/*.spec.js`, which matches nothing here")
    (workspace / "spec" / "a").mkdir(parents=True)
    (workspace / "spec" / "a" / "x.spec.js").write_text("")
    for name in ("rimraf", "eslint"):
        (workspace / "node_modules" / ".bin" / name).write_text("")
    assert notes(workspace, [], monkeypatch) == []


def test_npm_s_placeholder_test_script(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package(workspace, {"test": 'echo "Error: no test specified" && exit 1'})
    assert notes(workspace, [], monkeypatch) == [
        "`npm test` is npm's placeholder (it only exits 1): the project has no test command"]


# ------------------------------------------------------------------ clean workspaces, and what is never done


def test_a_clean_workspace_gets_no_note_and_the_same_summary(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workspace / "pyproject.toml").write_text('[project]\nname = "demo"\n\n[tool.pytest.ini_options]\n'
                                              'addopts = "-q --strict-markers"\n')
    (workspace / "demo.py").write_text("X = 1\n")
    package(workspace, {"test": "node --test"})
    cfg = load_settings(workspace=workspace, environ={}, use_user_config=False).config
    view = ShellView.from_config(cfg, workspace, workspace / ".agent")
    assert workspace_summary(workspace, workspace / ".agent", shell=view) == workspace_summary(workspace,
                                                                                              workspace / ".agent")


def test_the_checks_never_run_the_workspace_s_code_nor_read_outside_it(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')\n"
    src_layout(workspace, "click")
    (workspace / "src" / "click" / "__init__.py").write_text(code)
    (workspace / "conftest.py").write_text(code)
    (workspace / "sitecustomize.py").write_text(code)
    (workspace / "usercustomize.py").write_text(code)
    lines = notes(workspace, [Path(sys.executable).parent], monkeypatch)
    assert lines and lines[0].startswith("`src/click` is also installed")
    assert not marker.exists()
    # A configuration that is a link to a file outside the workspace is not read.
    outside = tmp_path / "outside.cfg"
    outside.write_text(CONFIGS["setup.cfg"])
    other = tmp_path / "other"
    other.mkdir()
    (other / "setup.cfg").symlink_to(outside)
    (other / "setup.py").write_text("")
    bin_ = venv_without_pytest_cov(other)
    assert notes(other, [bin_], monkeypatch) == []
