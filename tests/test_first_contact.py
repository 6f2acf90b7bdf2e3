"""The first hour with agentcli: a model on your own server, the errors met first, usage errors,
the data dir in a git repository, `agent undo last` and run id prefixes, the verify verdict.

Each test is one reproduction of the report that asked for it, run again: real subprocesses, and
litellm's real HTTP path against a server on loopback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from httpkit import ModelServer
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

PLAN = {"steps": [{"title": "List the Python files", "tool": "list_files", "args": {"pattern": "**/*.py"}}]}
WRITE = {"steps": [{"title": "Write a note", "tool": "write_file", "args": {"path": "note.txt", "content": "hi"}}]}
DONE = {"outcome": "complete", "answer": "main.py", "reason": ""}


def agent(cwd: Path, *args: str, env: dict[str, str] | None = None, script: list[Any] | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m agentcli ARGS`` in ``cwd``, no key of any provider in its environment."""
    child = {k: v for k, v in os.environ.items()
             if not k.startswith("AGENT_") and not k.endswith("_API_KEY") and k not in ("COLUMNS",)}
    child.update({"AGENT_MEMORY__ENABLED": "false", "PYTHONPATH": os.pathsep.join(sys.path),
                  "AGENT_ALLOW_MODEL_REQUESTS": "1"})
    if script is not None:
        path = cwd.parent / f"script-{len(list(cwd.parent.glob('script-*')))}.json"
        path.write_text(json.dumps(script))
        child.update({"AGENT_MODEL": "test/script", "AGENT_TEST_SCRIPT": str(path)})
    child.update(env or {})
    return subprocess.run([sys.executable, "-m", "agentcli", *args], cwd=cwd, env=child, text=True,
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


def runs_of(ws: Path) -> list[str]:
    root = ws / ".agent" / "runs"
    return sorted(p.name for p in root.iterdir() if (p / "events.jsonl").is_file()) if root.is_dir() else []


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ real endpoints that just work


def test_a_keyless_server_and_an_unpriced_model_run_to_complete(workspace: Path, httpserver: HTTPServer) -> None:
    """The reproduction: `--model openai/qwen --api-base URL run --yes` failed on the unknown price,
    then on the missing key. Now: COMPLETE, one warning, the totals say how the cost was counted."""
    (workspace / "main.py").write_text("print('hi')\n")
    server = ModelServer(httpserver).add(PLAN, DONE)
    proc = agent(workspace, "--model", "openai/qwen", "--api-base", server.api_base, "run", "--yes",
                 "list the python files")
    assert proc.returncode == 0, proc.stderr
    assert "COMPLETE" in proc.stderr and "main.py" in proc.stdout
    warnings = [x for x in proc.stderr.splitlines() if x.startswith("warning:")]
    assert warnings == [x for x in warnings if "price of openai/qwen is unknown" in x] and len(warnings) == 1
    assert "at an unknown price, counted as $0" in proc.stderr
    # No key was configured: a placeholder went to the server, never a real one.
    assert all(b["model"] == "qwen" for b in server.bodies) and len(server.bodies) == 2
    from agentcli.models.openai_http import PLACEHOLDER_KEY

    assert httpserver.log[0][0].headers.get("Authorization") == f"Bearer {PLACEHOLDER_KEY}"


def test_a_configured_price_counts_the_cost(workspace: Path, httpserver: HTTPServer) -> None:
    (workspace / "main.py").write_text("print('hi')\n")
    (workspace / "agent.toml").write_text('[models."openai/qwen"]\ninput_cost_per_mtok = 1.0\n'
                                          'output_cost_per_mtok = 2.0\n')
    server = ModelServer(httpserver).add(PLAN, DONE)
    proc = agent(workspace, "--model", "openai/qwen", "--api-base", server.api_base, "run", "--yes", "--json",
                 "list the python files")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["totals"]["cost_usd"] > 0 and out["totals"]["unpriced_calls"] == 0
    assert "warning:" not in proc.stderr


# ------------------------------------------------------------------ first-contact errors


def test_a_missing_key_is_one_line_exit_2_and_no_run(workspace: Path) -> None:
    proc = agent(workspace, "--model", "openai/gpt-4o-mini", "run", "--yes", "list the files")
    assert proc.returncode == 2
    assert "set OPENAI_API_KEY" in one_error_line(proc)
    assert runs_of(workspace) == []


def test_a_refused_connection_names_host_and_port(workspace: Path) -> None:
    port = free_port()
    proc = agent(workspace, "--model", "openai/qwen", "--api-base", f"http://127.0.0.1:{port}/v1", "run", "--yes",
                 "list the files")
    assert proc.returncode == 2
    assert f"cannot connect to 127.0.0.1:{port} (connection refused)" in one_error_line(proc)
    assert runs_of(workspace) == []


def test_a_bad_model_name_says_what_resembles_it(workspace: Path) -> None:
    proc = agent(workspace, "--model", "gpt-5-turbo-ultra", "run", "--yes", "list the files")
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "unknown model 'gpt-5-turbo-ultra'" in line and "litellm knows" in line and "gpt-" in line
    assert runs_of(workspace) == []


def _status_server(httpserver: HTTPServer, status: int, body: dict[str, Any]) -> list[int]:
    hits: list[int] = []

    def handle(request: Request) -> Response:
        hits.append(1)
        return Response(json.dumps(body), status=status, content_type="application/json")

    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_handler(handle)
    return hits


@pytest.mark.parametrize(("status", "said"), [(401, "refused the credentials"), (403, "refused the credentials"),
                                              (404, "not found")])
def test_auth_failure_and_404_are_one_line_exit_2_never_retried(workspace: Path, httpserver: HTTPServer,
                                                                 status: int, said: str) -> None:
    hits = _status_server(httpserver, status, {"error": {"message": "nope", "type": "invalid_request_error"}})
    proc = agent(workspace, "--model", "openai/qwen", "--api-base", httpserver.url_for("/v1"), "run", "--yes",
                 "list the files")
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert said in line and f"localhost:{httpserver.port}" in line and f"(HTTP {status})" in line
    assert len(hits) == 1  # not retried as if transient


def test_doctor_never_says_ok_for_a_model_it_cannot_reach_or_price(workspace: Path,
                                                                   httpserver: HTTPServer) -> None:
    bad = agent(workspace, "--model", "gpt-5-turbo-ultra", "doctor")
    assert bad.returncode == 1 and "FAIL model gpt-5-turbo-ultra: unknown model" in bad.stdout
    keyless = agent(workspace, "--model", "openai/gpt-4o-mini", "doctor")
    assert keyless.returncode == 1 and "FAIL model openai/gpt-4o-mini" in keyless.stdout
    assert "set OPENAI_API_KEY" in keyless.stdout
    refused = agent(workspace, "--model", "openai/qwen", "--api-base", f"http://127.0.0.1:{free_port()}/v1",
                    "doctor")
    assert refused.returncode == 1 and "connection refused" in refused.stdout
    httpserver.expect_request("/v1/models").respond_with_json({"data": []})
    unpriced = agent(workspace, "--model", "openai/qwen", "--api-base", httpserver.url_for("/v1"), "doctor")
    [line] = [x for x in unpriced.stdout.splitlines() if "model openai/qwen" in x]
    assert line.startswith("warn") and "price of openai/qwen is unknown" in line


# ------------------------------------------------------------------ usage errors leave no run


def test_an_empty_task_is_exit_2_and_no_run(workspace: Path) -> None:
    for task in ("", "   "):
        proc = agent(workspace, "run", task, script=[])
        assert proc.returncode == 2 and "the task is empty" in one_error_line(proc)
    assert runs_of(workspace) == []


def test_an_unknown_local_model_is_exit_2_and_no_run(workspace: Path) -> None:
    proc = agent(workspace, "--model", "local/nope", "run", "--yes", "list the files")
    assert proc.returncode == 2 and "unknown local model 'nope'" in one_error_line(proc)
    assert runs_of(workspace) == []


def test_a_task_longer_than_the_context_is_exit_2_and_no_run(workspace: Path) -> None:
    env = {"AGENT_MODELS": json.dumps({"test/script": {"context_tokens": 2000}})}
    proc = agent(workspace, "run", "--yes", "word " * 3000, script=[PLAN, DONE], env=env)
    assert proc.returncode == 2, proc.stderr
    assert "the task is" in one_error_line(proc) and "reads at most 2000" in proc.stderr  # 3,000 words
    assert runs_of(workspace) == []


# ------------------------------------------------------------------ the data dir in a repository


def test_from_a_subdirectory_the_repository_root_is_the_workspace(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "src" / "deep").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "main.py").write_text("print('hi')\n")
    proc = agent(repo / "src" / "deep", "run", "--yes", "list the python files", script=[PLAN, DONE])
    assert proc.returncode == 0, proc.stderr
    assert f"workspace: {repo.resolve()} (the git repository's root" in proc.stderr
    assert len(runs_of(repo)) == 1 and not (repo / "src" / "deep" / ".agent").exists()
    assert (repo / ".agent" / ".gitignore").read_text().strip().endswith("*")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert ".agent" not in status and "main.py" in status
    # --workspace says otherwise.
    here = agent(repo / "src", "--workspace", ".", "runs", "list")
    assert here.returncode == 0 and "workspace:" not in here.stderr and not (repo / "src" / ".agent" / "runs").exists()


def test_a_data_dir_agentcli_did_not_create_gets_no_gitignore(workspace: Path) -> None:
    (workspace / ".agent").mkdir()
    proc = agent(workspace, "run", "--yes", "list the python files", script=[PLAN, DONE])
    assert proc.returncode == 0, proc.stderr
    assert not (workspace / ".agent" / ".gitignore").exists()


# ------------------------------------------------------------------ undo last, id prefixes, verify


def test_undo_last_and_prefixes_everywhere(workspace: Path) -> None:
    first = agent(workspace, "run", "--yes", "--json", "write a note", script=[WRITE, DONE])
    assert first.returncode == 0, first.stderr
    run_id = json.loads(first.stdout)["run_id"]
    assert (workspace / "note.txt").read_text() == "hi"
    no_id = agent(workspace, "undo", "--yes")
    assert no_id.returncode == 2 and "agent undo last" in one_error_line(no_id)
    assert (workspace / "note.txt").exists()
    undone = agent(workspace, "undo", "last", "--yes")
    assert undone.returncode == 0, undone.stderr
    assert not (workspace / "note.txt").exists() and f"undo {run_id}" in undone.stdout
    prefix = run_id[:-3]
    for args in (["runs", "show", prefix], ["runs", "diff", prefix], ["undo", prefix, "--redo", "--yes"],
                 ["replay", "last", "--view"]):
        proc = agent(workspace, *args)
        assert proc.returncode == 0, (args, proc.stderr)
    assert (workspace / "note.txt").read_text() == "hi"


def test_the_report_says_whether_verification_ran_and_passed(workspace: Path) -> None:
    ok = agent(workspace, "run", "--yes", "write a note", script=[WRITE, DONE],
               env={"AGENT_VERIFY__COMMAND": "test -f note.txt"})
    assert ok.returncode == 0, ok.stderr
    assert "verify: PASSED: `test -f note.txt` (exit code 0)" in ok.stdout
    none = agent(workspace, "run", "--yes", "write a note", script=[WRITE, DONE])
    assert "verify: not run (no verify command" in none.stdout


# ------------------------------------------------------------------ units: classification, limits


def test_set_up_errors_are_classified_as_such_and_never_retried() -> None:
    import asyncio

    from agentcli.config import Config
    from agentcli.errors import ExitCode, LLMTransientError, ModelSetupError
    from agentcli.models.client import LLMClient
    from agentcli.models.litellm import classify_exception
    from agentcli.models.types import ModelRequest, ModelResponse

    class Refused(Exception):
        pass

    refused = Refused("Connection error.")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    err = classify_exception(refused, "openai/qwen", "http://127.0.0.1:9/v1")
    assert isinstance(err, ModelSetupError) and "127.0.0.1:9" in err.message and err.exit_code == ExitCode.USAGE
    creds = classify_exception(Exception("Missing credentials. Please pass an `api_key`"), "openai/gpt-4o-mini")
    assert isinstance(creds, ModelSetupError) and "OPENAI_API_KEY" in creds.message
    timeout = type("Timeout", (Exception,), {})("read timed out")
    assert isinstance(classify_exception(timeout, "openai/qwen"), LLMTransientError)  # still retried

    calls: list[ModelRequest] = []

    class Failing:
        async def request(self, req: ModelRequest) -> ModelResponse:
            calls.append(req)
            raise err

        def price(self, model: str) -> None:
            return None

        def profile(self, model: str) -> Any:
            from agentcli.models.profile import ModelProfile

            return ModelProfile()

    client = LLMClient(Config(model="openai/qwen"), backend=Failing())
    with pytest.raises(ModelSetupError):
        asyncio.run(client.acomplete([{"role": "user", "content": "hi"}]))
    assert len(calls) == 1


def test_a_small_models_calls_are_bounded_to_what_each_answer_needs() -> None:
    from agentcli.config import Config
    from agentcli.models.client import LLMClient
    from agentcli.models.fakes import ScriptedModel
    from agentcli.models.profile import ModelProfile

    class Small(ScriptedModel):
        def profile(self, model: str) -> ModelProfile:
            return ModelProfile(planner_style="small", pricing="free", max_output_tokens=8192)

    client = LLMClient(Config(model="test/small"), backend=Small([]))
    limits = {role: client.output_limit(role) for role in ("planner", "executor", "reviewer")}  # type: ignore[arg-type]
    assert limits == {"planner": 512, "executor": 512, "reviewer": 256}
    assert all(client.output_ceiling(role) == limit for role, limit in limits.items())  # type: ignore[arg-type]
