"""A real task on a real project, re-enacted: "add a --verbose flag to slugify's CLI and a test for
it" on python-slugify 9.2.0, with the answers a capable hosted model gave (tests/fixtures), served
over litellm's real HTTP path by a server that cuts answers at max_tokens as a provider does.

With one 1,024-token limit for every call, the 1,057-token rewrite of slugify/__main__.py was cut,
the step was ``ok`` and the cut file was written. Now the step's limit comes from the model
(gpt-4o-mini: 16,384) and the file is written whole; with the old limit forced, the step fails as
``output_truncated`` and nothing is written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from httpkit import MODEL, ModelServer
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models import tokens

FIXTURES = Path(__file__).parent / "fixtures"
TASK = "add a --verbose flag to slugify's CLI in slugify/__main__.py and a test for it"
COMPLETE = {"outcome": "complete", "answer": "Added --verbose and tests/test_cli_verbose.py; the tests pass.",
            "reason": ""}


def answer(name: str) -> str:
    content: str = json.loads((FIXTURES / "strong-model-t1" / name).read_text())["content"]
    return content


REWRITE = (FIXTURES / "strong-model-t1" / "0002.full.txt").read_text()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = tmp_path / "python-slugify"
    shutil.copytree(FIXTURES / "python-slugify-9.2.0", ws)
    monkeypatch.chdir(ws)
    # The plan runs `python -m pytest`: this interpreter, which has pytest and text-unidecode.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return ws


@pytest.fixture
def model(httpserver: HTTPServer, allow_model_requests: None, monkeypatch: pytest.MonkeyPatch) -> ModelServer:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000")  # litellm reads the process environment
    return ModelServer(httpserver)


def run_agent(model: ModelServer, **env: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["run", TASK, "--yes", "--json"], obj=State(environ=model.env(**env)))
    assert result.stdout.strip(), result.output
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def project_tests(ws: Path, target: str = "tests") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--color=no", target],
                          cwd=ws, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_first_plan_completes_with_the_file_whole_and_the_tests_passing(
        project: Path, model: ModelServer) -> None:
    assert tokens.count_text(REWRITE, MODEL) == 1057  # over the old limit of 1,024 for every call
    model.add(answer("0001.resp.json"), REWRITE, answer("0003.resp.json"), COMPLETE)
    out = run_agent(model)
    assert out["status"] == "COMPLETE", json.dumps(out, indent=1)[:3000]
    assert [s["status"] for s in out["steps"][:6]] == ["ok"] * 6
    assert out["steps"][6]["tool"] == "run_shell"  # the plan's own check ran
    # The rewrite was sent under the step's own limit, not 1,024, and came back whole.
    planner, rewrite, _test_file, reviewer = model.bodies
    assert rewrite["max_tokens"] == 8192 and model.sent[1]["finish_reason"] == "stop"
    assert planner["max_tokens"] == 8192 and reviewer["max_tokens"] == 2048
    main = (project / "slugify" / "__main__.py").read_text()
    assert main == REWRITE
    compile(main, "__main__.py", "exec")
    assert main.rstrip().endswith("main()") and "--verbose" in main
    assert (project / "tests" / "test_cli_verbose.py").read_text() == answer("0003.resp.json")
    # The new tests pass, and so do the project's, but for one that pins the parser's namespace
    # (it lists every option): the planner could not see it, and the recorded run needed a
    # re-plan for it, which is not part of this first plan.
    new = project_tests(project, "tests/test_cli_verbose.py")
    assert new.returncode == 0 and "4 passed" in new.stdout, new.stdout[-2000:]
    suite = project_tests(project)
    failed = {line.split(" - ")[0] for line in suite.stdout.splitlines() if "FAILED" in line}
    assert "144 passed" in suite.stdout, suite.stdout[-2000:]
    assert failed == {"SUBFAILED(argv=[]) tests/test_release.py::ReleaseRegressionTests::"
                      "test_cli_preserves_legacy_default_shape",
                      "SUBFAILED(argv=['Hello', '--no-lowercase']) tests/test_release.py::ReleaseRegressionTests::"
                      "test_cli_preserves_legacy_default_shape"}, suite.stdout[-2000:]
    # Every call's finish_reason is on record.
    run_dir = project / ".agent" / "runs" / out["run_id"]
    calls = [json.loads(line) for line in (run_dir / "llm_calls.jsonl").read_text().splitlines()]
    assert [c["finish_reason"] for c in calls if c["event"] == "llm_call"] == ["stop"] * 4


def test_with_the_old_limit_the_cut_rewrite_fails_cleanly_and_nothing_is_written(
        project: Path, model: ModelServer) -> None:
    before = (project / "slugify" / "__main__.py").read_text()
    verdict = {"outcome": "complete", "answer": "The change could not be made.", "reason": ""}
    model.add(answer("0001.resp.json"), REWRITE, verdict)
    out = run_agent(model, AGENT_LLM__MAX_OUTPUT_TOKENS="1024")
    steps = {s["id"]: s for s in out["steps"]}
    assert model.sent[1]["finish_reason"] == "length"
    assert steps["s3"]["status"] == "failed" and steps["s3"]["error"]["type"] == "output_truncated"
    assert "cut at the output limit of 1024 tokens" in steps["s3"]["error"]["message"]
    assert steps["s3"]["attempts"] == 1  # a cut answer is not asked for again at the same limit
    assert {steps[s]["status"] for s in ("s4", "s5", "s6", "s7")} <= {"pending", "skipped"}  # never ran
    assert (project / "slugify" / "__main__.py").read_text() == before
    assert not (project / "tests" / "test_cli_verbose.py").exists()
    assert len(model.bodies) == 3  # planner, the cut step, the reviewer: the cut answer fed nothing
