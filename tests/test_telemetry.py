"""OpenTelemetry traces built from run events: the span tree, attributes, content capture, errors,
`agent replay --export-trace`, and no import at all while telemetry is off."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from runkit import Harness, config, plan, review, step
from typer.testing import CliRunner

pytest.importorskip("opentelemetry.sdk.trace")

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.config import TelemetryConfig
from agentcli.errors import LLMTransientError
from agentcli.models.fakes import ScriptedModel
from agentcli.record import telemetry
from agentcli.record.events import Event
from agentcli.record.telemetry import SpanConverter, provider_name, start_run_telemetry, trace_id_for

runner = CliRunner()
LIST_PY = {"steps": [{"title": "List the Python files", "tool": "list_files", "args": {"pattern": "**/*.py"}}]}


class Trace:
    """Finished spans, with helpers to walk the tree."""

    def __init__(self, spans: tuple[ReadableSpan, ...]) -> None:
        self.spans = sorted(spans, key=lambda s: (s.start_time or 0, s.name))
        self.by_id = {s.context.span_id: s for s in self.spans}

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        [span] = self.named(name)
        return span

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        return None if span.parent is None else self.by_id[span.parent.span_id]

    def parent_name(self, span: ReadableSpan) -> str | None:
        p = self.parent(span)
        return None if p is None else p.name

    def root(self) -> ReadableSpan:
        [root] = [s for s in self.spans if s.parent is None]
        return root


def run_traced(h: Harness, capture: bool = False) -> tuple[Any, Trace]:
    exporter = InMemorySpanExporter()
    tel = start_run_telemetry(TelemetryConfig(capture_content=capture), exporter=exporter)
    assert tel is not None
    h.listeners.append(tel.listener)
    out = h.run()
    tel.shutdown()
    return out, Trace(exporter.get_finished_spans())


def _happy(ws: Path) -> Harness:
    (ws / "notes.txt").write_text("alpha\nbeta\n")
    p = plan(step("s1", "read_file", path="notes.txt"),
             step("s2", prompt="Summarise: {{s1.output}}", deps=["s1"]))
    return Harness(ws, config(), ScriptedModel(["two lines: alpha and beta", review(answer="alpha, beta")]), [p])


def ns(t: float) -> int:
    return int(t * 1e9)


def test_span_tree_and_genai_attributes(workspace: Path) -> None:
    h = _happy(workspace)
    out, tr = run_traced(h)
    rec = h.recording()
    assert out.status == "COMPLETE"
    root = tr.root()
    assert root.name == "invoke_agent agentcli"
    assert {s.context.trace_id for s in tr.spans} == {trace_id_for("run-test")}  # one trace, from the run id
    assert root.attributes is not None
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["gen_ai.conversation.id"] == "run-test"
    assert root.attributes["openinference.span.kind"] == "AGENT"
    assert root.attributes["agentcli.run.status"] == "COMPLETE"
    assert root.status.status_code == StatusCode.UNSET
    # root spans the run: run_started .. run_finished
    started, finished = rec.first("run_started"), list(rec.of_type("run_finished"))[-1]
    assert started is not None
    assert (root.start_time, root.end_time) == (ns(started.time), ns(finished.time))

    assert [(s.name, tr.parent_name(s)) for s in tr.spans if s is not root] == [
        ("planning", root.name), ("step s1", root.name), ("execute_tool read_file", "step s1"),
        ("step s2", root.name), ("chat test/scripted", "step s2"), ("reviewing", root.name),
        ("chat test/scripted", "reviewing"),
    ]
    for s in tr.spans:  # every span inside the root, every span tagged with the run
        assert root.start_time is not None and s.start_time is not None and s.end_time is not None
        assert root.start_time <= s.start_time <= s.end_time <= (root.end_time or 0)
        assert s.attributes is not None and s.attributes["gen_ai.conversation.id"] == "run-test"

    # state transitions are events of the root span, in order
    transitions = [e.data["to"] for e in rec.of_type("transition")]
    assert [ev.attributes["agentcli.state.to"] for ev in root.events if ev.name == "transition"
            and ev.attributes is not None] == transitions

    # the tool span ends at the tool_call event and starts duration_ms earlier
    [tool_ev] = rec.of_type("tool_call")
    tool = tr.one("execute_tool read_file")
    assert tool.end_time == ns(tool_ev.time)
    assert tool.start_time == ns(tool_ev.time - tool_ev.data["result"]["duration_ms"] / 1000)
    assert tool.attributes is not None
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "read_file"
    assert tool.attributes["openinference.span.kind"] == "TOOL"

    # the step span runs from step_started to step_finished
    s1 = tr.one("step s1")
    [s1_start] = [e for e in rec.of_type("step_started") if e.step_id == "s1"]
    [s1_end] = [e for e in rec.of_type("step_finished") if e.step_id == "s1"]
    assert (s1.start_time, s1.end_time) == (ns(s1_start.time), ns(s1_end.time))
    assert [ev.name for ev in s1.events] == ["approval"]

    # LLM spans: GenAI + OpenInference attributes, timed from latency_ms
    llm_events = {e.data["role"]: e for e in rec.of_type("llm_call")}
    for span in tr.named("chat test/scripted"):
        a = span.attributes
        assert a is not None
        ev = llm_events[str(a["agentcli.role"])]
        assert span.end_time == ns(ev.time)
        assert span.start_time == ns(ev.time - ev.data["latency_ms"] / 1000)
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == "test"
        assert a["gen_ai.request.model"] == "test/scripted"
        assert a["gen_ai.response.model"] == "test/scripted"
        assert a["gen_ai.usage.input_tokens"] == ev.data["usage"]["input_tokens"] > 0
        assert a["gen_ai.usage.output_tokens"] == ev.data["usage"]["output_tokens"] > 0
        assert a["gen_ai.usage.cost"] == ev.data["cost_usd"] > 0
        assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)  # type: ignore[arg-type]
        assert a["openinference.span.kind"] == "LLM"
        assert a["llm.model_name"] == "test/scripted"
        assert a["llm.token_count.prompt"] == a["gen_ai.usage.input_tokens"]
        assert a["llm.token_count.completion"] == a["gen_ai.usage.output_tokens"]
        assert span.status.status_code == StatusCode.UNSET
    # run totals on the root, under names a backend does not add to the calls' usage
    assert root.attributes["agentcli.usage.calls"] == 2
    assert "gen_ai.usage.input_tokens" not in root.attributes


def _content_keys(tr: Trace) -> set[str]:
    keys = {"gen_ai.input.messages", "gen_ai.output.messages", "input.value", "output.value",
            "gen_ai.tool.call.arguments", "gen_ai.tool.call.result"}
    found = set()
    for s in tr.spans:
        assert s.attributes is not None
        found |= {k for k in s.attributes if k in keys or k.startswith(("llm.input_messages", "llm.output_messages"))}
    return found


def test_content_not_captured_by_default(workspace: Path) -> None:
    _, tr = run_traced(_happy(workspace))
    assert _content_keys(tr) == set()
    blob = json.dumps([dict(s.attributes or {}) for s in tr.spans])
    assert "alpha" not in blob and "Summarise" not in blob and "the task" not in blob


def test_content_captured_when_asked(workspace: Path) -> None:
    _, tr = run_traced(_happy(workspace), capture=True)
    [s2_chat] = [s for s in tr.named("chat test/scripted") if tr.parent_name(s) == "step s2"]
    a = s2_chat.attributes
    assert a is not None
    inputs = json.loads(str(a["gen_ai.input.messages"]))
    assert inputs[-1]["role"] == "user" and "alpha\nbeta" in inputs[-1]["parts"][0]["content"]
    outputs = json.loads(str(a["gen_ai.output.messages"]))
    assert outputs == [{"role": "assistant", "parts": [{"type": "text", "content": "two lines: alpha and beta"}]}]
    assert a["output.value"] == "two lines: alpha and beta"
    tool = tr.one("execute_tool read_file").attributes
    assert tool is not None
    assert json.loads(str(tool["gen_ai.tool.call.arguments"])) == {"path": "notes.txt"}
    assert tool["gen_ai.tool.call.result"] == "alpha\nbeta\n"
    root = tr.root().attributes
    assert root is not None and root["input.value"] == "the task" and root["output.value"] == "alpha, beta"


def _event(seq: int, type_: str, data: dict[str, Any], step_id: str | None = None, t: float = 100.0) -> Event:
    return Event(seq=seq, time=t + seq, type=type_, run_id="run-x", step_id=step_id, data=data)  # type: ignore[arg-type]


def test_secrets_never_reach_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("MY_SERVICE_API_KEY", secret)
    exporter = InMemorySpanExporter()
    tel = start_run_telemetry(TelemetryConfig(capture_content=True), exporter=exporter)
    assert tel is not None
    # Events fed straight in (not through an EventLog, which redacts too): the converter redacts itself.
    tel.converter.feed([
        _event(1, "run_started", {"task": f"use key {secret}", "model": "openai/gpt-4o-mini"}),
        _event(2, "step_started", {"title": "call", "kind": "llm"}, "s1"),
        _event(3, "llm_call", {"model": "openai/gpt-4o-mini", "role": "executor", "outcome": "error",
                               "request": {"messages": [{"role": "user", "content": f"key={secret}"}]},
                               "response": None, "usage": {"input_tokens": 3, "output_tokens": 0},
                               "latency_ms": 5.0, "error_type": "auth", "error": f"bad key {secret}"}, "s1"),
        _event(4, "tool_call", {"tool": "run_shell", "args": {"command": f"echo {secret}"},
                                "result": {"ok": True, "output": secret, "duration_ms": 1.0}}, "s1"),
        _event(5, "step_finished", {"status": "failed", "error": {"type": "auth", "message": f"x {secret}"}}, "s1"),
        _event(6, "run_finished", {"status": "FAILED", "reason": "error", "answer": f"failed with {secret}"}),
    ])
    tel.shutdown()
    spans = exporter.get_finished_spans()
    assert len(spans) == 4
    blob = json.dumps([[dict(s.attributes or {}), [dict(e.attributes or {}) for e in s.events],
                        s.status.description] for s in spans])
    assert secret not in blob
    assert "[REDACTED]" in blob


def test_error_spans(workspace: Path) -> None:
    p = plan(step("s1", "read_file", path="missing.txt"), step("s2", prompt="say hi"))
    model = ScriptedModel([review("continue", reason="s1 is optional"),
                           LLMTransientError("rate limited", status=429, retry_after=0), "hi", review(answer="hi")])
    h = Harness(workspace, config(executor={"max_parallel": 1}), model, [p])
    out, tr = run_traced(h)
    assert out.status == "COMPLETE"
    # the failed tool call and its step
    tool = tr.one("execute_tool read_file")
    assert tool.status.status_code == StatusCode.ERROR
    assert tool.attributes is not None and tool.attributes["error.type"] == "tool_error"
    [exc] = [e for e in tool.events if e.name == "exception"]
    assert exc.attributes is not None and "missing.txt" in str(exc.attributes["exception.message"])
    assert tr.one("step s1").status.status_code == StatusCode.ERROR
    # the retried LLM attempt is an error span; the retry that answered is not
    chats = [s for s in tr.named("chat test/scripted") if tr.parent_name(s) == "step s2"]
    assert [c.status.status_code for c in chats] == [StatusCode.ERROR, StatusCode.UNSET]
    first = chats[0]
    assert first.attributes is not None and first.attributes["agentcli.outcome"] == "retry"
    assert first.status.description is not None and "rate limited" in first.status.description
    assert any(e.name == "exception" for e in first.events)
    assert tr.one("step s2").status.status_code == StatusCode.UNSET


def test_failed_run_is_an_error_on_the_root(workspace: Path) -> None:
    h = Harness(workspace, config(budget={"max_tokens": 50}), ScriptedModel(["x"]), [plan(step("s1", prompt="x"))])
    out, tr = run_traced(h)
    assert out.reason == "budget_exceeded:tokens"
    root = tr.root()
    assert root.status.status_code == StatusCode.ERROR
    assert root.attributes is not None and root.attributes["error.type"] == "budget_exceeded:tokens"
    assert any(e.name == "budget_exceeded" for e in root.events)
    assert any(e.name == "exception" for e in root.events)


def test_planning_that_fails_is_an_error(workspace: Path) -> None:
    h = Harness(workspace, config(), ScriptedModel([]), [plan(step("s1", "read_file", path="x"))],
                confirm_answers=[False])
    _, tr = run_traced(h)
    planning = tr.one("planning")
    assert planning.status.status_code == StatusCode.ERROR
    assert tr.root().status.status_code == StatusCode.ERROR


def test_crashed_recording_closes_open_spans() -> None:
    exporter = InMemorySpanExporter()
    tel = start_run_telemetry(TelemetryConfig(), exporter=exporter)
    assert tel is not None
    tel.converter.feed([
        _event(1, "run_started", {"task": "t", "model": "local/smollm2"}),
        _event(2, "transition", {"from": "IDLE", "to": "PLANNING", "reason": "task received"}),
        _event(3, "transition", {"from": "PLANNING", "to": "EXECUTING", "reason": "ok"}),
        _event(4, "step_started", {"title": "slow", "kind": "tool", "tool": "run_shell"}, "s1"),
    ])
    tel.shutdown()
    tr = Trace(exporter.get_finished_spans())
    assert [s.name for s in tr.spans] == ["invoke_agent agentcli", "planning", "step s1"]
    assert tr.root().status.status_code == StatusCode.ERROR
    assert tr.one("step s1").end_time == ns(104.0)
    assert tr.root().attributes is not None and tr.root().attributes["gen_ai.provider.name"] == "local"


def test_listener_never_breaks_the_run(workspace: Path) -> None:
    class Broken:
        def start_span(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("collector on fire")

    conv = SpanConverter(Broken())  # type: ignore[arg-type]
    h = _happy(workspace)
    h.listeners.append(conv.on_event)
    assert h.run().status == "COMPLETE"


def test_provider_names() -> None:
    assert provider_name("openai/gpt-4o-mini") == "openai"
    assert provider_name("anthropic/claude-sonnet-4-5") == "anthropic"
    assert provider_name("ollama/llama3.1") == "ollama"
    assert provider_name("ollama_chat/llama3.1") == "ollama"
    assert provider_name("local/smollm2") == "local"
    assert provider_name("bedrock/anthropic.claude-3") == "aws.bedrock"
    assert provider_name("gemini/gemini-2.0-flash") == "gcp.gemini"
    assert provider_name("gpt-4o") == "openai"
    assert provider_name("claude-3-haiku") == "anthropic"


# ----------------------------------------------------------------------- through the CLI


def _invoke(args: list[str], *responses: Any, env: dict[str, str] | None = None) -> Any:
    environ = {"AGENT_MODEL": "test/scripted", **(env or {})}
    return runner.invoke(app, args, obj=State(backend=ScriptedModel(list(responses)), environ=environ))


class Captured:
    """Every exporter the CLI builds (one per provider) collects here."""

    def __init__(self) -> None:
        self.exporters: list[InMemorySpanExporter] = []

    def make(self, cfg: TelemetryConfig) -> InMemorySpanExporter:
        self.exporters.append(InMemorySpanExporter())
        return self.exporters[-1]

    def trace(self, index: int = -1) -> Trace:
        return Trace(self.exporters[index].get_finished_spans())


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Captured:
    """Whatever exporter the config names, spans land here."""
    c = Captured()
    monkeypatch.setattr(telemetry, "make_exporter", c.make)
    return c


def _shape(tr: Trace) -> list[tuple[Any, ...]]:
    """Everything but span ids: names, parents, times, attributes, events, status."""
    return [(s.name, tr.parent_name(s), s.start_time, s.end_time, sorted((s.attributes or {}).items()),
             [(e.name, e.timestamp, sorted((e.attributes or {}).items())) for e in s.events],
             s.status.status_code, s.status.description, s.context.trace_id) for s in tr.spans]


def test_agent_run_traced_then_export_trace_gives_the_same_trace(workspace: Path,
                                                                 captured: Captured) -> None:
    (workspace / "main.py").write_text("print('hi')\n")
    env = {"AGENT_TELEMETRY__EXPORTER": "otlp"}
    r = _invoke(["run", "list the python files", "--yes", "--json"], LIST_PY,
                {"outcome": "complete", "answer": "main.py", "reason": ""}, env=env)
    assert r.exit_code == 0, r.output
    run_id = json.loads(r.stdout)["run_id"]
    live = captured.trace()
    assert live.root().context.trace_id == trace_id_for(run_id)
    # the real planner's call is a child of the planning span
    planner_chat = [s for s in live.named("chat test/scripted") if tr_role(s) == "planner"]
    assert [live.parent_name(s) for s in planner_chat] == ["planning"]
    assert live.one("execute_tool list_files").attributes is not None

    r = _invoke(["replay", run_id, "--export-trace", "--json"], env=env)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["spans"] == len(live.spans) and summary["trace_ids"] == [f"{trace_id_for(run_id):032x}"]
    assert len(captured.exporters) == 2
    exported = captured.trace()
    assert _shape(exported) == _shape(live)


def tr_role(span: ReadableSpan) -> str:
    return str((span.attributes or {}).get("agentcli.role"))


def test_export_trace_console_and_errors(workspace: Path) -> None:
    (workspace / "main.py").write_text("print('hi')\n")
    r = _invoke(["run", "list", "--yes", "--json"], LIST_PY, {"outcome": "complete", "answer": "ok", "reason": ""})
    run_id = json.loads(r.stdout)["run_id"]
    # telemetry off: a usage error that says how to turn it on
    off = _invoke(["replay", run_id, "--export-trace"])
    assert off.exit_code == 2 and "exporter" in off.stderr
    both = _invoke(["replay", run_id, "--export-trace", "--from", "s1"], env={"AGENT_TELEMETRY__EXPORTER": "console"})
    assert both.exit_code == 2 and "--from" in both.stderr
    # console: span JSON on stderr, nothing executed, stdout untouched
    r = _invoke(["replay", run_id, "--export-trace"], env={"AGENT_TELEMETRY__EXPORTER": "console"})
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    assert '"name": "invoke_agent agentcli"' in r.stderr and '"name": "execute_tool list_files"' in r.stderr
    assert f"exported run {run_id}" in r.stderr


def test_telemetry_off_imports_no_opentelemetry(tmp_path: Path) -> None:
    code = """
import sys
from pathlib import Path
from typer.testing import CliRunner
from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.models.fakes import ScriptedModel
import os
os.chdir(sys.argv[1])
Path("main.py").write_text("x = 1")
plan = {"steps": [{"title": "list", "tool": "list_files", "args": {"pattern": "*.py"}}]}
model = ScriptedModel([plan, {"outcome": "complete", "answer": "ok", "reason": ""}])
r = CliRunner().invoke(app, ["run", "list", "--yes", "--json"], obj=State(backend=model,
                       environ={"AGENT_MODEL": "test/scripted"}))
assert r.exit_code == 0, r.output
print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"))
"""
    ws = tmp_path / "ws"
    ws.mkdir()
    out = subprocess.run([sys.executable, "-c", code, str(ws)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
