"""The composition root: everything one run needs, built from config in one place.

:class:`RunSession` builds, in this order and nowhere else: the run's folder and its
:class:`~agentcli.record.events.EventLog`, the budget (its checks recorded), the LLM client
complete at construction (the per-call log ``llm_calls.jsonl``, the budget as its guard, the
budget and the ``llm_call`` recorder as its observers), the tool registry, the approver, memory
(its events recorded in the run's log), OpenTelemetry (a listener of the log), the
``[[hooks]]`` and the workspace checkpoints. ``agent run``,
``--resume``, ``agent replay`` and its forks, the benchmarks and the tests all build their runs
through it, so a fork or a resumed run gets what a fresh run gets.

Every outside input of a run is a port given here or built here: the model backend, the tool
registry, the approver, the hooks' results (``hook_results``), the workspace probe
(``workspace``), and, through :meth:`RunSession.deps`, the planner, the plan's confirmation and
the decision on uncertain steps. A replay hands in the recorded implementation of each port;
everything else is built the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agentcli.config import Config, Settings
from agentcli.engine.approval import Approver
from agentcli.engine.budget import Budget, BudgetCheck
from agentcli.engine.executor import StepRun
from agentcli.engine.hooks import HookResults, Hooks
from agentcli.engine.runner import ConfirmFn, PlanFn, ResumeState, RunDeps, WorkspaceProbe
from agentcli.engine.workspace import CheckpointChanges
from agentcli.errors import WorkspaceError
from agentcli.models.calllog import LLM_LOG_NAME, CallLog
from agentcli.models.client import LLMClient
from agentcli.models.types import CallRecord, ModelBackend
from agentcli.record.events import (
    EVENTS_NAME,
    PAYLOADS,
    BudgetChecked,
    EventLog,
    LlmCall,
    RecordedPrice,
    RecordedRequest,
    RecordedResponse,
    RecordedUsage,
)
from agentcli.tools import ToolRegistry

#: Called with every session built (tests replay every run they recorded; see tests/conftest.py).
BUILT: list[Callable[[RunSession], None]] = []


def ensure_data_dir(settings: Settings) -> Path:
    try:
        return settings.ensure_data_dir()
    except OSError as e:
        raise WorkspaceError(f"data dir '{settings.data_dir}' cannot be created: {e.strerror}") from None


def llm_call_recorder(events: EventLog) -> Callable[[CallRecord], None]:
    """The client observer that records every request (and its answer) as an ``llm_call`` event."""
    def record(rec: CallRecord) -> None:
        req = rec.request
        resp = rec.response
        price = rec.price
        events.emit(LlmCall(
            call_id=rec.call_id, attempt=rec.attempt, role=rec.role, outcome=rec.outcome,
            request_hash=rec.request_hash, model=req.model,
            request=RecordedRequest(messages=req.messages, response_format=req.response_format, tools=req.tools,
                                    max_tokens=req.max_tokens, temperature=req.temperature, seed=req.seed,
                                    # Only when set (an extra field): older records stay as they were.
                                    **({"tool_choice": req.tool_choice} if req.tool_choice else {})),
            response=None if resp is None else RecordedResponse(
                text=resp.text, tool_calls=[c.model_dump() for c in resp.tool_calls],
                input_tokens=resp.input_tokens, output_tokens=resp.output_tokens, model=resp.model,
                finish_reason=resp.finish_reason, cached_input_tokens=resp.cached_input_tokens,
                cache_write_tokens=resp.cache_write_tokens,
            ),
            usage=RecordedUsage.model_validate(rec.usage.model_dump()),
            cost_usd=rec.cost_usd, latency_ms=round(rec.latency_ms, 3), error_type=rec.error_type, error=rec.error,
            price=None if price is None else RecordedPrice.model_validate(price.as_dict()),
            profile=rec.profile, cacheable_tokens=rec.cacheable_tokens,
        ), step_id=rec.step_id)
    return record


def budget_recorder(events: EventLog) -> Callable[[BudgetCheck], None]:
    """The budget listener that records every check as a ``budget_check`` event."""
    def record(check: BudgetCheck) -> None:
        events.emit(BudgetChecked(kind=check.kind, ok=check.ok, which=check.which, **check.detail),
                    step_id=check.detail.get("step_id"))
    return record


def memory_recorder(events: EventLog) -> Callable[[str, dict[str, Any]], None]:
    """Memory's event sink: its ``memory_recall`` / ``memory_write`` payloads, typed, into the run's log."""
    def record(kind: str, payload: dict[str, Any]) -> None:
        events.emit(PAYLOADS[kind].model_validate(payload))
    return record


def build_llm_client(
    settings: Settings,
    run_id: str,
    *,
    log_json: bool = False,
    backend: ModelBackend | None = None,
) -> LLMClient:
    """An LLM client for a command that is not a run (``agent ask``, ``agent plan``): its per-call
    records go to the run id's folder (and stderr with --log-json)."""
    data = ensure_data_dir(settings)
    log = CallLog(data / "runs" / run_id / LLM_LOG_NAME, stderr=log_json or settings.config.logging.json_stderr)
    return LLMClient(settings.config, backend=backend, call_log=log, run_id=run_id)


class RunSession:
    """Everything one run needs (see the module docstring). Close it when the run is over."""

    def __init__(self, settings: Settings, run_id: str, *, config: Config | None = None,
                 backend: ModelBackend | None = None, registry: ToolRegistry | None = None,
                 approver: Approver | None = None, runs_dir: Path | None = None, memory: Any = True,
                 telemetry: bool = True, log_json: bool = False, resume: ResumeState | None = None,
                 extra_start: dict[str, Any] | None = None, hooks: bool = True,
                 hook_results: HookResults | None = None, checkpoints: bool = True,
                 workspace: WorkspaceProbe | None = None,
                 on_warning: Callable[[str], None] | None = None, resumed_from: Any = None,
                 sleep: Callable[[float], Awaitable[Any]] | None = None) -> None:
        self.settings = settings
        self.config = config if config is not None else settings.config
        self.run_id = run_id
        self.resume = resume
        self.extra_start = dict(extra_start or {})
        root = runs_dir if runs_dir is not None else ensure_data_dir(settings) / "runs"
        self.run_dir = root / run_id
        self.events = EventLog(self.run_dir / EVENTS_NAME, run_id, start_seq=resume.last_seq if resume else 0)
        self.telemetry = None
        if telemetry and self.config.telemetry.exporter != "none":  # off: OpenTelemetry is not even imported
            from agentcli.record.telemetry import start_run_telemetry

            self.telemetry = start_run_telemetry(self.config.telemetry)
            if self.telemetry is not None:
                self.events.listeners.append(self.telemetry.listener)
        #: The clock retries wait on, the client's and the steps' (a replay's need not wait).
        self.sleep: Callable[[float], Awaitable[Any]] = sleep or asyncio.sleep
        self.budget = Budget(self.config.budget)
        self.budget.listeners.append(budget_recorder(self.events))
        self.call_log = CallLog(self.run_dir / LLM_LOG_NAME,
                                stderr=log_json or self.config.logging.json_stderr)
        self.client = LLMClient(self.config, backend=backend, call_log=self.call_log, run_id=run_id,
                                guard=self.budget.check_llm_call, headroom=self.budget.output_headroom,
                                observers=[self.budget.observe, llm_call_recorder(self.events)],
                                sleep=self.sleep)
        self.approver = approver if approver is not None else Approver(self.config.approval)
        self.registry = registry
        self.memory: Any = None
        if memory is True and self.config.memory.enabled:
            from agentcli.memory import open_memory

            self.memory = open_memory(settings, on_event=memory_recorder(self.events),
                                      on_warning=on_warning)
        elif memory not in (True, False, None):
            self.memory = memory  # given (tests: an episode sink)
        #: ``[[hooks]]`` commands around tool calls and the run's end (``hooks``: built from config;
        #: ``hook_results``: where their results come from instead of running them, a replay's record).
        self.hooks: Hooks | None = None
        if hooks and self.config.hooks:
            self.hooks = Hooks(self.config.hooks, settings.workspace, self.events, run_id,
                               sandbox=self.config.sandbox, data_dir=settings.data_dir,
                               env_allow=self.config.tools.shell_env_allow, results=hook_results,
                               protected=registry.ctx.protected if registry is not None else ())
        #: Workspace checkpoints around the steps that may change it (``[checkpoints] enabled``).
        self.checkpoints: Any = None
        if checkpoints and self.config.checkpoints.enabled:
            from agentcli.record.checkpoints import Checkpointer, ShadowRepo

            repo = ShadowRepo(settings.workspace, settings.data_dir, self.config.tools.max_file_bytes,
                              self.config.checkpoints.max_files)
            # A resumed run continues the checkpoints it already has (``resumed_from``: its record).
            self.checkpoints = (Checkpointer.resuming(repo, self.events, resumed_from, on_warning)
                                if resumed_from is not None
                                else Checkpointer(repo, self.events, run_id, on_warning=on_warning))
        #: The workspace's changes (the run's checkpoints, unless a probe is given: a replay's record).
        self.workspace: WorkspaceProbe | None = workspace
        if workspace is None and self.checkpoints is not None:
            self.workspace = CheckpointChanges(self.checkpoints)
        self._closed = False
        for hook in BUILT:
            hook(self)

    @classmethod
    async def open(cls, settings: Settings, run_id: str, *, mcp: bool = True, **kwargs: Any) -> RunSession:
        """A session whose registry is built from settings (built-ins, plugins, MCP servers)."""
        from agentcli.tools import build_registry

        registry = kwargs.pop("registry", None) or await build_registry(settings, mcp=mcp)
        return cls(settings, run_id, registry=registry, **kwargs)

    @property
    def events_path(self) -> Path:
        return self.run_dir / EVENTS_NAME

    def deps(self, planner: PlanFn, confirm: ConfirmFn, *, on_step: Callable[[StepRun], None] | None = None,
             **extra: Any) -> RunDeps:
        """The runner's dependencies, with the run's planner and confirmation."""
        assert self.registry is not None, "a run needs a tool registry"
        working = getattr(self.memory, "working", None)
        step_hook = on_step
        if working is not None:
            def step_hook(run: StepRun) -> None:
                if run.status == "ok":  # what the run has learnt so far, for recalls in later steps
                    working.add_step(run.step.id, run.step.title, run.output)
                if on_step is not None:
                    on_step(run)
        return RunDeps(config=self.config, registry=self.registry, client=self.client, approver=self.approver,
                       events=self.events, planner=planner, confirm=confirm, run_id=self.run_id,
                       on_step=step_hook, budget=self.budget, resume=self.resume, memory=self.memory,
                       extra_start=self.extra_start, hooks=self.hooks,
                       checkpoints=self.checkpoints, workspace=self.workspace, sleep=self.sleep, **extra)

    def close(self) -> None:
        """Close the log, the call log and telemetry (the registry is closed by :meth:`aclose`)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.events.close()
            self.call_log.close()
        finally:
            if self.telemetry is not None:
                self.telemetry.shutdown()

    async def aclose(self) -> None:
        """:meth:`close`, and stop the registry's MCP servers."""
        try:
            self.close()
        finally:
            if self.registry is not None:
                await self.registry.aclose()
