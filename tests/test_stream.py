"""Streaming, through a real pseudo-terminal against an OpenAI-compatible model on loopback that
streams slowly: the answer's text is on screen while the model is still writing it, the run's
record is the one a non-streamed run makes (and replays identical), a pipe sees no streamed text
and asks for no stream, a stream cut off mid-way fails as a cut-off whole answer does, and a
running command's output shows under the status line while it runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from httpkit import ModelServer
from pytest_httpserver import HTTPServer

pexpect = pytest.importorskip("pexpect")

PLAN = {"steps": {"s1": {"call": {"tool": "list_files", "args": {"pattern": "*.md"}}, "depends_on": [],
                         "title": "list the markdown files"}}}
VERDICT = {"outcome": "complete", "answer": "notes.md", "reason": "the listing names it"}
TASK = "list the markdown files"
CUT = re.compile(r"the answer from \S+ was cut off mid-way[^\r\n;]*")
#: What of an event differs between two runs of the same task (ids, times, how long things took).
_VARYING = {"time", "seq", "latency_ms", "duration_ms", "duration_s", "call_id", "run_id", "seconds", "started",
            "finished", "approval_wait_s", "config", "config_digest", "versions", "plan_id", "id", "hash",
            "plan_hash", "request_hash", "data_dir", "workspace"}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    d = tmp_path / "ws"
    d.mkdir()
    (d / "notes.md").write_text("# notes\n")
    return d


def _env(server: ModelServer, transport: str = "auto", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "OPENAI_")) and k not in (
        "NO_COLOR", "COLUMNS")}
    env.update(server.env(AGENT_PLANNER__SURVEY_CALLS="0", AGENT_ALLOW_MODEL_REQUESTS="1",
                          AGENT_LLM__TRANSPORT=transport, **extra),
               TERM="xterm-256color", PYTHONPATH=os.pathsep.join(sys.path))
    if transport == "litellm":
        env["OPENAI_API_KEY"] = "sk-test-0000"
    return env


def spawn(ws: Path, env: dict[str, str], *args: str, columns: int = 100) -> Any:
    return pexpect.spawn(sys.executable, ["-m", "agentcli", *args], cwd=str(ws), env=env, encoding="utf-8",
                         timeout=120, dimensions=(30, columns))


def piped(ws: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentcli", *args], cwd=ws, env=env, capture_output=True,
                          text=True, timeout=300)


def events(ws: Path, run_id: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The newest run's (or ``run_id``'s) id and events."""
    runs = sorted((ws / ".agent" / "runs").glob("*/events.jsonl"), key=lambda p: p.stat().st_mtime)
    path = next(p for p in runs if p.parent.name == run_id) if run_id else runs[-1]
    return path.parent.name, [json.loads(x) for x in path.read_text().splitlines()]


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in _VARYING}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def calls(evs: list[dict[str, Any]]) -> list[Any]:
    """The run's model calls as recorded, without what differs between any two runs."""
    return [_scrub(e["data"]) for e in evs if e["type"] == "llm_call"]


def screen_text(raw: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)


@pytest.mark.parametrize("transport", ["auto", "litellm"])
def test_the_answer_streams_on_screen_and_the_record_is_a_whole_answers(
        ws: Path, httpserver: HTTPServer, transport: str) -> None:
    server = ModelServer(httpserver).add(PLAN, VERDICT)
    server.finish_gate = threading.Event()
    env = _env(server, transport)
    child = spawn(ws, env, "run", "--yes", TASK)
    try:
        # The plan's draft under the status line (its end: the newest words), while the model is
        # still writing it.
        child.expect(r"│ [^\r\n]*\"title\": \"list the markdown files\"")
        child.expect(r"answering \d+\.\ds, \d+ tokens")
        assert server.finished_streams == 0
    finally:
        server.finish_gate.set()
    child.expect_exact("notes.md")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert server.streamed == [True, True]
    assert all(b["stream_options"] == {"include_usage": True} for b in server.bodies)
    streamed_id, streamed = events(ws)

    # The same task through a pipe: no stream asked for, nothing streamed shown, the same record.
    server.finish_gate = None
    server.forget_prompts()
    server.add(PLAN, VERDICT)
    r = piped(ws, env, "run", "--yes", TASK)
    assert r.returncode == 0, r.stderr[-2000:]
    assert server.streamed == [True, True, False, False]
    assert "│" not in r.stderr and "answering" not in r.stderr
    _, whole = events(ws)
    assert calls(streamed) == calls(whole)
    usage = [e["data"]["usage"] for e in streamed if e["type"] == "llm_call"]
    assert all(u["input_tokens"] > 0 and u["output_tokens"] > 0 for u in usage)

    replay = piped(ws, env, "replay", streamed_id)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "identical" in replay.stdout + replay.stderr


def test_no_stream_is_asked_for_where_nobody_watches(ws: Path, httpserver: HTTPServer) -> None:
    server = ModelServer(httpserver).add(PLAN, VERDICT, PLAN, VERDICT)
    env = _env(server)
    for args in (["run", "--yes", "--quiet", TASK], ["run", "--yes", "--output", "json", TASK]):
        child = spawn(ws, env, *args)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        assert "│" not in child.before
    assert server.streamed == [False] * 4


def test_a_model_whose_profile_says_no_streaming_is_not_streamed(ws: Path, httpserver: HTTPServer) -> None:
    server = ModelServer(httpserver).add(PLAN, VERDICT)
    (ws / "agent.toml").write_text('[models."openai/gpt-4o-mini"]\nstreaming = false\n')
    child = spawn(ws, _env(server), "run", "--yes", TASK)
    child.expect_exact("notes.md")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert server.streamed == [False, False]


@pytest.mark.parametrize("transport", ["auto", "litellm"])
def test_a_stream_cut_off_mid_way_fails_as_a_cut_off_whole_answer(ws: Path, httpserver: HTTPServer,
                                                                 transport: str) -> None:
    server = ModelServer(httpserver).add(PLAN, PLAN)
    server.cut_after = 3
    env = _env(server, transport)
    child = spawn(ws, env, "run", "--yes", TASK)
    child.expect(CUT)
    on_screen = child.match.group(0)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus != 0
    _, streamed = events(ws)
    r = piped(ws, env, "run", "--yes", TASK)
    assert r.returncode == child.exitstatus
    _, whole = events(ws)
    assert server.streamed == [True, False]
    assert CUT.search(r.stderr) is not None and CUT.search(r.stderr).group(0) == on_screen  # type: ignore[union-attr]
    errors = [[e["data"].get("error") for e in evs if e["type"] == "llm_call"] for evs in (streamed, whole)]
    assert errors[0] == errors[1] and errors[0] and "cut off mid-way" in errors[0][0]


def test_a_running_commands_output_shows_under_the_status_line(ws: Path, httpserver: HTTPServer) -> None:
    """A hook's and a run_shell step's output, each while it runs (each waits for a file the test
    writes once it has seen the line); what is recorded is the whole output, as ever."""
    hook = "echo hook-is-checking >&2; while [ ! -f go-hook ]; do sleep 0.05; done"
    (ws / "agent.toml").write_text(f"[[hooks]]\nevent = \"pre_tool\"\ncommand = {json.dumps(hook)}\n"
                                   "tools = [\"run_shell\"]\n")
    command = "echo first-line; while [ ! -f go ]; do sleep 0.05; done; echo second-line"
    plan = {"steps": {"s1": {"call": {"tool": "run_shell", "args": {"command": command}}, "depends_on": [],
                             "title": "wait for go"}}}
    server = ModelServer(httpserver).add(plan, {"outcome": "complete", "answer": "done", "reason": ""})
    child = spawn(ws, _env(server), "run", "--yes", "--approve-all", "wait for go")
    child.expect(r"\$ hook echo hook-is-checking[^\r\n]*→ (?:\x1b\[[0-9;]*m)*hook-is-checking")
    (ws / "go-hook").write_text("")
    child.expect(r"\$ echo first-line[^\r\n]*→ (?:\x1b\[[0-9;]*m)*first-line")
    (ws / "go").write_text("")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, screen_text(child.before)[-2000:]
    _, evs = events(ws)
    [call] = [e["data"] for e in evs if e["type"] == "tool_call" and e.get("step_id") == "s1"]
    assert call["result"]["output"]["output"] == "first-line\nsecond-line\n"
    [hooked] = [e["data"] for e in evs if e["type"] == "hook"]
    assert hooked["outcome"] == "ok" and "hook-is-checking" in hooked["stderr"]


def test_a_streamed_answer_with_tool_calls_is_put_back_together(httpserver: HTTPServer) -> None:
    import asyncio

    from agentcli.models.openai_http import OpenAICompatBackend
    from agentcli.models.types import ModelRequest

    def event(delta: dict[str, Any], finish: str | None = None) -> str:
        return "data: " + json.dumps({"model": "m-1", "choices": [{"index": 0, "delta": delta,
                                                                  "finish_reason": finish}]}) + "\n\n"
    body = "".join([
        ": keep-alive\n\n",
        event({"role": "assistant", "content": "Let me "}),
        event({"content": "look."}),
        event({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "read_file", "arguments": '{"pa'}}]}),
        event({"tool_calls": [{"index": 0, "function": {"arguments": 'th": "a.py"}'}}]}),
        event({"tool_calls": [{"index": 1, "id": "c2", "function": {"name": "list_files", "arguments": "{}"}}]}),
        event({}, "tool_calls"),
        "data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4,
                                                        "prompt_tokens_details": {"cached_tokens": 0}}}) + "\n\n",
        "data: [DONE]\n\n"])
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_data(
        body, content_type="text/event-stream")
    told: list[str] = []
    os.environ["AGENT_ALLOW_MODEL_REQUESTS"] = "1"
    try:
        resp = asyncio.run(OpenAICompatBackend().request(ModelRequest(
            model="openai/m", messages=[{"role": "user", "content": "hi"}], max_tokens=50, temperature=0.0,
            api_base=httpserver.url_for("/v1"), on_text=told.append)))
    finally:
        del os.environ["AGENT_ALLOW_MODEL_REQUESTS"]
    assert told == ["Let me ", "look."] and resp.text == "Let me look."
    assert [(c.id, c.name, c.arguments) for c in resp.tool_calls] == [("c1", "read_file", {"path": "a.py"}),
                                                                       ("c2", "list_files", {})]
    assert (resp.finish_reason, resp.input_tokens, resp.output_tokens, resp.model) == ("tool_calls", 9, 4, "m-1")


def test_streamed_text_cannot_draw_on_the_terminal() -> None:
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from agentcli.cli.live import RunStatus
    from agentcli.models.types import PreCall, RunTotals

    status = RunStatus(Console(file=io.StringIO(), force_terminal=True, width=60), enabled=True)
    client = SimpleNamespace(totals=RunTotals(), on_send=[], observers=[], on_text=[])
    status.watch_client(client)
    client.on_send[0](PreCall("openai/m", 10, 10, None, "executor", "s1"))
    for piece in ("\x1b[2J\x1b[Hcleared? ", "\x1b]0;a title\x07no.\r\n", "line two\tend\x08\x07\n",
                  "x" * 200):
        client.on_text[0]("s1", piece)
    lines = [t.plain for t in status.tail(59)]
    assert lines[:2] == ["  │ cleared? no.", "  │ line two    end"]
    assert lines[2].startswith("  │ …x") and len(lines[2]) == 59
    assert not any(ch < " " for line in lines for ch in line)
    assert "answering" in status.line().plain


def test_nothing_streamed_lands_inside_a_prompt(ws: Path, httpserver: HTTPServer) -> None:
    """An `llm` step streams while a parallel step's approval is asked: the streamed text is off
    the screen from the question until the answer, and back after it."""
    plan = {"steps": {
        "s1": {"prompt": "Write a short poem about notes.", "depends_on": [], "title": "a poem"},
        "s2": {"call": {"tool": "write_file", "args": {"path": "out.txt", "content": "hi\n"}}, "depends_on": [],
               "title": "write out.txt"}}}
    poem = "notes in the margin, notes on the wall, notes that nobody reads at all"
    server = ModelServer(httpserver).add(plan, poem, {"outcome": "complete", "answer": poem, "reason": ""})
    child = spawn(ws, _env(server), "run", TASK)
    gate = threading.Event()
    try:
        child.expect_exact("run this plan?")
        server.finish_gate = gate  # the plan is whole; the poem will be held before its end
        child.sendline("y")
        child.expect_exact("run it?")
        # The poem is streaming (held before its end), the question is open: nothing drawn.
        assert child.expect([r"│ ", pexpect.TIMEOUT], timeout=3) == 1, screen_text(child.before)[-1000:]
        child.sendline("y")
        child.expect(r"│ [^\r\n]*nobody reads at all")  # after the answer, back under the status line
    finally:
        gate.set()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, screen_text(child.before)[-2000:]
    assert (ws / "out.txt").read_text() == "hi\n"
    assert server.streamed == [True, True, True]


@pytest.mark.real_model
@pytest.mark.parametrize("schema", [False, True])
def test_the_embedded_model_tells_its_text_as_it_writes_and_answers_the_same(
        monkeypatch: pytest.MonkeyPatch, schema: bool) -> None:
    import asyncio

    from agentcli.models.local.model import LocalBackend
    from agentcli.models.types import ModelRequest

    monkeypatch.setenv("AGENT_ALLOW_MODEL_REQUESTS", "1")
    fmt = {"type": "json_schema", "json_schema": {"name": "r", "schema": {
        "type": "object", "properties": {"files": {"type": "array", "items": {"type": "string", "maxLength": 20},
                                                   "maxItems": 3}}, "required": ["files"]}}} if schema else None

    def ask(on_text: Any) -> Any:
        return asyncio.run(LocalBackend().request(ModelRequest(
            model="local/smollm2", messages=[{"role": "user", "content": "Name three files of a Python project."}],
            max_tokens=60, temperature=0.0, seed=0, response_format=fmt, on_text=on_text)))

    told: list[str] = []
    whole, streamed = ask(None), ask(told.append)
    assert streamed == whole  # generation is untouched: the same text, tokens and finish reason
    assert len(told) > 3 and whole.text.startswith("".join(told)[:len(whole.text) - 8])


def _ask_streamed(httpserver: HTTPServer) -> tuple[Any, list[str]]:
    import asyncio

    from agentcli.models.openai_http import OpenAICompatBackend
    from agentcli.models.types import ModelRequest

    told: list[str] = []
    os.environ["AGENT_ALLOW_MODEL_REQUESTS"] = "1"
    try:
        return asyncio.run(OpenAICompatBackend().request(ModelRequest(
            model="openai/m", messages=[{"role": "user", "content": "hi"}], max_tokens=50, temperature=0.0,
            api_base=httpserver.url_for("/v1"), on_text=told.append))), told
    finally:
        del os.environ["AGENT_ALLOW_MODEL_REQUESTS"]


def test_a_server_that_answers_whole_when_asked_to_stream_is_read_as_ever(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_json({
        "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole"},
                                   "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
    resp, told = _ask_streamed(httpserver)
    assert (resp.text, resp.finish_reason, resp.output_tokens, told) == ("whole", "stop", 1, [])


def test_a_stream_that_is_not_json_is_one_line_and_retried(httpserver: HTTPServer) -> None:
    from agentcli.errors import LLMTransientError

    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_data(
        "data: {not json\n\n", content_type="text/event-stream")
    with pytest.raises(LLMTransientError, match=r"^openai/m: malformed response from \S+:\d+: "):
        _ask_streamed(httpserver)


def test_the_output_limit_cuts_a_streamed_answer_as_a_whole_one(ws: Path, httpserver: HTTPServer) -> None:
    """max_tokens is sent and enforced as without streaming: the answer cut at the limit
    (finish_reason length) fails the same way, with the same record."""
    server = ModelServer(httpserver).add(PLAN, PLAN, PLAN, PLAN, PLAN, PLAN, PLAN, PLAN)
    env = _env(server, AGENT_LLM__MAX_OUTPUT_TOKENS="8")
    child = spawn(ws, env, "run", "--yes", TASK)
    child.expect(pexpect.EOF)
    child.close()
    _, streamed = events(ws)
    asked = len(server.bodies)
    server.forget_prompts()
    r = piped(ws, env, "run", "--yes", TASK)
    _, whole = events(ws)
    assert r.returncode == child.exitstatus != 0
    assert server.streamed == [True] * asked + [False] * (len(server.bodies) - asked)
    assert {b["max_tokens"] for b in server.bodies} == {8}
    assert calls(streamed) == calls(whole)
    assert {c["outcome"] for c in calls(streamed)} == {"truncated"}


def test_of_answers_streaming_at_once_the_newest_is_shown_whole() -> None:
    """Parallel `llm` steps stream at once: their texts are never mixed; the one that wrote last shows."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from agentcli.cli.live import RunStatus
    from agentcli.models.types import PreCall, RunTotals

    status = RunStatus(Console(file=io.StringIO(), force_terminal=True, width=100), enabled=True)
    client = SimpleNamespace(totals=RunTotals(), on_send=[], observers=[], on_text=[])
    status.watch_client(client)
    for step in ("s1", "s2"):
        client.on_send[0](PreCall("openai/m", 10, 10, None, "executor", step))
    client.on_text[0]("s1", "alpha one ")
    client.on_text[0]("s2", "beta one ")
    client.on_text[0]("s1", "alpha two")
    assert [t.plain for t in status.tail(99)] == ["  │ alpha one alpha two"]
    assert "s1: m answering" in status.line().plain
    client.on_text[0]("s2", "beta two")
    assert [t.plain for t in status.tail(99)] == ["  │ beta one beta two"]
    assert "s2: m answering" in status.line().plain


def test_the_verify_commands_output_shows_while_it_runs(ws: Path, httpserver: HTTPServer) -> None:
    check = "echo checking-the-change; while [ ! -f go ]; do sleep 0.05; done; echo all-good"
    (ws / "agent.toml").write_text(f"[verify]\ncommand = {json.dumps(check)}\n")
    plan = {"steps": {"s1": {"call": {"tool": "write_file", "args": {"path": "out.txt", "content": "hi\n"}},
                             "depends_on": [], "title": "write out.txt"}}}
    server = ModelServer(httpserver).add(plan, {"outcome": "complete", "answer": "written", "reason": ""})
    child = spawn(ws, _env(server), "run", "--yes", "--approve-all", "write out.txt")
    child.expect(r"\$ echo checking-the-change[^\r\n]*→ (?:\x1b\[[0-9;]*m)*checking-the-change")
    (ws / "go").write_text("")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, screen_text(child.before)[-2000:]
    _, evs = events(ws)
    [verified] = [e["data"] for e in evs if e["type"] == "verify"]
    assert verified["status"] == "passed" and verified["output"].split() == ["checking-the-change", "all-good"]


@pytest.mark.parametrize("cut", [False, True])
def test_litellm_streams_the_answer_and_a_cut_is_the_same_error(
        httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, cut: bool) -> None:
    import asyncio

    from agentcli.errors import LLMTransientError
    from agentcli.models.litellm import LiteLLMBackend
    from agentcli.models.types import ModelRequest

    monkeypatch.setenv("AGENT_ALLOW_MODEL_REQUESTS", "1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000")
    server = ModelServer(httpserver).add("notes in the margin, notes on the wall")
    server.cut_after = 2 if cut else None
    told: list[str] = []
    ask = LiteLLMBackend().request(ModelRequest(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "a poem"}], max_tokens=50,
        temperature=0.0, api_base=server.api_base, on_text=told.append))
    if cut:
        with pytest.raises(LLMTransientError, match=r"the answer from \S+ was cut off mid-way"):
            asyncio.run(ask)
        return
    resp = asyncio.run(ask)
    assert "".join(told) == resp.text == "notes in the margin, notes on the wall" and len(told) > 3
    from agentcli.models import tokens

    # The server's usage, as a whole answer's (the server counts with tiktoken).
    assert (resp.finish_reason, resp.model, resp.output_tokens) == (
        "stop", "gpt-4o-mini-2024-07-18", tokens.count_text(resp.text, "openai/gpt-4o-mini"))
    assert server.streamed == [True] and server.bodies[0]["stream_options"] == {"include_usage": True}


def test_a_commands_output_is_told_as_it_comes_and_returned_the_same(tmp_path: Path) -> None:
    import asyncio

    from agentcli.engine.hooks import run_hook_process
    from agentcli.tools.shell import run_process

    told: list[str] = []
    code, out, err, timed_out = asyncio.run(run_hook_process(
        "cat; echo to-stderr >&2", b"from-stdin\n", cwd=tmp_path, timeout=30, on_output=told.append))
    assert (code, out, err, timed_out) == (0, b"from-stdin\n", b"to-stderr\n", False)
    assert sorted("".join(told).split()) == ["from-stdin", "to-stderr"]
    told.clear()
    res = asyncio.run(run_process("printf 'caf\\303'; printf '\\251 ok\\n'", cwd=tmp_path, timeout=30,
                                  limit=1000, on_output=told.append))
    assert res.output == "café ok\n" == "".join(told)  # a character split across reads stays whole


def test_agent_plan_shows_the_status_line_and_the_streaming_draft_as_run_does(ws: Path, httpserver: HTTPServer) -> None:
    """`agent plan` at a terminal: the planning status line and the planner's draft streaming under
    it while the model writes it, then the plan table; `--json` and a pipe ask for no stream."""
    server = ModelServer(httpserver).add(PLAN)
    server.finish_gate = threading.Event()
    env = _env(server)
    child = spawn(ws, env, "plan", TASK)
    try:
        child.expect(r"planning · [^\r\n]*answering \d+\.\ds, \d+ tokens")
        child.expect(r"│ [^\r\n]*\"title\": \"list the markdown files\"")
        assert server.finished_streams == 0
    finally:
        server.finish_gate.set()
    child.expect_exact("list the markdown files")
    child.expect_exact("plan saved to")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert server.streamed == [True]
    server.finish_gate = None
    server.forget_prompts()
    server.add(PLAN, PLAN)
    child = spawn(ws, env, "plan", "--json", TASK)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and "│" not in child.before and "planning ·" not in child.before
    r = piped(ws, env, "plan", TASK)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "│" not in r.stderr and "answering" not in r.stderr
    assert server.streamed == [True, False, False]
