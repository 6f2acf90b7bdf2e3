"""No secret reaches a file agentcli writes, the screen, a child process or the model: a unique
marker in every place a secret can come from, then a grep of everything written and printed over
every command that writes or prints (real subprocesses, so the markers are in a real environment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import _write_crash_report, app
from agentcli.cli.commands.common import State
from agentcli.config import load_settings
from agentcli.models.fakes import ScriptedModel
from agentcli.redact import REDACTED

MARKERS = {
    "otel_headers": "mk-otel-7f3a9c2e51",      # OTEL_EXPORTER_OTLP_HEADERS, where the README says to put them
    "config_header": "mk-cfghdr-4b8d1e6a",     # agent.toml [telemetry.headers], under a name on no list
    "secret_env": "mk-envsecret-9c2f7a1d",     # any variable whose name looks secret
    "provider_key": "mk-provider-3e5b8f0c",    # a provider key, also pasted into the task
    # From no secret source at all: recognised by their format only (agentcli.redact.TOKEN_PATTERNS).
    "pasted_token": "ghp_MkTaskPaste7f3a9c2e51b8d1e6a4b8d1e6z",   # pasted into the task
    "file_token": "sk-proj-MkFile9c2f7a1d3e5b8f0c4b8d",  # in a workspace file a tool reads
    "shell_token": "AKIAMKSHELL7F3A9C2EX",              # printed by a command (not in its text)
    "answer_token": "eyJhbGciOiJIUzI1NiJ9.eyJtayI6ImFuc3dlciJ9.MkAnswerSig7f3a",  # in the model's answer
}
ENV = {
    "OTEL_EXPORTER_OTLP_HEADERS": f"x-trace-auth={MARKERS['otel_headers']}",
    "DEPLOY_SECRET": MARKERS["secret_env"],
    "OPENAI_API_KEY": MARKERS["provider_key"],
}
TASK = (f"check the workspace; my key is {MARKERS['provider_key']} if you need it, "
        f"and the deploy token {MARKERS['pasted_token']}")
DRAFT = {"steps": [
    {"title": "look at the environment", "tool": "run_shell",
     "args": {"command": "env; echo \"key=$OPENAI_API_KEY hdr=$OTEL_EXPORTER_OTLP_HEADERS\"; "
                         f"echo {MARKERS['shell_token'][:4]}''{MARKERS['shell_token'][4:]}"}},
    {"title": "read the dotenv", "tool": "read_file", "args": {"path": "app.env"}},
    {"title": "sum up", "kind": "llm", "prompt": "Summarise {{s1.output}} and {{s2.output}}",
     "depends_on": ["s1", "s2"]},
]}
REVIEW = {"outcome": "complete", "reason": "",
          "answer": f"done; the file says {MARKERS['secret_env']}, the session is {MARKERS['answer_token']}"}


def agent(ws: Path, script: list[object], *args: str) -> subprocess.CompletedProcess[str]:
    script_file = ws.parent / f"script-{time.monotonic_ns()}.json"
    script_file.write_text(json.dumps(script))
    env = {**os.environ, **ENV, "AGENT_MODEL": "test/script", "AGENT_TEST_SCRIPT": str(script_file)}
    return subprocess.run([sys.executable, "-m", "agentcli", *args], cwd=ws, env=env, capture_output=True,
                          text=True, timeout=180, stdin=subprocess.DEVNULL)


def leaks(text: str) -> list[str]:
    return [name for name, marker in MARKERS.items() if marker in text]


def in_process(ws: Path, script: list[object], *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, list(args), obj=State(backend=ScriptedModel(list(script)),
                                                      environ={**ENV, "AGENT_MODEL": "test/scripted"}))
    return r.exit_code, (r.stdout or "") + (r.stderr or "")


@pytest.mark.slow
def test_no_marker_in_any_file_or_output(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():  # the in-process commands' environment: the same markers
        monkeypatch.setenv(name, value)
    (workspace / "agent.toml").write_text(f'[telemetry.headers]\nx-auth-token = "{MARKERS["config_header"]}"\n')
    # A workspace file holding a secret value: its contents are shown and recorded masked.
    (workspace / "app.env").write_text(f"DEPLOY_SECRET={MARKERS['secret_env']}\nOPENAI={MARKERS['file_token']}\n")
    printed: list[tuple[str, str]] = []

    def step(script: list[object], *args: str, code: int | None = 0) -> subprocess.CompletedProcess[str]:
        # Real subprocesses where a child process or a fresh interpreter matters, else in process.
        if args[0] in ("--log-json", "tools") or args[:2] == ("run", "--resume"):
            p = agent(workspace, script, *args)
        else:
            rc, out = in_process(workspace, script, *args)
            p = subprocess.CompletedProcess(list(args), rc, out, "")
        printed.append((" ".join(args), p.stdout + p.stderr))
        if code is not None:
            assert p.returncode == code, (args, p.stderr)
        return p

    run = step([DRAFT, "a summary", REVIEW], "--log-json", "run", TASK, "--yes", "--json")
    run_id = json.loads(run.stdout)["run_id"]
    step([], "runs", "list")
    step([], "runs", "list", "--json")
    step([], "runs", "show", run_id)
    step([], "runs", "show", run_id, "--json")
    step([], "runs", "stats")
    step([], "replay", run_id, code=None)
    step([], "config", "show")
    shown = step([], "config", "show", "--json")
    values = json.loads(shown.stdout[shown.stdout.index("{"):])["values"]
    assert values["telemetry.headers.x-auth-token"]["value"] == REDACTED
    step([], "memory", "list", "--json")
    step([], "memory", "search", "check the workspace")
    step([DRAFT], "plan", TASK, "--json")
    step([], "tools", "call", "run_shell", "--args", '{"command": "env"}', "--yes")
    step([], "tools", "call", "read_file", "--args", '{"path": "app.env"}')
    step([REVIEW], "run", "--resume", run_id, "--yes", code=None)

    # The child saw none of the secrets (empty, not masked): its environment is an allow-list.
    events = [json.loads(x) for x in (workspace / ".agent" / "runs" / run_id / "events.jsonl").read_text()
              .splitlines() if x.strip()]
    [shell] = [e for e in events if e["type"] == "tool_call" and e["step_id"] == "s1"]
    env_out = shell["data"]["result"]["output"]["output"]
    assert "key= hdr=" in env_out and "DEPLOY_SECRET" not in env_out and "OTEL_" not in env_out

    for what, text in printed:
        assert leaks(text) == [], f"{what} printed a secret"
    written = [p for p in workspace.rglob("*") if p.is_file() and p.name not in ("agent.toml", "app.env")]
    assert any(p.name == "events.jsonl" for p in written) and any(p.suffix == ".lance" or ".lance" in str(p)
                                                                  for p in written)
    for p in written:
        data = p.read_bytes().decode("utf-8", "replace")
        assert leaks(data) == [], f"{p.relative_to(workspace)} holds a secret"


def test_crash_reports_hold_no_secret(tmp_path: Path, monkeypatch: object) -> None:
    (tmp_path / "agent.toml").write_text(f'[telemetry.headers]\nx-auth-token = "{MARKERS["config_header"]}"\n')
    settings = load_settings(workspace=tmp_path, use_user_config=False)
    settings.data_dir.mkdir()
    try:
        raise RuntimeError(f"boom with {MARKERS['config_header']} and {MARKERS['pasted_token']} inside")
    except RuntimeError as e:
        where = Path(_write_crash_report(e, settings.data_dir))
    assert where.parent == settings.data_dir / "crash"
    text = where.read_text()
    assert "RuntimeError" in text and REDACTED in text
    assert MARKERS["config_header"] not in text and MARKERS["pasted_token"] not in text  # by source, by format
