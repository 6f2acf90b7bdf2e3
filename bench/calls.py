"""LLM calls and input tokens per task: agentcli's planner-executor against a ReAct loop.

Both agents do the same scripted task suite (:mod:`bench.suite`) over the same fixture
workspace, with the same registry of built-in tools, through the same :class:`LLMClient`
and the same fake model (:func:`answer`), which answers

* agentcli's planner with the task's draft plan, its ``llm`` step with a short text and its
  reviewer with a ``complete`` verdict;
* the ReAct loop (:func:`react`) with the task's next tool call, one per turn, then the answer.

Calls and tokens are the client's own totals; input tokens are tiktoken counts of everything
sent: messages, the tool schemas (ReAct, every turn) and the response JSON schema (agentcli's
planner and reviewer), so structured output is not free in this count.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentcli.config import Settings
from agentcli.engine.runner import ReplanContext
from agentcli.models import tokens
from agentcli.models.client import LLMClient
from agentcli.models.fakes import FunctionModel, last_user_text
from agentcli.models.routing import static_profile
from agentcli.models.types import CallRecord, ModelRequest, ModelResponse, ToolCall
from agentcli.planning.plan import Plan
from agentcli.planning.planner import make_plan
from agentcli.planning.prompt import draft_schema, hosted_draft_schema
from agentcli.record.reader import RunRecord
from agentcli.tools import ToolRegistry, builtin_tools
from bench import kit, suite
from bench.context import Context
from bench.report import Row, SectionResult
from bench.stats import Summary

SECTION = "calls"
TARGET_RATIO = 3.0

REACT_SYSTEM = (
    "You are a developer agent working in a code repository. Use the tools to do the task: call one tool at "
    "a time and look at its result before choosing the next. When you have what you need, reply with the "
    "final answer for the user."
)
LLM_STEP_REPLY = ("- test_add_and_value: total value of the stock\n- test_duplicate_sku: a second item with the "
                  "same sku is refused\n- test_stock_never_negative: stock cannot go below zero\n"
                  "- test_save_and_load: items survive a save and a load")


def _tool_messages(req: ModelRequest) -> int:
    return sum(1 for m in req.messages if m.get("role") == "tool")


def final_text(task: suite.Task) -> str:
    """The answer that ends ``task``: with its llm step's write-up when it has one."""
    return task.answer if not task.llm_prompt else f"{task.answer}\n\n{LLM_STEP_REPLY}"


def model(writeup: bool = False) -> Callable[[ModelRequest], ModelResponse]:
    """The one fake model both agents talk to. ``writeup``: agentcli's planner ends a question task
    that has a write-up with an llm step writing it, whose text the reviewer's answer repeats (the
    drafts before the hosted planner's rule against a write-up step); else the plan is the tool
    steps and the reviewer's answer carries the write-up, as the rule asks."""

    def answer(req: ModelRequest) -> ModelResponse:
        system = str(req.messages[0].get("content", "")) if req.messages else ""
        rf = req.response_format or {}
        schema_name = (rf.get("json_schema") or {}).get("name")
        resp: ModelResponse
        if schema_name == "Review":
            task = suite.find_task(str(req.messages[1]["content"]))  # the first review's request names it
            # As before the rule, the answer as scripted; without a write-up step, the answer carries it.
            resp = ModelResponse(text=json.dumps(kit.review_reply(task.answer if writeup else final_text(task))))
        elif system.startswith("You are the planner"):
            resp = ModelResponse(text=json.dumps(suite.draft_for(suite.find_task(last_user_text(req)), writeup)))
        elif system.startswith("You carry out one step"):
            resp = ModelResponse(text=LLM_STEP_REPLY)
        elif req.tools:
            task = suite.find_task(str(req.messages[1]["content"]))
            done = _tool_messages(req)
            if done < len(task.calls):
                name, args = task.calls[done]
                resp = ModelResponse(tool_calls=[ToolCall(id=f"call_{done + 1}", name=name, arguments=args)])
            else:
                resp = ModelResponse(text=final_text(task))
        else:
            raise AssertionError(f"unexpected request: {system[:80]!r}")
        extra = json.dumps(req.response_format) if req.response_format else ""
        resp.input_tokens = tokens.count_messages(req.messages, req.model, tools=req.tools, extra=extra)
        return resp

    return answer


#: The fake model as the hosted planner's rules have it draft (no write-up llm step).
answer = model()


def _result_text(output: Any) -> str:
    return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)


async def react(task: suite.Task, client: LLMClient, registry: ToolRegistry, max_turns: int = 30) -> str:
    """A ReAct loop: one model call per tool step, the whole history re-sent every time."""
    tools = registry.openai_schemas()
    messages: list[dict[str, Any]] = [{"role": "system", "content": REACT_SYSTEM},
                                      {"role": "user", "content": task.text}]
    for _ in range(max_turns):
        result = await client.acomplete(messages, role="executor", tools=tools)
        if not result.tool_calls:
            return result.text
        messages.append({"role": "assistant", "content": result.text or None, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in result.tool_calls]})
        for c in result.tool_calls:
            res = await registry.call(c.name, c.arguments)
            content = _result_text(res.output) if res.ok else json.dumps(
                {"error": res.error.model_dump(mode="json") if res.error else None})
            messages.append({"role": "tool", "tool_call_id": c.id, "content": content})
    raise RuntimeError(f"react: no answer after {max_turns} turns")


class Tally:
    """Input tokens per call, with and without the response JSON schema, by role."""

    def __init__(self, records: list[CallRecord]) -> None:
        self.by_role: dict[str, list[int]] = defaultdict(list)
        self.without_schema = 0
        for rec in records:
            self.observe(rec)

    def observe(self, rec: CallRecord) -> None:
        self.by_role[rec.role].append(rec.usage.input_tokens)
        req = rec.request
        self.without_schema += tokens.count_messages(req.messages, req.model, tools=req.tools)


async def _agentcli_task(task: suite.Task, ws: Path, runs: Path, settings: Settings, registry: ToolRegistry,
                         writeup: bool = False) -> tuple[int, int, int, Tally]:
    deps = kit.make_deps(runs, settings.config, registry, FunctionModel(model(writeup)))
    client = deps.client

    async def planner(text: str, ctx: ReplanContext | None) -> Plan:
        return await make_plan(text, settings=settings, registry=registry, client=client, save=False)

    deps.planner = planner
    try:
        outcome, _ = await kit.timed_run(task.text, deps)
    finally:
        kit.close_deps(deps)
    tally = Tally(RunRecord.read(deps.events.path).call_records())  # the calls as the run recorded them
    bad = [s for s in outcome.steps if s["status"] != "ok"]
    if outcome.status != "COMPLETE" or bad or len(outcome.steps) != task.steps_planned(writeup):
        raise RuntimeError(f"agentcli: {task.text!r} ended {outcome.status} ({outcome.reason}); failed steps: "
                           f"{[(s['id'], s['error']) for s in bad]}")
    t = client.totals
    return t.calls, t.input_tokens, tally.without_schema, tally


async def _react_task(task: suite.Task, settings: Settings, registry: ToolRegistry) -> tuple[int, int, int]:
    client = LLMClient(settings.config, backend=FunctionModel(answer))
    await react(task, client, registry)
    t = client.totals
    if t.calls != len(task.calls) + 1:
        raise RuntimeError(f"react: {t.calls} calls for {len(task.calls)} tool steps")
    return t.calls, t.input_tokens, t.output_tokens


def _schema_tokens(settings: Settings, registry: ToolRegistry) -> tuple[int, int]:
    """Tokens of the draft schema the planner sends for the bench's (hosted) model, and of the
    grammar-oriented one a local model gets."""
    config = settings.config
    small = static_profile(config.model_for("planner")).planner_style == "small"
    sent = draft_schema if small else hosted_draft_schema

    def count(schema: dict[str, Any]) -> int:
        rf = {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
        return tokens.count_text(json.dumps(rf))

    return (count(sent(registry.tools(), config.budget.max_steps)),
            count(draft_schema(registry.tools(), config.budget.max_steps)))


def run(ctx: Context) -> SectionResult:
    res = SectionResult(SECTION)
    tasks = suite.TASKS[:2] if ctx.smoke else suite.TASKS
    base = Path(tempfile.mkdtemp(prefix="calls-", dir=ctx.tmp))
    ws = suite.make_workspace(base / "ws")
    runs = base / "runs"
    config = kit.bench_config()
    settings = Settings(config=config, workspace=ws)
    registry = kit.make_registry(ws, config, builtin_tools(config.tools))

    async def go() -> tuple[list[tuple[int, int, int, Tally]], list[tuple[int, int, int]], list[int]]:
        a = [await _agentcli_task(t, ws, runs, settings, registry) for t in tasks]
        r = [await _react_task(t, settings, registry) for t in tasks]
        before = [(await _agentcli_task(t, ws, runs, settings, registry, writeup=True))[1] for t in tasks]
        return a, r, before

    ours, theirs, with_writeup = asyncio.run(go())
    a_calls = [c for c, _, _, _ in ours]
    r_calls = [c for c, _, _ in theirs]
    a_tok = [i for _, i, _, _ in ours]
    a_bare = [b for _, _, b, _ in ours]
    r_tok = [i for _, i, _ in theirs]
    res.rows += [
        Row(SECTION, "model calls per task, agentcli (planner + llm steps + reviewer)",
            Summary.of(a_calls, "calls"), text="(over tasks)"),
        Row(SECTION, "model calls per task, ReAct loop", Summary.of(r_calls, "calls"), text="(over tasks)"),
        Row(SECTION, "input tokens per task, agentcli (response JSON schemas counted)", Summary.of(a_tok, "tok"),
            text="(over tasks)"),
        Row(SECTION, "input tokens per task, agentcli (messages only, schemas not counted)",
            Summary.of(a_bare, "tok"), text="(over tasks)"),
        Row(SECTION, "input tokens per task, ReAct loop", Summary.of(r_tok, "tok"), text="(over tasks)"),
        Row(SECTION, "ratio ReAct / agentcli, model calls (per task)",
            Summary.of([r / a for r, a in zip(r_calls, a_calls, strict=True)], "x")),
    ]
    for label, mine in (("schemas counted", a_tok), ("schemas not counted", a_bare)):
        ratios = Summary.of([r / a for r, a in zip(r_tok, mine, strict=True)], "x")
        res.rows.append(Row(SECTION, f"ratio ReAct / agentcli, input tokens per task ({label})", ratios,
                            target=f"≥ {TARGET_RATIO:g}x", met=ratios.median >= TARGET_RATIO))
        whole = sum(r_tok) / sum(mine)
        res.rows.append(Row(SECTION, f"ratio ReAct / agentcli, input tokens, whole suite ({label})",
                            Summary.of([whole], "x"), target=f"≥ {TARGET_RATIO:g}x", met=whole >= TARGET_RATIO))
    whole_w = sum(r_tok) / sum(with_writeup)
    res.rows.append(Row(SECTION, "ratio ReAct / agentcli, input tokens, whole suite (schemas counted), with the "
                        "write-up llm step of the 2 question tasks a planner drafted before its rule against one",
                        Summary.of([whole_w], "x"), text=f"agentcli {sum(with_writeup):,} input tokens"))
    roles: dict[str, list[int]] = defaultdict(list)
    for _, _, _, tally in ours:
        for role, values in tally.by_role.items():
            roles[role] += values
    split = "; ".join(f"{role}: {len(v)} calls, {sum(v) / len(v):,.0f} input tokens each on average"
                      for role, v in sorted(roles.items()))
    steps = [t.steps_planned(False) for t in tasks]
    schema_tok, local_tok = _schema_tokens(settings, registry)
    res.notes += [
        f"{len(tasks)} tasks of {min(steps)}-{max(steps)} tool steps over an 8-file fixture project, real built-in "
        "tools (8 in the registry), default config "
        "(budget.max_steps = 20). Counts are deterministic, so the spread is over tasks, not repetitions. "
        "Tokens: tiktoken cl100k via the LLM client's totals; output tokens are not compared.",
        f"agentcli, split by role: {split}.",
        f"Totals over the suite: agentcli {sum(a_calls)} calls, {sum(a_tok):,} input tokens with the response "
        f"schemas ({sum(a_bare):,} without); ReAct {sum(r_calls)} calls, {sum(r_tok):,} input tokens.",
        f"The planner's draft JSON schema alone is {schema_tok:,} tokens: a hosted model gets one shared step "
        "definition that any s<N> key (at most max_steps = 20) refers to, a call naming its tool with its args "
        "an object (each tool's arguments are in the catalogue's one-line signatures, checked in code); the "
        "grammar-oriented "
        f"schema the embedded local model gets (a full step and a dependency enum per slot) is {local_tok:,}. "
        "Whether a provider bills a response_format schema as input varies (the embedded model turns it into "
        "a grammar and does not); both counts are shown.",
        "What drives the rest: the planner's prompt carries the tool catalogue once per task, tool steps call "
        "no model, and the reviewer sees each output once, at most 4,000 characters (head and tail). The "
        "ReAct loop re-sends the tool schemas and the whole growing history, every tool output in full, on "
        "each of its k + 1 calls, so its input grows with k² while agentcli's grows with k. With agentcli's "
        "fixed cost per task (prompt, catalogue, workspace summary, schema), the advantage is smallest on "
        "short tasks with small outputs like these, and grows with the number of steps and the size of the "
        "outputs.",
        "At 1a6b213 (before the planner's rule against an llm step that only writes the answer, the reviewer's "
        "text digest and the shorter planner texts): agentcli 14 calls (2 of them llm steps), 24,751 input tokens "
        "with the response schemas (21,709 without), a planner request 2,880 and a reviewer request 971 on "
        "average; ReAct 28 calls, 76,143; whole-suite ratio 3.08x (schemas counted). The cache section has the "
        "same run priced with prompt caching, and the changes.",
        "2 of the tasks ask for a write-up of the tool outputs (a summary of the tests, a usage section): the "
        "hosted planner's rules leave it to the reviewer, which sees every output and writes the run's answer, "
        "so the plan is the tool steps and the review's answer carries the write-up (the ReAct loop's final "
        "answer carries the same text). Drafted as before the rule, with a last llm step writing it from every "
        "earlier output (sent in full once more) and the reviewer repeating it: the row marked 'with the "
        "write-up llm step'. A ReAct agent making several tool calls per turn would need fewer calls (not "
        "modelled here).",
    ]
    return res
