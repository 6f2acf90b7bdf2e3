"""No secret leaves the tool that read it: not to the model, not into a record, not into memory.

Credentials in documented formats at the start of lines (where JSON text has them right after an
``\\n``) in a file, in a command's output and in a file's name, and a secret-source value, are
read by a real `agent run` whose model is an OpenAI-compatible server on loopback (litellm's real
HTTP path): the plan reads them, an llm step gets them by reference, the reviewer asks for a
re-plan (the re-planner sees the steps' digest), and the run's episode goes to memory. Then
`agent memory add .` ingests the workspace. No token is in any request the model received, in
any record of the run, or in any byte of the data dir's files (memory's LanceDB tables and ingest
manifest included)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from httpkit import ModelServer
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.redact import REDACTED, find_tokens

FILE_GH = "ghp_" + "Zx9Qw3Er7Ty1" * 3              # at the start of a line of a file
FILE_SK = "sk-proj-" + "Ab3dEfGhIjKlMnOpQrStUvWx0123"
ENV_SK = "sk-proj-" + "Qq7rStUvWxYzAb3dEfGhIjKl9876"   # OPENAI_API_KEY=... in .env
ENV_GH = "ghp_" + "Hh2Jj4Kk6Ll8" * 3
DB_PASSWORD = "correct-horse-battery-9"                 # DB_PASSWORD=... in .env: no format but its label
NAME_GH = "ghp_" + "Nm4Bv8Cx2Lk6" * 3              # a file's name
CMD_GH = "ghp_" + "Cm5dOu7tPu9t" * 3               # only in a command's output
SOURCE_VALUE = "mk-deploy-value-5d1e9f27"          # the value of a secret-looking variable
SECRETS = [FILE_GH, FILE_SK, ENV_SK, ENV_GH, DB_PASSWORD, NAME_GH, CMD_GH, SOURCE_VALUE]

# The command builds its token from pieces, so only its output holds it (the plan does not).
COMMAND = f"ls -1; cat notes.txt; echo gh''{CMD_GH[2:]}"
PLAN = {"steps": [
    {"title": "read the notes", "tool": "read_file", "args": {"path": "notes.txt"}},
    {"title": "read the env file", "tool": "read_file", "args": {"path": ".env"}},
    {"title": "list and print", "tool": "run_shell", "args": {"command": COMMAND}},
    {"title": "list files", "tool": "list_files", "args": {"pattern": "*"}},
    {"title": "summarise", "kind": "llm", "depends_on": ["s1", "s2", "s3", "s4"],
     "prompt": "Summarise:\n{{s1.output}}\n{{s2.output}}\n{{s3.output}}\n{{s4.output}}"},
]}
REPLAN = {"steps": [{"title": "read the notes again", "tool": "read_file", "args": {"path": "notes.txt"}}]}


@pytest.fixture
def project(workspace: Path) -> Path:
    (workspace / "notes.txt").write_text(f"{FILE_GH}\n{FILE_SK}\nthe deploy notes\n")
    (workspace / ".env").write_text(f"OPENAI_API_KEY={ENV_SK}\nDEPLOY={SOURCE_VALUE}\nGH_TOKEN={ENV_GH}\n"
                                    f"DB_PASSWORD={DB_PASSWORD}\n")
    (workspace / f"{NAME_GH}.txt").write_text("named after a token\n")
    return workspace


@pytest.fixture
def model(httpserver: HTTPServer, allow_model_requests: None, monkeypatch: pytest.MonkeyPatch) -> ModelServer:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000")  # litellm reads the process environment
    return ModelServer(httpserver)


def agent(model: ModelServer, *argv: str) -> Any:
    env = model.env(AGENT_MEMORY__ENABLED="true", DEPLOY_SECRET=SOURCE_VALUE)
    return CliRunner().invoke(app, list(argv), obj=State(environ=env, use_user_config=False))


def leaks(blob: bytes) -> list[str]:
    return [s for s in SECRETS if s.encode() in blob]


def test_no_secret_reaches_the_model_a_record_or_memory(project: Path, model: ModelServer) -> None:
    model.add(PLAN, "A summary of the notes.",
              {"outcome": "replan", "answer": "", "reason": "read the notes once more"},
              REPLAN, {"outcome": "complete", "answer": "The notes were read.", "reason": ""})
    res = agent(model, "run", "read the notes, the env file and the listing", "--yes", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["status"] == "COMPLETE", json.dumps(out, indent=1)[:3000]
    assert len(model.bodies) == 5  # planner, llm step, reviewer (replan), re-planner, reviewer

    # What the model was sent: every request, the reviewer's JSON digest and the re-plan included.
    for body in model.bodies:
        text = json.dumps(body)
        assert not leaks(text.encode()), (leaks(text.encode()), text[:2000])
        for message in body["messages"]:
            content = message.get("content") or ""
            assert not find_tokens(content), (find_tokens(content), content[:2000])
    llm_step, review, replanner = (json.dumps(model.bodies[i]) for i in (1, 2, 3))
    for seen in (llm_step, review, replanner):  # the steps' outputs were there, masked
        assert seen.count(REDACTED) >= 7 and "the deploy notes" in seen
    assert f"DB_PASSWORD={REDACTED}" in llm_step and f"{REDACTED}.txt" in review

    # Every memory command after the run writes its pending episode first; then the workspace.
    res = agent(model, "memory", "add", ".", ".env", "--json")  # a dot file is added when named
    assert res.exit_code == 0, res.output
    written = json.loads(res.stdout)
    assert written["masked"] == 2 and {".env", "notes.txt", f"{REDACTED}.txt"} <= set(written["sources"])
    assert not leaks(res.stdout.encode())
    res = agent(model, "memory", "add", ".env")
    assert res.exit_code == 0 and "masked" not in res.stderr  # unchanged: nothing written again
    res = agent(model, "memory", "search", "deploy notes", "--json")
    assert res.exit_code == 0 and not leaks(res.stdout.encode())
    hits = json.loads(res.stdout)["hits"]
    assert {h["tier"] for h in hits} >= {"episodic", "semantic"}

    # Every byte of every file the run and memory wrote. The checkpoints are the workspace's
    # own copy (what undo restores byte for byte): they hold what the workspace holds.
    data = project / ".agent"
    files = [p for p in data.rglob("*") if p.is_file() and "checkpoints" not in p.relative_to(data).parts]
    kinds = {p.relative_to(data).parts[0] for p in files}
    assert {"runs", "plans", "memory", "memory-manifest"} <= kinds, kinds
    assert any(p.suffix == ".lance" for p in files)
    found = {str(p.relative_to(data)): leaks(p.read_bytes()) for p in files}
    assert not {k: v for k, v in found.items() if v}
    run_dir = data / "runs" / out["run_id"]
    assert (run_dir / "llm_calls.jsonl").is_file() and REDACTED in (run_dir / "events.jsonl").read_text()


def test_the_planner_survey_sees_files_and_names_masked(project: Path) -> None:
    # The hosted planner's look before it plans: its read-only calls' results are masked too.
    from agentcli.models.fakes import ScriptedModel
    from agentcli.models.types import ToolCall

    calls = [ToolCall(id="c1", name="read_file", arguments={"path": ".env"}),
             ToolCall(id="c2", name="read_file", arguments={"path": "notes.txt"}),
             ToolCall(id="c3", name="list_files", arguments={"pattern": "*"})]
    draft = {"steps": {"s1": {"call": {"tool": "list_files", "args": {"pattern": "*.md"}}, "depends_on": [],
                              "title": "List"}}}
    model = ScriptedModel([calls, draft, {"outcome": "complete", "answer": "done", "reason": ""}])
    env = {"AGENT_MODEL": "test/scripted", "AGENT_MEMORY__ENABLED": "false", "DEPLOY_SECRET": SOURCE_VALUE}
    res = CliRunner().invoke(app, ["run", "look around", "--yes", "--json"],
                             obj=State(backend=model, environ=env, use_user_config=False))
    assert res.exit_code == 0, res.output
    replies = [m["content"] for m in model.requests[1].messages if m["role"] == "tool"]
    assert len(replies) == 3 and all(REDACTED in r for r in replies), replies
    sent = json.dumps([r.messages for r in model.requests]).encode()
    assert not leaks(sent)
    data = project / ".agent"
    assert not [p for p in data.rglob("*") if p.is_file() and "checkpoints" not in p.parts and leaks(p.read_bytes())]
