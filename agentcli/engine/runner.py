"""One run, start to finish: the loop that owns the run's state and drives the state machine.

::

    IDLE -> PLANNING -> (confirm) -> EXECUTING <-> WAITING_TOOL -> REVIEWING
        REVIEWING -> COMPLETE                      the reviewer says complete (nothing to verify)
        REVIEWING -> VERIFYING -> COMPLETE         files changed: the verify command passed
        VERIFYING -> REPLANNING                    it failed: a new plan with its output
        VERIFYING -> FAILED                        it failed for a dependency its environment lacks
                                                   (missing_dependency: no plan can install it)
        REVIEWING -> VERIFYING -> COMPLETE         no reviewer call: the facts decide (review.mode auto:
                                                   tool steps all ok at first try, a change-only task,
                                                   the verify command passed); declined or unavailable,
        VERIFYING -> REVIEWING                     the reviewer judges after all
        REVIEWING -> EXECUTING                     continue: run what can still run
        REVIEWING -> REPLANNING -> EXECUTING       a new plan; completed steps kept
        EXECUTING -> REPLANNING                    the user's words: feedback at a step's approval, or a
                                                   steer taken at a step boundary (completed steps kept)
        REVIEWING | VERIFYING -> REPLANNING        a steer sent while the reviewer or the verify command ran
        ... -> FAILED                              budget, denial, abort, planner failure, a "complete"
                                                   the record contradicts (no step succeeded, an
                                                   answer with nothing from the steps in it)
    COMPLETE | FAILED -> IDLE

The loop (:meth:`_Run._drive`) owns one :class:`~agentcli.engine.state.RunState`: each phase
(planning, executing, reviewing, verifying, re-planning) does its work and returns a
:class:`~agentcli.engine.state.Next`; only the loop moves the machine.

Everything is recorded in the run's event log: the start (task, config digest,
versions), the plan, each transition, every LLM call (full request and
response, for replay), tool call, approval and budget check, and the finish
(status, reason, totals). :func:`run` returns a :class:`RunOutcome`; it never
prints and never raises for an expected failure: budgets, denials, planning
failures and Ctrl-C all end as FAILED with a reason and an exit code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import platform
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, Protocol

from pydantic import BaseModel

from agentcli import __version__
from agentcli.config import Config
from agentcli.engine.approval import Approver
from agentcli.engine.budget import Budget
from agentcli.engine.executor import SHELL_TOOL, VERIFY_STEP, Aborted, Executor, StepRun, VerifyResult
from agentcli.engine.fsm import State, Transition
from agentcli.engine.hooks import Hooks
from agentcli.engine.investigate import Investigation
from agentcli.engine.prompts import prompt_hashes
from agentcli.engine.reviewer import (
    Review,
    answer_is_grounded,
    decided_by_facts,
    facts_answer,
    fallback_answer,
    grounded_answer,
    replan_steps,
    review,
)
from agentcli.engine.state import Next, RunState
from agentcli.engine.steering import Boundary, BoundaryKind, Feedback, PlanRevision, Steering, UserChange
from agentcli.engine.verify import MissingDependency, missing_dependency
from agentcli.engine.workspace import WorkspaceChanges
from agentcli.errors import AgentError, ApprovalDenied, BudgetExceeded, DependencyMissing, ExitCode
from agentcli.models.client import LLMClient
from agentcli.planning.diff import plan_diff
from agentcli.planning.instructions import ProjectInstructions, within_context
from agentcli.planning.plan import Plan
from agentcli.planning.planner import Replan
from agentcli.planning.strategy import ReviewRule, review_rule
from agentcli.record.checkpoints import Checkpointer
from agentcli.record.events import (
    EventLog,
    Hooked,
    MemoryWritten,
    MissingDependencyInfo,
    PlanCreated,
    ResumeDecided,
    Reviewed,
    RunFinished,
    RunStarted,
    ToolCalled,
    ToolIntent,
    TransitionMade,
    UserSaid,
    WorkspaceChanged,
)
from agentcli.record.reader import RunRecord
from agentcli.redact import redact_text
from agentcli.tools import ToolRegistry
from agentcli.tools.text import brief_json, head_tail


@dataclass(frozen=True)
class ReplanContext:
    """What the planner gets when asked for a new plan: the plan so far, its steps' results,
    why a new plan is needed, what is left of the budget (``left``: steps, replans, cost_usd,
    seconds) and the workspace's changes so far (``None``: unknown). ``user``: the plan is revised
    for the user's words (feedback or a steer), which lead the context."""

    plan: Plan
    runs: dict[str, StepRun]
    reason: str
    left: dict[str, Any] = field(default_factory=dict)
    changes: str | None = None
    user: UserChange | None = None
    #: The commands the review gave to check the work (``()``: none): when usable they are the new
    #: steps, and no planner model is asked (see :class:`~agentcli.planning.planner.Replan`).
    commands: tuple[str, ...] = ()

    @property
    def fresh(self) -> bool:
        """The user's words came before any step ran: the plan is written again from s1."""
        return self.user is not None and all(r.status == "pending" for r in self.runs.values())
    #: What an investigation of the failure established (``[investigate] before_replan``), as text.
    findings: str | None = None

    @property
    def kept(self) -> frozenset[str]:
        """The completed steps, kept in the new plan with their outputs."""
        return frozenset(sid for sid, r in self.runs.items() if r.status == "ok")

    @property
    def first_step(self) -> int:
        """The number of the first new step: after every step of the plan so far (s1 when
        :attr:`fresh`)."""
        if self.fresh:
            return 1
        return 1 + max((int(s.id[1:]) for s in self.plan.steps), default=0)

    def replan(self) -> Replan:
        """This context as the planner takes it (see :func:`agentcli.planning.planner.make_plan`)."""
        return Replan(context=self.text, first_step=self.first_step, kept=self.kept, commands=self.commands)

    def text(self, first_step: int | None = None) -> str:
        """The re-planner's context: the reason, what is left, how to number the new steps,
        the steps so far (failed and newest ones kept first when too long), the changes."""
        first = self.first_step if first_step is None else first_step
        left = self.left
        parts = [self.user.request() if self.user is not None else
                 f"A previous plan for this task did not succeed. Reason: {self.reason}"]
        if left:
            cost = left.get("cost_usd")
            seconds = left.get("seconds")
            parts.append(
                f"Left of the budget: {left.get('steps')} steps, {left.get('replans')} re-plans"
                + (", " if self.user is not None else " after this one, ")  # the user's words cost no re-plan
                + (f"${cost:.4f} of model spend, " if isinstance(cost, int | float) else "")
                + (f"{int(seconds)} s." if isinstance(seconds, int | float) else ""))
        kept = sorted(self.kept, key=lambda x: int(x[1:]))
        if self.fresh:
            parts.append("None of the steps below has run: write the whole plan again, numbered s1, s2, ..., "
                         "keeping the steps the user's words do not change.")
        elif first > 1:
            parts.append(
                f"Number your new steps from s{first} on (s{first}, s{first + 1}, ...): s1-s{first - 1} are the "
                "previous plan's. The completed steps below are kept with their outputs and are not run "
                "again; a new step may use a kept step's output by its id, e.g. "
                + (f"{{{{{kept[-1]}.output}}}} with \"{kept[-1]}\" in depends_on." if kept else
                   "{{sN.output}} with sN in depends_on."))
        else:
            parts.append("Number your new steps s1, s2, ... as usual; they run after the completed steps "
                         "below, which are kept and not run again: do not repeat them.")
        parts.append(replan_steps(self.runs))
        if self.changes is not None:
            parts.append(f"Workspace changes so far:\n{self.changes}")
        if self.findings is not None:
            parts.append(f"An investigation of this failure found (read-only, before this re-plan):\n{self.findings}")
        return "\n".join(parts)


@dataclass(frozen=True)
class UncertainStep:
    """A side-effecting step whose tool was started (its ``tool_intent`` is recorded) but whose
    result never was: the run stopped (kill -9, a crash, Ctrl-C) while it ran, so its side
    effect may or may not have happened."""

    step_id: str
    tool: str
    args: dict[str, Any]
    attempt: int

    def describe(self) -> str:
        return f"{self.step_id} {self.tool} {brief_json(self.args, 300)}"


#: What to do with an uncertain step: run it again, take it as done (the user saw it happen),
#: or stop the resume. ``decided_by`` says who chose: "user", "flag" or "policy".
UncertainDecision = Literal["rerun", "done", "stop"]
DecideUncertain = Callable[[UncertainStep], tuple[UncertainDecision, str]]


def stop_on_uncertain(step: UncertainStep) -> tuple[UncertainDecision, str]:
    """The default: nobody said a possibly repeated side effect is fine, so the resume stops."""
    return "stop", "policy"


@dataclass
class ResumeState:
    """Where an interrupted, failed or budget-stopped run left off (see :func:`resume_state`)."""

    #: None: the run stopped while planning; the resume plans again from the task.
    plan: Plan | None
    done: dict[str, StepRun]
    cost_usd: float
    tokens: int
    replans: int
    last_seq: int
    #: Steps that may have had their side effect already (see :class:`UncertainStep`).
    uncertain: dict[str, UncertainStep] = field(default_factory=dict)
    #: The user's words recorded after the last plan: the run stopped before it was revised for
    #: them (a kill, a failed re-plan). The resumed run revises its plan for them first.
    unapplied: list[UserChange] = field(default_factory=list)


def resume_state(rec: RunRecord) -> ResumeState:
    """Completed steps (with their outputs) and what the run had spent, from its record.

    A step counts as done when it finished ok, or when its tool returned ok but the run stopped
    before the step's end was recorded (its side effect is known to have happened once). A
    side-effecting step whose intent is recorded without a result is *uncertain*: the caller
    decides (:data:`DecideUncertain`) whether it runs again."""
    plan = rec.last_plan
    if plan is None:  # stopped while planning: nothing was done, the resume plans again
        if not rec.task:
            raise AgentError(f"run {rec.run_id} has no plan and no task: start it again with agent run")
        return ResumeState(plan=None, done={}, cost_usd=rec.cost_usd, tokens=rec.input_tokens + rec.output_tokens,
                           replans=rec.replans, last_seq=rec.last_seq)
    done: dict[str, StepRun] = {}
    for sid, st in rec.steps.items():
        step = plan.step(sid)
        if step is not None and st.status == "ok":
            done[sid] = StepRun(step, status="ok", attempts=st.attempts, output=st.output)
    # The last word on each step's tool: an intent (started, no result yet) or a result. A step
    # stopped by Ctrl-C has its end recorded but no result either: its command was killed midway.
    last_tool: dict[str, Any] = {}
    for t in rec:
        d = t.data
        if t.step_id and (isinstance(d, ToolIntent | ToolCalled)
                          or (isinstance(d, ResumeDecided) and d.decision == "done")):
            last_tool[t.step_id] = d
    uncertain: dict[str, UncertainStep] = {}
    for sid, d in last_tool.items():
        step = plan.step(sid)
        if step is None or sid in done:
            continue
        if isinstance(d, ToolIntent):
            uncertain[sid] = UncertainStep(sid, d.tool, d.args if isinstance(d.args, dict) else {}, d.attempt)
        elif isinstance(d, ResumeDecided):  # taken as done by the user on an earlier resume
            done[sid] = StepRun(step, status="ok", attempts=d.attempt, output=None)
        elif isinstance(d, ToolCalled) and d.result.get("ok") is True:
            done[sid] = StepRun(step, status="ok", attempts=d.attempt, output=d.result.get("output"))
    last_plan_seq = rec.plans[-1].seq
    unapplied = []
    for t in rec.user_messages:
        if t.seq > last_plan_seq:
            step = plan.step(t.step_id) if t.step_id else None
            unapplied.append(UserChange(t.data.kind, t.data.at, t.data.text, t.step_id,
                                        step.tool if step is not None else SHELL_TOOL if t.step_id else None))
    return ResumeState(plan=plan, done=done, cost_usd=rec.cost_usd, tokens=rec.input_tokens + rec.output_tokens,
                       replans=rec.replans, last_seq=rec.last_seq, uncertain=uncertain, unapplied=unapplied)


class WorkspaceProbe(Protocol):
    """The workspace's changes since the run started (see :mod:`agentcli.engine.workspace`)."""

    async def start(self) -> None: ...

    async def changes(self) -> WorkspaceChanges | None: ...


class RunStopped(AgentError):
    """The reviewer ended the run (``stop``), e.g. after the user declined a step."""


class VerifyFailed(AgentError):
    """The verify command failed and no re-plan is left."""


#: Makes a plan for a task (``None``) or a new plan after a failure (a ReplanContext).
PlanFn = Callable[[str, ReplanContext | None], Awaitable[Plan]]
#: Shows a plan and asks to go ahead; the flag says whether it is a re-plan. The answer: yes, no,
#: or the user's words (:class:`~agentcli.engine.steering.Feedback`): the plan is revised with them
#: and confirmed again.
ConfirmFn = Callable[[Plan, bool], "bool | Feedback"]


class RunOutcome(BaseModel):
    """The result of a run, as `agent run --json` prints it."""

    schema_version: int = 1
    run_id: str
    task: str
    status: Literal["COMPLETE", "FAILED"]
    reason: str
    answer: str
    exit_code: int
    plan_id: str | None
    plan_hash: str | None
    steps: list[dict[str, Any]]
    totals: dict[str, Any]
    budget: dict[str, Any]
    duration_s: float
    #: The files the run changed (empty: none), from the workspace's git state when it has one,
    #: else the paths its write steps named.
    changed_files: list[str] = []
    #: The verify command's outcome (command, status, exit_code, output tail), if it ran.
    verify: dict[str, Any] | None = None
    #: With ``--output-schema``: the answer as JSON, valid against the schema (``answer`` is its text).
    data: Any = None
    #: How to undo what the run changed in the workspace (``agent undo RUN_ID``); None: nothing to undo.
    undo: str | None = None


@dataclass
class RunDeps:
    """Everything a run needs, built by the caller from config."""

    config: Config
    registry: ToolRegistry
    client: LLMClient
    approver: Approver
    events: EventLog
    planner: PlanFn
    confirm: ConfirmFn
    run_id: str
    on_step: Callable[[StepRun], None] | None = None
    on_transition: Callable[[Transition], None] | None = None
    on_plan: Callable[[Plan], None] | None = None
    #: The run's budget, the guard of ``client`` (both built by :class:`~agentcli.engine.session.RunSession`).
    budget: Budget | None = None
    extra_start: dict[str, Any] = field(default_factory=dict)
    resume: ResumeState | None = None
    #: Episodic memory: ``record_episode(**fields)`` is called once at the end of every run.
    memory: Any = None
    #: On resume, what to do with each step that may already have had its side effect (a port:
    #: the user, a flag or the policy; a replay's record).
    decide_uncertain: DecideUncertain = stop_on_uncertain
    #: The workspace's changes (a port: the run's checkpoints; a replay's record); None: unknown,
    #: and only the write steps' paths are reported.
    workspace: WorkspaceProbe | None = None
    #: Run before a run that changed files ends COMPLETE (``[verify] command``); empty: no check.
    verify_command: str = ""
    #: Workspace checkpoints around the steps that may change it (None: none taken).
    checkpoints: Checkpointer | None = None
    #: A JSON Schema the final answer must validate against (``agent run --output-schema``).
    output_schema: dict[str, Any] | None = None
    #: The project's instructions (AGENTS.md): in the executor's prompts, recorded in ``run_started``.
    instructions: ProjectInstructions | None = None
    #: The run's ``[[hooks]]``, recorded as ``hook`` events (their results are a port of their own).
    hooks: Hooks | None = None
    #: Messages that steer the running plan, taken at step boundaries (a port: a
    #: :class:`~agentcli.engine.steering.SteeringQueue` a front end feeds; a replay's record). None: none.
    steering: Steering | None = None
    #: Told of each plan revised for the user's words (feedback, a steer), with its diff, before
    #: it is confirmed or run.
    on_revision: Callable[[PlanRevision], None] | None = None
    #: The clock a retry waits on (a port: a replay's recorded attempts need no wait).
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep


#: Version of :func:`episode_plan`'s JSON.
EPISODE_PLAN_VERSION = 1


def episode_plan(plan: Plan | None) -> str | None:
    """The plan as episodic memory keeps it, for later tasks to be shown how this one was done:
    ``{"schema_version": 1, "steps": [{"id", "title", "tool", "args" | "prompt", "depends_on"}]}``.
    Only what the planner writes: no estimates, approvals or hash."""
    if plan is None or not plan.steps:
        return None
    steps = []
    for s in plan.steps:
        row: dict[str, Any] = {"id": s.id, "title": s.title, "depends_on": list(s.depends_on)}
        if s.kind == "tool":
            row.update(tool=s.tool, args=s.args)
        else:
            row["prompt"] = s.prompt or ""
            if s.kind == "investigate":  # only then: older readers take a row without it as an llm step
                row["kind"] = s.kind
        steps.append(row)
    return json.dumps({"schema_version": EPISODE_PLAN_VERSION, "steps": steps}, ensure_ascii=False)


def plan_summary(plan: Plan | None, limit: int = 600) -> str:
    """A one-line sketch of a plan (``s1 list_files(pattern=**/*.py); s2 llm``), for memory."""
    if plan is None:
        return ""
    parts = []
    for s in plan.steps:
        if s.kind == "tool":
            args = ", ".join(f"{k}={v}" for k, v in s.args.items())
            parts.append(f"{s.id} {s.tool}({args[:120]})")
        else:
            parts.append(f"{s.id} llm: {(s.prompt or '')[:80]}")
    return "; ".join(parts)[:limit]


def _executor_instructions(deps: RunDeps) -> str:
    """The project instructions for llm steps, within the executor model's context window."""
    if deps.instructions is None:
        return ""
    profile = deps.client.profile(deps.config.model_for("executor"))
    bounded = within_context(deps.instructions, profile.context_tokens)
    return bounded.text if bounded is not None else ""


def config_digest(config: Config) -> str:
    blob = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def merge_replan(old: Plan, runs: dict[str, StepRun], new: Plan, start: int | None = None) -> Plan:
    """Completed steps of ``old`` kept as they are, followed by ``new``'s steps renumbered after
    them (dependencies and references rewritten to the new ids; a hosted planner numbers them
    so already, and may reference the kept steps). ``start``: the number the new steps follow
    (default: the last step of ``old``; 0 for a plan written again before any step ran)."""
    kept = [r.step for r in runs.values() if r.status == "ok"]
    if start is None:
        start = max((int(s.id[1:]) for s in old.steps), default=0)
    mapping = {s.id: f"s{start + i}" for i, s in enumerate(new.steps, start=1)}

    def rename(value: Any) -> Any:
        if isinstance(value, str):
            for src in sorted(mapping, key=len, reverse=True):
                value = value.replace("{{" + src + ".", "{{\x00" + mapping[src] + ".")
            return value.replace("\x00", "")
        if isinstance(value, dict):
            return {k: rename(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rename(v) for v in value]
        return value

    steps = list(kept)
    for s in new.steps:
        steps.append(s.model_copy(update={
            "id": mapping[s.id],
            "depends_on": [mapping.get(d, d) for d in s.depends_on],
            "args": rename(s.args),
            "prompt": rename(s.prompt) if s.prompt is not None else None,
        }))
    merged = new.model_copy(update={"steps": steps, "id": new.id})
    return merged.rehash()


#: At most this much of a failure's reason goes into the question of the investigation before a re-plan.
REPLAN_QUESTION_CHARS = 6000


class RunNotDone(AgentError):
    """The reviewer judged the run complete, but the record says otherwise: no step succeeded
    and its answer quotes no step's output."""


class _Run:
    """One run: the loop that owns its :class:`~agentcli.engine.state.RunState`. Each phase does
    its work and returns a :class:`~agentcli.engine.state.Next`; only :meth:`_drive` (and the
    ends in :meth:`go`) move the state machine."""

    def __init__(self, task: str, deps: RunDeps) -> None:
        self.task = redact_text(task)  # stored in events, memory and prompts: never a secret
        self.deps = deps
        self.events = deps.events
        if deps.budget is None:
            raise TypeError("RunDeps.budget is missing: build runs with agentcli.engine.session.RunSession")
        self.budget = deps.budget
        if deps.resume is not None:
            r = deps.resume
            self.budget.resume(cost_usd=r.cost_usd, tokens=r.tokens, steps=len(r.done), replans=r.replans)
        self.state = RunState()
        self.fsm = self.state.machine
        self.fsm.listeners.append(self._on_transition)
        self.executor = Executor(
            config=deps.config, registry=deps.registry, client=deps.client, approver=deps.approver,
            budget=self.budget, events=self.events, on_wait=self._on_wait, task=task, on_step=deps.on_step,
            runs=self.state.runs, checkpoints=deps.checkpoints,
            instructions=_executor_instructions(deps),
            hooks=deps.hooks, sleep=deps.sleep,
            hold=self._steered if deps.steering is not None or (deps.resume and deps.resume.unapplied) else None,
        )
        self.started = time.monotonic()
        self.probe: WorkspaceProbe | None = deps.workspace
        self._rule: ReviewRule | None = None
        self._given: Plan | None = None
        #: A steer taken at a step boundary, applied when the running steps have finished (on
        #: resume: the words the run stopped before applying, applied at the first boundary).
        unapplied = deps.resume.unapplied if deps.resume is not None else []
        self._steer: UserChange | None = UserChange.joined(unapplied) if unapplied else None
        #: The user's words the next re-plan is for.
        self._user: UserChange | None = None
        #: The check commands of the review that asked for the next re-plan (see Review.checks).
        self._checks: tuple[str, ...] = ()

    def _on_transition(self, t: Transition) -> None:
        # _value_: the member's value as ``.value`` gives it, without the enum property's lookup (two
        # transitions per tool step).
        self.events.emit(TransitionMade(src=t.src._value_, to=t.dst._value_, reason=t.reason))
        if self.deps.on_transition is not None:
            self.deps.on_transition(t)

    def _on_wait(self, waiting: bool, reason: str) -> None:
        """EXECUTING <-> WAITING_TOOL while at least one tool runs or waits for approval (the
        verify command's call leaves VERIFYING as it is)."""
        if waiting and self.fsm.state == State.EXECUTING:
            self.fsm.to(State.WAITING_TOOL, reason)
        elif not waiting and self.fsm.state == State.WAITING_TOOL:
            self.fsm.to(State.EXECUTING, reason)

    def _fail(self, reason: str) -> None:
        if self.fsm.state == State.IDLE:
            self.fsm.to(State.PLANNING, reason)
        if self.fsm.state not in (State.FAILED, State.COMPLETE):
            self.fsm.to(State.FAILED, reason)

    # ------------------------------------------------------------------ the loop

    async def _drive(self, given: Plan | None) -> None:
        """Move to each state a phase decides and run that state's phase, until COMPLETE."""
        self._given = given
        phases = {State.PLANNING: self._planning, State.EXECUTING: self._executing,
                  State.REVIEWING: self._reviewing, State.VERIFYING: self._verifying,
                  State.REPLANNING: self._replanning}
        step = Next(State.PLANNING, "resuming run" if self.deps.resume else "task received")
        while True:
            self.fsm.to(step.state, step.reason)
            if step.state == State.COMPLETE:
                return
            step = await phases[step.state](step)

    # ------------------------------------------------------------------ the phases

    def _set_plan(self, plan: Plan, *, replan: bool, by_user: bool = False) -> None:
        self.state.plan = plan
        self.events.emit(PlanCreated(replan=replan, plan=plan.model_dump(mode="json"),
                                     **({"by_user": True} if by_user else {}),
                                     **({"source": plan.source} if plan.source != "planner" else {})))
        self.events.sync(blocking=True)
        if self.deps.on_plan is not None:
            self.deps.on_plan(plan)

    async def _planning(self, _: Next) -> Next:
        resume = self.deps.resume
        if resume is not None and resume.plan is not None:
            plan = resume.plan
            self.state.plan = plan  # already recorded; completed steps are adopted, not re-run
            self._settle_uncertain(resume)
        else:
            plan = self._given if self._given is not None else await self.deps.planner(self.task, None)
            self._set_plan(plan, replan=False)
        done = dict(resume.done) if resume else {}
        while not isinstance(answer := self.deps.confirm(plan, False), bool):
            # The user's words instead of yes/no: the plan is revised with them and asked about again.
            runs = {s.id: done.get(s.id) or StepRun(s) for s in plan.steps}
            plan = await self._revise(UserChange("feedback", "plan", answer.text), plan, runs)
        if not answer:
            raise ApprovalDenied("the plan was not confirmed; re-run with --yes to accept it")
        self.state.adopt(plan, {sid: r for sid, r in done.items() if plan.step(sid) is not None})
        return Next(State.EXECUTING, f"plan {plan.id} confirmed")

    # ------------------------------------------------------------------ the user's words

    def _said(self, change: UserChange, plan: Plan, done: list[str] | None = None,
              boundary: BoundaryKind = "step") -> None:
        """Record the user's words (before the re-plan they cause)."""
        self.events.emit(UserSaid(kind=change.kind, text=change.words, at=change.at, plan_hash=plan.hash,
                                  **({"done": done} if done is not None else {}),
                                  **({"boundary": boundary} if boundary != "step" else {})),
                         step_id=change.step_id, durable=True)

    def _steered(self, kind: BoundaryKind = "step") -> bool:
        """At a step boundary (the executor is about to start steps; ``kind``: or after the review,
        or after the verify command): take a queued steer, if any. True: start no more steps; the
        loop re-plans when the running ones have finished."""
        steering, plan = self.deps.steering, self.state.plan
        if steering is None or plan is None or self._steer is not None:
            return self._steer is not None
        runs = self.state.runs
        boundary = Boundary(plan.hash, lambda: (sid for sid, r in runs.items()
                                                if r.status not in ("pending", "running")), kind)
        words = steering.take(boundary)
        if words is None:
            return False
        self._steer = UserChange("steer", "boundary", redact_text(words))
        self._said(self._steer, plan, sorted(boundary.done, key=lambda x: int(x[1:])), kind)
        return True

    def _steered_after(self, kind: BoundaryKind) -> Next | None:
        """After the last step (the review judged the task complete; the verify command ran): a
        message sent meanwhile is applied now, a re-plan for it, rather than left unapplied."""
        if not self._steered(kind) or self._steer is None:
            return None
        self._user, self._steer = self._steer, None
        return Next(State.REPLANNING, f"the user's message: {self._user.words}")

    async def _revise(self, change: UserChange, plan: Plan, runs: dict[str, StepRun]) -> Plan:
        """A new plan for the user's words: recorded (``user_message``; a steer's already is), made
        by the planner with them leading its context, merged with the completed steps, recorded
        (``plan_created``, ``by_user``: not counted against ``max_replans``) and shown as a diff."""
        change = UserChange(change.kind, change.at, redact_text(change.words), change.step_id, change.tool)
        if change.kind == "feedback":
            self._said(change, plan)
        changes = self.state.changes.text() if self.state.changes is not None else None
        ctx = ReplanContext(plan, runs, change.words, self._left(), changes, user=change)
        new = await self.deps.planner(self.task, ctx)
        merged = merge_replan(plan, runs, new, start=ctx.first_step - 1)
        self._set_plan(merged, replan=True, by_user=True)
        if self.deps.on_revision is not None:
            self.deps.on_revision(PlanRevision(change, plan, merged, plan_diff(plan, merged)))
        return merged

    def _settle_uncertain(self, resume: ResumeState) -> None:
        """Ask about every step that may already have had its side effect; each decision is
        recorded (durably: it is why the step runs again, or does not). Stopping is a denial."""
        for u in resume.uncertain.values():
            decision, by = self.deps.decide_uncertain(u)
            self.events.emit(ResumeDecided(
                decision=decision, decided_by=by, tool=u.tool, args=u.args, attempt=u.attempt,
                reason="the tool was started but its result was never recorded"), step_id=u.step_id, durable=True)
            if decision == "stop" and by == "user":  # asked at a terminal: the answer was stop
                raise ApprovalDenied(f"stopped at step {u.step_id} ({u.tool}), which may already have run; "
                                     "resuming asks again")
            if decision == "stop":
                raise ApprovalDenied(
                    f"step {u.describe()} may already have run: it was started before the run stopped and "
                    "its result was never recorded; resume with --rerun-uncertain to run it again, or at a "
                    "terminal to decide")
            if decision == "done":
                assert resume.plan is not None  # only a resume with a plan has uncertain steps
                step = resume.plan.step(u.step_id)
                assert step is not None
                resume.done[u.step_id] = StepRun(step, status="ok", attempts=u.attempt, output=None)

    async def _executing(self, _: Next) -> Next:
        st = self.state
        assert st.plan is not None
        st.verify_unavailable = False  # new steps: the verify command runs on their changes again
        await self.executor.execute(st.plan)
        told = [r for r in st.runs.values() if r.status == "denied" and r.error and r.error.get("type") == "feedback"]
        if told:  # declined at its approval with the user's words: not run, the plan is revised
            r = told[0]
            self._user = UserChange("feedback", "approval", str(r.error.get("message", "")) if r.error else "",
                                    r.step.id, r.step.tool)
            return Next(State.REPLANNING, f"the user's feedback at step {r.step.id}: {self._user.words}")
        if self._steer is None and not any(r.status == "pending" for r in st.runs.values()):
            self._steered()  # the last step boundary: every step has finished
        if self._steer is not None:
            self._user, self._steer = self._steer, None
            return Next(State.REPLANNING, f"the user's message: {self._user.words}")
        failed = st.failed()
        return Next(State.REVIEWING, f"{len(failed)} step(s) failed" if failed else "all steps done")

    async def _reviewing(self, _: Next) -> Next:
        st = self.state
        assert st.plan is not None
        failed = st.failed()
        denied = st.policy_denials()
        if denied:
            # Nobody can approve here, so re-planning would meet the same refusal.
            raise ApprovalDenied(str((denied[0].error or {}).get("message", "approval denied")))
        changes = await self._workspace_changes()
        rule = self._review_rule()
        if not failed and rule.grounded_answers:
            # A small local model's review adds a slow call and an unreliable answer: when
            # every step succeeded, the answer is the tool outputs themselves.
            if rule.change_expected and not (changes.files if changes is not None else st.written_paths()):
                return Next(State.REPLANNING, "the task asks for a change, but no file changed")
            st.answer = grounded_answer(st.runs)
            self.events.emit(Reviewed(kind="grounded", outcome="complete"))
            return await self._done("every step succeeded")
        if self._facts_decide(rule):
            # Nothing for a model to judge: the verify command's result decides (see _verifying).
            st.facts_pending = True
            return Next(State.VERIFYING, f"every step succeeded; verifying: {self.deps.verify_command.strip()}")
        verdict: Review = await review(self.deps.client, self.task, st.plan, st.runs, changes,
                                       verify_command=self.deps.verify_command, history=st.reviews)
        self.events.emit(Reviewed(kind="verdict", **verdict.model_dump(exclude={"commands"}),
                                  **({"commands": verdict.commands} if verdict.commands is not None else {})))
        if verdict.outcome == "stop":
            raise RunStopped(verdict.reason or verdict.answer or "the reviewer ended the run")
        if verdict.outcome == "replan" or (verdict.outcome == "continue" and not st.can_continue()):
            if verdict.outcome == "continue" and not failed:
                verdict = Review(outcome="complete", answer=verdict.answer)
            else:
                self._checks = verdict.checks()
                return Next(State.REPLANNING, verdict.reason or "the reviewer asked for a new plan")
        if verdict.outcome == "continue":
            st.skip(failed)
            return Next(State.EXECUTING, verdict.reason or "continue without the failed steps")
        if not st.succeeded():
            if not verdict.answer.strip():
                # Nothing succeeded and nothing to say: a small model's "complete" here is a slip
                # (measured: a failed read_file reviewed as done), and recording it as a success
                # would teach memory a plan that does not work.
                return Next(State.REPLANNING, "no step succeeded; the task is not done")
            if not answer_is_grounded(verdict.answer, st.runs):
                self._overrule(verdict)
        st.answer = verdict.answer or fallback_answer(st.runs)
        return await self._done("the reviewer judged the task complete")

    def _overrule(self, verdict: Review) -> NoReturn:
        """The reviewer said complete, but no step succeeded and its answer quotes no step's
        output: the record says the task is not done. Recorded as overruled; the run is FAILED
        (the reviewer saw nothing left to try, so a new plan would not be asked for)."""
        reason = ("the reviewer judged the task complete, but no step succeeded and its answer is not "
                  "grounded in any step's output")
        self.events.emit(Reviewed(kind="overruled", outcome="failed", answer=verdict.answer, reason=reason))
        raise RunNotDone(reason)

    def _facts_decide(self, rule: ReviewRule) -> bool:
        """Whether the run's end is left to the verify command, without a reviewer call: review mode
        auto, a task asking for a change and no answer, the first plan's steps all tool steps that
        succeeded at their first try (:func:`decided_by_facts`), files changed and a verify command
        to run on them that has not run yet."""
        st = self.state
        return (self.deps.config.review.mode == "auto" and rule.change_only and self.budget.replans == 0
                and st.verified is None and bool(self.deps.verify_command.strip()) and bool(st.changed_files())
                and decided_by_facts(st.runs))

    def _review_rule(self) -> ReviewRule:
        if self._rule is None:
            self._rule = review_rule(self.deps.client.profile_for("reviewer"), self.task)
        return self._rule

    async def _done(self, why: str) -> Next:
        """The last gate before COMPLETE: when the run changed files and a verify command is
        set, VERIFYING; else the answer is shaped and the run is COMPLETE."""
        if (steered := self._steered_after("review")) is not None:
            return steered
        command = self.deps.verify_command.strip()
        # The review that follows a verify command that could not run (see _verifying) does not ask
        # for it again; any new step since (a re-plan, a continue) clears that.
        if not command or not self.state.changed_files() or self.state.verify_unavailable:
            await self._shape()
            return Next(State.COMPLETE, why)
        return Next(State.VERIFYING, f"{why}; verifying: {command}")

    async def _verifying(self, _: Next) -> Next:
        """The verify command, a step through the one pipeline. Passed (or declined, or
        impossible): COMPLETE; failed: a new plan with its output, FAILED when none is left."""
        st = self.state
        assert st.plan is not None
        command = self.deps.verify_command.strip()
        result = await self.executor.verify(st.plan, command, self.deps.config.verify.timeout_seconds)
        st.verified = result
        missing = self._missing_dependency(result) if result.status == "failed" else None
        self.events.emit(result.payload(None if missing is None else MissingDependencyInfo(
            kind=missing.kind, name=missing.name, evidence=missing.evidence)))
        if missing is not None:  # no new plan can install it: say so instead of re-planning
            raise DependencyMissing(missing.message())
        facts, st.facts_pending = st.facts_pending, False
        if facts and result.status == "passed":
            st.answer = facts_answer(st.runs, st.changed_files(), command)
            self.events.emit(Reviewed(kind="facts", outcome="complete", answer=st.answer))
        if result.feedback is not None:  # declined with the user's words: the plan is revised with them
            self._user = UserChange("feedback", "approval", result.feedback, VERIFY_STEP, SHELL_TOOL)
            st.verified = None
            return Next(State.REPLANNING, f"the user's feedback at the verify command: {result.feedback}")
        if result.status in ("passed", "denied", "unavailable"):
            if (steered := self._steered_after("verify")) is not None:
                return steered
            if facts and result.status != "passed":  # the facts decided nothing: the reviewer judges
                st.verify_unavailable = True
                return Next(State.REVIEWING, f"verify {result.status}: the reviewer judges the run")
            # Declined or impossible: the user sees that in the result; it is not a failure of the task.
            await self._shape()
            return Next(State.COMPLETE, f"verify {result.status}: {command}")
        code = f"exit code {result.exit_code}" if result.exit_code is not None else "it failed"
        if self.budget.replans >= self.budget.limits.max_replans:
            raise VerifyFailed(f"the verify command `{command}` failed ({code}) and no re-plan is left")
        return Next(State.REPLANNING, f"the verify command `{command}` failed ({code}):\n{result.output}")

    def _missing_dependency(self, result: VerifyResult) -> MissingDependency | None:
        """The dependency a failed verify command lacked, unless the run should have made it: the
        task names it, a step or a changed file is named after it, or the change added lines that
        name it (an import the change added). From the record alone, so a replay decides the same."""
        st = self.state
        assert st.plan is not None
        paths = [*st.changed_files(), *(str(s.args["path"]) for s in st.plan.steps
                                        if isinstance(s.args.get("path"), str))]
        diff = st.changes.diff if st.changes is not None else ""
        added = "\n".join(x for x in diff.splitlines() if x.startswith("+") and not x.startswith("+++"))
        return missing_dependency(result.output, result.exit_code, task=self.task, paths=paths, added=added)

    async def _replanning(self, step: Next) -> Next:
        st = self.state
        assert st.plan is not None
        checks, self._checks = self._checks, ()
        if self._user is not None:
            return await self._replan_for_user()
        self.budget.check_replan()
        changes = st.changes.text() if st.changes is not None else None
        # The review's checks are what to run next: nothing to investigate first.
        findings = (await self._investigate_failure(step.reason)
                    if self.deps.config.investigate.before_replan and not checks else None)
        ctx = ReplanContext(st.plan, dict(st.runs), step.reason, self._left(), changes, findings=findings,
                            commands=checks)
        new = await self.deps.planner(self.task, ctx)
        merged = merge_replan(st.plan, st.runs, new)
        before = {s.id for s in st.plan.steps if s.requires_approval}
        adds_approval = any(s.requires_approval and s.id not in before for s in merged.steps)
        self._set_plan(merged, replan=True)
        if adds_approval and not self.deps.confirm(merged, True):
            raise ApprovalDenied("the new plan was not confirmed")
        st.keep_succeeded()
        st.adopt(merged)
        if merged.source == "review":
            added = [s for s in merged.steps if st.runs[s.id].status == "pending"]
            return Next(State.EXECUTING, f"new plan {merged.id}: the review's check steps "
                                         + "; ".join(f"{s.id} `{s.args.get('command', '')}`" for s in added))
        return Next(State.EXECUTING, f"new plan {merged.id}")

    async def _replan_for_user(self) -> Next:
        """A re-plan for the user's words (feedback at an approval, a steer): completed steps kept;
        feedback is confirmed again (more words revise it again), a steer as any re-plan is."""
        st = self.state
        assert st.plan is not None and self._user is not None
        change, self._user = self._user, None
        before = {s.id for s in st.plan.steps if s.requires_approval}
        merged = await self._revise(change, st.plan, dict(st.runs))
        while True:
            adds_approval = any(s.requires_approval and s.id not in before for s in merged.steps)
            if change.kind == "steer" and not adds_approval:
                break
            answer = self.deps.confirm(merged, True)
            if isinstance(answer, bool):
                if not answer:
                    raise ApprovalDenied("the new plan was not confirmed")
                break
            change = UserChange("feedback", "plan", answer.text)
            merged = await self._revise(change, merged, {**dict(st.runs), **{
                s.id: StepRun(s) for s in merged.steps if s.id not in st.runs}})
        st.keep_succeeded()
        st.adopt(merged)
        return Next(State.EXECUTING, f"new plan {merged.id}")

    async def _investigate_failure(self, reason: str) -> str | None:
        """Investigate why the plan failed before a new one is asked for: the loop of an investigate
        step, recorded under the pseudo step ``investigate-N`` (N the re-plan's number) and closed by
        an ``investigated`` review event holding the findings; they go into the re-planner's context.
        Nothing when reads are denied."""
        if self.deps.config.approval.read == "deny":
            return None
        sid = f"investigate-{self.budget.replans}"
        question = ("Find the cause of this failure, so that a new plan can fix it: "
                    + head_tail(reason, REPLAN_QUESTION_CHARS))
        found = await Investigation(self.deps.config, self.deps.client, self.deps.registry, self.events,
                                    hooks=self.deps.hooks, remaining=self.budget.remaining_seconds
                                    ).run(sid, question, task=self.task,
                                                               instructions=self.executor.instructions)
        findings = found.findings.model_dump(mode="json")
        self.events.emit(Reviewed(kind="investigated", outcome="failed" if found.error else "ok", reason=question,
                                  after=findings, error=found.error), step_id=sid)
        return json.dumps(findings, ensure_ascii=False, indent=1)

    async def _shape(self) -> None:
        """With an output schema, the answer becomes JSON valid against it (or the run fails)."""
        schema = self.deps.output_schema
        if schema is None:
            return
        from agentcli.engine.answer import shape_answer

        self.state.data = await shape_answer(self.deps.client, self.task, self.state.answer, schema)
        self.state.answer = json.dumps(self.state.data, ensure_ascii=False)

    async def _workspace_changes(self) -> WorkspaceChanges | None:
        """The run's changes so far, from the workspace probe, recorded."""
        probe = self.probe
        if probe is None:
            return None
        changes = await probe.changes()
        self.state.changes = changes
        self.events.emit(WorkspaceChanged(known=False) if changes is None else
                         WorkspaceChanged(known=True, files=list(changes.files), stat=changes.stat, diff=changes.diff))
        return changes

    def _left(self) -> dict[str, Any]:
        b, limits = self.budget, self.budget.limits
        return {"steps": max(limits.max_steps - b.steps, 0), "replans": max(limits.max_replans - b.replans, 0),
                "cost_usd": max(limits.max_cost_usd - b.cost_usd, 0.0), "seconds": b.remaining_seconds()}

    # ------------------------------------------------------------------ start and end

    async def go(self, given: Plan | None) -> RunOutcome:
        self.events.emit(RunStarted(
            task=self.task, config_digest=config_digest(self.deps.config),
            versions={"agentcli": __version__, "python": platform.python_version()},
            model=self.deps.config.model, config=self.deps.config.model_dump(mode="json"),
            verify_command=self.deps.verify_command, prompts=prompt_hashes(),
            **({"output_schema": self.deps.output_schema} if self.deps.output_schema is not None else {}),
            **({"instructions": self.deps.instructions.record()} if self.deps.instructions is not None else {}),
            **self.deps.extra_start,
        ))
        st = self.state
        status, reason, code = "FAILED", "", int(ExitCode.FAILED)
        if self.deps.memory is not None and getattr(self.deps.memory, "working", None) is not None:
            self.deps.memory.working.add_task(self.task)
        try:
            try:
                async with asyncio.timeout(self.budget.remaining_seconds()):
                    if self.probe is not None:
                        await self.probe.start()
                    await self._drive(given)
            except TimeoutError:
                raise BudgetExceeded("seconds", f"wall-time budget of {self.budget.limits.max_seconds:g}s "
                                                "used up") from None
            status, reason, code = "COMPLETE", "complete", int(ExitCode.OK)
        except BudgetExceeded as e:
            reason, code = e.reason, int(ExitCode.BUDGET)
            st.answer = e.one_line()
        except Aborted as e:
            reason, code = "aborted", int(ExitCode.DENIED)
            st.answer = e.one_line()
        except ApprovalDenied as e:
            reason, code = "denied", int(ExitCode.DENIED)
            st.answer = e.one_line()
        except RunStopped as e:
            reason, code = "stopped", int(ExitCode.DENIED if st.declined() else ExitCode.FAILED)
            st.answer = e.one_line()
        except VerifyFailed as e:
            reason = "verify_failed"
            st.answer = e.one_line()
        except DependencyMissing as e:
            reason, code = "missing_dependency", int(ExitCode.ENVIRONMENT)
            st.answer = e.one_line()
        except RunNotDone as e:
            reason = "not_done"
            st.answer = e.one_line()
        except asyncio.CancelledError:
            reason, code = "interrupted", int(ExitCode.INTERRUPTED)
            st.answer = "resume with: agent run --resume " + self.deps.run_id
        except AgentError as e:
            reason, code = "error", int(e.exit_code)  # a model set-up error exits 2: the set-up is to fix
            st.answer = e.one_line()
        if status != "COMPLETE":
            self._fail(f"{reason}: {st.answer}" if reason == "error" else reason)
        self.fsm.to(State.IDLE, "run finished")
        await self._final_changes()
        outcome = self._outcome(status, reason, code)
        self._remember(outcome)
        finished = RunFinished(status=status, reason=reason, answer=st.answer, totals=outcome.totals,
                               budget=outcome.budget, exit_code=code)
        self.events.emit(finished)
        self.events.sync(blocking=True)
        if self.deps.hooks is not None:
            try:
                await self.deps.hooks.run_finished(finished.event_data())
            except AgentError as e:  # the run is over and recorded: a hook cannot change its outcome
                self.events.emit(Hooked(event="run_finished", outcome="warning", message=e.one_line()))
        return outcome

    def _remember(self, outcome: RunOutcome) -> None:
        """One episode per run, whatever its outcome; a memory failure never fails the run."""
        memory = self.deps.memory
        if memory is None:
            return
        plan = self.state.plan
        try:
            memory.record_episode(
                run_id=outcome.run_id, task=self.task, plan_summary=plan_summary(plan),
                status=outcome.status, reason=outcome.reason, answer=outcome.answer,
                cost_usd=outcome.totals.get("cost_usd"),
                # Complete, and every step of the final plan succeeded: a plan worth repeating.
                plan=episode_plan(plan) if outcome.status == "COMPLETE" and self.state.worked() else None,
                wait=False)  # written in the background: the result is shown without waiting for it
        except Exception as e:
            self.events.emit(MemoryWritten(tier="episodic", error=f"{type(e).__name__}: {e}"[:300]))

    async def _final_changes(self) -> None:
        """The changes at the end, for the report (the last review's when no step ran since)."""
        try:
            await self._workspace_changes()
        except (AgentError, OSError) as e:  # the report says "unknown"; the run's outcome stands
            self.events.emit(WorkspaceChanged(known=False, error=str(e)[:300]))
            self.state.changes = None

    def _outcome(self, status: str, reason: str, code: int) -> RunOutcome:
        st = self.state
        plan = st.plan
        return RunOutcome(
            run_id=self.deps.run_id, task=self.task, status=status, reason=reason, answer=st.answer,
            exit_code=code, plan_id=plan.id if plan else None, plan_hash=plan.hash if plan else None,
            steps=[r.report() for r in st.runs.values()],
            totals=self.deps.client.totals.as_dict(), budget=self.budget.snapshot(),
            duration_s=round(time.monotonic() - self.started, 3), data=st.data,
            changed_files=st.changed_files(),
            verify=st.verified.to_dict() if st.verified is not None else None,
            undo=self.deps.checkpoints.undo_hint() if self.deps.checkpoints is not None else None,
        )


async def run(task: str, deps: RunDeps, *, plan: Plan | None = None) -> RunOutcome:
    """Plan (unless ``plan`` is given), confirm, execute, review; always returns an outcome.

    Ctrl-C (task cancellation) is recorded as FAILED/interrupted before it propagates."""
    r = _Run(task, deps)
    try:
        return await r.go(plan)
    finally:
        deps.events.sync(blocking=True)
