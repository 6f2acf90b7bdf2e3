"""A re-planned run driven by a capable model's recorded answers replays `identical`, and `agent
replay` needs neither a model nor litellm.

The answers (``fixtures/transcripts/t1``: a hosted model adding a ``--verbose`` flag to
python-slugify's CLI, re-planned twice when recorded) are served in order by an OpenAI-compatible server on loopback,
through litellm's real HTTP path; the workspace holds the module the model was shown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_llm_http import FakeOpenAI, fake  # noqa: F401 (the fixture)
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models.fakes import ScriptedModel

T1 = Path(__file__).parent / "fixtures" / "transcripts" / "t1"
TASK = "add a --verbose flag to slugify's CLI in slugify/__main__.py and a test for it"
ROOT = Path(__file__).resolve().parents[1]


def _slugify_workspace(ws: Path) -> None:
    pkg = ws / "slugify"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .slugify import DEFAULT_SEPARATOR, slugify\n")
    (pkg / "slugify.py").write_text(
        'DEFAULT_SEPARATOR = "-"\n\n\ndef slugify(text, **kwargs):\n'
        '    return "-".join(str(text).lower().split())\n')
    (pkg / "__main__.py").write_text((T1 / "slugify__main__.py.txt").read_text())
    (ws / "tests").mkdir()
    (ws / "tests" / "test_main.py").write_text("def test_nothing():\n    assert True\n")
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "v"]):
        subprocess.run(["git", *cmd], cwd=ws, check=True, capture_output=True)


def _answer(n: int) -> dict[str, Any]:
    body = json.loads((T1 / f"{n:04d}.resp.json").read_text())
    return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": body["content"]},
                         "finish_reason": body.get("finish_reason", "stop")}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}}


def test_a_replanned_run_of_a_capable_model_replays_identical(workspace: Path, fake: FakeOpenAI) -> None:  # noqa: F811
    _slugify_workspace(workspace)
    answers = sorted(T1.glob("*.resp.json"))
    for n in range(1, len(answers) + 1):
        fake.ok(_answer(n))
    # Steps run in parallel (the default): which of them a failure stops depends on which finished
    # first, which the replay keeps (the recorded order of tool results and answers).
    env = {"AGENT_MODEL": "openai/gpt-4o-mini", "AGENT_API_BASE": fake.api_base, "AGENT_LLM__MAX_RETRIES": "0",
           "AGENT_MEMORY__ENABLED": "false"}
    runner = CliRunner()
    res = runner.invoke(app, ["run", "--yes", "--json", TASK], obj=State(environ=env))
    out = json.loads(res.stdout)
    assert len(fake.bodies) == len(answers), res.output  # every recorded answer was asked for, in order
    run_id = out["run_id"]
    shown = json.loads(runner.invoke(app, ["runs", "show", run_id, "--json"], obj=State(environ=env)).stdout)
    # The reviewer asked for a new plan (with today's planner the run may or may not get one).
    replanning = [e for e in shown["events"] if e["type"] == "transition" and e["data"]["to"] == "REPLANNING"]
    assert replanning
    replayed = runner.invoke(app, ["replay", run_id, "--json"], obj=State(environ=env))
    verdict = json.loads(replayed.stdout)
    assert verdict["identical"], json.dumps(verdict["divergence"])[:3000]
    assert replayed.exit_code == 0 and len(fake.bodies) == len(answers)  # nothing was asked again


def test_agent_replay_imports_no_litellm(workspace: Path) -> None:
    (workspace / "a.txt").write_text("A")
    draft = {"steps": {"s1": {"call": {"tool": "read_file", "args": {"path": "a.txt"}}, "depends_on": [],
                              "title": "read"},
                       "s2": {"prompt": "say {{s1.output}}", "depends_on": ["s1"], "title": "say"}}}
    model = ScriptedModel([draft, "A said", {"outcome": "complete", "answer": "A", "reason": ""}])
    env = {"AGENT_MODEL": "test/scripted", "AGENT_MEMORY__ENABLED": "false"}
    res = CliRunner().invoke(app, ["run", "--yes", "--json", "read a.txt"], obj=State(backend=model, environ=env))
    assert res.exit_code == 0, res.output
    run_id = json.loads(res.stdout)["run_id"]
    code = "\n".join([
        "import sys", "from agentcli.cli.app import main", f"sys.argv = ['agent', 'replay', {run_id!r}, '--json']",
        "try:", "    main()", "except SystemExit as e:", "    code = e.code",
        "print('LITELLM' if 'litellm' in sys.modules else 'NO-LITELLM', code)"])
    env_sub = {**os.environ, "PYTHONPATH": str(ROOT), "AGENT_MEMORY__ENABLED": "false"}
    done = subprocess.run([sys.executable, "-c", code], cwd=workspace, env=env_sub, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    verdict = json.loads(done.stdout[:done.stdout.rindex("}") + 1])
    assert verdict["identical"], verdict
    assert done.stdout.strip().endswith("NO-LITELLM 0"), done.stdout


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
