"""The LLM client over the in-package fakes: re-asks, guard, observers, totals, unknown prices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agentcli.config import Config
from agentcli.errors import BudgetExceeded, LLMTransientError
from agentcli.models.calllog import CallLog
from agentcli.models.client import LLMClient
from agentcli.models.fakes import FunctionModel, ScriptedModel, last_user_text
from agentcli.models.types import CallRecord, PreCall, ToolCall
from agentcli.redact import REDACTED, Redactor, scrubbed_env

FAST = Config.model_validate({"model": "test/scripted", "llm": {"backoff_base_seconds": 0}})


class Step(BaseModel):
    tool: str
    path: str


def test_scripted_structured_reask_sees_errors() -> None:
    model = ScriptedModel(['{"tool": "read_file"}', {"tool": "read_file", "path": "a.py"}])
    client = LLMClient(FAST, backend=model)
    r = client.complete([{"role": "user", "content": "plan"}], response_model=Step)
    assert r.parsed == Step(tool="read_file", path="a.py")
    assert r.attempts == 2
    reask = model.requests[1].messages[-1]["content"]
    assert "path: Field required" in reask
    assert model.requests[0].response_format is not None


def test_transient_errors_then_success() -> None:
    model = ScriptedModel([LLMTransientError("429", status=429, retry_after=0), "ok"])
    r = LLMClient(FAST, backend=model).complete([{"role": "user", "content": "x"}])
    assert (r.text, r.attempts) == ("ok", 2)


def test_guard_refuses_before_sending() -> None:
    seen: list[PreCall] = []

    def guard(pre: PreCall) -> None:
        seen.append(pre)
        raise BudgetExceeded("cost", "would cross the cost budget")

    model = ScriptedModel(["never"])
    client = LLMClient(FAST, backend=model, guard=guard)
    with pytest.raises(BudgetExceeded):
        client.complete([{"role": "user", "content": "hello " * 50}], max_tokens=100)
    assert model.requests == []  # nothing was sent
    assert seen[0].input_tokens_estimate > 50 and seen[0].max_output_tokens == 100
    assert seen[0].max_cost is not None and seen[0].max_cost > 0


def test_observers_get_full_request_and_response() -> None:
    records: list[CallRecord] = []
    client = LLMClient(FAST, backend=ScriptedModel(["answer"]))
    client.observers.append(records.append)
    r = client.complete([{"role": "user", "content": "q"}], step_id="s2")
    [rec] = records
    assert rec.request.messages == [{"role": "user", "content": "q"}]
    assert rec.response is not None and rec.response.text == "answer"
    assert rec.request_hash == r.request_hash and rec.step_id == "s2"


def test_request_hash_is_stable_and_sensitive() -> None:
    a = LLMClient(FAST, backend=ScriptedModel(["x"])).complete([{"role": "user", "content": "q"}])
    b = LLMClient(FAST, backend=ScriptedModel(["y"])).complete([{"role": "user", "content": "q"}])
    c = LLMClient(FAST, backend=ScriptedModel(["x"])).complete([{"role": "user", "content": "q2"}])
    assert a.request_hash == b.request_hash != c.request_hash


def test_a_request_is_token_counted_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A provider that reports no input tokens: the estimate stands in for them. One count per
    # request (the second request is the structured-output re-ask), shared by the guard, the
    # call record, the observers' usage and the result.
    from agentcli.models import client as llm_client
    from agentcli.models import tokens
    from agentcli.models.types import ModelRequest, ModelResponse, Price

    class NoUsage:
        def __init__(self, texts: list[str]) -> None:
            self.texts = texts

        async def request(self, req: ModelRequest) -> ModelResponse:
            return ModelResponse(text=self.texts.pop(0), output_tokens=5, model="m")

        def price(self, model: str) -> Price | None:
            return Price(1e-6, 2e-6)

    counted: list[int] = []
    real = tokens.count_messages

    def count(*args: Any, **kwargs: Any) -> int:
        counted.append(real(*args, **kwargs))
        return counted[-1]

    monkeypatch.setattr(llm_client.tokens, "count_messages", count)
    seen: list[PreCall] = []
    records: list[CallRecord] = []
    backend = NoUsage(['{"tool": "x"}', '{"tool": "x", "path": "p"}'])
    client = LLMClient(FAST, backend=backend, guard=seen.append, call_log=CallLog(tmp_path / "l.jsonl"))
    client.observers.append(records.append)
    r = client.complete([{"role": "user", "content": "plan " * 40}], response_model=Step)
    assert len(counted) == 2 and counted[0] < counted[1]
    assert [p.input_tokens_estimate for p in seen] == counted
    logged = [json.loads(line) for line in (tmp_path / "l.jsonl").read_text().splitlines()]
    calls = [rec for rec in logged if rec["event"] == "llm_call"]
    assert [rec["input_tokens_estimate"] for rec in calls] == counted
    assert [rec["gen_ai.usage.input_tokens"] for rec in calls] == counted
    assert [rec.usage.input_tokens for rec in records] == counted
    assert r.input_tokens_estimate == r.usage.input_tokens == counted[-1] and r.usage.output_tokens == 5
    assert r.usage is not records[-1].usage and r.request_hash == records[-1].request_hash == calls[-1]["request_hash"]


def test_unknown_price_is_null_not_free(tmp_path: Path) -> None:
    client = LLMClient(FAST, backend=ScriptedModel(["x"], price=None), call_log=CallLog(tmp_path / "l.jsonl"))
    r = client.complete([{"role": "user", "content": "q"}])
    assert r.cost_usd is None
    assert client.totals.unpriced_calls == 1 and client.totals.cost_usd == 0
    rec = json.loads((tmp_path / "l.jsonl").read_text())
    assert rec["cost_usd"] is None and "price unknown" in rec["warning"]


def test_totals_accumulate() -> None:
    client = LLMClient(FAST, backend=ScriptedModel(["a", "b"]))
    r1 = client.complete([{"role": "user", "content": "one"}])
    r2 = client.complete([{"role": "user", "content": "two"}])
    t = client.totals
    assert t.calls == 2
    assert t.input_tokens == r1.usage.input_tokens + r2.usage.input_tokens
    assert t.cost_usd == pytest.approx((r1.cost_usd or 0) + (r2.cost_usd or 0))


def test_function_model_and_tool_calls() -> None:
    def fn(req: object) -> ToolCall:
        return ToolCall(name="list_files", arguments={"pattern": "*.py"})

    r = LLMClient(FAST, backend=FunctionModel(fn)).complete([{"role": "user", "content": "q"}])
    assert r.tool_calls[0].name == "list_files"
    echo = LLMClient(FAST, backend=FunctionModel(last_user_text)).complete([{"role": "user", "content": "hi"}])
    assert echo.text == "hi"


def test_redactor_drops_keys_and_values() -> None:
    env = {"OPENAI_API_KEY": "sk-abcdefgh12345", "HOME": "/root", "GH_TOKEN": "ghp_zzzzzzzzzz"}
    red = Redactor(env)
    out = red({"api_key": "whatever", "note": "key is sk-abcdefgh12345!", "nested": [{"x": "ghp_zzzzzzzzzz"}],
               "Authorization": "Bearer x"})
    assert out == {"api_key": REDACTED, "note": f"key is {REDACTED}!", "nested": [{"x": REDACTED}],
                   "Authorization": REDACTED}
    assert scrubbed_env(env) == {"HOME": "/root"}


def test_shared_redactor_follows_the_environment_and_registrations(monkeypatch: pytest.MonkeyPatch) -> None:
    # Built once and shared (tool results, approvals, model requests), it must still see a secret
    # set, changed or registered after it was first used.
    from agentcli.redact import current, register_secret

    monkeypatch.setenv("SHARED_TEST_TOKEN", "first-secret-value-1")
    assert current().text("a first-secret-value-1 b") == f"a {REDACTED} b"
    monkeypatch.setenv("SHARED_TEST_TOKEN", "second-secret-value-2")
    assert current().text("first-secret-value-1 second-secret-value-2") == f"first-secret-value-1 {REDACTED}"
    monkeypatch.delenv("SHARED_TEST_TOKEN")
    assert current().text("second-secret-value-2") == "second-secret-value-2"
    register_secret("registered-later-value-3")
    assert current().text("x registered-later-value-3") == f"x {REDACTED}"
    assert current() is current()


def test_token_counting_works_with_network_unavailable(tmp_path: Path) -> None:
    # A fresh interpreter in which every socket connection fails, and no tiktoken cache is set.
    code = (
        "import socket\n"
        "def deny(*a, **k): raise OSError('network disabled by test')\n"
        "socket.socket.connect = deny\nsocket.create_connection = deny\n"
        "from agentcli.models import tokens\n"
        "print(tokens.count_text('hello world', 'gpt-4o-mini'), tokens.count_text('hello world', 'x/y'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    env["HOME"] = str(tmp_path)  # no cached downloads from elsewhere
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "2"]


def test_llm_py_is_the_only_importer_of_litellm() -> None:
    import re

    import agentcli

    root = Path(agentcli.__file__).parent
    pattern = re.compile(r"^\s*(import litellm|from litellm[ .])", re.M)
    importers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if pattern.search(p.read_text()))
    assert importers == ["models/litellm.py"]
