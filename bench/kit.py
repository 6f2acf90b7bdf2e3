"""Building agentcli runs by hand for the benchmarks: config, tools, plans and RunDeps.

The same wiring as ``agent run`` (the composition root, RunSession: an EventLog and a CallLog in
the run's folder, the LLM client, the approver), minus the CLI: plans are given, the model is a fake from
:mod:`agentcli.models.fakes`, and nothing is printed.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentcli.config import Config, Settings
from agentcli.engine.approval import Approver
from agentcli.engine.runner import PlanFn, ReplanContext, RunDeps, RunOutcome, run
from agentcli.engine.session import RunSession
from agentcli.models.types import ModelBackend
from agentcli.planning.plan import Plan, RetryPolicy, Step, default_retry
from agentcli.tools import ArgsModel, Tool, ToolContext, ToolRegistry, tool

FAKE_MODEL = "test/scripted"
_run_ids = itertools.count(1)


class NoArgs(ArgsModel):
    """No arguments."""


class NapArgs(ArgsModel):
    seconds: float = 0.2
    label: str = "x"


def noop_tool() -> Tool:
    @tool(name="noop", risk="read")
    async def noop(args: NoArgs, ctx: ToolContext) -> str:
        """Do nothing and return "ok"."""
        return "ok"

    return noop


def nap_tool() -> Tool:
    @tool(name="nap", risk="read", timeout=30)
    async def nap(args: NapArgs, ctx: ToolContext) -> str:
        """Sleep for a while (simulated tool latency), then return the label."""
        await asyncio.sleep(args.seconds)
        return args.label

    return nap


def bench_config(**sections: Any) -> Config:
    """A config for fake-model runs: default budgets and limits unless given, no retry waits."""
    base: dict[str, Any] = {"model": FAKE_MODEL, "llm": {"backoff_base_seconds": 0}, "memory": {"enabled": False}}
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return Config.model_validate(base)


def make_registry(workspace: Path, config: Config, tools: Sequence[Tool]) -> ToolRegistry:
    reg = ToolRegistry(ToolContext(workspace=workspace, config=config.tools, data_dir=workspace / ".agent"))
    for t in tools:
        reg.register(t)
    return reg


def tool_plan(calls: Sequence[tuple[str, dict[str, Any]]], *, chain: bool, task: str = "bench",
              risk: str = "read") -> Plan:
    """A plan of tool steps ``s1..sN``; ``chain`` makes each depend on the one before."""
    steps = [
        Step(id=f"s{i}", title=f"step {i}: {name}", kind="tool", tool=name, args=args,
             depends_on=[f"s{i - 1}"] if chain and i > 1 else [], risk=risk,  # type: ignore[arg-type]
             retry=default_retry("tool", risk))
        for i, (name, args) in enumerate(calls, start=1)
    ]
    return Plan(id="bench-plan", task=task, created_at=datetime(2026, 1, 1, tzinfo=UTC), model=FAKE_MODEL,
                steps=steps).rehash()


def llm_step(sid: str, prompt: str, depends_on: list[str]) -> Step:
    return Step(id=sid, title=f"{sid} llm", kind="llm", prompt=prompt, depends_on=depends_on,
                retry=RetryPolicy(max_attempts=1, backoff_seconds=0))


def review_reply(answer: str = "done") -> dict[str, str]:
    """The reviewer's verdict that ends a run."""
    return {"outcome": "complete", "answer": answer, "reason": ""}


async def _no_planner(task: str, ctx: ReplanContext | None) -> Plan:
    raise RuntimeError("this benchmark gives the plan; no planner call expected")


def make_deps(root: Path, config: Config, registry: ToolRegistry, backend: ModelBackend, *,
              planner: PlanFn | None = None, run_id: str | None = None) -> RunDeps:
    """RunDeps as ``agent run --yes`` builds them (the composition root, RunSession): a real
    EventLog and CallLog under ``root``; memory, telemetry and checkpoints off."""
    rid = run_id or f"bench-{next(_run_ids):05d}"
    session = RunSession(Settings(config=config, workspace=root), rid, backend=backend, registry=registry,
                         approver=Approver(config.approval, yes=True), runs_dir=root / "runs", memory=False,
                         telemetry=False, checkpoints=False)
    return session.deps(planner or _no_planner, lambda plan, replan: True)


def close_deps(deps: RunDeps) -> None:
    deps.events.close()
    if deps.client.call_log is not None:
        deps.client.call_log.close()


async def timed_run(task: str, deps: RunDeps, plan: Plan | None = None) -> tuple[RunOutcome, float]:
    """``runner.run`` timed with perf_counter (the deps are built before, closed after)."""
    t0 = time.perf_counter()
    outcome = await run(task, deps, plan=plan)
    return outcome, time.perf_counter() - t0
