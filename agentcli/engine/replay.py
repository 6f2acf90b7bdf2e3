"""Deterministic replay of a recorded run, and forks of it.

A replay runs the *same* runner, state machine and executor as a live run, with
every outside input served from the recording instead:

* plans: the recorded ``plan_created`` plans, in order (a plan is locked by its
  hash, and re-asking the planner would see a workspace the run itself changed);
* LLM calls: the recorded response for the request's hash (:class:`ReplayBackend`);
  a request the recording does not have is a divergence;
* tool calls: the recorded result for (step, tool, args), in order
  (:class:`ReplayRegistry`); with ``live_tools`` read-only tools run for real;
* approvals and plan confirmations: the recorded decisions.

The replay's own events are then compared with the recording's
(:func:`first_divergence`), ignoring what legitimately differs: times, sequence
numbers, latencies, ids. The result is ``identical`` or the first divergence.
Nothing is spent: no provider is called, and with recorded tools nothing is run.

A fork (``from_step``) serves the recording only for the steps before
``from_step``; from there on tools, model calls and approvals are live, and the
new run is recorded as a child of the original.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agentcli.config import Config
from agentcli.engine.approval import ApprovalDecision, ApprovalRequest, Approver
from agentcli.engine.executor import CURRENT_STEP
from agentcli.engine.hooks import RecordedHooks
from agentcli.engine.runner import ReplanContext, RunDeps, RunOutcome, WorkspaceProbe, run
from agentcli.engine.workspace import WorkspaceChanges
from agentcli.errors import AgentError, LLMFatalError, LLMTransientError
from agentcli.models.client import LLMClient
from agentcli.models.profile import ModelProfile
from agentcli.models.routing import static_profile
from agentcli.models.types import CallRecord, ModelBackend, ModelRequest, ModelResponse, Price, ToolCall, Usage
from agentcli.planning.instructions import ProjectInstructions, load_project_instructions
from agentcli.planning.plan import Plan, canonical_json
from agentcli.record.events import EVENTS_NAME, Event, EventLog, Recording, read_events
from agentcli.tools import ToolError, ToolRegistry, ToolResult


class ReplayDivergence(AgentError):
    """The replay asked for something the recording does not have."""


def _live(from_index: dict[str, int] | None, step_id: str | None, cut: int | None) -> bool:
    """Whether a call in ``step_id`` is live in a fork (at or after the fork step, or run-level)."""
    if from_index is None or cut is None:
        return False
    if step_id is None:
        return True
    return from_index.get(step_id, 0) >= cut


@dataclass
class _Fork:
    order: dict[str, int]
    cut: int | None

    def live(self, step_id: str | None) -> bool:
        return _live(self.order, step_id, self.cut) if self.cut is not None else False


class ReplayBackend:
    """Serves recorded LLM responses by request hash (in recorded order for repeats)."""

    def __init__(self, rec: Recording, *, fork: _Fork | None = None, live: ModelBackend | None = None) -> None:
        self._by_hash: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        self._prices: dict[str, Price | None] = {}
        self._profiles: dict[str, ModelProfile] = {}
        for e in rec.of_type("llm_call"):
            self._by_hash[str(e.data["request_hash"])].append(e.data)
            model = str(e.data.get("model"))
            p = e.data.get("price")
            self._prices[model] = None if p is None else Price(p["input"], p["output"])
            recorded = e.data.get("profile")
            if isinstance(recorded, dict) and model not in self._profiles:
                self._profiles[model] = ModelProfile.from_dict(recorded)
        self._fork = fork
        self._live = live

    async def request(self, req: ModelRequest) -> ModelResponse:
        if self._fork is not None and self._live is not None and self._fork.live(CURRENT_STEP.get()):
            return await self._live.request(req)
        h = req.hash()
        queue = self._by_hash.get(h)
        if not queue:
            raise ReplayDivergence(f"LLM request {h[:12]} ({req.model}, step {CURRENT_STEP.get() or '-'}) "
                                   "is not in the recording")
        data = queue.popleft()
        resp = data.get("response")
        if resp is None:
            cls = LLMTransientError if data.get("outcome") == "retry" else LLMFatalError
            raise cls(str(data.get("error") or "recorded error"))
        return ModelResponse(
            text=resp.get("text", ""),
            tool_calls=[ToolCall.model_validate(c) for c in resp.get("tool_calls", [])],
            input_tokens=resp.get("input_tokens"), output_tokens=resp.get("output_tokens"),
            model=resp.get("model"), finish_reason=resp.get("finish_reason"),
        )

    def price(self, model: str) -> Price | None:
        if model in self._prices:
            return self._prices[model]
        return self._live.price(model) if self._live is not None else None

    def profile(self, model: str) -> ModelProfile:
        """The profile recorded with the model's calls (a replay decides as the run did); for a
        recording that predates profiles, the one known without asking a provider."""
        if model in self._profiles:
            return self._profiles[model]
        if self._live is not None:
            return self._live.profile(model)
        return static_profile(model)


def _tool_key(step_id: str | None, tool: str, args: Any) -> str:
    return f"{step_id}|{tool}|{canonical_json(args)}"


class ReplayRegistry(ToolRegistry):
    """The real registry's tools and schemas, with calls served from the recording."""

    def __init__(self, real: ToolRegistry, rec: Recording, *, live_tools: bool = False,
                 live_writes: bool = False, fork: _Fork | None = None) -> None:
        super().__init__(real.ctx)
        for t in real.tools():
            self.register(t)
        self._real = real
        self._results: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        for e in rec.of_type("tool_call"):
            self._results[_tool_key(e.step_id, e.data["tool"], e.data["args"])].append(e.data["result"])
        # Tools whose validation reads the workspace (apply_edits' exactly-once check) decide as the
        # run did: the workspace has changed since (by that very run, often).
        self._invalid: dict[str, dict[str, Any]] = {}
        for e in rec.of_type("review"):
            if e.data.get("kind") == "args_corrected" and isinstance(e.data.get("error"), dict):
                self._invalid[_tool_key(e.step_id, e.data["tool"], e.data["before"])] = e.data["error"]
        self._final_invalid: dict[str | None, dict[str, Any]] = {}
        for e in rec.of_type("step_finished"):
            err = e.data.get("error")
            if isinstance(err, dict) and err.get("type") == "invalid_args":
                self._final_invalid[e.step_id] = err
        self._live_tools = live_tools
        self._live_writes = live_writes
        self._fork = fork

    def validate(self, name: str, args: Any) -> BaseModel | ToolError:
        """As the real registry validates, except that a tool's workspace check (``check_func``) is
        answered from the recording: invalid where the run found it invalid, else valid."""
        tool = self.get(name)
        step_id = CURRENT_STEP.get()
        if tool is None or tool.check_func is None or (self._fork is not None and self._fork.live(step_id)):
            return super().validate(name, args)
        key = _tool_key(step_id, name, args)
        if key in self._invalid:
            return ToolError.model_validate(self._invalid[key])
        if step_id in self._final_invalid and not self._results.get(key):
            return ToolError.model_validate(self._final_invalid[step_id])
        try:
            return tool.args_model.model_validate(args, context={"tools_config": self.ctx.config})
        except ValidationError:
            return super().validate(name, args)

    async def call(self, name: str, args: Any, *, timeout: float | None = None) -> ToolResult:
        step_id = CURRENT_STEP.get()
        tool = self.get(name)
        if self._fork is not None and self._fork.live(step_id):
            return await self._real.call(name, args, timeout=timeout)
        if self._live_tools and tool is not None and (tool.risk == "read" or self._live_writes):
            return await self._real.call(name, args, timeout=timeout)
        queue = self._results.get(_tool_key(step_id, name, args))
        if not queue:
            raise ReplayDivergence(f"tool call {name}({canonical_json(args)[:120]}) in step {step_id} "
                                   "is not in the recording")
        return ToolResult.model_validate(queue.popleft())


class RecordedApprover(Approver):
    """Approval decisions as recorded (live ones, through the wrapped approver, in a fork)."""

    def __init__(self, config: Config, rec: Recording, *, fork: _Fork | None = None,
                 live: Approver | None = None) -> None:
        super().__init__(config.approval)
        self._by_step: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        for e in rec.of_type("approval"):
            self._by_step[str(e.step_id)].append(e.data)
        self._fork = fork
        self._live = live

    def decide(self, req: ApprovalRequest) -> ApprovalDecision:
        if self._fork is not None and self._live is not None and self._fork.live(req.step_id):
            return self._live.decide(req)
        queue = self._by_step.get(req.step_id)
        if not queue:
            raise ReplayDivergence(f"approval for step {req.step_id} ({req.tool}) is not in the recording")
        d = queue.popleft()
        return ApprovalDecision(req.step_id, req.tool, req.args_hash, req.plan_hash, d["decided_by"],
                                d["decision"], 0.0, d.get("message", ""))


class RecordedChanges:
    """The workspace's changes as recorded (``workspace_changes`` events, in order): a replay
    does not change the workspace, so its changes are the original run's. Past the record (a
    fork's live part) they are ``live``'s, or unknown."""

    def __init__(self, rec: Recording, live: WorkspaceProbe | None = None) -> None:
        self._queue: deque[dict[str, Any]] = deque(e.data for e in rec.of_type("workspace_changes"))
        self._live = live

    async def start(self) -> None:
        if self._live is not None:
            await self._live.start()

    async def changes(self) -> WorkspaceChanges | None:
        if not self._queue:
            return await self._live.changes() if self._live is not None else None
        data = self._queue.popleft()
        return WorkspaceChanges.from_dict(data) if data.get("known") else None


# ------------------------------------------------------------------ comparison

_IGNORED = {"time", "seq", "latency_ms", "duration_ms", "duration_s", "call_id", "run_id", "seconds",
            "started", "finished", "approval_wait_s", "config", "config_digest", "versions", "parent",
            "replay_of", "fork_from", "no_project_instructions"}


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in _IGNORED}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _comparable(events: Iterable[Event]) -> dict[str, list[Event]]:
    """Events grouped by step (run-level ones under '-'), without WAITING_TOOL transitions, whose
    interleaving depends on how long tools took."""
    groups: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e.type == "transition" and "WAITING_TOOL" in (e.data.get("from"), e.data.get("to")):
            continue
        if e.type in ("memory_recall", "memory_write", "checkpoint"):
            continue  # memory and checkpoints are outside stores: a replay neither reads nor writes them
        if e.type == "budget_check" and e.data.get("ok"):
            continue  # a passing check's numbers include wall time
        groups[e.step_id or "-"].append(e)
    return groups


@dataclass(frozen=True)
class Divergence:
    """The first place where a replay differs from its recording."""

    event: str
    step: str | None
    seq: int | None
    expected: Any
    got: Any

    def describe(self) -> str:
        where = f"step {self.step}" if self.step else "run"
        return (f"first divergence at event #{self.seq} ({self.event}, {where}): "
                f"expected {json.dumps(self.expected, default=str)[:300]}, "
                f"got {json.dumps(self.got, default=str)[:300]}")


def first_divergence(expected: Recording, got: Recording) -> Divergence | None:
    """Compare two recordings step by step; None when they match."""
    exp, act = _comparable(expected.events), _comparable(got.events)
    candidates: list[Divergence] = []
    for key in sorted(set(exp) | set(act)):
        a, b = exp.get(key, []), act.get(key, [])
        for i in range(max(len(a), len(b))):
            ea = a[i] if i < len(a) else None
            eb = b[i] if i < len(b) else None
            va = None if ea is None else {"type": ea.type, **_scrub(ea.data)}
            vb = None if eb is None else {"type": eb.type, **_scrub(eb.data)}
            if va != vb:
                ref = ea or eb
                assert ref is not None
                candidates.append(Divergence(ref.type, None if key == "-" else key,
                                             ea.seq if ea else None, va, vb))
                break
    if not candidates:
        return None
    return min(candidates, key=lambda d: d.seq if d.seq is not None else 1 << 60)


# ------------------------------------------------------------------ running a replay


@dataclass
class ReplayResult:
    outcome: RunOutcome
    divergence: Divergence | None
    events_path: Path
    warnings: list[str]

    @property
    def identical(self) -> bool:
        return self.divergence is None


def recorded_config(rec: Recording) -> Config:
    start = rec.first("run_started")
    if start is None:
        raise AgentError(f"run {rec.run_id} has no run_started event")
    raw = start.data.get("config")
    return Config.model_validate(raw) if isinstance(raw, dict) else Config()


def _recorded_plans(rec: Recording) -> list[tuple[Plan, list[CallRecord]]]:
    """Each recorded plan with the planner calls that produced it."""
    out: list[tuple[Plan, list[CallRecord]]] = []
    calls: list[CallRecord] = []
    for e in rec.events:
        if e.type == "llm_call" and e.data.get("role") == "planner":
            calls.append(call_record(e))
        elif e.type == "plan_created":
            out.append((Plan.model_validate(e.data["plan"]), calls))
            calls = []
    return out


def call_record(e: Event) -> CallRecord:
    """An llm_call event back as the CallRecord that produced it."""
    d = e.data
    r = d.get("request") or {}
    req = ModelRequest(model=str(d.get("model")), messages=r.get("messages", []),
                       max_tokens=int(r.get("max_tokens") or 0), temperature=float(r.get("temperature") or 0),
                       seed=r.get("seed"), response_format=r.get("response_format"), tools=r.get("tools"))
    resp_d = d.get("response")
    resp = None if resp_d is None else ModelResponse(
        text=resp_d.get("text", ""), tool_calls=[ToolCall.model_validate(c) for c in resp_d.get("tool_calls", [])],
        input_tokens=resp_d.get("input_tokens"), output_tokens=resp_d.get("output_tokens"),
        model=resp_d.get("model"), finish_reason=resp_d.get("finish_reason"))
    profile = d.get("profile")
    return CallRecord(str(d.get("call_id", "")), int(d.get("attempt", 1)), str(d.get("role")), e.step_id, req,
                      str(d.get("request_hash")), resp, Usage.model_validate(d.get("usage") or {}),
                      d.get("cost_usd"), float(d.get("latency_ms") or 0), str(d.get("outcome")),
                      d.get("error_type"), d.get("error"), profile=profile if isinstance(profile, dict) else None)


def _confirmations(rec: Recording) -> list[bool]:
    """Whether each recorded plan was confirmed (planning went on to execution)."""
    out: list[bool] = []
    for e in rec.of_type("transition"):
        src, dst = e.data.get("from"), e.data.get("to")
        if src in ("PLANNING", "REPLANNING"):
            out.append(dst == "EXECUTING")
    return out


async def replay_run(
    events_path: Path,
    registry: ToolRegistry,
    *,
    live_tools: bool = False,
    live_writes: bool = False,
    out_dir: Path | None = None,
    new_run_id: str | None = None,
    from_step: str | None = None,
    live_backend: ModelBackend | None = None,
    live_approver: Approver | None = None,
) -> ReplayResult:
    """Re-execute a recorded run. Without ``from_step`` the replay's events go to a temporary
    folder (or ``out_dir``) and are compared with the recording; with it, a fork is run live from
    that step and recorded as a new run in ``out_dir``."""
    rec = read_events(events_path)
    config = recorded_config(rec)
    start = rec.first("run_started")
    assert start is not None
    task = str(start.data.get("task", ""))
    plans = _recorded_plans(rec)
    if not plans:
        raise AgentError(f"run {rec.run_id} recorded no plan: nothing to replay")
    fork = None
    if from_step is not None:
        order = {s.id: i for i, s in enumerate(plans[-1][0].steps)}
        for p, _ in plans:
            for i, s in enumerate(p.steps):
                order.setdefault(s.id, i)
        if from_step not in order:
            raise AgentError(f"run {rec.run_id} has no step '{from_step}' (steps: {', '.join(order)})")
        fork = _Fork(order, order[from_step])
    run_id = new_run_id or f"{rec.run_id}-replay"
    tmp = None
    if out_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="agentcli-replay-")
        out_dir = Path(tmp.name)
    path = out_dir / run_id / EVENTS_NAME
    events = EventLog(path, run_id)
    backend = ReplayBackend(rec, fork=fork, live=live_backend)
    client = LLMClient(config, backend=backend, run_id=run_id)
    queue = list(plans)
    confirms = _confirmations(rec)

    async def planner(t: str, ctx: ReplanContext | None) -> Plan:
        if fork is not None and ctx is not None:
            raise ReplayDivergence("a fork that needs a new plan must be run live: use agent run")
        if not queue:
            raise ReplayDivergence("the replay needed a plan the recording does not have")
        plan, calls = queue.pop(0)
        for call in calls:  # the planner's recorded calls count as they did in the original run
            client.account_recorded(call)
        if ctx is not None:
            # A re-plan was recorded after the merge: hand back only its new steps, which the
            # runner merges after the kept ones again (their ids already follow them).
            kept = ctx.kept
            plan = plan.model_copy(update={"steps": [s for s in plan.steps if s.id not in kept]})
        return plan

    def confirm(plan: Plan, replan: bool) -> bool:
        return confirms.pop(0) if confirms else True

    deps = RunDeps(
        config=config, registry=ReplayRegistry(registry, rec, live_tools=live_tools, live_writes=live_writes,
                                               fork=fork),
        client=client, approver=RecordedApprover(config, rec, fork=fork, live=live_approver), events=events,
        planner=planner, confirm=confirm, run_id=run_id,
        output_schema=start.data.get("output_schema") if isinstance(start.data.get("output_schema"), dict) else None,
        instructions=ProjectInstructions.from_record(start.data.get("instructions")),
        hooks=RecordedHooks(config.hooks, registry.ctx.workspace, events, run_id, rec,
                            live=fork.live if fork is not None else None, sandbox=config.sandbox,
                            data_dir=registry.ctx.data_dir) if config.hooks else None,
        extra_start={"replay_of": rec.run_id} if fork is None else {"parent": rec.run_id,
                                                                      "fork_from": from_step},
        # A run recorded without a view of the workspace is replayed without one too.
        workspace=RecordedChanges(rec) if rec.first("workspace_changes") is not None else None,
        verify_command=str(start.data.get("verify_command") or ""),
    )
    try:
        outcome = await run(task, deps)
    finally:
        events.close()
    got = read_events(path)
    divergence = None if fork is not None else first_divergence(rec, got)
    if tmp is not None:
        tmp.cleanup()
    return ReplayResult(outcome, divergence, path, [*rec.warnings, *_instructions_changed(start, registry, config)])


def _instructions_changed(start: Event, registry: ToolRegistry, config: Config) -> list[str]:
    """A warning when the workspace's project instructions differ from the ones the run recorded
    (the replay uses the recorded ones, so it stays identical; a new run would not)."""
    if start.data.get("no_project_instructions"):
        return []
    recorded = ProjectInstructions.from_record(start.data.get("instructions"))
    now = load_project_instructions(registry.ctx.workspace, config.instructions)
    if (recorded.hash if recorded else None) == (now.hash if now else None):
        return []
    was = f"hash {recorded.hash}" if recorded else "none"
    is_now = f"hash {now.hash}" if now else "none"
    return [f"the project instructions (AGENTS.md) changed since the run ({was}, now {is_now}): "
            "the replay uses the recorded ones"]
