"""The LLM client against an OpenAI-compatible server on loopback, through both real HTTP paths:
litellm's (``llm.transport = "litellm"``) and the plain-HTTP one that imports no litellm (``auto``,
:mod:`agentcli.models.openai_http`). Every test runs on both."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner
from werkzeug import Request, Response

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.config import Config
from agentcli.errors import LLMTransientError, ModelRequestsBlocked, ModelSetupError
from agentcli.models.calllog import CallLog
from agentcli.models.client import LLMClient

SECRET = "sk-test-SECRET-0123456789abcdef"


def completion(content: str | None = "hello", *, tool_calls: list[dict[str, Any]] | None = None,
               usage: tuple[int, int] = (12, 3)) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        msg["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }


class FakeOpenAI:
    """Serves queued responses at /v1/chat/completions and keeps every request body and header."""

    def __init__(self, server: HTTPServer, transport: str = "auto") -> None:
        self.server = server
        self.transport = transport
        self.queue: deque[Response] = deque()
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(self._handle)

    def _handle(self, request: Request) -> Response:
        self.bodies.append(json.loads(request.data))
        self.headers.append(dict(request.headers))
        if not self.queue:
            return Response("no response queued", status=599)
        return self.queue.popleft()

    def ok(self, body: dict[str, Any]) -> FakeOpenAI:
        self.queue.append(Response(json.dumps(body), status=200, content_type="application/json"))
        return self

    def status(self, code: int, headers: dict[str, str] | None = None) -> FakeOpenAI:
        self.queue.append(Response(json.dumps({"error": {"message": f"status {code}"}}), status=code,
                                   headers=headers or {}, content_type="application/json"))
        return self

    @property
    def api_base(self) -> str:
        return self.server.url_for("/v1")


@pytest.fixture(params=["auto", "litellm"])
def fake(request: pytest.FixtureRequest, httpserver: HTTPServer, allow_model_requests: None,
         monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-also-secret-987654321")
    monkeypatch.setenv("AGENT_LLM__TRANSPORT", request.param)  # the CLI tests' processes
    return FakeOpenAI(httpserver, request.param)


def make_client(fake: FakeOpenAI, tmp_path: Path, **llm: Any) -> LLMClient:
    cfg = Config.model_validate({
        "model": "openai/gpt-4o-mini",
        "api_base": fake.api_base,
        "llm": {"backoff_base_seconds": 0, "max_retries": 2, "transport": fake.transport, **llm},
    })
    return LLMClient(cfg, call_log=CallLog(tmp_path / "calls.jsonl"), run_id="run-1")


def records(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]


def test_normal_completion_usage_cost_and_log(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.ok(completion("hello there", usage=(1000, 500)))
    client = make_client(fake, tmp_path)
    r = client.complete([{"role": "user", "content": f"say hello {SECRET}"}], step_id="s1")
    assert r.text == "hello there"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (1000, 500)
    # gpt-4o-mini: $0.15 / $0.60 per million tokens, from litellm's bundled price map
    assert r.cost_usd == pytest.approx(1000 * 0.15e-6 + 500 * 0.60e-6)
    assert r.attempts == 1
    assert client.totals.calls == 1 and client.totals.cost_usd == pytest.approx(r.cost_usd)
    [rec] = records(tmp_path)
    assert rec["gen_ai.request.model"] == "openai/gpt-4o-mini"
    assert rec["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert rec["gen_ai.usage.input_tokens"] == 1000 and rec["gen_ai.usage.output_tokens"] == 500
    assert rec["input_tokens_estimate"] > 0
    assert rec["run_id"] == "run-1" and rec["step_id"] == "s1"
    assert rec["outcome"] == "ok" and rec["attempt"] == 1 and rec["error_type"] is None
    assert rec["latency_ms"] > 0 and rec["schema_version"] == 1
    # the request really carried the key, but no record does
    assert fake.headers[0]["Authorization"] == f"Bearer {SECRET}"
    log = (tmp_path / "calls.jsonl").read_text()
    assert SECRET not in log and "Bearer" not in log


def test_429_then_success_is_retried_and_logged(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.status(429, {"Retry-After": "0"}).ok(completion("after retry"))
    client = make_client(fake, tmp_path)
    r = client.complete([{"role": "user", "content": "hi"}])
    assert r.text == "after retry" and r.attempts == 2
    assert len(fake.bodies) == 2  # no hidden SDK retries on top of ours
    first, second = records(tmp_path)
    assert (first["outcome"], first["error_type"], first["attempt"]) == ("retry", "transient", 1)
    assert "429" in first["error"]
    assert (second["outcome"], second["attempt"]) == ("ok", 2)
    assert first["call_id"] == second["call_id"]


def test_retry_after_is_honoured(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.status(429, {"Retry-After": "7"}).ok(completion())
    client = make_client(fake, tmp_path)
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)

    client._sleep = fake_sleep
    client.complete([{"role": "user", "content": "hi"}])
    assert slept == [7.0]


def test_500s_until_retries_run_out(fake: FakeOpenAI, tmp_path: Path) -> None:
    for _ in range(3):
        fake.status(500)
    client = make_client(fake, tmp_path)
    with pytest.raises(LLMTransientError, match="after 3 attempts"):
        client.complete([{"role": "user", "content": "hi"}])
    assert len(fake.bodies) == 3
    assert [r["outcome"] for r in records(tmp_path)] == ["retry", "retry", "error"]


def test_auth_error_fails_at_once(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.status(401)
    client = make_client(fake, tmp_path)
    # A set-up error (a fatal one, exit 2): named, never retried, on both transports.
    with pytest.raises(ModelSetupError, match=r"refused the credentials \(HTTP 401\)"):
        client.complete([{"role": "user", "content": "hi"}])
    assert len(fake.bodies) == 1


def test_fallback_model_is_tried(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.status(400)
    cfg = Config.model_validate({"model": "openai/gpt-4o-mini", "api_base": fake.api_base,
                                 "fallbacks": ["test/echo"],
                                 "llm": {"backoff_base_seconds": 0, "transport": fake.transport}})
    client = LLMClient(cfg, call_log=CallLog(tmp_path / "calls.jsonl"))
    r = client.complete([{"role": "user", "content": "echo me"}])
    assert r.text == "echo me" and r.response_model == "test/echo"
    assert [x["gen_ai.request.model"] for x in records(tmp_path)] == ["openai/gpt-4o-mini", "test/echo"]


class Answer(BaseModel):
    answer: str
    confidence: float


def test_malformed_json_then_valid_is_reasked(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.ok(completion('{"answer": "42", "confidence": "high"'))  # truncated, invalid
    fake.ok(completion('{"answer": "42", "confidence": "very"}'))  # valid JSON, wrong type
    fake.ok(completion('```json\n{"answer": "42", "confidence": 0.9}\n```'))
    client = make_client(fake, tmp_path)
    r = client.complete([{"role": "user", "content": "answer"}], response_model=Answer)
    assert r.parsed == Answer(answer="42", confidence=0.9)
    assert r.attempts == 3
    # JSON schema was requested, and the re-ask carried the validation error back
    assert fake.bodies[0]["response_format"]["type"] == "json_schema"
    last_user = fake.bodies[2]["messages"][-1]["content"]
    assert "confidence" in last_user and "valid number" in last_user
    kinds = [(r.get("event"), r.get("outcome")) for r in records(tmp_path)]
    assert kinds.count(("llm_output_invalid", "invalid_output")) == 2
    assert kinds.count(("llm_call", "ok")) == 3


def test_structured_output_gives_up_after_bounded_reasks(fake: FakeOpenAI, tmp_path: Path) -> None:
    for _ in range(2):
        fake.ok(completion("not json at all"))
    client = make_client(fake, tmp_path, max_reasks=1)
    from agentcli.errors import StructuredOutputError

    with pytest.raises(StructuredOutputError, match="no valid structured output after 2 tries"):
        client.complete([{"role": "user", "content": "answer"}], response_model=Answer)
    assert len(fake.bodies) == 2


def test_tool_call_response(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.ok(completion(None, tool_calls=[{
        "id": "call_1", "type": "function",
        "function": {"name": "read_file", "arguments": json.dumps({"path": "README.md"})},
    }]))
    tools = [{"type": "function", "function": {
        "name": "read_file", "description": "Read a file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    }}]
    client = make_client(fake, tmp_path)
    r = client.complete([{"role": "user", "content": "read the readme"}], tools=tools)
    assert [(c.name, c.arguments) for c in r.tool_calls] == [("read_file", {"path": "README.md"})]
    assert fake.bodies[0]["tools"][0]["function"]["name"] == "read_file"


def test_requests_blocked_without_opt_in(httpserver: HTTPServer, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_ALLOW_MODEL_REQUESTS", "0")
    cfg = Config.model_validate({"model": "openai/gpt-4o-mini", "api_base": httpserver.url_for("/v1")})
    with pytest.raises(ModelRequestsBlocked):
        LLMClient(cfg).complete([{"role": "user", "content": "hi"}])
    assert httpserver.log == []


def test_cli_ask_500s_clear_error_nonzero_exit(fake: FakeOpenAI, workspace: Path) -> None:
    for _ in range(2):
        fake.status(503)
    env = {"AGENT_MODEL": "openai/gpt-4o-mini", "AGENT_API_BASE": fake.api_base,
           "AGENT_LLM__BACKOFF_BASE_SECONDS": "0", "AGENT_LLM__MAX_RETRIES": "1",
           "AGENT_LLM__TRANSPORT": fake.transport}
    result = CliRunner().invoke(app, ["ask", "hello"], obj=State(environ=env))
    assert result.exit_code == 1
    err = result.stderr.strip()
    assert err.startswith("error:") and "\n" not in err and "503" in err
    assert "Traceback" not in result.output
    logs = list((workspace / ".agent" / "runs").glob("*/llm_calls.jsonl"))
    assert len(logs) == 1 and len(logs[0].read_text().splitlines()) == 2


def test_cli_ask_prints_answer_and_totals(fake: FakeOpenAI, workspace: Path) -> None:
    fake.ok(completion("the answer"))
    env = {"AGENT_MODEL": "openai/gpt-4o-mini", "AGENT_API_BASE": fake.api_base, "AGENT_LLM__TRANSPORT": fake.transport}
    result = CliRunner().invoke(app, ["--log-json", "ask", "question"], obj=State(environ=env))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "the answer"
    assert "12+3 tokens" in result.stderr
    # --log-json mirrors the record on stderr
    assert '"gen_ai.request.model": "openai/gpt-4o-mini"' in result.stderr
