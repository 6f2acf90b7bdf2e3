"""Never act on a cut-off answer: finish_reason on record, output limits per role and model, one
retry with the model's maximum, ``output_truncated`` otherwise; the planner and the reviewer too."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from httpkit import MODEL, ModelServer
from pytest_httpserver import HTTPServer
from runkit import Harness, config, plan, review, step

from agentcli.config import Config, load_settings
from agentcli.engine.reviewer import review as ask_reviewer
from agentcli.errors import OutputTruncated, PlanningError
from agentcli.models import tokens
from agentcli.models.calllog import CallLog
from agentcli.models.client import LLMClient, strip_fences
from agentcli.models.fakes import ScriptedModel
from agentcli.models.types import ModelResponse
from agentcli.planning.planner import make_plan
from agentcli.tools import build_registry


@pytest.fixture
def server(httpserver: HTTPServer, allow_model_requests: None, monkeypatch: pytest.MonkeyPatch) -> ModelServer:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000")
    return ModelServer(httpserver)


def http_client(server: ModelServer, tmp_path: Path, **llm: Any) -> LLMClient:
    cfg = Config.model_validate({"model": MODEL, "api_base": server.api_base,
                                 "llm": {"backoff_base_seconds": 0, "max_retries": 0, **llm}})
    return LLMClient(cfg, call_log=CallLog(tmp_path / "calls.jsonl"), run_id="run-1")


def calls(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "calls.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "llm_call"]


def text_of(n_tokens: int) -> str:
    words = " ".join(f"w{i}" for i in range(n_tokens))
    cut, _ = tokens.cut_text(words, n_tokens, MODEL)
    return cut


def test_limits_per_role_from_the_models_maximum(server: ModelServer, tmp_path: Path) -> None:
    client = http_client(server, tmp_path)
    # gpt-4o-mini generates 16,384 tokens at most (litellm's model info, through its profile).
    assert client.model_max_output(MODEL) == 16384
    assert [client.output_limit(r) for r in ("planner", "executor", "reviewer")] == [8192, 8192, 2048]
    assert client.output_ceiling("executor") == 16384
    capped = http_client(server, tmp_path, max_output_tokens=1024)
    assert [capped.output_limit(r) for r in ("planner", "executor", "reviewer")] == [1024] * 3
    assert capped.output_ceiling("executor") == 1024  # a cap is a cap


def test_finish_reason_is_on_record(server: ModelServer, tmp_path: Path) -> None:
    answer = text_of(1057)
    server.add(answer)
    client = http_client(server, tmp_path)
    r = client.complete([{"role": "user", "content": "rewrite the module"}], step_id="s3")
    assert r.text == answer and r.finish_reason == "stop" and r.max_tokens == 8192
    [rec] = calls(tmp_path)
    assert rec["finish_reason"] == "stop" and rec["gen_ai.request.max_tokens"] == 8192 and rec["outcome"] == "ok"


def test_a_cut_answer_is_asked_for_once_more_with_the_models_maximum(server: ModelServer, tmp_path: Path) -> None:
    answer = text_of(9000)
    server.add(answer, answer)
    client = http_client(server, tmp_path)
    r = client.complete([{"role": "user", "content": "write it all"}])
    assert r.text == answer and r.finish_reason == "stop" and r.attempts == 2
    assert [b["max_tokens"] for b in server.bodies] == [8192, 16384]
    assert [(c["outcome"], c["finish_reason"]) for c in calls(tmp_path)] == [("truncated", "length"), ("ok", "stop")]


def test_the_limit_leaves_the_prompt_room_in_the_context_window(server: ModelServer, tmp_path: Path) -> None:
    # A provider refuses prompt + max_tokens past the model's context: the limit is sized to fit.
    server.add("done")
    cfg = Config.model_validate({"model": MODEL, "api_base": server.api_base,
                                 "llm": {"backoff_base_seconds": 0, "max_retries": 0},
                                 "models": {MODEL: {"context_tokens": 5000}}})
    client = LLMClient(cfg, call_log=CallLog(tmp_path / "calls.jsonl"), run_id="run-1")
    r = client.complete([{"role": "user", "content": text_of(3000)}])
    assert r.text == "done"
    [sent] = server.bodies
    assert 1900 <= sent["max_tokens"] <= 2000  # 5,000 less the ~3,000-token prompt, not the step's 8,192
    server.add("done")
    r = client.complete([{"role": "user", "content": text_of(4990)}])
    assert server.bodies[-1]["max_tokens"] == 1024  # never below a floor: an overflow is the provider's to say


def test_cut_at_the_largest_limit_is_output_truncated(server: ModelServer, tmp_path: Path) -> None:
    server.add(text_of(1057))
    client = http_client(server, tmp_path, max_output_tokens=1024)
    with pytest.raises(OutputTruncated, match="cut at the output limit of 1024 tokens") as err:
        client.complete([{"role": "user", "content": "rewrite"}])
    assert err.value.error_type == "output_truncated"
    assert len(server.bodies) == 1 and calls(tmp_path)[0]["finish_reason"] == "length"


def test_the_budget_bounds_the_limit_a_call_is_sized_with(workspace: Path) -> None:
    # $0.002 left at gpt-4o-mini's price pays for ~3,300 output tokens, not the step's 8,192.
    model = ScriptedModel(["short", review()])
    h = Harness(workspace, config(budget={"max_cost_usd": 0.002}), model, [plan(step("s1", prompt="hi"))])
    out = h.run()
    assert out.status == "COMPLETE"
    assert 1024 <= model.requests[0].max_tokens < 3400


def test_a_cut_llm_step_fails_and_feeds_nothing(workspace: Path) -> None:
    long = text_of(1200)
    model = ScriptedModel([long, review("complete", "not done")])
    p = plan(step("s1", prompt="rewrite it", attempts=2),
             step("s2", "write_file", deps=["s1"], path="out.py", content="{{s1.output}}"))
    h = Harness(workspace, config(llm={"max_output_tokens": 1024}), model, [p], yes=True)
    out = h.run()
    s1, s2 = out.steps
    assert (s1["status"], s1["error"]["type"], s1["attempts"]) == ("failed", "output_truncated", 1)
    assert s2["status"] in ("pending", "skipped") and not (workspace / "out.py").exists()
    [event] = [e for e in h.recording().of_type("llm_call") if e.step_id == "s1"]
    assert event.data["response"]["finish_reason"] == "length" and event.data["outcome"] == "truncated"


def _settings(ws: Path, **overrides: Any) -> Any:
    return load_settings(workspace=ws, use_user_config=False, environ={},
                         overrides={"model": "test/scripted", **overrides})


def test_a_cut_plan_is_never_used(workspace: Path) -> None:
    settings = _settings(workspace, **{"llm.max_output_tokens": 40, "llm.max_reasks": 1})
    registry = asyncio.run(build_registry(settings, plugins=False, mcp=False))
    draft = {"steps": {f"s{i}": {"call": {"tool": "list_files", "args": {"pattern": f"src{i}/**/*.py"}},
                                 "depends_on": [], "title": f"List package {i}"} for i in range(1, 6)}}
    model = ScriptedModel([draft, draft])
    client = LLMClient(settings.config, backend=model)
    with pytest.raises(PlanningError, match="cut at the planner's output limit"):
        asyncio.run(make_plan("list the files", settings=settings, registry=registry, client=client, save=False))
    assert len(model.requests) == 2  # the first cut reply was re-asked, the second cut too: nothing used


def test_whole_looking_json_that_was_cut_is_not_used_either() -> None:
    verdict = json.dumps(review("complete", "all done"))
    model = ScriptedModel([ModelResponse(text=verdict, finish_reason="length"), review("complete", "really done")])
    client = LLMClient(config(llm={"max_output_tokens": 2048}), backend=model)  # no larger limit to ask with
    p = plan(step("s1", prompt="x"))
    got = asyncio.run(ask_reviewer(client, "t", p, {}))
    assert got.answer == "really done"
    assert "cut at the output limit of 2048 tokens" in model.requests[1].messages[-1]["content"]


def test_a_cut_review_is_asked_for_again_with_the_models_maximum() -> None:
    verdict = json.dumps(review("complete", "all done"))
    model = ScriptedModel([ModelResponse(text=verdict[:20], finish_reason="length"), verdict])
    got = asyncio.run(ask_reviewer(LLMClient(config(), backend=model), "t", plan(step("s1", prompt="x")), {}))
    assert got.answer == "all done"
    assert [r.max_tokens for r in model.requests] == [2048, 16384]
    assert model.requests[0].messages == model.requests[1].messages


def test_fences_are_stripped_from_answers_that_feed_a_file(workspace: Path) -> None:
    model = ScriptedModel(["```python\nprint('hi')\n```", "```\nsummary\n```", review()])
    p = plan(step("s1", prompt="write main.py"),
             step("s2", "write_file", deps=["s1"], path="main.py", content="{{s1.output}}"),
             step("s3", prompt="summarise"))
    out = Harness(workspace, config(), model, [p], yes=True).run()
    assert out.status == "COMPLETE"
    assert (workspace / "main.py").read_text() == "print('hi')\n"
    assert out.steps[2]["status"] == "ok"
    assert strip_fences("text with ```code``` inside") == "text with ```code``` inside"


def test_a_scripted_answer_can_say_it_was_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentcli.models.fakes import named_fake

    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"text": "def f(", "finish_reason": "length"}, "whole"]))
    monkeypatch.setenv("AGENT_TEST_SCRIPT", str(script))
    client = LLMClient(config(model="test/script"), backend=named_fake("test/script"))
    r = client.complete([{"role": "user", "content": "x"}])
    assert (r.text, r.attempts, r.finish_reason) == ("whole", 2, "stop")  # the cut one was asked for again
