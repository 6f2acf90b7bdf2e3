"""Opt-in: a run traced to a real OTLP backend (Arize Phoenix) on loopback, spans read back.

Skipped unless ``AGENT_OTEL_INTEGRATION=1``. Phoenix is big (~855 MB installed) and is not a
dependency: install it anywhere (a separate venv is best) and point ``AGENT_OTEL_PHOENIX`` at its
``phoenix`` executable, e.g.::

    python3 -m venv /tmp/phoenix && /tmp/phoenix/bin/pip install arize-phoenix
    AGENT_OTEL_INTEGRATION=1 AGENT_OTEL_PHOENIX=/tmp/phoenix/bin/phoenix \\
        .venv/bin/pytest -q tests/test_telemetry_integration.py
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models.fakes import ScriptedModel
from agentcli.record.telemetry import trace_id_for

pytestmark = pytest.mark.skipif(os.environ.get("AGENT_OTEL_INTEGRATION") != "1",
                                reason="opt-in: AGENT_OTEL_INTEGRATION=1 (needs Arize Phoenix)")

TWO_STEPS = {"steps": [
    {"title": "List the Python files", "tool": "list_files", "args": {"pattern": "*.py"}},
    {"title": "Summarise", "prompt": "Summarise these files: {{s1.output}}", "depends_on": ["s1"]},
]}


#: Read at import: the autouse isolation fixture removes AGENT_* variables before each test.
PHOENIX = os.environ.get("AGENT_OTEL_PHOENIX")


def _phoenix_command() -> list[str] | None:
    given = PHOENIX
    if given:
        return shlex.split(given)
    beside = Path(sys.executable).with_name("phoenix")
    found = str(beside) if beside.exists() else shutil.which("phoenix")
    return [found] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def phoenix(tmp_path: Path) -> Iterator[str]:
    cmd = _phoenix_command()
    if cmd is None:
        pytest.skip("Arize Phoenix not found: set AGENT_OTEL_PHOENIX to its `phoenix` executable")
    port, grpc = _free_port(), _free_port()
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(tmp_path / "phoenix"), "PHOENIX_PORT": str(port),
           "PHOENIX_GRPC_PORT": str(grpc), "PHOENIX_HOST": "127.0.0.1"}
    log = (tmp_path / "phoenix.log").open("w")
    proc = subprocess.Popen([*cmd, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "phoenix.log").read_text()[-3000:]
            try:
                _get(base + "/v1/projects")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("Phoenix did not start in 180 s")
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _spans(base: str, want: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        spans = _get(base + "/v1/projects/default/spans?limit=1000")["data"]
        if len(spans) >= want:
            return spans
        time.sleep(0.5)
    return spans


def test_run_trace_reaches_phoenix(workspace: Path, phoenix: str) -> None:
    (workspace / "main.py").write_text("print('hi')\n")
    env = {"AGENT_MODEL": "test/scripted", "AGENT_TELEMETRY__EXPORTER": "otlp",
           "AGENT_TELEMETRY__ENDPOINT": phoenix, "AGENT_TELEMETRY__CAPTURE_CONTENT": "true"}
    model = ScriptedModel([TWO_STEPS, "one file: main.py", {"outcome": "complete", "answer": "main.py",
                                                              "reason": ""}])
    r = CliRunner().invoke(app, ["run", "summarise the code", "--yes", "--json"],
                           obj=State(backend=model, environ=env))
    assert r.exit_code == 0, r.output
    run_id = json.loads(r.stdout)["run_id"]

    # planner chat, reviewer chat, s2 chat, one tool, two steps, planning, reviewing, the root
    spans = _spans(phoenix, 9)
    names = sorted(s["name"] for s in spans)
    assert names == sorted(["invoke_agent agentcli", "planning", "chat test/scripted", "step s1",
                            "execute_tool list_files", "step s2", "chat test/scripted", "reviewing",
                            "chat test/scripted"])
    trace_ids = {s["context"]["trace_id"] for s in spans}
    assert trace_ids == {f"{trace_id_for(run_id):032x}"}
    by_id = {s["context"]["span_id"]: s for s in spans}
    [root] = [s for s in spans if not s.get("parent_id")]
    assert root["name"] == "invoke_agent agentcli"
    assert root["span_kind"] == "AGENT"  # Phoenix lifts openinference.span.kind out of the attributes
    assert root["attributes"]["gen_ai.conversation.id"] == run_id
    tool = next(s for s in spans if s["name"] == "execute_tool list_files")
    assert by_id[tool["parent_id"]]["name"] == "step s1"
    assert tool["span_kind"] == "TOOL" and tool["attributes"]["gen_ai.tool.name"] == "list_files"
    chats = [s for s in spans if s["name"] == "chat test/scripted"]
    assert sorted(by_id[c["parent_id"]]["name"] for c in chats) == ["planning", "reviewing", "step s2"]
    for c in chats:
        a = c["attributes"]
        assert c["span_kind"] == "LLM", sorted(a)
        assert a["gen_ai.operation.name"] == "chat"
        assert a["llm.token_count.prompt"] == a["gen_ai.usage.input_tokens"] > 0
        assert a["gen_ai.usage.cost"] > 0
        assert "gen_ai.input.messages" in a  # capture_content = true

    # the same run exported after the fact lands in the same trace
    out = CliRunner().invoke(app, ["replay", run_id, "--export-trace", "--json"],
                             obj=State(backend=ScriptedModel([]), environ=env))
    assert out.exit_code == 0, out.output
    again = _spans(phoenix, 18)
    assert len(again) == 18
    assert {s["context"]["trace_id"] for s in again} == trace_ids
