"""Prompt caching counted: cached input tokens read from every response shape, recorded, priced at
the cache price, reported, and the budget's pre-call estimate counting the expected cached prefix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from httpkit import MODEL, ModelServer
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner
from werkzeug import Request, Response

from agentcli.cli.app import app
from agentcli.cli.commands.common import State
from agentcli.config import Config
from agentcli.engine.budget import Budget
from agentcli.errors import BudgetExceeded
from agentcli.models.cache import (
    MIN_CACHED_PREFIX,
    PrefixCache,
    RequestText,
    cacheable,
    request_text,
    request_tokens,
)
from agentcli.models.client import LLMClient
from agentcli.models.fakes import FunctionModel
from agentcli.models.modelinfo import cache_usage
from agentcli.models.types import ModelRequest, ModelResponse, Price, Usage


def test_the_prefix_rule_counts_from_1024_in_128_token_steps() -> None:
    assert [cacheable(n) for n in (0, 1023, 1024, 1151, 1152, 5000)] == [0, 0, 1024, 1024, 1152, 4992]


def test_a_request_sharing_a_long_stable_prefix_is_cacheable_and_one_that_differs_early_is_not() -> None:
    stable = "You are a planner. " + "Tool catalogue line. " * 400
    first = request_tokens([{"role": "system", "content": stable}, {"role": "user", "content": "task one"}], MODEL)
    second = request_tokens([{"role": "system", "content": stable}, {"role": "user", "content": "task two"}], MODEL)
    early = request_tokens([{"role": "user", "content": "task two"}, {"role": "system", "content": stable}], MODEL)
    cache = PrefixCache()
    assert cache.peek(MODEL, first) == 0
    cache.add(MODEL, first)
    shared = cache.peek(MODEL, second)
    assert shared >= MIN_CACHED_PREFIX and shared <= len(second)
    assert cache.peek(MODEL, early) == 0
    assert cache.peek("openai/other", second) == 0  # caches are per model


def test_a_request_kept_as_text_is_counted_as_its_tokens_are() -> None:
    """A request kept as its text (encoded only when compared) gets the cacheable count its tokens
    get: requests sharing long and short prefixes, wide characters at the point they differ."""
    import random

    rng = random.Random(5)
    stable = "You are a reviewer. " + "A rule of the review, and one more. " * 400  # ~2,800 tokens
    words = ["step", "é", "漢字", "ok", "\n", "{", "s1", "read_file", " "]
    by_tokens, by_text = PrefixCache(), PrefixCache()
    served = 0
    for _ in range(40):
        system = stable[: rng.choice([0, 1000, 4000, 5500, 9000, len(stable)])] + rng.choice(["", "é", "x"])
        user = "".join(rng.choices(words, k=rng.randint(1, 400)))
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        ids = request_tokens(messages, MODEL)
        text = RequestText(request_text(messages), MODEL)
        counted = by_tokens.peek(MODEL, ids)
        assert by_text.peek(MODEL, text) == counted
        served += counted > 0
        by_tokens.add(MODEL, ids)
        by_text.add(MODEL, text)
    assert served > 5  # long shared prefixes were met too


def test_cached_tokens_are_read_from_openai_and_anthropic_shaped_usage() -> None:
    assert cache_usage({"prompt_tokens": 2000, "prompt_tokens_details": {"cached_tokens": 1536}}) == (1536, None)
    assert cache_usage({"input_tokens": 10, "cache_read_input_tokens": 3000,
                        "cache_creation_input_tokens": 1200}) == (3000, 1200)
    assert cache_usage({"prompt_tokens": 10}) == (None, None)
    assert cache_usage(None) == (None, None)


def test_cached_input_is_priced_at_the_cache_price_and_unknown_cache_prices_are_full_price() -> None:
    p = Price(input=1.0, output=2.0, cache_read=0.1, cache_write=1.25)
    assert p.cost(1000, 10, cached_tokens=800) == pytest.approx(200 + 80 + 20)
    assert p.cost(1000, 0, cached_tokens=0, cache_write_tokens=1000) == pytest.approx(1250)
    assert Price(1.0, 2.0).cost(1000, 10, cached_tokens=800) == pytest.approx(1020)  # fail closed
    assert p.of_usage(Usage(input_tokens=1000, output_tokens=10, cached_input_tokens=800)) == pytest.approx(300)


ANTHROPIC_MODEL = "anthropic/claude-sonnet-4-5"


def test_anthropic_cache_counts_through_litellms_real_http_path(
        httpserver: HTTPServer, allow_model_requests: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A recorded Anthropic Messages API response (cache read and write counts) through litellm."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0000000000000000000000")
    body = {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 50, "output_tokens": 7, "cache_read_input_tokens": 4096,
                      "cache_creation_input_tokens": 512}}
    seen: list[dict[str, Any]] = []

    def handle(request: Request) -> Response:
        seen.append(json.loads(request.data))
        return Response(json.dumps(body), status=200, content_type="application/json")

    httpserver.expect_request("/v1/messages", method="POST").respond_with_handler(handle)
    cfg = Config.model_validate({"model": ANTHROPIC_MODEL, "api_base": httpserver.url_for(""),
                                 "llm": {"backoff_base_seconds": 0, "max_retries": 0}})
    client = LLMClient(cfg, run_id="run-a")
    result = client.complete([{"role": "user", "content": "hi"}], role="executor")
    assert seen, "the request reached the loopback server"
    u = result.usage
    assert u.cached_input_tokens == 4096 and u.cache_write_tokens == 512
    assert u.input_tokens >= 4096 + 512  # litellm counts the cached parts into the input
    price = client.backend.price(ANTHROPIC_MODEL)
    assert price is not None and price.cache_read is not None and price.cache_read < price.input
    assert result.cost_usd == pytest.approx(price.of_usage(u))
    assert client.totals.cached_input_tokens == 4096 and client.totals.cache_saved_usd > 0


def _big_prompt(i: int) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "Stable instructions. " * 1500}, {"role": "user", "content": f"q{i}"}]


def _client(budget: Budget, cached: bool) -> LLMClient:
    def answer(req: ModelRequest) -> ModelResponse:
        n = len(request_tokens(req.messages, req.model))
        return ModelResponse(text="ok", input_tokens=n, output_tokens=2,
                             cached_input_tokens=cacheable(n - 10) if cached else None)

    price = Price(input=1e-6, output=4e-6, cache_read=0.1e-6)
    backend = FunctionModel(answer, price=price)
    cfg = Config.model_validate({"model": "test/fn", "llm": {"max_output_tokens": 64}})
    return LLMClient(cfg, backend=backend, guard=budget.check_llm_call, headroom=budget.output_headroom,
                     observers=[budget.observe], run_id="r")


@pytest.mark.parametrize("cached", [True, False])
def test_a_long_cached_run_is_not_stopped_early_by_full_price_accounting(cached: bool) -> None:
    """Twelve calls re-sending a ~4.5k-token prefix: at full price they cost ~$0.054, cached ~$0.010.
    A $0.03 budget lets the cached run finish; without cache counts it stops part way."""
    import asyncio

    budget = Budget(Config.model_validate({"budget": {"max_cost_usd": 0.03, "max_tokens": 10**7}}).budget)
    client = _client(budget, cached)

    async def go() -> int:
        done = 0
        for i in range(12):
            try:
                await client.acomplete(_big_prompt(i), role="executor")
            except BudgetExceeded:
                break
            done += 1
        return done

    done = asyncio.run(go())
    if cached:
        assert done == 12 and budget.cost_usd < 0.03
        assert client.totals.cached_input_tokens > 0.8 * client.totals.input_tokens
    else:
        assert done < 12


def test_agent_run_records_and_reports_cached_tokens(
        tmp_path: Path, httpserver: HTTPServer, allow_model_requests: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "notes.md").write_text("# notes\n")
    monkeypatch.chdir(ws)
    model = ModelServer(httpserver)
    plan = {"steps": [{"id": "s1", "kind": "tool", "tool": "list_files", "args": {"pattern": "*.md"},
                       "description": "list the markdown files"}]}
    verdict = {"outcome": "complete", "answer": "notes.md", "reason": ""}
    model.add(plan, verdict, plan, verdict)
    env = model.env(AGENT_PLANNER__SURVEY_CALLS="0")
    runner = CliRunner()
    first = runner.invoke(app, ["run", "list the markdown files", "--yes", "--json"], obj=State(environ=env))
    second = runner.invoke(app, ["run", "list the markdown files", "--yes", "--json"], obj=State(environ=env))
    for r in (first, second):
        assert r.exit_code == 0, r.output
    out = json.loads(second.stdout)
    calls = [json.loads(line) for line in
             (ws / ".agent" / "runs" / out["run_id"] / "llm_calls.jsonl").read_text().splitlines()]
    answered = [c for c in calls if c.get("event") == "llm_call" and c.get("outcome") == "ok"]
    # The server cached the planner's prefix from the first run: the second run's planner call says so,
    # and is recorded and priced below the full-price cost.
    assert model.cached[2] >= 1024
    planner = answered[0]
    assert planner["gen_ai.usage.cached_input_tokens"] == model.cached[2]
    events = [json.loads(line) for line in
              (ws / ".agent" / "runs" / out["run_id"] / "events.jsonl").read_text().splitlines()]
    llm = [e for e in events if e["type"] == "llm_call"]
    assert llm[0]["data"]["usage"]["cached_input_tokens"] == model.cached[2]
    price = llm[0]["data"]["price"]
    assert price["cache_read"] < price["input"]
    u = llm[0]["data"]["usage"]
    full = u["input_tokens"] * price["input"] + u["output_tokens"] * price["output"]
    assert llm[0]["data"]["cost_usd"] < full
    show = runner.invoke(app, ["runs", "show", out["run_id"]], obj=State(environ=env))
    assert "prompt cache:" in show.output and "served cached" in show.output
    stats = runner.invoke(app, ["runs", "stats", "--json"], obj=State(environ=env))
    totals = json.loads(stats.stdout)["totals"]
    assert totals["cached_input_tokens"] >= 1024 and totals["cache_saved_usd"] > 0


def test_a_replan_after_edits_keeps_the_first_plans_request_prefix(tmp_path: Path) -> None:
    from agentcli.models.fakes import ScriptedModel

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    write = {"steps": {"s1": {"call": {"tool": "write_file", "args": {"path": "extra.py", "content": "def sub(a, b):\n"
                                                                       "    return a - b\n"}},
                              "depends_on": [], "title": "Add extra.py"}}}
    read = {"steps": {"s2": {"call": {"tool": "read_file", "args": {"path": "extra.py"}}, "depends_on": [],
                             "title": "Read it back"}}}
    model = ScriptedModel([write, {"outcome": "replan", "answer": "", "reason": "check the file"}, read,
                           {"outcome": "complete", "answer": "sub", "reason": ""}])
    env = {"AGENT_MODEL": "test/scripted", "AGENT_MEMORY__ENABLED": "false"}
    r = CliRunner().invoke(app, ["--workspace", str(ws), "run", "add a sub function", "--yes", "--json"],
                           obj=State(backend=model, environ=env))
    assert r.exit_code == 0, r.output
    first, replan = (q for q in model.requests if str(q.messages[0]["content"]).startswith("You are the planner"))
    # The files changed between the two plans, but the re-plan shows the workspace as the first plan did
    # (its context says what changed): the first plan's request, up to its task, is the re-plan's prefix.
    user = str(first.messages[1]["content"])
    stable = user[: user.index("# Task")]
    assert str(replan.messages[1]["content"]).startswith(stable) and "extra.py" not in stable
    assert replan.messages[0] == first.messages[0] and replan.tools == first.tools
    cache = PrefixCache()
    cache.add(first.model, request_tokens(first.messages, first.model, tools=first.tools,
                                          response_format=first.response_format))
    seq = request_tokens(replan.messages, replan.model, tools=replan.tools, response_format=replan.response_format)
    assert cache.peek(replan.model, seq) >= MIN_CACHED_PREFIX


def test_cache_breakpoints_are_set_on_the_stable_prefix_where_the_profile_asks(
        httpserver: HTTPServer, allow_model_requests: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose provider bills cache writes (its litellm info) gets cache_control on its system
    message and on the conversation so far, through litellm's real HTTP path; the request as recorded
    (and its hash) is unchanged; a model without the profile flag gets no marks."""
    from agentcli.models.cache import cache_marks, marked
    from agentcli.models.modelinfo import profile_of

    assert profile_of({"supports_prompt_caching": True, "cache_creation_input_token_cost": 3.75e-06},
                      json_schema=True).cache_breakpoints
    assert not profile_of({"supports_prompt_caching": True, "cache_read_input_token_cost": 7.5e-08},
                          json_schema=True).cache_breakpoints
    convo = [{"role": "system", "content": "rules"}, {"role": "user", "content": "a"},
             {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert cache_marks(convo) == (0, 2) and cache_marks(convo[:2]) == (0,)
    assert marked(convo, (0, 2))[2]["content"] == [{"type": "text", "text": "b",
                                                    "cache_control": {"type": "ephemeral"}}]
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0000000000000000000000")
    body = {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 50, "output_tokens": 7, "cache_read_input_tokens": 0,
                      "cache_creation_input_tokens": 1200}}
    seen: list[dict[str, Any]] = []

    def handle(request: Request) -> Response:
        seen.append(json.loads(request.data))
        return Response(json.dumps(body), status=200, content_type="application/json")

    httpserver.expect_request("/v1/messages", method="POST").respond_with_handler(handle)
    records = []
    for flag in (True, False):
        cfg = Config.model_validate({"model": ANTHROPIC_MODEL, "api_base": httpserver.url_for(""),
                                     "llm": {"backoff_base_seconds": 0, "max_retries": 0},
                                     "models": {ANTHROPIC_MODEL: {"cache_breakpoints": flag}}})
        client = LLMClient(cfg, run_id="run-b", observers=[records.append])
        client.complete(convo, role="executor")
    marked_body, plain_body = seen
    assert marked_body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert any(b.get("cache_control") for m in marked_body["messages"] for b in m["content"]
               if isinstance(m["content"], list) and isinstance(b, dict))
    assert "cache_control" not in json.dumps(plain_body)
    assert records[0].request.messages == records[1].request.messages == convo
    assert records[0].request_hash == records[1].request_hash
