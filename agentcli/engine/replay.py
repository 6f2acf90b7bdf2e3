"""Deterministic replay of a recorded run, and forks of it.

A replay runs the *same* runner, state machine and executor as a live run, with
every outside input served from the recording instead:

* plans: the recorded ``plan_created`` plans, in order (a plan is locked by its
  hash, and re-asking the planner would see a workspace the run itself changed);
* LLM calls: the recorded response for the request's hash (:class:`ReplayBackend`);
  a request the recording does not have is a divergence;
* tool calls: the recorded result for (step, tool, args), in order
  (:class:`ReplayRegistry`); with ``live_tools`` read-only tools run for real;
* approvals and plan confirmations: the recorded decisions;
* the user's words: feedback at a plan's confirmation (by the plan's hash), at an approval (with
  the approval), and steering messages at the step boundary they were taken at
  (:class:`RecordedSteering`).

The replay's own events are then compared with the recording's
(:func:`first_divergence`), ignoring what legitimately differs: times, sequence
numbers, latencies, ids. The result is ``identical`` or the first divergence.
Nothing is spent: no provider is called, and with recorded tools nothing is run.

A fork (``from_step``) serves the recording only for the steps before
``from_step``; from there on tools, model calls and approvals are live, and the
new run is recorded as a child of the original.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agentcli import __version__
from agentcli.config import Config, Settings
from agentcli.engine.approval import ApprovalDecision, ApprovalRequest, Approver
from agentcli.engine.hooks import HookEvent, HookResult
from agentcli.engine.prompts import changed_prompts
from agentcli.engine.runner import (
    ReplanContext,
    ResumeState,
    RunOutcome,
    UncertainDecision,
    UncertainStep,
    WorkspaceProbe,
    resume_state,
    run,
)
from agentcli.engine.session import RunSession
from agentcli.engine.steering import Boundary, Feedback
from agentcli.engine.workspace import WorkspaceChanges
from agentcli.errors import AgentError, LLMFatalError, LLMTransientError
from agentcli.models.client import LLMClient
from agentcli.models.profile import ModelProfile
from agentcli.models.routing import static_profile
from agentcli.models.types import ModelBackend, ModelRequest, ModelResponse, Price
from agentcli.planning.instructions import ProjectInstructions, load_project_instructions
from agentcli.planning.plan import Plan, canonical_json
from agentcli.record.events import (
    ArgsChecked,
    BudgetChecked,
    CheckpointMade,
    Event,
    Hooked,
    LlmCall,
    MemoryRecalled,
    MemoryWritten,
    PlanCreated,
    Recording,
    ResumeDecided,
    Reviewed,
    RunFinished,
    RunStarted,
    TransitionMade,
    Undone,
    UserSaid,
    WorkspaceChanged,
)
from agentcli.record.reader import ForkCut, RunRecord, Typed, recorded_price, response_of, step_order
from agentcli.tools import ToolError, ToolRegistry, ToolResult

T = TypeVar("T")


class ReplayDivergence(AgentError):
    """The replay asked for something the recording does not have."""


class RecordingEnds(ReplayDivergence):
    """A killed part of the run: the replay asked for what came after the kill (its replay stops
    there, as the run did, and what it wrote past that point is dropped)."""


@dataclass
class _Part:
    """The part of the recording a replay is in: a resumed run has one per ``run_started``, each
    served only its own recorded inputs (a killed part must not take its resumption's). A part with
    no record of its end was killed: asked for more than it recorded, its replay stops there."""

    lo: int = 0
    hi: int = 1 << 62
    killed: bool = False
    #: The part ended on Ctrl-C: asked for an input the run never got, its replay is interrupted
    #: there the same way (``stop`` cancels the replay's run, as the signal cancelled the run).
    interrupted: bool = False
    stop: Callable[[], Any] | None = None

    def has(self, queue: deque[tuple[int, Any]]) -> bool:
        while queue and queue[0][0] < self.lo:  # left unserved by an earlier part: it diverged there
            queue.popleft()
        return bool(queue) and queue[0][0] < self.hi

    async def serve(self, queue: deque[tuple[int, T]] | None, what: str) -> tuple[int, T]:
        """:meth:`take`, or the interruption the run had at this point."""
        if not (queue is not None and self.has(queue)) and self.interrupted and self.stop is not None:
            self.stop()
            await asyncio.Event().wait()  # cancelled by stop()
        return self.take(queue, what)

    def take(self, queue: deque[tuple[int, T]] | None, what: str) -> tuple[int, T]:
        if queue is not None and self.has(queue):
            return queue.popleft()
        if self.killed:
            raise RecordingEnds(f"{what}: the run was killed before it was recorded")
        raise ReplayDivergence(f"{what} is not in the recording")


def _live(fork: ForkCut | None, step_id: str | None) -> bool:
    """Whether a call in ``step_id`` runs live: in a fork, at or after the fork step, or run-level."""
    return fork is not None and fork.live(step_id)


def _stopped_by_the_clock(rec: RunRecord) -> bool:
    """Whether the run ended on its wall-time budget: then a call that never returned in the
    recording is one the clock cut short, and the replay waits for its own clock to do the same."""
    finish = rec.finish
    return finish is not None and finish.reason == "budget_exceeded:seconds"


async def _wait_for_the_clock() -> None:
    await asyncio.Event().wait()  # cancelled by the run's wall-time budget, as in the recording


class InputOrder:
    """The order in which the run received its inputs, kept in a replay: each input is served in
    its turn, by the sequence number of the event that recorded it (a tool result's ``tool_call``,
    a model answer's ``llm_call``; any recorded input can take part). Which of several running
    steps finishes first decides which steps a failure stops, and served instantly they would all
    finish at once.

    An input waits until those recorded before it have been served. In a replay that follows its
    record each of them is asked for (the run asked for it before it received this one), so the
    wait ends. In one that has diverged an earlier input may never be asked for: the wait ends when
    the replay has nothing else to do, that is when ``STALL_TURNS`` turns of the event loop have
    gone by with nothing written to the replay's log and no input asked for. A replay has no
    threads and no timers to wait for (its approvals are served in the loop, its retries do not
    wait, see ``sleep``), so the same replay ends its waits at the same points every time: no
    wall clock is read."""

    STALL_TURNS = 64

    def __init__(self, seqs: Iterable[int]) -> None:
        self._pending = sorted(set(seqs))
        self._first = 0  # self._pending[:self._first] are all served
        self._served: set[int] = set()
        self._asked = 0
        #: What the replay has written so far (its log's last sequence number): progress.
        self.written: Callable[[], int] = lambda: 0

    def _earliest(self) -> int | None:
        while self._first < len(self._pending) and self._pending[self._first] in self._served:
            self._first += 1
        return self._pending[self._first] if self._first < len(self._pending) else None

    async def turn(self, seq: int) -> None:
        """Wait for ``seq``'s turn; then it counts as served."""
        self._asked += 1
        waited = False
        mark, idle = (-1, -1), 0
        while (first := self._earliest()) is not None and first < seq:
            waited = True
            now = (self.written(), self._asked + len(self._served))
            if now != mark:
                mark, idle = now, 0
            elif (idle := idle + 1) > self.STALL_TURNS:
                break  # nothing else can happen: the earlier inputs will not be asked for (diverged)
            await asyncio.sleep(0)
        if waited:
            for _ in range(3):  # let the run take in what was served before (a failure stops new steps)
                await asyncio.sleep(0)
        self._served.add(seq)


async def _no_wait(seconds: float) -> None:
    """A replay's retry wait: the recorded attempts are served, and nothing is waited for."""
    await asyncio.sleep(0)


class ReplayBackend:
    """Serves recorded LLM responses by request hash (in recorded order for repeats)."""

    def __init__(self, rec: RunRecord, *, fork: ForkCut | None = None, live: ModelBackend | None = None) -> None:
        self._by_hash: dict[str, deque[tuple[int, LlmCall]]] = defaultdict(deque)
        self._prices: dict[str, Price | None] = {}
        self._profiles: dict[str, ModelProfile] = {}
        self.order: InputOrder | None = None
        for c in rec.calls:
            d = c.data
            self._by_hash[d.request_hash].append((c.seq, d))
            self._prices[d.model] = recorded_price(d.price)
            if d.profile is not None and d.model not in self._profiles:
                self._profiles[d.model] = ModelProfile.from_dict(d.profile)
        for b in rec.of(BudgetChecked):  # a call the budget refused left only its check
            model, p = b.data.model, b.data.price
            if b.data.kind == "llm_call" and "price" in b.data.model_fields_set and model is not None \
                    and model not in self._prices:
                self._prices[model] = None if p is None else Price(
                    p["input"] or 0.0, p["output"] or 0.0, cache_read=p.get("cache_read"),
                    cache_write=p.get("cache_write"))
        self._waits_out = _stopped_by_the_clock(rec)
        self._fork = fork
        self._live = live
        self.part = _Part()

    async def request(self, req: ModelRequest) -> ModelResponse:
        if self._live is not None and _live(self._fork, req.step_id):
            return await self._live.request(req)
        h = req.hash()
        queue = self._by_hash.get(h)
        if not (queue and self.part.has(queue)) and self._waits_out:
            await _wait_for_the_clock()
        seq, d = await self.part.serve(queue, f"LLM request {h[:12]} ({req.model}, step {req.step_id or '-'})")
        if self.order is not None:
            await self.order.turn(seq)
        if d.response is None:
            cls = LLMTransientError if d.outcome == "retry" else LLMFatalError
            raise cls(d.error or "recorded error")
        return response_of(d)

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


class _DerivedChecks:
    """The refusals of a record made before ``args_checked`` was recorded (agentcli 0.2.0 and
    earlier): derived from the argument corrections' recorded errors (``review``) and from the
    steps that failed on their arguments without a call. A check these do not refuse passed."""

    def __init__(self, rec: RunRecord) -> None:
        self._refused: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        for r in rec.of(Reviewed):
            if r.data.kind == "args_corrected" and r.data.tool and r.data.error is not None:
                self._refused[_tool_key(r.step_id, r.data.tool, r.data.before)].append(r.data.error)
        self._called = {_tool_key(c.step_id, c.data.tool, c.data.args) for c in rec.tool_calls}
        self._called |= {_tool_key(a.step_id, a.data.tool, None) for a in rec.approvals}
        self._failed: dict[str, dict[str, Any]] = {
            sid: f.error for sid, f in rec.steps.items()
            if f.error is not None and f.error.get("type") == "invalid_args"}

    def refusal(self, step_id: str, name: str, args: Any) -> ToolError | None:
        refused = self._refused.get(_tool_key(step_id, name, args))
        if refused:
            return ToolError.model_validate(refused.popleft())
        failed = self._failed.get(step_id)
        if failed is not None and _tool_key(step_id, name, None) not in self._called:
            return ToolError.model_validate(failed)
        return None


class ReplayRegistry(ToolRegistry):
    """The real registry's tools and schemas, with calls served from the recording."""

    def __init__(self, real: ToolRegistry, rec: RunRecord, *, live_tools: bool = False,
                 live_writes: bool = False, fork: ForkCut | None = None) -> None:
        super().__init__(real.ctx)
        for t in real.tools():
            self.register(t)
        self._real = real
        self._results: dict[str, deque[tuple[int, dict[str, Any]]]] = defaultdict(deque)
        for c in rec.tool_calls:
            self._results[_tool_key(c.step_id, c.data.tool, c.data.args)].append((c.seq, c.data.result))
        self.order: InputOrder | None = None
        self._live_tools = live_tools
        self._live_writes = live_writes
        self._fork = fork
        self._waits_out = _stopped_by_the_clock(rec)
        # A check that reads the workspace (an edit's search text must be in its file) is served as
        # the step got it: the run itself has changed the workspace since. Other validation reads
        # only the arguments and the config, and is done again.
        self._checks: dict[tuple[str | None, str], deque[tuple[int, ArgsChecked]]] = defaultdict(deque)
        for a in rec.of(ArgsChecked):
            self._checks[(a.step_id, a.data.tool)].append((a.seq, a.data))
        self._legacy = None if self._checks else _DerivedChecks(rec)
        self.part = _Part()

    def validate(self, name: str, args: Any, *, step_id: str | None = None) -> BaseModel | ToolError:
        if step_id is None or _live(self._fork, step_id) or (self._live_tools and self._live_writes):
            return self._real.validate(name, args, step_id=step_id)
        if self._legacy is not None:
            refused = self._legacy.refusal(step_id, name, args)
            if refused is not None:
                return refused
        tool = self.get(name)
        if tool is None or tool.check_func is None:  # nothing read from the workspace
            return self._real.validate(name, args, step_id=step_id)
        if self._legacy is None:
            _, check = self.part.take(self._checks.get((step_id, name)), f"the check of {name}'s arguments in step "
                                      f"{step_id}")
            if not check.ok:
                return ToolError.model_validate(check.error or {"type": "invalid_args", "message": "refused"})
        try:  # the schema, without the workspace checks: the record says they passed
            return tool.args_model.model_validate(args, context={"tools_config": self.ctx.config})
        except ValidationError:
            return self._real.validate(name, args, step_id=step_id)

    async def call(self, name: str, args: Any, *, timeout: float | None = None,
                   step_id: str | None = None, validated: BaseModel | None = None) -> ToolResult:
        tool = self.get(name)
        if _live(self._fork, step_id):
            return await self._real.call(name, args, timeout=timeout, step_id=step_id, validated=validated)
        if self._live_tools and tool is not None and (tool.risk == "read" or self._live_writes):
            return await self._real.call(name, args, timeout=timeout, step_id=step_id, validated=validated)
        queue = self._results.get(_tool_key(step_id, name, args))
        if not (queue and self.part.has(queue)) and self._waits_out:
            await _wait_for_the_clock()
        seq, result = await self.part.serve(queue, f"tool call {name}({canonical_json(args)[:120]}) in step {step_id}")
        if self.order is not None:
            await self.order.turn(seq)
        return ToolResult.model_validate(result)


class RecordedApprover(Approver):
    """Approval decisions as recorded (live ones, through the wrapped approver, in a fork)."""

    def __init__(self, config: Config, rec: RunRecord, *, fork: ForkCut | None = None,
                 live: Approver | None = None) -> None:
        super().__init__(config.approval)
        self._by_step: dict[str, deque[tuple[int, Any]]] = defaultdict(deque)
        for a in rec.approvals:
            self._by_step[str(a.step_id)].append((a.seq, a.data))
        self._fork = fork
        self._live = live
        self.part = _Part()

    def asks(self, req: ApprovalRequest) -> bool:
        """Only a fork's live steps ask anybody: the recorded decisions are served at once."""
        return self._live is not None and _live(self._fork, req.step_id) and self._live.asks(req)

    def decide(self, req: ApprovalRequest) -> ApprovalDecision:
        if self._live is not None and _live(self._fork, req.step_id):
            return self._live.decide(req)
        _, d = self.part.take(self._by_step.get(req.step_id), f"approval for step {req.step_id} ({req.tool})")
        return ApprovalDecision(req.step_id, req.tool, self.args_hash(req), req.plan_hash, d.decided_by,
                                d.decision, 0.0, d.message, feedback=d.feedback)


class RecordedSteering:
    """The steering messages as recorded, each served at the first step boundary of the plan it
    was taken in, of its kind (between steps, after the review, after the verify command), where
    the steps it recorded as finished are finished (``user_message`` events, ``at="boundary"``, in
    order). Nothing recorded: nothing to take (a killed part included)."""

    def __init__(self, rec: RunRecord) -> None:
        self._queue: deque[tuple[int, UserSaid]] = deque(
            (t.seq, t.data) for t in rec.user_messages if t.data.at == "boundary")
        self.part = _Part()

    def take(self, boundary: Boundary) -> str | None:
        if not self.part.has(self._queue):
            return None
        _, d = self._queue[0]
        if d.plan_hash != boundary.plan_hash or d.boundary != boundary.kind or not set(d.done) <= boundary.done:
            return None
        self._queue.popleft()
        return d.text


class RecordedHookResults:
    """The hooks' results as recorded, in order per (step, event, hook): nothing runs. A fork's
    live steps (``live``) run theirs for real. One for the whole replay (a resumed run's parts
    share it)."""

    def __init__(self, rec: RunRecord, live: Callable[[str | None], bool] | None = None) -> None:
        self._recorded: dict[tuple[str | None, str, int], deque[Hooked]] = defaultdict(deque)
        for t in rec.of(Hooked):
            self._recorded[(t.step_id, t.data.event, t.data.hook)].append(t.data)
        self._live = live

    def serve(self, index: int, event: HookEvent, step_id: str | None) -> HookResult | None:
        if self._live is not None and self._live(step_id):
            return None
        queue = self._recorded.get((step_id, event, index))
        if not queue:
            raise ReplayDivergence(f"hook {index} ({event}, step {step_id or '-'}) is not in the recording")
        return HookResult.recorded(queue.popleft())


class RecordedChanges:
    """The workspace's changes as recorded (``workspace_changes`` events, in order): a replay
    does not change the workspace, so its changes are the original run's. Past the record (a
    fork's live part) they are ``live``'s, or unknown."""

    def __init__(self, rec: RunRecord, live: WorkspaceProbe | None = None) -> None:
        self._queue: deque[tuple[int, dict[str, Any]]] = deque(
            (t.seq, t.data.event_data()) for t in rec.of(WorkspaceChanged))
        self._live = live
        self.part = _Part()

    async def start(self) -> None:
        if self._live is not None:
            await self._live.start()

    async def changes(self) -> WorkspaceChanges | None:
        if not self.part.has(self._queue):
            if self._live is not None:
                return await self._live.changes()
            if not self.part.killed:
                return None
        _, data = self.part.take(self._queue, "the workspace's changes")
        return WorkspaceChanges.from_dict(data) if data.get("known") else None


# ------------------------------------------------------------------ comparison

# "profile" is an input of a call (recorded for the replay to use), not an outcome: its effects are
# in the request, which is compared; a record from before profiles has none.
_IGNORED = {"time", "seq", "latency_ms", "duration_ms", "duration_s", "call_id", "run_id", "seconds",
            "started", "finished", "approval_wait_s", "config", "config_digest", "versions", "parent",
            "replay_of", "fork_from", "profile", "no_project_instructions", "prompts"}


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in _IGNORED}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _comparable(items: Iterable[Typed[Any]]) -> dict[str, list[Typed[Any]]]:
    """Events grouped by step (run-level ones under '-'), without WAITING_TOOL transitions, whose
    interleaving depends on how long tools took."""
    groups: dict[str, list[Typed[Any]]] = defaultdict(list)
    for t in items:
        if _compared(t):
            groups[t.step_id or "-"].append(t)
    return groups


def _compared(t: Typed[Any]) -> bool:
    """Whether a replay must write this event as the run did."""
    d = t.data
    if isinstance(d, TransitionMade) and "WAITING_TOOL" in (d.src, d.to):
        return False
    if isinstance(d, MemoryRecalled | MemoryWritten | CheckpointMade | Undone | ResumeDecided | ArgsChecked):
        # Outside stores (memory, the workspace's checkpoints): a replay changes neither; a resume's
        # decision was asked of a person, and a check of the workspace read it as it was then, while
        # a replay serves both from the record (a record from before checks were recorded has none).
        return False
    return not (isinstance(d, BudgetChecked) and d.ok)  # a passing check's numbers include wall time


def _renamed(value: Any, replay_id: str, run_id: str) -> Any:
    """``value`` with the replay's run id written as the run's (e.g. in "resume with: agent run
    --resume ID"): the replay is recorded under an id of its own."""
    if replay_id == run_id or not replay_id:
        return value
    if isinstance(value, str):
        return value.replace(replay_id, run_id)
    if isinstance(value, dict):
        return {k: _renamed(v, replay_id, run_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, replay_id, run_id) for v in value]
    return value


def _value(t: Typed[Any]) -> dict[str, Any]:
    # Typed on both sides: a key an older writer left out compares as its default (a plan's too).
    data = t.data.model_dump(by_alias=True)
    if isinstance(t.data, PlanCreated):
        with contextlib.suppress(ValueError):
            data["plan"] = Plan.model_validate(data["plan"]).model_dump(mode="json")
    return {"type": t.type, **_scrub(data)}


def _first_difference(a: Any, b: Any, path: str = "") -> tuple[str, Any, Any]:
    """The first (path, recorded, replayed) where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k, _MISSING) != b.get(k, _MISSING):
                return _first_difference(a.get(k, _MISSING), b.get(k, _MISSING), f"{path}.{k}" if path else k)
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            x = a[i] if i < len(a) else _MISSING
            y = b[i] if i < len(b) else _MISSING
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return path or "(event)", a, b


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


_MISSING: Any = _Missing()


def _shown(value: Any, limit: int = 400) -> str:
    text = "(absent)" if value is _MISSING else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


@dataclass(frozen=True)
class Divergence:
    """The first place where a replay differs from its recording: the event (type and sequence
    number in the recording), the step, the field, and the recorded and replayed values."""

    event: str
    step: str | None
    seq: int | None
    field: str
    recorded: Any
    replayed: Any
    #: Why, when it is known and is not a change of the agent's behaviour: the record was made by
    #: other prompts (:func:`agentcli.engine.prompts.changed_prompts`). One line.
    cause: str = ""

    def describe(self) -> str:
        """One screen: where, which field, recorded vs replayed; or, when the record was made by
        other prompts, one line saying which."""
        if self.cause:
            return self.cause
        where = f"step {self.step}" if self.step else "run level"
        return (f"replay diverged at event #{self.seq if self.seq is not None else '-'} ({self.event}, {where}), "
                f"field {self.field}\n  recorded: {_shown(self.recorded)}\n  replayed: {_shown(self.replayed)}")

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event, "step": self.step, "seq": self.seq, "field": self.field,
                "recorded": None if self.recorded is _MISSING else self.recorded,
                "replayed": None if self.replayed is _MISSING else self.replayed,
                **({"cause": self.cause} if self.cause else {})}


def other_prompts(start: RunStarted) -> str:
    """One line when the run was recorded with prompts other than this agentcli's (which ones,
    and the version that recorded it); "" when they are the same or the record cannot tell."""
    recorded_by = start.versions.get("agentcli", "?")
    changed = changed_prompts(start.prompts)
    if changed:
        return (f"the record was made by other prompts (agentcli {recorded_by}; this is {__version__}): "
                f"{', '.join(changed)} changed, so its model requests differ")
    if not start.prompts and recorded_by != __version__:
        return (f"the record was made by agentcli {recorded_by} (this is {__version__}), which did not record "
                "its prompts: a prompt changed since would explain this divergence")
    return ""


def first_divergence(expected: RunRecord, got: RunRecord) -> Divergence | None:
    """Compare two records step by step; None when they match."""
    exp, act = _comparable(expected.items), _comparable(got.items)
    candidates: list[Divergence] = []
    for key in sorted(set(exp) | set(act)):
        a, b = exp.get(key, []), act.get(key, [])
        for i in range(max(len(a), len(b))):
            ea = a[i] if i < len(a) else None
            eb = b[i] if i < len(b) else None
            va = _MISSING if ea is None else _value(ea)
            vb = _MISSING if eb is None else _renamed(_value(eb), got.run_id, expected.run_id)
            if va != vb:
                ref = ea or eb
                assert ref is not None
                if ea is None or eb is None or ea.type != eb.type:
                    field, rv, pv = "(event)", va, vb
                else:
                    field, rv, pv = _first_difference(va, vb)
                candidates.append(Divergence(ref.type, None if key == "-" else key, ea.seq if ea else None,
                                             field, rv, pv))
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


class _Served:
    """The run's inputs that are not calls, served from the record: its plans (the planner's
    recorded calls counted as they were), its confirmations and the resume's decisions. One per
    replay; ``part`` is the part of the record being replayed."""

    def __init__(self, rec: RunRecord, fork: ForkCut | None) -> None:
        self.rec = rec
        self.fork = fork
        self.plans = deque((p.seq, p) for p in rec.plans)
        # Each plan's confirmation by its hash: a re-plan that was not asked about (it added no step to
        # approve) left a transition too, so the answers in the order the run moved are not the answers
        # in the order it asked.
        self.confirms = {h: deque(answers) for h, answers in rec.confirmations_of_plans().items()}
        # The user's feedback at a plan's confirmation, by the plan it was about (a plan is locked by its hash).
        self.feedback: dict[str, deque[tuple[int, str]]] = defaultdict(deque)
        for t in rec.user_messages:
            if t.data.at == "plan":
                self.feedback[t.data.plan_hash].append((t.seq, t.data.text))
        self.steering = RecordedSteering(rec)
        self.decisions = {(t.step_id, t.seq): t.data for t in rec.of(ResumeDecided)}
        self.part = _Part()
        #: Each part's client (the planner's recorded calls are counted by the current one).
        self.clients: list[LLMClient] = []

    async def planner(self, task: str, ctx: ReplanContext | None) -> Plan:
        rec = self.rec
        if self.fork is not None and ctx is not None:
            raise ReplayDivergence("a fork that needs a new plan must be run live: use agent run")
        if not self.plans and rec.unplanned_calls and rec.finish is not None and rec.finish.reason == "error":
            # The run's last planning failed: its calls count as they did, and it fails the same way.
            for call in rec.unplanned_calls:
                self.clients[-1].account_recorded(call)
            raise AgentError(rec.finish.answer)
        _, recorded = await self.part.serve(self.plans, "a new plan")  # or stopped there, as the run was
        for call in recorded.planner_calls:  # the planner's recorded calls count as they did in the original run
            self.clients[-1].account_recorded(call)
        if ctx is None:
            return recorded.plan
        # A re-plan is recorded merged with the steps it kept; the planner gave the new steps only
        # (already numbered after the kept ones, so the runner's merge gives the recorded plan again).
        return recorded.plan.model_copy(update={"steps": [s for s in recorded.plan.steps if s.id not in ctx.kept]})

    def confirm(self, plan: Plan, replan: bool) -> bool | Feedback:
        words = self.feedback.get(plan.hash)
        if words and self.part.has(words):
            return Feedback(words.popleft()[1])
        answers = self.confirms.get(plan.hash)
        if not (answers is not None and self.part.has(answers)) and not self.part.killed:
            return True
        return self.part.take(answers, "the plan's confirmation")[1]

    def decide_uncertain(self, step: UncertainStep) -> tuple[UncertainDecision, str]:
        """As the person (or the flag) decided when the run was resumed."""
        part = self.part
        for (sid, seq), d in self.decisions.items():
            if sid == step.step_id and part.lo <= seq < part.hi:
                return d.decision, d.decided_by
        if part.killed:
            raise RecordingEnds(f"the decision on step {step.step_id}: the run was killed before it was recorded")
        raise ReplayDivergence(f"the resume's decision on step {step.step_id} is not in the recording")


def _fork_cut(rec: RunRecord, from_step: str | None) -> ForkCut | None:
    if from_step is None:
        return None
    order = step_order([p.plan for p in rec.plans])
    if from_step not in order:
        raise AgentError(f"run {rec.run_id} has no step '{from_step}' (steps: {', '.join(order)})")
    return ForkCut(rec.run_id, from_step, order)


def _bound(part: _Part, rec: RunRecord, segments: list[Typed[RunStarted]], n: int, live_writes: bool) -> None:
    """Set ``part`` to the ``n``-th part of a (resumed) run: its events, and how it ended."""
    part.lo, part.hi = segments[n].seq, (segments[n + 1].seq if n + 1 < len(segments) else 1 << 62)
    finished = [t.data for t in rec.of(RunFinished) if part.lo <= t.seq < part.hi]
    part.killed = not finished
    part.interrupted = bool(finished) and finished[-1].reason == "interrupted"
    if part.killed and live_writes:
        raise AgentError(f"run {rec.run_id} was killed midway: its replay cannot run write tools live "
                         "(they would go on past the point where it was killed)")


def _resumed(rec: RunRecord, seg: Typed[RunStarted], path: Path) -> ResumeState:
    """The state a resumption starts from: the one ``agent run --resume`` computes from the record
    before it, numbered on from what the replay wrote (seq is not compared)."""
    resume = resume_state(rec.before(seg.seq))
    replayed = RunRecord.read(path) if path.is_file() else None
    if replayed is not None:
        resume = replace(resume, last_seq=max(resume.last_seq, replayed.last_seq))
    return resume


@dataclass
class _Replay:
    """One replay (or fork) of a record: the recorded ports, and the parts run one by one."""

    rec: RunRecord
    base: Settings
    config: Config
    out_dir: Path
    run_id: str
    fork: ForkCut | None
    live_run: bool
    live_writes: bool
    backend: ReplayBackend
    tools: ReplayRegistry
    approver: RecordedApprover
    served: _Served
    changes: RecordedChanges | None
    hook_results: RecordedHookResults
    order: InputOrder | None
    sleep: Callable[[float], Awaitable[Any]]

    @property
    def parts(self) -> list[Typed[RunStarted]]:
        # A resumed run is replayed as it ran: its first part, then each resumption from the state
        # the record had reached. A fork serves its parent's whole record up to the fork step.
        started = self.rec.of(RunStarted)
        return started if self.fork is None else started[:1]

    async def run(self, task: str) -> tuple[RunOutcome, Path]:
        path = self.out_dir / self.run_id / "events.jsonl"
        outcome: RunOutcome | None = None
        segments = self.parts
        for n, seg in enumerate(segments):
            if self.fork is None:
                _bound(self.served.part, self.rec, segments, n, self.live_writes)
            got, path = await self._part(task, n, seg, path)
            outcome = got or outcome  # a killed part has none: the run's outcome is the last one's
        assert outcome is not None
        return outcome, path

    async def _part(self, task: str, n: int, seg: Typed[RunStarted], path: Path
                    ) -> tuple[RunOutcome | None, Path]:
        """Replay one part of the record (the whole run unless it was resumed)."""
        rec, part = self.rec, self.served.part
        self.backend.part = self.tools.part = self.approver.part = self.served.steering.part = part
        if self.changes is not None:
            self.changes.part = part
        resume = _resumed(rec, seg, path) if n > 0 else None
        seg_config = rec.recorded_config(seg.data.config) if n > 0 and seg.data.config is not None else self.config
        extra: dict[str, Any] = ({"replay_of": rec.run_id} if self.fork is None
                                 else {"parent": rec.run_id, "fork_from": self.fork.from_step})
        if n > 0:
            extra["resumed"] = True
        session = RunSession(self.base, self.run_id, config=seg_config, backend=self.backend, registry=self.tools,
                             approver=self.approver, runs_dir=self.out_dir, memory=self.live_run,
                             telemetry=self.live_run, extra_start=extra, resume=resume,
                             hook_results=self.hook_results, checkpoints=self.live_run, workspace=self.changes,
                             sleep=self.sleep)
        self.served.clients.append(session.client)
        if self.order is not None:
            self.order.written = lambda: session.events.seq
        deps = session.deps(self.served.planner, self.served.confirm, output_schema=seg.data.output_schema,
                            instructions=ProjectInstructions.from_record(seg.data.instructions),
                            verify_command=seg.data.verify_command or "",
                            decide_uncertain=self.served.decide_uncertain, steering=self.served.steering)
        offset = path.stat().st_size if path.is_file() else 0
        runner = asyncio.ensure_future(run(task, deps))
        part.stop = runner.cancel
        outcome: RunOutcome | None = None
        try:
            outcome = await runner
        except RecordingEnds:
            if not part.killed:
                raise
        finally:
            part.stop = None
            session.close()
        if part.killed:
            recorded = sum(1 for t in rec if part.lo <= t.seq < part.hi and _compared(t))
            _cut_at_the_kill(session.events_path, offset, recorded)
        return outcome, session.events_path


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
    settings: Settings | None = None,
) -> ReplayResult:
    """Re-execute a recorded run. Without ``from_step`` the replay's events go to a temporary
    folder (or ``out_dir``) and are compared with the recording; with it, a fork is run live from
    that step and recorded as a new run in ``out_dir``. Either is built by the composition root
    (:class:`~agentcli.engine.session.RunSession`); a fork given ``settings`` (the CLI's) is a
    whole run: call log, memory, telemetry, and budgets from ``settings``."""
    rec = RunRecord.read(events_path)
    start = rec.start
    if start is None:
        raise AgentError(f"run {rec.run_id} has no run_started event")
    if not rec.plans:
        raise AgentError(f"run {rec.run_id} recorded no plan: nothing to replay")
    fork = _fork_cut(rec, from_step)
    with contextlib.ExitStack() as stack:
        if out_dir is None:
            out_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="agentcli-replay-")))
        replay = _prepare(rec, registry, fork, out_dir, new_run_id or f"{rec.run_id}-replay", settings,
                          live_tools=live_tools, live_writes=live_writes, live_backend=live_backend,
                          live_approver=live_approver)
        outcome, path = await replay.run(start.task)
        got = RunRecord.read(path)
    divergence = None if fork is not None else first_divergence(rec, got)
    if divergence is not None and (cause := other_prompts(start)):
        divergence = replace(divergence, cause=cause)
    return ReplayResult(outcome, divergence, path,
                        [*rec.warnings, *_instructions_changed(start, registry, replay.config)])


def _prepare(rec: RunRecord, registry: ToolRegistry, fork: ForkCut | None, out_dir: Path, run_id: str,
             settings: Settings | None, *, live_tools: bool, live_writes: bool,
             live_backend: ModelBackend | None, live_approver: Approver | None) -> _Replay:
    """The recorded implementation of every port of the run (the live ones in a fork's live part)."""
    config: Config = rec.recorded_config()
    if fork is not None and settings is not None:
        # A fork is a new run: its budgets and its telemetry come from today's config and flags.
        config = config.model_copy(update={"budget": settings.config.budget, "telemetry": settings.config.telemetry})
    base = settings if settings is not None else Settings(config=config, workspace=registry.ctx.workspace)
    backend = ReplayBackend(rec, fork=fork, live=live_backend)
    tools = ReplayRegistry(registry, rec, live_tools=live_tools, live_writes=live_writes, fork=fork)
    order = None
    if fork is None and not live_tools:  # the planner's calls are not asked again: plans are served
        order = InputOrder([c.seq for c in rec.calls if c.data.role != "planner"] + [c.seq for c in rec.tool_calls])
        backend.order = tools.order = order
    # A replay's retries do not wait (the attempts are recorded), unless the run was stopped by its
    # wall-time budget: then the replay's own clock stops it the same way.
    sleep = asyncio.sleep if fork is not None or _stopped_by_the_clock(rec) else _no_wait
    # The workspace's changes as the run saw them (a replay changes nothing); a fork's live part asks
    # its checkpoints.
    changes = RecordedChanges(rec) if rec.first(WorkspaceChanged) is not None else None
    return _Replay(rec, base, config, out_dir, run_id, fork, live_run=fork is not None and settings is not None,
                   live_writes=live_writes, backend=backend, tools=tools,
                   approver=RecordedApprover(config, rec, fork=fork, live=live_approver),
                   served=_Served(rec, fork), changes=changes,
                   hook_results=RecordedHookResults(rec, live=fork.live if fork is not None else None),
                   order=order, sleep=sleep)


def _cut_at_the_kill(path: Path, offset: int, keep: int) -> None:
    """Drop what the replay of a killed part wrote past the point where the run was killed: from
    ``offset`` on, the first ``keep`` compared events (and what lies between them) stay."""
    data = path.read_bytes()
    head, lines = data[:offset], data[offset:].splitlines(keepends=True)
    try:  # the replay wrote these lines itself: one well-formed event each
        items = RunRecord(Recording(path.parent.name, [Event.model_validate_json(x) for x in lines])).items
    except ValueError:
        return  # leave it: the comparison will say where it differs
    if len(items) != len(lines):
        return
    kept = 0
    for i, t in enumerate(items):
        if _compared(t):
            if kept == keep:
                path.write_bytes(head + b"".join(lines[:i]))
                return
            kept += 1


def _instructions_changed(start: RunStarted, registry: ToolRegistry, config: Config) -> list[str]:
    """A warning when the workspace's project instructions differ from the ones the run recorded
    (the replay uses the recorded ones, so it stays identical; a new run would not)."""
    if start.no_project_instructions:
        return []
    recorded = ProjectInstructions.from_record(start.instructions)
    # Read down to where the run read them (a run started in a subdirectory of the repository
    # read that directory's AGENTS.md too), else the workspace.
    nearest = recorded.files[-1].parent if recorded is not None and recorded.files else None
    where = nearest if nearest is not None and nearest.is_relative_to(registry.ctx.workspace) else None
    now = load_project_instructions(where or registry.ctx.workspace, config.instructions)
    if (recorded.hash if recorded else None) == (now.hash if now else None):
        return []
    was = f"hash {recorded.hash}" if recorded else "none"
    is_now = f"hash {now.hash}" if now else "none"
    return [f"the project instructions (AGENTS.md) changed since the run ({was}, now {is_now}): "
            "the replay uses the recorded ones"]
