"""Shared helpers for run-level tests: plans by hand, registries with test tools, wired deps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentcli.config import Config, Settings
from agentcli.engine.approval import Answer, ApprovalRequest, Approver
from agentcli.engine.runner import ReplanContext, RunDeps, RunOutcome, run
from agentcli.engine.session import RunSession
from agentcli.models.fakes import ScriptedModel
from agentcli.planning.plan import Plan, RetryPolicy, Step
from agentcli.record.events import Event, Recording, read_events
from agentcli.tools import ArgsModel, ToolContext, ToolRegistry, builtin_tools, tool


def step(sid: str, tool_name: str | None = None, *, prompt: str | None = None, deps: list[str] | None = None,
         attempts: int = 1, approval: bool = False, risk: str | None = None, **args: Any) -> Step:
    kind = "llm" if prompt is not None else "tool"
    return Step(id=sid, title=f"{sid} {tool_name or 'llm'}", kind=kind, tool=tool_name, args=args,
                prompt=prompt, depends_on=deps or [], retry=RetryPolicy(max_attempts=attempts, backoff_seconds=0),
                requires_approval=approval, risk=risk)


def plan(*steps: Step, task: str = "the task", plan_id: str = "plan-1") -> Plan:
    return Plan(id=plan_id, task=task, created_at=datetime(2026, 1, 1, tzinfo=UTC), model="test/scripted",
                steps=list(steps)).rehash()


class SleepArgs(ArgsModel):
    seconds: float = 0.2
    label: str = "x"


class FlakyArgs(ArgsModel):
    key: str


@dataclass
class Counters:
    calls: dict[str, int] = field(default_factory=dict)
    spans: list[tuple[str, float, float]] = field(default_factory=list)


def make_registry(workspace: Path, config: Config | None = None, counters: Counters | None = None
                  ) -> ToolRegistry:
    cfg = config or Config()
    reg = ToolRegistry(ToolContext(workspace=workspace, config=cfg.tools, data_dir=workspace / ".agent"))
    for t in builtin_tools(cfg.tools):
        reg.register(t)
    c = counters or Counters()

    @tool(risk="read", timeout=5)
    async def nap(args: SleepArgs, ctx: ToolContext) -> str:
        """Sleep, then return the label."""
        t0 = time.monotonic()
        await asyncio.sleep(args.seconds)
        c.spans.append((args.label, t0, time.monotonic()))
        return args.label

    @tool(risk="read", timeout=0.3)
    async def flaky(args: FlakyArgs, ctx: ToolContext) -> str:
        """Hangs the first time it is called for a key, answers the second time."""
        c.calls[args.key] = c.calls.get(args.key, 0) + 1
        if c.calls[args.key] == 1:
            await asyncio.sleep(10)
        return f"ok {args.key}"

    reg.register(nap)
    reg.register(flaky)
    return reg


def review(outcome: str = "complete", answer: str = "done", reason: str = "") -> dict[str, str]:
    return {"outcome": outcome, "answer": answer, "reason": reason}


@dataclass
class EpisodeSink:
    """Stands in for memory: keeps what the run records as its episode."""

    episodes: list[dict[str, Any]] = field(default_factory=list)

    def record_episode(self, **fields: Any) -> None:
        self.episodes.append(fields)


@dataclass
class Harness:
    workspace: Path
    config: Config
    #: The model backend; ``None``: the real one (litellm), for a server on loopback.
    model: ScriptedModel | None
    plans: list[Plan]
    replans: list[ReplanContext] = field(default_factory=list)
    confirm_answers: list[bool] = field(default_factory=list)
    prompt_answers: list[Answer] | None = None
    yes: bool = False
    counters: Counters = field(default_factory=Counters)
    run_id: str = "run-test"
    #: Attached to the run's EventLog before the run starts (e.g. telemetry's span converter).
    listeners: list[Callable[[Event], None]] = field(default_factory=list)
    #: ``RunDeps.memory`` (e.g. an :class:`EpisodeSink`).
    memory: Any = None
    #: Take workspace checkpoints (``RunDeps.checkpoints``), which the run's changes are read from.
    checkpoints: bool = False
    #: ``RunDeps.verify_command``.
    verify: str = ""
    _session: Any = None

    def session(self) -> RunSession:
        """The run's dependencies as every run builds them (the composition root)."""
        prompt = None
        if self.prompt_answers is not None:
            answers = self.prompt_answers

            def prompt(req: ApprovalRequest) -> Answer:
                return answers.pop(0)

        approver = Approver(self.config.approval, prompt=prompt, yes=self.yes)
        session = RunSession(Settings(config=self.config, workspace=self.workspace), self.run_id,
                             backend=self.model, registry=make_registry(self.workspace, self.config, self.counters),
                             approver=approver, memory=self.memory if self.memory is not None else False,
                             telemetry=False, checkpoints=self.checkpoints)
        session.events.listeners.extend(self.listeners)
        return session

    def deps(self) -> RunDeps:
        queue = list(self.plans)

        async def planner(task: str, ctx: ReplanContext | None) -> Plan:
            if ctx is not None:
                self.replans.append(ctx)
            return queue.pop(0)

        def confirm(p: Plan, replan: bool) -> bool:
            return self.confirm_answers.pop(0) if self.confirm_answers else True

        self._session = self.session()
        return self._session.deps(planner, confirm, verify_command=self.verify)

    def run(self, task: str = "the task") -> RunOutcome:
        deps = self.deps()
        try:
            return asyncio.run(run(task, deps))
        finally:
            self._session.close()

    @property
    def events_path(self) -> Path:
        return self.workspace / ".agent" / "runs" / self.run_id / "events.jsonl"

    def recording(self) -> Recording:
        return read_events(self.workspace / ".agent" / "runs" / self.run_id / "events.jsonl")


def config(**sections: Any) -> Config:
    base: dict[str, Any] = {"model": "test/scripted", "llm": {"backoff_base_seconds": 0}}
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return Config.model_validate(base)
