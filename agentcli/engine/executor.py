"""Running a plan's steps: dependency order, bounded concurrency, retries, approvals.

:class:`Executor` runs every ready step of a plan (all of its dependencies done)
concurrently, up to ``executor.max_parallel``, until nothing more can run. It
never decides how a run ends: that is the reviewer's job (:mod:`agentcli.engine.runner`).

A tool step, in order:

1. ``{{sN.output}}`` references are resolved against earlier outputs;
2. the args are validated against the tool's schema; on ``invalid_args`` the
   executor's model is shown the structured error and asked for corrected args,
   ``executor.max_arg_corrections`` times at most;
3. approval, when the policy or the plan requires it (asked once per step);
4. an intent event is made durable before a side-effecting tool runs;
5. the call, with the tool's timeout capped by the remaining wall-time budget;
   failures are retried by the step's retry policy, with backoff, never re-planned.

An ``llm`` step sends its resolved prompt to the executor's model; outputs referenced in the
prompt are inserted as text (:func:`~agentcli.planning.plan.prompt_text`). Its answer has the
step's shape: ``text``; ``json`` or ``edits``, sent as ``response_format`` and validated (the
output is the parsed value; for ``edits`` the list of edits). A text answer that feeds a tool's
arguments or a path reference loses a Markdown fence around it. An answer the output limit cut
is never used: the step fails with ``output_truncated`` (the client has already asked once
more with the largest limit) and is not retried.

While any tool runs or waits for approval the run is in WAITING_TOOL, otherwise
in EXECUTING; every transition, call and decision is appended to the event log.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from agentcli.config import Config
from agentcli.engine.approval import ApprovalDecision, ApprovalRequest, Approver
from agentcli.engine.budget import Budget
from agentcli.engine.hooks import Hooks
from agentcli.engine.investigate import Investigation
from agentcli.errors import ApprovalDenied, BudgetExceeded, LLMError, ModelSetupError, OutputTruncated
from agentcli.models.client import LLMClient, strip_fences
from agentcli.models.types import LLMResult
from agentcli.planning.plan import (
    Plan,
    ReferenceResolutionError,
    RetryPolicy,
    Step,
    StepStatus,
    find_references,
    llm_step_messages,
    prompt_text,
    resolve_references,
)
from agentcli.record.checkpoints import Checkpointer
from agentcli.record.events import (
    ApprovalMade,
    ArgsChecked,
    EventLog,
    MissingDependencyInfo,
    Reviewed,
    StepFinished,
    StepStarted,
    ToolCalled,
    ToolIntent,
    Verified,
)
from agentcli.tools import ToolError, ToolRegistry, ToolResult
from agentcli.tools.edits import EditList
from agentcli.tools.text import strip_ansi, tail_with_failures

DONE: frozenset[str] = frozenset({"ok", "failed", "denied", "skipped"})
_NOT_SUCCEEDED: frozenset[str] = frozenset({"failed", "denied", "skipped"})
_BLOCKING: frozenset[str] = frozenset({"failed", "denied"})

_FIX_ARGS_PROMPT = (
    "Step {step_id} calls the tool `{tool}` with these arguments:\n{args}\n"
    "They are invalid:\n{errors}\n"
    "Reply with only the corrected arguments as a JSON object for `{tool}`."
)


@dataclass
class StepRun:
    """The state of one step in this run."""

    step: Step
    status: StepStatus = "pending"
    attempts: int = 0
    corrections: int = 0
    output: Any = None
    error: dict[str, Any] | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    started: float | None = None
    finished: float | None = None
    approval: ApprovalDecision | None = None
    #: Seconds spent waiting for the user's approval: shown apart, not part of the step's time.
    approval_wait_s: float = 0.0

    @property
    def duration_s(self) -> float:
        """The step's working time: start to finish, less the wait for approval."""
        if self.started is None or self.finished is None:
            return 0.0
        return max(self.finished - self.started - self.approval_wait_s, 0.0)

    def report(self) -> dict[str, Any]:
        """A summary for the run result and the final table."""
        s = self.step
        return {
            "id": s.id, "title": s.title, "kind": s.kind, "tool": s.tool, "status": self.status,
            "attempts": self.attempts, "corrections": self.corrections,
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "estimated_cost_usd": s.estimated_cost_usd, "cost_usd": self.cost_usd,
            "duration_s": round(self.duration_s, 3), "approval_wait_s": round(self.approval_wait_s, 3),
            "error": self.error,
        }


class _ToolWait:
    """Counts the tools running or waiting for approval, and tells ``on_wait`` when the first
    starts (True) and the last ends (False): the run's loop moves EXECUTING <-> WAITING_TOOL."""

    def __init__(self, on_wait: Callable[[bool, str], None] | None) -> None:
        self.on_wait = on_wait
        self.active = 0

    def enter(self, reason: str) -> None:
        self.active += 1
        if self.active == 1 and self.on_wait is not None:
            self.on_wait(True, reason)

    def leave(self, reason: str) -> None:
        self.active -= 1
        if self.active == 0 and self.on_wait is not None:
            self.on_wait(False, reason)


def _set_if_pending(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Aborted(ApprovalDenied):
    """The user chose abort at an approval prompt."""


@dataclass
class Executor:
    """Runs the steps of one plan within one run: the one step pipeline (the verify command
    goes through it too). It never moves the run's state machine: it reports tool waits to
    ``on_wait``, and the run's loop decides."""

    config: Config
    registry: ToolRegistry
    client: LLMClient
    approver: Approver
    budget: Budget
    events: EventLog
    #: Told when the first tool starts running or waiting for approval (True) and the last ends.
    on_wait: Callable[[bool, str], None] | None = None
    task: str = ""
    #: The project's instructions (AGENTS.md) for ``llm`` steps; empty: none.
    instructions: str = ""
    #: The run's ``[[hooks]]`` (pre_tool may block a call; post_tool sees its result).
    hooks: Hooks | None = None
    on_step: Callable[[StepRun], None] | None = None
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    #: The run's step records (its :class:`~agentcli.engine.state.RunState`'s): the pipeline
    #: writes the outcome of each step it runs.
    runs: dict[str, StepRun] = field(default_factory=dict)
    #: Checkpoints of the workspace around every step that may change it (write and exec tools).
    checkpoints: Checkpointer | None = None
    #: Asked at each step boundary, before steps start: True, start no more (the running ones
    #: finish, then :meth:`execute` returns). The run's loop takes the user's steering messages here.
    hold: Callable[[], bool] | None = None

    def __post_init__(self) -> None:
        self._wait = _ToolWait(self.on_wait)
        self._approval_lock = asyncio.Lock()

    # ----------------------------------------------------------------- the DAG

    def outputs(self) -> dict[str, Any]:
        return {sid: r.output for sid, r in self.runs.items() if r.status == "ok"}

    def _resolve(self, value: Any, *, prompt: bool = False) -> Any:
        """``value`` with its references resolved (a copy, as resolve_references returns; in a
        ``prompt``, outputs as text to read). The outputs are only collected when there is a
        reference to resolve: that walk is O(steps)."""
        results = self.outputs() if find_references(value) else {}
        if prompt:
            return resolve_references(value, results, as_text=prompt_text)
        return resolve_references(value, results)

    def _ready(self, order: list[StepRun], keys: list[str], dependents: dict[str, list[int]],
               check: set[int], room: int) -> list[int]:
        """The first ``room`` steps among ``check`` (positions in ``order``, the plan's order) whose
        dependencies all succeeded, in plan order; a step met with a dependency that did not succeed
        is skipped. What was not looked at stays in ``check``. The result is what a scan of every
        pending step in plan order gives: a step whose dependencies did not change since it was
        last looked at is left alone."""
        runs = self.runs
        ready: list[int] = []
        queue = sorted(check)  # a sorted list is a heap
        queued = set(queue)
        check.clear()
        while queue:
            if len(ready) >= room:
                # The slots are taken: the rest waits for the next pass (scanning every pending
                # step of a long independent plan at each pass made it quadratic).
                check.update(queue)
                break
            i = heapq.heappop(queue)
            run = order[i]
            if run.status != "pending":
                continue
            all_ok = True
            skip = False
            for dep_id in run.step.depends_on:
                dep = runs.get(dep_id)
                if dep is None or dep.status in _NOT_SUCCEEDED:
                    skip = True
                    break
                if dep.status != "ok":
                    all_ok = False
            if skip:
                run.status = "skipped"
                run.error = {"type": "skipped", "message": "a step it depends on did not succeed"}
                self._finish(run)
                # A full scan would meet the steps after this one that depend on it in this same
                # pass, and the ones before it in the next.
                for j in dependents.get(keys[i], ()):
                    if j > i:
                        if j not in queued:
                            queued.add(j)
                            heapq.heappush(queue, j)
                    else:
                        check.add(j)
                continue
            if all_ok:
                ready.append(i)
        return ready

    def blocked(self) -> bool:
        """Whether some step failed or was denied (the reviewer must look)."""
        for r in self.runs.values():  # noqa: SIM110 (a plain loop: this runs after every step)
            if r.status in _BLOCKING:
                return True
        return False

    def pending(self) -> list[StepRun]:
        return [r for r in self.runs.values() if r.status == "pending"]

    async def execute(self, plan: Plan) -> None:
        """Run ready steps until none is left or one fails for good. Raises BudgetExceeded,
        Aborted, or CancelledError (Ctrl-C); running steps are cancelled first."""
        running: dict[asyncio.Task[None], int] = {}  # position in the plan's order
        limit = self.config.executor.max_parallel
        # Waiting for the first of the running steps to finish exactly as asyncio.wait(FIRST_COMPLETED)
        # does (the same wake-up, then every finished step collected), without adding a callback to
        # every running task and removing it again each time round: each task has one, from its
        # start, which wakes the loop unless the loop has collected that task already.
        waiting: list[asyncio.Future[None]] = []

        def on_done(task: asyncio.Task[None]) -> None:
            if task in running and waiting and not waiting[0].done():
                waiting[0].set_result(None)

        # A pending step can only become ready (or be skipped) when one of its dependencies finishes,
        # so each pass looks at those steps only (and at ready ones left waiting for a free slot):
        # looking at every step after every step made a long plan quadratic. Likewise whether a
        # step failed or was denied changes only when a step finishes.
        order = list(self.runs.values())
        keys = list(self.runs)
        dependents: dict[str, list[int]] = {}
        check: set[int] = set()
        for i, run in enumerate(order):
            if run.status == "pending":
                check.add(i)
            for dep_id in run.step.depends_on:
                dependents.setdefault(dep_id, []).append(i)
        blocked = self.blocked()
        held = False

        loop = asyncio.get_running_loop()
        try:
            while True:
                if not blocked and not held and check and len(running) < limit:
                    ready = self._ready(order, keys, dependents, check, limit - len(running))
                    if ready and self.hold is not None and self.hold():
                        held, ready = True, []  # a step boundary: the rest waits for the run's loop
                    if len(ready) == 1 and not running:
                        # The only step that can run: nothing else becomes ready before it ends, so
                        # it runs here rather than in a task of its own (a chain of steps: no task,
                        # done callback and wake-up per step). Its exceptions propagate as a
                        # task's result would re-raise them.
                        i = ready[0]
                        order[i].status = "running"
                        await self._run_step(plan, order[i])
                        if order[i].status in _BLOCKING:
                            blocked = True
                        check.update(dependents.get(keys[i], ()))
                        continue
                    for i in ready:
                        run = order[i]
                        run.status = "running"
                        task = asyncio.create_task(self._run_step(plan, run))
                        task.add_done_callback(on_done)
                        running[task] = i
                if not running:
                    return
                waiter: asyncio.Future[None] = loop.create_future()
                waiting.append(waiter)
                if any(t.done() for t in running):  # reported at the next turn, as asyncio.wait does
                    loop.call_soon(_set_if_pending, waiter)
                try:
                    await waiter
                finally:
                    waiting.clear()
                for task in [t for t in running if t.done()]:
                    i = running.pop(task)
                    task.result()  # re-raise budget, abort and bugs
                    if order[i].status in _BLOCKING:
                        blocked = True
                    check.update(dependents.get(keys[i], ()))
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    # --------------------------------------------------------------- one step

    def _finish(self, run: StepRun) -> None:
        run.finished = time.time()
        self.events.emit(StepFinished(
            status=run.status, attempts=run.attempts, output=run.output, error=run.error,
            input_tokens=run.input_tokens, output_tokens=run.output_tokens, cost_usd=run.cost_usd,
        ), step_id=run.step.id)
        self.events.sync()  # a step boundary: durable in the background
        if self.on_step is not None:
            self.on_step(run)

    async def _run_step(self, plan: Plan, run: StepRun) -> None:
        step = run.step
        try:
            self.budget.check_step(step.id)
        except BudgetExceeded:
            run.status = "pending"  # never started: a resumed run with a larger budget runs it
            raise
        run.started = time.time()
        self.events.emit(StepStarted(title=step.title, kind=step.kind, tool=step.tool), step_id=step.id)
        if self.on_step is not None:
            self.on_step(run)
        try:
            if step.kind == "llm":
                await self._llm_step(plan, run)
            elif step.kind == "investigate":
                await self._investigate_step(plan, run)
            else:
                await self._tool_step(plan, run)
        except (BudgetExceeded, Aborted, asyncio.CancelledError):
            run.status = "failed"
            run.error = run.error or {"type": "interrupted", "message": "the run stopped during this step"}
            self._finish(run)
            raise
        self._finish(run)

    def _prompt_of(self, run: StepRun) -> str | None:
        """A model step's prompt with its references resolved; None (the step failed) when one cannot be."""
        try:
            prompt: str = self._resolve(run.step.prompt, prompt=True)  # a model step's prompt is validated as text
            return prompt
        except ReferenceResolutionError as e:
            run.status, run.error = "failed", {"type": "reference", "message": e.one_line()}
            return None

    async def _llm_step(self, plan: Plan, run: StepRun) -> None:
        step = run.step
        prompt = self._prompt_of(run)
        if prompt is None:
            return
        messages = llm_step_messages(self.task, prompt, self.instructions, step.answer,
                                     reminder=plan_reminder(plan, step.id))
        policy = step.retry
        for attempt in range(1, policy.max_attempts + 1):
            run.attempts = attempt
            try:
                result = await self._answer(step, messages)
            except (BudgetExceeded, asyncio.CancelledError):
                raise
            except LLMError as e:
                run.error = {"type": e.error_type, "message": e.one_line()}
                # A cut answer was already asked for again with the largest limit: a third time
                # would be cut the same way.
                # Nor is a set-up error (a key, a server, a model name) transient.
                if attempt < policy.max_attempts and not isinstance(e, OutputTruncated | ModelSetupError):
                    await self.sleep(policy.backoff_seconds * 2 ** (attempt - 1))
                    continue
                run.status = "failed"
                return
            run.input_tokens += result.usage.input_tokens
            run.output_tokens += result.usage.output_tokens
            run.cost_usd = None if result.cost_usd is None or run.cost_usd is None else run.cost_usd + \
                result.cost_usd
            run.status, run.output, run.error = "ok", self._output(plan, step, result), None
            return

    async def _investigate_step(self, plan: Plan, run: StepRun) -> None:
        """An investigate step (:mod:`agentcli.engine.investigate`): approved as a read, then the
        bounded loop; its output is the findings (also when it fails at a limit: what it found)."""
        step = run.step
        question = self._prompt_of(run)
        if question is None:
            return
        if not await self._approve(plan, run, {"question": question}, None):
            return
        run.attempts = 1
        found = await Investigation(self.config, self.client, self.registry, self.events, hooks=self.hooks,
                                    on_tool=self._tool_wait, remaining=self.budget.remaining_seconds).run(
            step.id, question, task=self.task, instructions=self.instructions,
            reminder=plan_reminder(plan, step.id))
        run.input_tokens += found.input_tokens
        run.output_tokens += found.output_tokens
        run.cost_usd = None if found.cost_usd is None or run.cost_usd is None else run.cost_usd + found.cost_usd
        run.output = found.findings.model_dump(mode="json")
        run.status, run.error = ("failed", found.error) if found.error is not None else ("ok", None)

    def _tool_wait(self, waiting: bool, reason: str) -> None:
        if waiting:
            self._wait.enter(reason)
        else:
            self._wait.leave(reason)

    async def _answer(self, step: Step, messages: list[dict[str, Any]]) -> LLMResult:
        if step.answer == "edits":
            return await self.client.acomplete(messages, role="executor", step_id=step.id,
                                               response_model=EditList)
        if step.answer == "json":
            return await self.client.acomplete(messages, role="executor", step_id=step.id,
                                               json_schema=step.answer_schema or {"type": "object"})
        return await self.client.acomplete(messages, role="executor", step_id=step.id)

    def _output(self, plan: Plan, step: Step, result: LLMResult) -> Any:
        """A step's output from its answer: the parsed value of a json answer, the list of edits of
        an edits answer, the text of a text answer (unfenced when it feeds data, see _feeds_data)."""
        if step.answer == "edits":
            return [e.model_dump() for e in result.parsed.edits]
        if step.answer == "json":
            return result.parsed
        return strip_fences(result.text) if _feeds_data(plan, step.id) else result.text

    async def _tool_step(self, plan: Plan, run: StepRun, *, max_corrections: int | None = None) -> None:
        """The one tool pipeline: references, validation (and corrections), approval, the
        pre_tool hook, checkpoints, intent, the call (with retries) and post_tool."""
        step = run.step
        corrections = self.config.executor.max_arg_corrections if max_corrections is None else max_corrections
        assert step.tool is not None
        try:
            args = self._resolve(step.args)
        except ReferenceResolutionError as e:
            run.status, run.error = "failed", {"type": "reference", "message": e.one_line()}
            return
        checked = self._validate(step, args)
        while isinstance(checked, ToolError) and checked.type == "invalid_args":
            if run.corrections >= corrections:
                break
            run.corrections += 1
            args = await self._correct_args(run, args, checked)
            checked = self._validate(step, args)
        if isinstance(checked, ToolError):
            run.status, run.error = "failed", checked.model_dump(mode="json")
            return
        if not await self._approve(plan, run, args, checked):
            return
        if self.hooks is not None and await self._blocked(run, args):
            return
        tool = self.registry.get(step.tool)
        side_effects = tool is not None and tool.risk != "read"
        default = self.config.tools.default_timeout_seconds
        own_timeout = tool.effective_timeout(checked, default) if tool is not None else default
        if side_effects and self.checkpoints is not None:
            await self.checkpoints.before(step.id)
        try:
            await self._attempts(run, args, own_timeout, side_effects, checked)
        finally:
            if side_effects and self.checkpoints is not None:
                await self.checkpoints.after(step.id)

    def _validate(self, step: Step, args: Any) -> Any:
        """The step's arguments validated (a model, or the :class:`ToolError` saying why not). A
        check that read the workspace is recorded as the step got it (``args_checked``)."""
        assert step.tool is not None
        checked = self.registry.validate(step.tool, args, step_id=step.id)
        tool = self.registry.get(step.tool)
        if tool is not None and tool.check_func is not None:
            refused = isinstance(checked, ToolError)
            self.events.emit(ArgsChecked(tool=step.tool, ok=not refused,
                                         error=checked.model_dump(mode="json") if refused else None),
                             step_id=step.id)
        return checked

    async def _attempts(self, run: StepRun, args: dict[str, Any], own_timeout: float, side_effects: bool,
                        checked: Any) -> None:
        step = run.step
        policy = step.retry
        for attempt in range(1, policy.max_attempts + 1):
            run.attempts = attempt
            if side_effects:
                self.events.emit(ToolIntent(tool=step.tool, args=args, attempt=attempt), step_id=step.id,
                                 durable=True)
            result = await self._call(run, args, own_timeout, checked)
            if result.ok:
                failure = exit_code_failure(result.output, step.expect_exit_codes)
                if failure is not None:
                    # A command that failed is a failed step, with its output kept for the record;
                    # running it again would fail the same way.
                    run.status, run.output, run.error = "failed", result.output, failure
                    return
                run.status, run.output, run.error = "ok", result.output, None
                return
            assert result.error is not None
            run.error = result.error.model_dump(mode="json")
            if attempt < policy.max_attempts:
                await self.sleep(policy.backoff_seconds * 2 ** (attempt - 1))
        run.status = "failed"

    async def _call(self, run: StepRun, args: dict[str, Any], own: float, checked: Any) -> ToolResult:
        step = run.step
        assert step.tool is not None
        remaining = self.budget.remaining_seconds()
        # The tool's own limit applies unless the wall-time budget runs out first.
        timeout = remaining if remaining < own else None
        self._wait.enter(f"{step.id}: {step.tool}")
        try:
            result = await self.registry.call(step.tool, args, timeout=timeout, step_id=step.id, validated=checked)
        finally:
            self._wait.leave(f"{step.id}: {step.tool} returned")
        called = ToolCalled(tool=step.tool, args=args, attempt=run.attempts, result=result.model_dump(mode="json"))
        self.events.emit(called, step_id=step.id)
        if self.hooks is not None:
            await self.hooks.post_tool(step.id, step.tool, called.event_data())
        if result.error is not None and result.error.type == "timeout" and timeout is not None:
            self.budget.check_time("tool")
        return result

    async def _blocked(self, run: StepRun, args: dict[str, Any]) -> bool:
        """Whether a pre_tool hook blocks the call; if so the step fails with a ``blocked`` tool
        error carrying the hook's reason, as the reviewer sees any tool error."""
        step = run.step
        assert step.tool is not None and self.hooks is not None
        blocked = await self.hooks.pre_tool(step.id, step.tool, args)
        if blocked is None:
            return False
        error = ToolError(type="blocked", message=f"a pre_tool hook blocked this call: {blocked.message}")
        run.status, run.error = "failed", error.model_dump(mode="json")
        return True

    async def _correct_args(self, run: StepRun, args: dict[str, Any], error: ToolError) -> dict[str, Any]:
        step = run.step
        assert step.tool is not None
        tool = self.registry.get(step.tool)
        errors = "\n".join(f"- {'.'.join(map(str, d.get('loc', []))) or '(args)'}: {d.get('msg')}"
                           for d in error.details) or error.message
        prompt = _FIX_ARGS_PROMPT.format(step_id=step.id, tool=step.tool, args=json.dumps(args),
                                         errors=errors)
        schema = tool.parameters_schema() if tool is not None else {"type": "object"}
        try:
            result = await self.client.acomplete(
                [{"role": "system", "content": f"Task: {self.task}"}, {"role": "user", "content": prompt}],
                role="executor", step_id=step.id, json_schema=schema,
            )
        except (BudgetExceeded, asyncio.CancelledError):
            raise
        except LLMError:
            return args
        run.input_tokens += result.usage.input_tokens
        run.output_tokens += result.usage.output_tokens
        fixed = result.parsed if isinstance(result.parsed, dict) else args
        self.events.emit(Reviewed(kind="args_corrected", tool=step.tool, before=args, after=fixed,
                                  error=error.model_dump(mode="json")), step_id=step.id)
        return fixed

    async def verify(self, plan: Plan, command: str, timeout: float) -> VerifyResult:
        """Run the verify command as a step through the one pipeline (approval as for any
        exec step, the pre_tool hook, checkpoints, intent, the call, post_tool), recorded under
        the step id ``verify`` (no step events, one attempt, no argument corrections, not
        counted as a step of the budget), so a replay serves it like any step."""
        if self.registry.get(SHELL_TOOL) is None:
            return VerifyResult(command, "unavailable", output=f"no {SHELL_TOOL} tool to run it with")
        run = StepRun(verify_step(command, timeout))
        run.started = time.time()
        try:
            await self._tool_step(plan, run, max_corrections=0)
        finally:
            run.finished = time.time()
        return VerifyResult.of(command, run)

    async def _approve(self, plan: Plan, run: StepRun, args: dict[str, Any], checked: Any) -> bool:
        """Approval of a tool step's call, or of an investigate step (a read: ``args`` its question)."""
        step = run.step
        name = step.tool or step.kind
        tool = self.registry.get(step.tool) if step.tool is not None else None
        risks: tuple[str, ...] = tool.risks_for(checked) if tool is not None else (step.risk or "exec",)
        risk = risks[0] if len(risks) == 1 else "+".join(risks)
        registry = self.registry
        show: Callable[[], str | None] = ((lambda: registry.preview(name, args)) if tool is not None
                                          else (lambda: f"investigate (read-only): {args.get('question', '')}"))
        req = ApprovalRequest(step_id=step.id, tool=name, risk=risk, args=args, plan_hash=plan.hash,
                              requires_approval=step.requires_approval, risks=risks, show=show)
        needs_prompt = step.requires_approval or any(
            getattr(self.config.approval, r, "ask") != "auto" for r in risks)
        if not needs_prompt:
            decision = self.approver.decide(req)  # policy "auto": no prompt, no thread
        else:
            self._wait.enter(f"{step.id}: waiting for approval")
            waited = time.time()
            try:
                async with self._approval_lock:
                    if self.approver.asks(req):
                        # The prompt blocks on the terminal; other steps keep running meanwhile.
                        decision = await asyncio.to_thread(self.approver.decide, req)
                    else:  # decided without asking anybody (a flag, a recorded decision): no thread
                        decision = self.approver.decide(req)
            finally:
                run.approval_wait_s += time.time() - waited
                self._wait.leave(f"{step.id}: approval decided")
        run.approval = decision
        self.events.emit(ApprovalMade(
            tool=decision.tool, args_hash=decision.args_hash, plan_hash=decision.plan_hash,
            decided_by=decision.decided_by, decision=decision.decision, message=decision.message, risk=risk,
            **({"feedback": decision.feedback} if decision.feedback is not None else {}),
        ), step_id=step.id)
        if decision.decision == "aborted":
            run.status, run.error = "denied", {"type": "aborted", "message": decision.message}
            raise Aborted("aborted at the verify command" if step.id == VERIFY_STEP
                          else f"aborted at step {step.id} ({name})")
        if decision.feedback is not None:  # not run: the run's loop revises the plan with the words
            run.status, run.error = "denied", {"type": "feedback", "message": decision.feedback}
            return False
        if not decision.approved:
            run.status, run.error = "denied", {"type": "denied", "message": decision.message}
            return False
        return True


#: At most this many steps are listed in a plan reminder (the ones around the current step).
REMINDER_STEPS = 30
_REMINDER_TITLE = 80


def plan_reminder(plan: Plan, current: str) -> str:
    """The plan and where the step ``current`` is in it, compactly, for a model step (``llm``,
    ``investigate``): one line a step, at most :data:`REMINDER_STEPS` of them, between ``<plan>``
    tags: ``done`` for the steps it depends on (directly or not: they succeeded, or it would not
    run), ``now`` for itself, ``to do`` for the steps after it and ``other`` for earlier ones it does
    not depend on (the frame's first line says what each word means, so no model has to guess).
    Only what its dependencies fix is said: a parallel step's status at this moment depends on timing,
    and a request must be the same in the run and its replay. Empty for a one-step
    plan. It goes into the user message, after the system message, so the request's stable prefix
    stays the same for a provider's cache."""
    steps = plan.steps
    if len(steps) < 2:
        return ""
    by_id = {s.id: s for s in steps}
    done: set[str] = set()
    todo = list(by_id[current].depends_on) if current in by_id else []
    while todo:
        sid = todo.pop()
        if sid not in done:
            done.add(sid)
            dep = by_id.get(sid)
            todo.extend(dep.depends_on if dep is not None else ())
    at = next((i for i, s in enumerate(steps) if s.id == current), 0)
    lo = max(0, min(at - REMINDER_STEPS // 2, len(steps) - REMINDER_STEPS))
    shown = steps[lo:lo + REMINDER_STEPS]
    lines = []
    for i, s in enumerate(shown, lo):
        status = "now" if s.id == current else "done" if s.id in done else "to do" if i > at else "other"
        title = " ".join(s.title.split())
        if len(title) > _REMINDER_TITLE:
            title = title[:_REMINDER_TITLE - 3] + "..."
        lines.append(f"{s.id} [{status}] {title}")
    if lo > 0:
        lines.insert(0, f"({lo} earlier steps)")
    if lo + len(shown) < len(steps):
        lines.append(f"({len(steps) - lo - len(shown)} later steps)")
    return PLAN_REMINDER.format(current=current, steps="\n".join(lines))


#: The frame of :func:`plan_reminder` (its lines are code).
PLAN_REMINDER = ("<plan>\nThe plan, for orientation; do only step {current} (done: finished, its output used "
                 "here; to do: comes later; other: earlier, not used here):\n{steps}\n</plan>")


def _feeds_data(plan: Plan, step_id: str) -> bool:
    """Whether a step's output goes into a tool's arguments (a file's content, a command) or is
    read as JSON through a path (``{{s3.output.search}}``), rather than only read by a model."""
    for other in plan.steps:
        if step_id not in other.depends_on:
            continue
        for ref in other.references():
            if ref.step_id == step_id and (other.kind == "tool" or ref.path):
                return True
    return False


@dataclass
class VerifyResult:
    """The verify command's outcome: ``passed``, ``failed`` (exit code, or the tool failed),
    ``denied`` (approval) or ``unavailable`` (no shell tool)."""

    command: str
    status: Literal["passed", "failed", "denied", "unavailable"]
    exit_code: int | None = None
    output: str = ""
    duration_s: float = 0.0
    approval_wait_s: float = 0.0
    #: Declined at its approval with the user's words (the run revises its plan with them).
    feedback: str | None = None

    @classmethod
    def of(cls, command: str, run: StepRun) -> VerifyResult:
        """The outcome of the verify command's step: passed on exit code 0, else failed with the
        output's tail (or the tool's error); denied at its approval."""
        wait = run.approval_wait_s
        error = run.error or {}
        if run.status == "denied":
            said = str(error.get("message", "")) if error.get("type") == "feedback" else None
            return cls(command, "denied", output=str(error.get("message", "")), approval_wait_s=wait, feedback=said)
        out = run.output if isinstance(run.output, dict) else None
        if out is None or run.status not in ("ok", "failed") or (run.status == "failed" and "exit_code" not in error):
            text = tail_with_failures(strip_ansi(str(error.get("message", ""))), EXIT_TAIL_CHARS)
            return cls(command, "failed", output=text, duration_s=run.duration_s, approval_wait_s=wait)
        code = out.get("exit_code")
        text = tail_with_failures(strip_ansi(str(out.get("output") or "")).rstrip(), EXIT_TAIL_CHARS)
        status: Literal["passed", "failed"] = "passed" if code == 0 else "failed"
        return cls(command, status, exit_code=code if isinstance(code, int) else None, output=text,
                   duration_s=run.duration_s, approval_wait_s=wait)

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "status": self.status, "exit_code": self.exit_code,
                "output": self.output, "duration_s": round(self.duration_s, 3),
                "approval_wait_s": round(self.approval_wait_s, 3)}

    def payload(self, missing: MissingDependencyInfo | None = None) -> Verified:
        """The ``verify`` event's payload (``missing``: the dependency its environment lacked)."""
        # The field only when set: a verify event without it stays as every earlier record has it.
        extra = {} if missing is None else {"missing": missing}
        return Verified(command=self.command, status=self.status, exit_code=self.exit_code, output=self.output,
                        duration_s=round(self.duration_s, 3), approval_wait_s=round(self.approval_wait_s, 3),
                        **extra)


#: The pseudo step id of the verify command's approval and tool call in the run record.
VERIFY_STEP = "verify"
#: The tool that runs the verify command.
SHELL_TOOL = "run_shell"


def verify_step(command: str, timeout: float) -> Step:
    """The verify command as a step of the pipeline: ``run_shell`` once, under the pseudo id
    ``verify`` (outside the plan, so not validated as a plan's step)."""
    return Step.model_construct(id=VERIFY_STEP, title=f"verify: {command}"[:200], kind="tool", tool=SHELL_TOOL,
                                args={"command": command, "timeout": timeout}, retry=RetryPolicy(max_attempts=1))


#: How much of a failed command's output its step error keeps (the end, where the verdict is, and
#: the lines before it that report a failure).
EXIT_TAIL_CHARS = 4000


def exit_code_failure(output: Any, expected: list[int] | None) -> dict[str, Any] | None:
    """The step error for a process result (an output with an integer ``exit_code``, as
    ``run_shell`` returns) whose exit code is not ``expected`` (default: 0); None otherwise.
    The error holds the exit code and the tail of the output, colour codes removed."""
    if not isinstance(output, dict):
        return None
    code = output.get("exit_code")
    if not isinstance(code, int) or isinstance(code, bool):
        return None
    allowed = expected if expected else [0]
    if code in allowed:
        return None
    text = strip_ansi(str(output.get("output") or "")).rstrip()
    want = ", ".join(map(str, allowed))
    message = f"the command exited with code {code} (expected {want})"
    if text:
        message += ":\n" + tail_with_failures(text, EXIT_TAIL_CHARS)
    return {"type": "exit_code", "message": message, "exit_code": code}


def summarize_output(output: Any, limit: int = 1500) -> str:
    """A bounded text rendering of a step output, for prompts and tables."""
    text = output if isinstance(output, str) else json.dumps(output, default=str, ensure_ascii=False)
    if len(text) > limit:
        return text[:limit] + f"... [{len(text) - limit} more chars]"
    return text


__all__ = ["VERIFY_STEP", "Executor", "StepRun", "VerifyResult", "exit_code_failure", "summarize_output"]
