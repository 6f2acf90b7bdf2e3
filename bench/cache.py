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
from agentcli.models.cache import cacheable, request_tokens, shared_prefix
from agentcli.models.client import LLMClient
from agentcli.models.fakes import FunctionModel, ScriptedModel
from agentcli.models.types import CallRecord, ModelRequest
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


def _avg(per_role: dict[str, Any], role: str) -> int:
    part = per_role.get(role)
    return part["tokens"] // part["requests"] if part else 0


async def _agentcli_requests(tasks: list[suite.Task], base: Path) -> list[ModelRequest]:
    ws = suite.make_workspace(base / "ws")
    config = kit.bench_config()
    settings = Settings(config=config, workspace=ws)
    registry = kit.make_registry(ws, config, builtin_tools(config.tools))
    out: list[ModelRequest] = []
    for task in tasks:
        deps = kit.make_deps(base / "runs", config, registry, FunctionModel(calls.answer))
        client = deps.client

        async def planner(text: str, ctx: ReplanContext | None, client: LLMClient = client) -> Plan:
            return await make_plan(text, settings=settings, registry=registry, client=client, save=False)

        deps.planner = planner
        try:
            await kit.timed_run(task.text, deps)
        finally:
            kit.close_deps(deps)
        out += [r.request for r in RunRecord.read(deps.events.path).call_records() if r.response is not None]
    return out


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
    agentcli_reqs = asyncio.run(_agentcli_requests(tasks, base))
    ours = bill(agentcli_reqs)
    theirs = bill(asyncio.run(_react_requests(tasks, base)))
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
        "Why the Anthropic and no-cache targets are still out of reach on this suite: its tasks are 3-6 short "
        "tool steps that ask questions, so a ReAct loop's history stays small, while every agentcli task pays a "
        "planner request (~2,600 tokens: the rules ~780, the survey's callable tools ~615, the catalogue ~425, "
        "the draft schema ~315, the workspace and map ~430; all but the map and task a prefix shared by all "
        "tasks) and a reviewer request (~935 tokens, ~707 of them the step outputs it answers from; its stable "
        "part, ~215 tokens, is under the 1,024-token minimum of a cached prefix). The reviewer requests, which "
        "write the answer of every question task, cost ~5,600 units at any price: already 72% of what the "
        "Anthropic target allows agentcli in all. A review the facts decide (review.mode = auto) needs a "
        "change task whose tool steps a verify command checks (the 'change task' rows), none of this suite's.",
        "One prefix across roles (the candidate row): a step or reviewer request that began with the planner's "
        "tools and system message shares with the planner's request only the tools (~820 tokens, under the "
        "cache minimum: the response schema, which providers put after the tools, differs by role), and with "
        "the other requests of its role a longer start; but it also sends ~2,300 more tokens, each billed at "
        "50% or 10% at best, which costs more than the cache saves: 44,895 input tokens, 30,111 at OpenAI and "
        "20,268 at Anthropic prices against 26,495, 18,943 and 13,701 (measured at this commit). Not adopted.",
        "Also weighed and not adopted: the reviewer's step digest as plain text blocks instead of one JSON line "
        "a step (measured once on a calls-suite review: 734 -> 597 tokens of steps, -19%): an output in a JSON "
        "string cannot pose as another step's line or status, which plain text would allow a file or a command "
        "to do; the survey tools' schemas written compactly (841 -> 771 tokens): they are the provider-facing "
        "tool definitions, sent as the tools declare them (adopted since, with the bounds the tools check "
        "left out too: see the 8398538 note).",
        "At 8398538, before the fixed part of every request was cut (the same run): agentcli 14 requests, "
        "27,105 input tokens; ReAct 28, 64,686; ratios 1.87x (OpenAI), 1.05x (Anthropic), 2.39x (no cache); a "
        "planner request 3,254 tokens (rules 970, the survey's callable tools 873, catalogue 517, draft schema "
        "424), a reviewer request 966 (steps 715, rules 170, schema 66), a step request 820. Now: agentcli "
        f"{ours.input_tokens:,}, ReAct {theirs.input_tokens:,}; a planner request "
        f"{_avg(per_role, 'planner'):,}, a reviewer request {_avg(per_role, 'reviewer'):,}, a step request "
        f"{_avg(per_role, 'step'):,}.",
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
        "but a capability lost); the step digest as plain text (above: the JSON string keeps an output from "
        "posing as a step); a planner request of ~2,100 tokens on this suite would need ~500 more tokens cut "
        "from rules that are now one clause per rule, or a capability dropped.",
        "A first-plan run (strong-model-t1) has one request of each role and two short step requests: nothing in "
        "it can share a prefix with an earlier request of the run (the 'most a prefix cache could serve' row); "
        "after a run of another task the planner's stable prefix is served from the cache.",
    ]
    return res
