"""Prompt caching counted: what agentcli and a ReAct loop are billed once providers' caches apply.

Every request of the calls suite (:mod:`bench.calls`: the same 6 scripted tasks, the same fake
model, both agents) and of two real transcripts (a capable model's recorded answers served in
order, ``tests/fixtures/transcripts/t1``, re-planned twice, and ``tests/fixtures/strong-model-t1``)
is kept in the order it was sent, and priced three ways:

* **uncached**: every input token at the full price;
* **OpenAI**: the prefix a request shares with any earlier one (at least 1,024 tokens, counted in
  128-token steps: :mod:`agentcli.models.cache`) at 50%;
* **Anthropic**: that prefix read at 10%, and the part of a request that a *later* request reuses
  (a breakpoint placed where reuse happens) written at 125%; the rest at 100%.

Costs are in input-token units (1 = one full-price input token), the same for both agents; output
tokens are not compared. Within one agent, requests share a cache across tasks, as runs in one
workspace do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentcli.config import Settings
from agentcli.engine.runner import ReplanContext
from agentcli.models import tokens
from agentcli.models.cache import cacheable, request_tokens, shared_prefix
from agentcli.models.client import LLMClient
from agentcli.models.fakes import FunctionModel, ScriptedModel
from agentcli.models.types import CallRecord, ModelRequest, ModelResponse
from agentcli.planning.plan import Plan
from agentcli.planning.planner import make_plan
from agentcli.record.reader import RunRecord
from agentcli.tools import builtin_tools
from bench import breakdown, calls, kit, suite
from bench.context import ROOT, Context
from bench.report import Row, SectionResult
from bench.stats import Summary

SECTION = "cache"
FIXTURES = ROOT / "tests" / "fixtures"
#: Targets of the cost issue: at Anthropic's cache prices agentcli at least 2x cheaper than the
#: ReAct loop, at least 3x fewer uncached input tokens, and 60% of a real run's input cacheable.
TARGET_ANTHROPIC = 2.0
TARGET_UNCACHED = 3.0
TARGET_SHARE = 0.6


@dataclass
class Bill:
    """One agent's requests, priced with and without prompt caching."""

    requests: int = 0
    input_tokens: int = 0
    cacheable: int = 0
    written: int = 0

    @property
    def uncached(self) -> int:
        return self.input_tokens - self.cacheable

    @property
    def share(self) -> float:
        return self.cacheable / self.input_tokens if self.input_tokens else 0.0

    @property
    def openai(self) -> float:
        return self.uncached + 0.5 * self.cacheable

    @property
    def anthropic(self) -> float:
        return 0.1 * self.cacheable + 1.25 * self.written + (self.uncached - self.written)


def bill(requests: list[ModelRequest], earlier: list[ModelRequest] | None = None) -> Bill:
    """Price ``requests`` (in the order sent) under the prefix rule (see the module docstring);
    ``earlier``: requests of an earlier run in the same workspace, whose prefixes the cache holds."""
    def seq_of(r: ModelRequest) -> list[int]:
        return request_tokens(r.messages, r.model, tools=r.tools, response_format=r.response_format)

    held = [seq_of(r) for r in earlier or []]
    seqs = [seq_of(r) for r in requests]
    b = Bill(requests=len(seqs))
    for i, seq in enumerate(seqs):
        before = cacheable(max((shared_prefix(o, seq) for o in held + seqs[:i]), default=0))
        later = cacheable(max((shared_prefix(o, seq) for o in seqs[i + 1:]), default=0))
        b.input_tokens += len(seq)
        b.cacheable += before
        b.written += max(0, later - before)
    return b


def _one_prefix(requests: list[ModelRequest]) -> list[ModelRequest]:
    """The candidate layout of one stable prefix across roles, for comparison: every step and
    reviewer request begins with the planner's system message and tools (its own system message
    after them, as a user message), so each later role's request shares the planner's start. The
    response schema stays where providers put it (after the tools), as it must."""
    planner = next((r for r in requests if breakdown.role_of(r) == "planner"), None)
    if planner is None:
        return requests
    out = []
    for r in requests:
        if breakdown.role_of(r) == "planner" or not r.messages:
            out.append(r)
            continue
        own = [{"role": "user", "content": str(r.messages[0].get("content", ""))}, *r.messages[1:]]
        out.append(dataclasses.replace(r, messages=[planner.messages[0], *own], tools=planner.tools))
    return out


def _said(answer: Any) -> dict[str, Any]:
    """An answer (a :class:`ModelResponse`, a recorded ``{"content"|"tool_calls": ...}`` answer or its
    text) as the assistant message a continuing request would carry."""
    if isinstance(answer, ModelResponse):
        answer = {"content": answer.text, "tool_calls": [{"name": c.name, "arguments": c.arguments}
                                                         for c in answer.tool_calls]}
    if not isinstance(answer, dict):
        return {"role": "assistant", "content": str(answer)}
    calls = answer.get("tool_calls") or []
    if calls:
        return {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{i}", "type": "function",
             "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}} for i, c in enumerate(calls)]}
    return {"role": "assistant", "content": str(answer.get("content") or "")}


def one_conversation(turns: list[tuple[ModelRequest, Any]]) -> list[ModelRequest]:
    """The candidate layout of one conversation per task run, for comparison (not adopted): every
    request after the run's first continues the last one (its messages, the answer it got, then the
    request's own system text and user messages, less the task, which the conversation holds), on the
    first request's tools and response schema (one schema for every role, as a provider's prefix
    needs). A request that already continues the last one (a survey round, a re-review) is kept as
    sent; its own tool rounds are appended. ``turns``: one task run's ``(request, answer)`` pairs."""
    out: list[ModelRequest] = []
    head: ModelRequest | None = None
    conv: list[dict[str, Any]] = []
    last: Any = None
    for req, answer in turns:
        if head is None or req.messages[:len(conv)] == conv:
            head = head or req
            out.append(req)
            conv, last = list(req.messages), answer
            continue
        own = "\n\n".join(str(m.get("content", "")) for m in req.messages
                           if m.get("role") == "user" or (m.get("role") == "system" and m != head.messages[0]))
        start = own.find("# Task\n")
        if start >= 0:  # the conversation holds the task: leave its section out
            end = own.find("\n# ", start + 7)
            own = own[:start] + (own[end + 1:] if end >= 0 else "")
        rounds = [m for m in req.messages[1:] if m.get("role") in ("assistant", "tool")]
        msgs = [*conv, _said(last), {"role": "user", "content": own}]
        out.append(dataclasses.replace(req, messages=[*msgs, *rounds], tools=head.tools,
                                       response_format=head.response_format))
        if not rounds:
            conv, last = msgs, answer
    return out


def floor(requests: list[ModelRequest]) -> int:
    """What any agent must read of the ReAct loop's ``requests``: each task and each tool output once,
    at the full price (the task's user message and tool messages of its last request, counted as
    messages)."""
    last: dict[str, ModelRequest] = {}
    for r in requests:
        last[str(r.messages[1].get("content", ""))] = r  # the latest request of each task
    return sum(tokens.count_messages([m for m in r.messages[1:] if m.get("role") in ("user", "tool")], r.model)
               for r in last.values())


def _avg(per_role: dict[str, Any], role: str) -> int:
    part = per_role.get(role)
    return part["tokens"] // part["requests"] if part else 0


async def _agentcli_turns(tasks: list[suite.Task], base: Path,
                          writeup: bool = False) -> list[list[tuple[ModelRequest, ModelResponse]]]:
    """agentcli's requests and answers for ``tasks``, in order, one list a task run (``writeup``: see
    :func:`bench.calls.model`)."""
    ws = suite.make_workspace(base / ("ws-writeup" if writeup else "ws"))
    config = kit.bench_config()
    settings = Settings(config=config, workspace=ws)
    registry = kit.make_registry(ws, config, builtin_tools(config.tools))
    out: list[list[tuple[ModelRequest, ModelResponse]]] = []
    for task in tasks:
        deps = kit.make_deps(base / "runs", config, registry, FunctionModel(calls.model(writeup)))
        client = deps.client

        async def planner(text: str, ctx: ReplanContext | None, client: LLMClient = client) -> Plan:
            return await make_plan(text, settings=settings, registry=registry, client=client, save=False)

        deps.planner = planner
        try:
            await kit.timed_run(task.text, deps)
        finally:
            kit.close_deps(deps)
        out.append([(r.request, r.response) for r in RunRecord.read(deps.events.path).call_records()
                    if r.response is not None])
    return out


async def _agentcli_requests(tasks: list[suite.Task], base: Path, writeup: bool = False) -> list[ModelRequest]:
    """agentcli's requests for ``tasks``, in order (``writeup``: see :func:`bench.calls.model`)."""
    return [req for run in await _agentcli_turns(tasks, base, writeup) for req, _ in run]


async def _react_requests(tasks: list[suite.Task], base: Path) -> list[ModelRequest]:
    ws = suite.make_workspace(base / "ws-react")
    config = kit.bench_config()
    registry = kit.make_registry(ws, config, builtin_tools(config.tools))
    seen: list[CallRecord] = []
    for task in tasks:
        client = LLMClient(config, backend=FunctionModel(calls.answer), observers=[seen.append])
        await calls.react(task, client, registry)
    return [r.request for r in seen if r.response is not None]


def _transcript_requests(name: str, answers: list[Any], task: str, base: Path,
                         workspace: Callable[[Path], None]) -> list[ModelRequest]:
    """agentcli's requests when a capable model's recorded ``answers`` are served in order, through
    ``agent run --yes`` as a user runs it."""
    from typer.testing import CliRunner

    from agentcli.cli.app import app
    from agentcli.cli.commands.common import State

    ws = base / name
    workspace(ws)
    model = ScriptedModel(answers)
    env = {"AGENT_MODEL": kit.FAKE_MODEL, "AGENT_MEMORY__ENABLED": "false", "AGENT_LLM__BACKOFF_BASE_SECONDS": "0",
           "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "")}
    CliRunner().invoke(app, ["--workspace", str(ws), "run", task, "--yes", "--json"],
                       obj=State(backend=model, environ=env, use_user_config=False))
    return list(model.requests)


#: A change the plan's tool steps make whole, checked by a verify command: what a review left to the
#: facts (``review.mode = "auto"``) saves against a reviewer call (``always``).
CHANGE_TASK = "add CHANGELOG.md with a line for version 0.3.0"
CHANGE_PLAN = {"steps": {"s1": {"call": {"tool": "write_file", "args": {
    "path": "CHANGELOG.md", "content": "# Changelog\n\n- 0.3.0: per-item stock report\n"}},
    "depends_on": [], "title": "Write the changelog"}}}
CHANGE_VERIFY = "grep -q 0.3.0 CHANGELOG.md"


def _change_requests(mode: str, base: Path) -> tuple[list[ModelRequest], str]:
    """agentcli's requests for :data:`CHANGE_TASK` through ``agent run --yes``, with ``review.mode``
    ``mode`` and :data:`CHANGE_VERIFY` as the verify command; and the run's status."""
    from typer.testing import CliRunner

    from agentcli.cli.app import app
    from agentcli.cli.commands.common import State

    ws = suite.make_workspace(base / f"change-{mode}")
    model = ScriptedModel([CHANGE_PLAN, kit.review_reply("added CHANGELOG.md")])
    env = {"AGENT_MODEL": kit.FAKE_MODEL, "AGENT_MEMORY__ENABLED": "false", "AGENT_LLM__BACKOFF_BASE_SECONDS": "0",
           "AGENT_VERIFY__COMMAND": CHANGE_VERIFY, "AGENT_REVIEW__MODE": mode,
           "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "")}
    out = CliRunner().invoke(app, ["--workspace", str(ws), "run", CHANGE_TASK, "--yes", "--json"],
                             obj=State(backend=model, environ=env, use_user_config=False))
    shown = out.stdout.strip()
    status = json.loads(shown).get("status", "?") if shown.startswith("{") else f"exit {out.exit_code}"
    return list(model.requests), status


#: The earlier task of the warm-cache measurement (a different task on the same project).
OTHER_TASK = "make slugify's CLI print the version with --version, and add a test for it"


def _first_of_each_role(requests: list[ModelRequest]) -> list[ModelRequest]:
    """The first request of each role (planner, step, reviewer): nothing sent before it in the run
    shares its start, whatever the layout (each role has its own system prompt and schema)."""
    seen: dict[str, ModelRequest] = {}
    for r in requests:
        seen.setdefault(breakdown.role_of(r), r)
    return list(seen.values())


def _slugify(ws: Path) -> None:
    shutil.copytree(FIXTURES / "python-slugify-9.2.0", ws)


def _answers(folder: Path) -> list[Any]:
    out: list[Any] = []
    for f in sorted(folder.glob("*.resp.json")):
        out.append(json.loads(f.read_text())["content"])
    return out


def run(ctx: Context) -> SectionResult:
    res = SectionResult(SECTION)
    tasks = suite.TASKS[:2] if ctx.smoke else suite.TASKS
    base = Path(tempfile.mkdtemp(prefix="cache-", dir=ctx.tmp))
    agentcli_runs = asyncio.run(_agentcli_turns(tasks, base))
    agentcli_reqs = [req for run in agentcli_runs for req, _ in run]
    ours = bill(agentcli_reqs)
    react_reqs = asyncio.run(_react_requests(tasks, base))
    theirs = bill(react_reqs)
    for label, b in (("agentcli", ours), ("ReAct loop", theirs)):
        res.rows += [
            Row(SECTION, f"calls suite, {label}: requests / input tokens", text=f"{b.requests} / {b.input_tokens:,}"),
            Row(SECTION, f"calls suite, {label}: cacheable share (prefix rule)", Summary.of([b.share * 100], "%")),
            Row(SECTION, f"calls suite, {label}: uncached input tokens", text=f"{b.uncached:,}"),
            Row(SECTION, f"calls suite, {label}: billed at OpenAI cache prices (50%)", text=f"{b.openai:,.0f}"),
            Row(SECTION, f"calls suite, {label}: billed at Anthropic cache prices (10% read, 125% write)",
                text=f"{b.anthropic:,.0f}"),
        ]
    shared = bill(_one_prefix(agentcli_reqs))
    res.rows.append(Row(SECTION, "calls suite, agentcli with one prefix across roles (the planner's system "
                        "message and tools first in every request; not adopted): input tokens / cacheable share / "
                        "billed at OpenAI / Anthropic prices",
                        text=f"{shared.input_tokens:,} / {shared.share:.1%} / {shared.openai:,.0f} / "
                        f"{shared.anthropic:,.0f}"))
    talk = bill([req for run in agentcli_runs for req in one_conversation(run)])
    res.rows.append(Row(SECTION, "calls suite, agentcli as one conversation a task run (each request continuing "
                        "the last, one tools parameter and response schema; not adopted): input tokens / cacheable "
                        "share / billed at OpenAI / Anthropic prices",
                        text=f"{talk.input_tokens:,} / {talk.share:.1%} / {talk.openai:,.0f} / {talk.anthropic:,.0f}"))
    ratio_a = theirs.anthropic / ours.anthropic
    # "Uncached input tokens" as the issue counts them: every input token, no cache applied.
    ratio_u = theirs.input_tokens / max(ours.input_tokens, 1)
    res.rows += [
        Row(SECTION, "ratio ReAct / agentcli, billed at OpenAI cache prices",
            Summary.of([theirs.openai / ours.openai], "x")),
        Row(SECTION, "ratio ReAct / agentcli, billed at Anthropic cache prices", Summary.of([ratio_a], "x"),
            target=f"≥ {TARGET_ANTHROPIC:g}x", met=ratio_a >= TARGET_ANTHROPIC),
        Row(SECTION, "ratio ReAct / agentcli, input tokens with no cache", Summary.of([ratio_u], "x"),
            target=f"≥ {TARGET_UNCACHED:g}x", met=ratio_u >= TARGET_UNCACHED),
        Row(SECTION, "ratio ReAct / agentcli, input tokens not served from a cache",
            Summary.of([theirs.uncached / max(ours.uncached, 1)], "x")),
    ]
    least = floor(react_reqs)
    res.rows += [
        Row(SECTION, "calls suite, the floor: every task and tool output read once at the full price (the ReAct "
            "loop's last request of each task, its task and tool messages)", text=f"{least:,}"),
        Row(SECTION, "best ratio ReAct / agentcli the floor allows: at Anthropic cache prices / with no cache",
            text=f"{theirs.anthropic / least:.2f}x / {theirs.input_tokens / least:.2f}x (agentcli's cost above the "
            f"floor: {ours.anthropic - least:,.0f} units at Anthropic prices; the 2x target leaves it "
            f"{theirs.anthropic / TARGET_ANTHROPIC - least:,.0f})"),
    ]
    writeup = bill(asyncio.run(_agentcli_requests(tasks, base, writeup=True)))
    res.rows.append(Row(SECTION, "calls suite, agentcli with the write-up llm step of the 2 question tasks (as "
                        "drafted before the planner's rule against one): requests / input tokens / ratio ReAct / "
                        "agentcli with no cache / at Anthropic / at OpenAI cache prices",
                        text=f"{writeup.requests} / {writeup.input_tokens:,} / "
                        f"{theirs.input_tokens / writeup.input_tokens:.2f}x / "
                        f"{theirs.anthropic / writeup.anthropic:.2f}x / {theirs.openai / writeup.openai:.2f}x"))
    change: dict[str, Bill] = {}
    for mode in ("always", "auto"):
        reqs, status = _change_requests(mode, base)
        change[mode] = bill(reqs)
        res.rows.append(Row(SECTION, f"change task by tool steps, verify passed, review.mode = {mode}: requests / "
                            f"input tokens (run {status})", text=f"{change[mode].requests} / "
                            f"{change[mode].input_tokens:,}"))
    per_role = breakdown.summary(agentcli_reqs)
    for role, part in per_role.items():
        top = ", ".join(f"{name} {n:,}" for name, n in list(part["sections"].items())[:6])
        res.rows.append(Row(SECTION, f"calls suite, agentcli {role} request: tokens by section (a request)",
                            text=f"{part['tokens'] // part['requests']:,} = {top}, ..."))
    if not ctx.smoke:
        t1 = _answers(FIXTURES / "transcripts" / "t1")
        head = _answers(FIXTURES / "strong-model-t1")
        task = "add a --verbose flag to slugify's CLI in slugify/__main__.py and a test for it"
        for name, answers in (("t1 (re-planned twice)", t1), ("strong-model-t1 (first plan)", head)):
            slug = name.split()[0]
            reqs = _transcript_requests(slug, answers, task, base, _slugify)
            b = bill(reqs)
            firsts = sum(len(request_tokens(r.messages, r.model, tools=r.tools, response_format=r.response_format))
                         for r in _first_of_each_role(reqs))
            res.rows += [
                Row(SECTION, f"transcript {name}: requests / input tokens", text=f"{b.requests} / {b.input_tokens:,}"),
                Row(SECTION, f"transcript {name}: cacheable share", Summary.of([b.share * 100], "%"),
                    target=f"≥ {TARGET_SHARE:.0%}", met=b.share >= TARGET_SHARE),
                Row(SECTION, f"transcript {name}: billed at OpenAI / Anthropic cache prices",
                    text=f"{b.openai:,.0f} / {b.anthropic:,.0f} (uncached {b.input_tokens:,})"),
                Row(SECTION, f"transcript {name}: most a prefix cache could serve (all but each role's first "
                    "request)", Summary.of([100 * (1 - firsts / b.input_tokens)], "%")),
            ]
            c = bill(one_conversation(list(zip(reqs, answers, strict=False))))
            res.rows.append(Row(SECTION, f"transcript {name} as one conversation (not adopted): input tokens / "
                                "cacheable share / billed at OpenAI / Anthropic prices",
                                text=f"{c.input_tokens:,} / {c.share:.1%} / {c.openai:,.0f} / {c.anthropic:,.0f}"))
            # The same run after a run of another task in the project (a user's earlier task): the cache
            # holds that run's prefixes. The same recorded answers serve it; only its requests matter.
            other = _transcript_requests(f"{slug}-other", answers, OTHER_TASK, base, _slugify)
            warm = bill(reqs, earlier=other)
            res.rows.append(Row(SECTION, f"transcript {name}: cacheable share after a run of another task",
                                Summary.of([warm.share * 100], "%"), target=f"≥ {TARGET_SHARE:.0%}",
                                met=warm.share >= TARGET_SHARE))
    res.notes += [
        "Costs in input-token units (1 = one input token at the full price); see the section's module docstring "
        "(bench/cache.py) for the rules. Deterministic counts: no spread.",
        "Tokens by section: bench/breakdown.py splits each request into the tools parameter, the response "
        "schema and each message's '# Heading' parts (python -m bench.breakdown prints the whole table).",
        f"Calls suite: {len(tasks)} tasks; agentcli {ours.requests} requests, ReAct {theirs.requests}. Before the "
        "request layout for caching (0810ea0) the same suite measured agentcli 14 requests, 40,329 input tokens, "
        "41% cacheable, 32,009 at OpenAI and 25,353 at Anthropic read prices (no write premium counted); ReAct 28, "
        "57,312, 87%, 32,352 and 12,384.",
        "At 20ab3d1 (before the survey's tools were kept in every planner request, re-plans kept the first "
        "plan's workspace view and the hosted draft schema was compacted): agentcli 14 requests, 28,993 input "
        "tokens, 57.8% cacheable, ratios ReAct / agentcli 1.38x (OpenAI), 0.895x (Anthropic), 1.68x (no cache); "
        "t1 41.5% cacheable; strong-model-t1 0%.",
        "At 1e7fe31 (before each tool's arguments were given once, as catalogue signatures, with a draft schema "
        "that names the tool and takes its args as an object, and before the reviewer's schema lost its "
        "descriptions), the same run: agentcli 14 requests, 32,921 input tokens, 60.7% cacheable, 22,937 at "
        "OpenAI and 16,038 at Anthropic prices; ReAct 28, 63,230, 86.4%, 35,902 and 15,384; ratios 1.57x "
        "(OpenAI), 0.959x (Anthropic), 1.92x (no cache); a planner request 4,136 tokens (response schema 1,471, "
        "catalogue 437), a reviewer request 1,064 (schema 164); t1 64.2% cacheable (72.0% after another task); "
        "strong-model-t1 11,689 tokens, 0% (33.9% after another task: a smaller planner prefix is a smaller "
        "share of a smaller run).",
        f"Why the Anthropic target is still out of reach on this suite: its tasks are 3-6 short tool steps that "
        "ask questions, so a ReAct loop's history stays small, while every agentcli task pays a planner request "
        f"(~{_avg(per_role, 'planner'):,} tokens, all but the map and task a prefix shared by all tasks, its "
        "first request written at 125%) and a reviewer request "
        f"(~{_avg(per_role, 'reviewer'):,} tokens, mostly the step outputs it answers from; its stable part, "
        "~215 tokens, is under the 1,024-token minimum of a cached prefix, so it is never cached). The floor "
        f"row: reading every task and tool output once at the full price costs {least:,} units, so agentcli's "
        f"overhead beyond that would have to be at most {theirs.anthropic / TARGET_ANTHROPIC - least:,.0f} units "
        f"(now {ours.anthropic - least:,.0f}). A review the facts decide (review.mode = auto) needs a change "
        "task whose tool steps a verify command checks (the 'change task' rows), none of this suite's.",
        "One prefix across roles (the candidate row): a step or reviewer request that began with the planner's "
        "tools and system message shares with the planner's request only the tools (~820 tokens, under the "
        "cache minimum: the response schema, which providers put after the tools, differs by role), and with "
        "the other requests of its role a longer start; but it also sends ~2,300 more tokens, each billed at "
        "50% or 10% at best, which costs more than the cache saves: 44,895 input tokens, 30,111 at OpenAI and "
        "20,268 at Anthropic prices against 26,495, 18,943 and 13,701 (measured at this commit). Not adopted.",
        "One conversation a task run (the rows marked so; weighed at 8a2bcc0 and not adopted): each request after "
        "a run's first continues the last one (its messages and answer, then its own system text and user "
        "message less the task), on one tools parameter and response schema, so every request's start is one a "
        "cache holds. It raises the cacheable share (calls suite 57% -> 75%, t1 62% -> 79%, strong-model-t1 0% "
        "-> 40%) but re-sends every earlier request and answer with each later one: at Anthropic prices the "
        "calls suite costs 12,839 units against 10,688 and t1 42,250 against 21,044; only the first-plan run "
        "with two llm steps (strong-model-t1) is cheaper (7,921 against 9,896). On the graded feature tasks' "
        "transcripts (python -m bench.cache bench/swe/transcripts/agentcli-long-2b5f8f8) it costs 144,743 "
        "units against 98,765 (62% cacheable against 31%). A cached token is cheap, not free: a layout that "
        "sends more so that more of it is cached costs more whenever what it adds is more than ten times what "
        "the cache saves. So the share target and the Anthropic target pull apart here.",
        "Also weighed: the reviewer's step digest as plain text blocks instead of one JSON line a step (adopted "
        "since with a tag on every header line, below); the survey tools' schemas written compactly (841 -> "
        "771 tokens): they are the provider-facing tool definitions, sent as the tools declare them (adopted "
        "since, with the bounds the tools check left out too: see the 8398538 note).",
        "At 8398538, before the fixed part of every request was cut (the same run): agentcli 14 requests, "
        "27,105 input tokens; ReAct 28, 64,686; ratios 1.87x (OpenAI), 1.05x (Anthropic), 2.39x (no cache); a "
        "planner request 3,254 tokens (rules 970, the survey's callable tools 873, catalogue 517, draft schema "
        "424), a reviewer request 966 (steps 715, rules 170, schema 66), a step request 820. Now: agentcli "
        f"{ours.input_tokens:,}, ReAct {theirs.input_tokens:,}; a planner request "
        f"{_avg(per_role, 'planner'):,}, a reviewer request {_avg(per_role, 'reviewer'):,}"
        + (f", a step request {_avg(per_role, 'step'):,}." if _avg(per_role, "step") else
           " (no step request: the suite's plans have no llm step now, see below)."),
        "What was cut, every rule and capability kept: the planner's rules rewritten tersely (the step shapes, "
        "the {{sN.output}} references and the change-a-file recipe each said once); the draft schema's step one "
        "object whose head (call, prompt, investigate) is a property, oneOf requiring exactly one (three anyOf "
        "branches repeated the shared properties: ~110 tokens); the survey's and investigate's callable tools "
        "sent compactly, an optional argument as [\"integer\", \"null\"] and without the length, pattern and "
        "closed-object bounds the tool checks at the call (~200 tokens; this reverses the earlier choice below: "
        "a bound broken is still refused, with the tool's error for the model); the catalogue's output shape "
        "inline (left out for text) and the survey's tools named without a stock phrase; shorter argument texts "
        "of search_code, read_file and git_history (these are also the ReAct loop's tool definitions, so its "
        "requests shrank too: 64,686 -> the figure above); the reviewer's rules, its schema's outcome (an enum, "
        "no type), a tool step's args in the digest as a JSON object (an output is still one JSON string, so it "
        "cannot pose as a step's line), and the step's plan reminder frame.",
        "Considered and not done: dropping git_history from the survey's tools (~220 tokens a planner request, "
        "but a capability lost); a planner request of ~2,100 tokens on this suite would need ~400 more tokens "
        "cut from rules that are now one clause per rule, or a capability dropped.",
        "At 1a6b213 (before the planner's rule against a write-up llm step, the text digest and the shorter "
        "planner texts; the scripted planner then drafted a last llm step writing the answer of the 2 question "
        "tasks): agentcli 14 requests, 23,007 input tokens, 16,863 at OpenAI and 12,652 at Anthropic prices "
        "(planner 5,342, reviewer 5,670, step 1,640); ReAct 28, 63,370, 36,042 and 15,524; ratios 2.75x (no "
        "cache), 2.14x (OpenAI), 1.23x (Anthropic); a planner request 2,605 tokens, a reviewer request 935; t1 "
        "43,860 input tokens, 61.9% cacheable, 30,292 / 21,454 at OpenAI / Anthropic prices.",
        f"Now: agentcli {ours.requests} requests, {ours.input_tokens:,} input tokens, {ours.openai:,.0f} at OpenAI "
        f"and {ours.anthropic:,.0f} at Anthropic prices; ratios {ratio_u:.2f}x (no cache), "
        f"{theirs.openai / ours.openai:.2f}x (OpenAI), {ratio_a:.2f}x (Anthropic). The same suite drafted with the "
        f"write-up llm step as before (the row marked so): {writeup.requests} requests, "
        f"{writeup.input_tokens:,} input tokens, ratios {theirs.input_tokens / writeup.input_tokens:.2f}x (no "
        f"cache), {theirs.openai / writeup.openai:.2f}x (OpenAI), {theirs.anthropic / writeup.anthropic:.2f}x "
        "(Anthropic): what the digest, the planner texts and the fix below give without the rule.",
        "What changed: (1) the hosted planner's rules say the run's answer (at most 4,000 characters) is written "
        "after the steps from their outputs (each shown up to 4,000 characters): no llm step only to write it, "
        "unless it needs more; the reviewer, which sees every output anyway, writes it, instead of an llm step "
        "that is sent the outputs once more and whose text the reviewer then copies; review.mode = auto leaves a "
        "question to the reviewer as before (only a change-only task is decided by the facts), and the calls "
        "suite's scripted planner drafts the 2 question tasks as their tool steps, the review's answer carrying "
        "the write-up. (2) The reviewer's digest is text: a header line 'TAG id status action args: title' per "
        "step, its output unescaped below, a 'TAG end' line; the tag (@ and 15 digits: 6 tokens, against 8 for 12 "
        "hex digits) is a SHA-256 of what the message shows of its steps (as masked for the model), so no output "
        "can hold it and none can pose as a step or as the changes after the steps (tested with a forged header "
        "and a forged changes heading); deterministic, so a replay builds the same message. Digest tokens "
        "(the steps sections of every review): calls suite 4,093 -> 3,666 (-10.4%), t1 3,467 -> 3,052 (-12.0%), "
        "strong-model-t1 1,524 -> 1,324 (-13.1%); without the tag and end line, as measured once before, it "
        "would save ~19%, but an output could then pose as a step. (3) The planner's stable prefix: terser "
        "investigate, survey and catalogue texts (the same rules), the budgets line the step budget only (spend, "
        "tokens and time are checked in code); with the rule of (1) added, 2,605 -> 2,535 tokens. (4) A fix: "
        "the survey's list_files had lost its only argument, pattern, at 1a6b213 (the filter that leaves out the "
        "keywords a tool checks itself, pattern among them, also dropped an argument of that name); given back, "
        f"+45 tokens: a planner request {_avg(per_role, 'planner'):,} tokens.",
        "Rejected: the catalogue's approval words shortened ('[read]' for a tool that runs without asking: ~16 "
        "tokens a planner request after the longer legend it needs, not worth a less plain catalogue); a tag of "
        "8 digits (fewer tokens, but 27 bits is within reach of a crafted file).",
        "2026-12-07, 8a2bcc0 -> 931e015 (python -m bench --only calls,cache): a re-plan's context shows the steps "
        "as a review does (the same encoder: tagged header lines, outputs unescaped, an end line) instead of "
        "compact JSON, one step a line. Transcript t1: 43,352 -> 42,420 input tokens, 29,848 -> 29,236 at OpenAI "
        "and 21,029 -> 20,641 at Anthropic prices, cacheable 62.3% -> 62.1-62.2%; the steps part of its re-plan "
        "request 2,255 -> 2,026 tokens (-10%). Over 3 runs before and 5 after (its pytest outputs' timings vary "
        "by tens of tokens): 43,352-43,362 -> 42,400-42,455. The calls suite has no re-plan: unchanged.",
        "2026-12-07, e7f3341 -> 9e99b11 (python -m bench --only calls,cache): when the workspace's changes follow "
        "the steps in a review, a successful output that went into the change is a one-line note of its size and "
        "where it went (an llm step's output a successful write step applied, a read only such steps consumed); a "
        "re-plan's context keeps every output. Calls suite unchanged (12 requests, 20,762 input tokens: its tasks "
        "are questions, their reads kept). Transcript t1: 42,420-42,435 -> 40,576-40,593 input tokens (3 runs "
        "before, 4 after), 29,236-29,251 -> 27,392-27,409 at OpenAI and 20,641-20,656 -> 18,797-18,814 at "
        "Anthropic prices, cacheable 62.1-62.2% -> 65.0%; strong-model-t1 unchanged (9,896). The 6 graded feature "
        "runs at 643bc3c (their reviewer requests re-laid out by the same rule, references taken from the "
        "planner's drafts, cl100k): the reviews' steps sections 22,269 -> 5,579 tokens (-16,690: 75% of them, 46% "
        "of the reviewer messages, ~14% of those runs' 115,960 input tokens); per review dotenv -3,406, ini "
        "-2,802, semver -3,025, semver-js -4,411, sqlparse -3,046, click 0 (nothing applied from an llm step). A "
        "reviewer request is its role's first of a run, never served from a cache: each token saved is one at the "
        "full price.",
        "2026-12-07, fd197b3 -> the test-file summaries (python -m bench --only calls,cache): in the repository "
        "map, a test file's run of three or more consecutive tests is one line (count, first and last line, a few "
        "names). Calls suite: 20,762 -> 20,522 input tokens (the planner request's map 277 -> 237 tokens: the "
        "fixture's test file), 14,810 -> 14,570 at OpenAI and 10,688 -> 10,448 at Anthropic prices, cacheable "
        "57.3% -> 58.0%; ratios ReAct / agentcli 3.05x -> 3.09x (no cache), 1.45x -> 1.49x (Anthropic). On "
        "python-slugify (the transcripts' workspace) the map for their task is 1,987 -> 1,488 tokens, every file "
        "now outlined: transcript t1 40,598 -> 38,078-38,083 input tokens (2 runs) (~500 fewer in each "
        "request that carries the map), 27,414 -> 25,918-25,923 at OpenAI and 18,819 -> 18,014-18,019 at Anthropic "
        "prices; strong-model-t1 9,896 -> 9,396.",
        "A first-plan run (strong-model-t1) has one request of each role and two short step requests: nothing in "
        "it can share a prefix with an earlier request of the run (the 'most a prefix cache could serve' row); "
        "after a run of another task the planner's stable prefix is served from the cache.",
    ]
    return res


def conversation_table(folder: Path) -> str:
    """Each task run of a transcripts folder (``bench/swe/transcripts/<agent>``) priced as sent and as
    :func:`one_conversation` would have sent it, with the totals: a Markdown table."""
    from bench.swe import report

    rows = ["| task | as sent: input / cacheable / Anthropic | one conversation: input / cacheable / Anthropic |",
            "|---|---|---|"]
    totals = (Bill(), Bill())
    for task in sorted(p for p in folder.iterdir() if p.is_dir()):
        pairs = report.transcript(task)
        bills = (bill([r for r, _ in pairs]), bill(one_conversation(pairs)))
        for total, b in zip(totals, bills, strict=True):
            total.requests += b.requests
            total.input_tokens += b.input_tokens
            total.cacheable += b.cacheable
            total.written += b.written
        rows.append(f"| {task.name} | " + " | ".join(f"{b.input_tokens:,} / {b.share:.0%} / {b.anthropic:,.0f}"
                                                    for b in bills) + " |")
    rows.append("| **total** (OpenAI prices: " + " / ".join(f"{b.openai:,.0f}" for b in totals) + ") | "
                + " | ".join(f"{b.input_tokens:,} / {b.share:.0%} / {b.anthropic:,.0f}" for b in totals) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        print(f"{arg}\n\n{conversation_table(Path(arg))}\n")
