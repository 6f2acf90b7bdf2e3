"""The one reader of run records: a run's ``events.jsonl`` as typed data.

:class:`RunRecord` is what every consumer of a record uses (`runs list/show`, `runs stats`,
``--resume``, replay and forks, ``--export-trace``, the task suite): the start, the plan(s) with
the planner calls that made them, the steps and their outputs, the LLM calls, tool calls and
approvals, the cost, the finish and, for a fork, where it was cut. Each event's ``data`` is
validated once, here, into the payload model of its type (:data:`~agentcli.record.events.PAYLOADS`);
no other module takes event dicts apart.

Damage is contained: a torn or corrupt line is skipped with a warning (by
:func:`~agentcli.record.events.read_events`), and an event whose payload does not fit its type is
skipped with the one-line warning ``event N of RUN is malformed: ...``; everything else reads.
Records of schema 1 read as they are: every field a writer may have left out has a default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from agentcli.errors import AgentError, ConfigError, UsageError
from agentcli.models.types import CallRecord, ModelRequest, ModelResponse, Price, ToolCall, Usage
from agentcli.planning.plan import Plan
from agentcli.record.events import (
    EVENTS_NAME,
    PAYLOADS,
    ApprovalMade,
    Event,
    LlmCall,
    Payload,
    PlanCreated,
    RecordedPrice,
    Recording,
    RunFinished,
    RunStarted,
    StepFinished,
    ToolCalled,
    TransitionMade,
    UserSaid,
    first_error,
    read_events,
)

P = TypeVar("P", bound=Payload)


class MalformedEvent(AgentError):
    """An event whose payload does not fit its type."""


def payload_of(event: Event) -> Payload:
    """The event's ``data`` as its type's payload model; :class:`MalformedEvent` (one line) if it
    does not fit."""
    model = PAYLOADS[event.type]
    try:
        return model.model_validate(event.data)
    except ValidationError as e:
        raise MalformedEvent(f"event {event.seq} of {event.run_id} is malformed: {first_error(e)}") from None


@dataclass(frozen=True)
class Typed(Generic[P]):
    """One event with its typed payload."""

    event: Event
    data: P

    @property
    def seq(self) -> int:
        return self.event.seq

    @property
    def time(self) -> float:
        return self.event.time

    @property
    def step_id(self) -> str | None:
        return self.event.step_id

    @property
    def type(self) -> str:
        return self.event.type


@dataclass(frozen=True)
class RecordedPlan:
    """A plan as the run recorded it, with the planner calls that produced it."""

    plan: Plan
    replan: bool
    seq: int
    planner_calls: list[CallRecord]
    #: A re-plan the user asked for (feedback or a steer).
    by_user: bool = False


@dataclass(frozen=True)
class ForkCut:
    """Where a fork left its parent: steps before ``from_step`` (in plan order) were served from
    the parent's recording, the rest ran live."""

    parent: str
    from_step: str
    order: dict[str, int]

    @property
    def cut(self) -> int:
        return self.order.get(self.from_step, 0)

    def live(self, step_id: str | None) -> bool:
        """Whether a call in ``step_id`` ran live (run-level calls always do)."""
        return step_id is None or self.order.get(step_id, 0) >= self.cut


def step_order(plans: list[Plan]) -> dict[str, int]:
    """Each step id's position: in the last plan, else in the first plan that has it."""
    order = {s.id: i for i, s in enumerate(plans[-1].steps)} if plans else {}
    for p in plans:
        for i, s in enumerate(p.steps):
            order.setdefault(s.id, i)
    return order


def call_record(call: Typed[LlmCall]) -> CallRecord:
    """An llm_call event back as the CallRecord that produced it."""
    d = call.data
    r = d.request
    req = ModelRequest(model=d.model, messages=r.messages, max_tokens=r.max_tokens, temperature=r.temperature,
                       seed=r.seed, response_format=r.response_format, tools=r.tools,
                       tool_choice=(r.model_extra or {}).get("tool_choice"))
    resp = None if d.response is None else response_of(d)
    return CallRecord(d.call_id, d.attempt, d.role, call.step_id, req, d.request_hash, resp,
                      Usage(input_tokens=d.usage.input_tokens, output_tokens=d.usage.output_tokens,
                            cached_input_tokens=d.usage.cached_input_tokens,
                            cache_write_tokens=d.usage.cache_write_tokens),
                      d.cost_usd, d.latency_ms, d.outcome, d.error_type, d.error, profile=d.profile,
                      price=recorded_price(d.price), cacheable_tokens=d.cacheable_tokens)


def recorded_price(p: RecordedPrice | None) -> Price | None:
    """A recorded price back as the :class:`Price` the run used."""
    return None if p is None else Price(p.input, p.output, cache_read=p.cache_read, cache_write=p.cache_write)


def response_of(d: LlmCall) -> ModelResponse:
    """The recorded response of a call that was answered."""
    r = d.response
    assert r is not None
    return ModelResponse(text=r.text, tool_calls=[ToolCall.model_validate(c) for c in r.tool_calls],
                         input_tokens=r.input_tokens, output_tokens=r.output_tokens, model=r.model,
                         finish_reason=r.finish_reason, cached_input_tokens=r.cached_input_tokens,
                         cache_write_tokens=r.cache_write_tokens)


class RunRecord:
    """One run's record, read back and typed (see the module docstring)."""

    def __init__(self, rec: Recording, path: Path | None = None) -> None:
        self.run_id = rec.run_id
        self.path = path
        #: Every well-formed event (the raw envelope), in order.
        self.events: list[Event] = []
        self.items: list[Typed[Any]] = []
        self.warnings: list[str] = list(rec.warnings)
        self._unplanned: list[CallRecord] = []
        for e in rec.events:
            try:
                self.items.append(Typed(e, payload_of(e)))
            except MalformedEvent as err:
                self.warnings.append(err.one_line())
                continue
            self.events.append(e)

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        """Read ``events.jsonl`` at ``path`` (damaged lines and events skipped with a warning)."""
        return cls(read_events(path), path)

    def before(self, seq: int) -> RunRecord:
        """The record as it was before event ``seq`` (the state a resumption started from)."""
        return RunRecord(Recording(self.run_id, [e for e in self.events if e.seq < seq]), self.path)

    @classmethod
    def open(cls, data_dir: Path, run_id: str) -> RunRecord:
        """The run ``run_id`` (or a unique prefix of it) under ``data_dir``."""
        return cls.read(find_run(data_dir, run_id))

    # ------------------------------------------------------------- by type

    def of(self, kind: type[P]) -> list[Typed[P]]:
        """The events of one payload type, in order."""
        return [t for t in self.items if type(t.data) is kind]

    def first(self, kind: type[P]) -> Typed[P] | None:
        return next((t for t in self.items if type(t.data) is kind), None)

    def last(self, kind: type[P]) -> Typed[P] | None:
        return next((t for t in reversed(self.items) if type(t.data) is kind), None)

    def __iter__(self) -> Iterator[Typed[Any]]:
        return iter(self.items)

    # ------------------------------------------------------------- the run

    @property
    def start(self) -> RunStarted | None:
        """The first ``run_started`` (a resumed run has more; see :attr:`resumed`)."""
        t = self.first(RunStarted)
        return None if t is None else t.data

    @property
    def started_at(self) -> float | None:
        t = self.first(RunStarted)
        if t is not None:
            return t.time
        return self.events[0].time if self.events else None

    @property
    def last_time(self) -> float | None:
        return self.events[-1].time if self.events else None

    @property
    def last_seq(self) -> int:
        return self.events[-1].seq if self.events else 0

    @property
    def task(self) -> str:
        start = self.start
        return start.task if start is not None else ""

    @property
    def resumed(self) -> int:
        """How many times the run was resumed."""
        return max(0, len(self.of(RunStarted)) - 1)

    @property
    def finish(self) -> RunFinished | None:
        """The last ``run_finished`` (None: the run was interrupted, or is still going)."""
        t = self.last(RunFinished)
        return None if t is None else t.data

    @property
    def status(self) -> str:
        f = self.finish
        return "INTERRUPTED" if f is None else f.status

    @property
    def reason(self) -> str:
        f = self.finish
        return "no end recorded: killed, or still going" if f is None else f.reason

    def recorded_config(self, data: dict[str, Any] | object | None = ...) -> Any:
        """The config the run ran with (:class:`~agentcli.config.Config`), or the one ``data`` holds
        (a resumed part's). A recorded config this version no longer accepts is a
        :class:`~agentcli.errors.ConfigError` naming the run, never a validation traceback."""
        from agentcli.config import Config

        if data is ...:
            start = self.start
            if start is None:
                raise AgentError(f"run {self.run_id} has no run_started event")
            data = start.config
        if data is None:
            return Config()
        try:
            return Config.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err.get("loc", ()))
            raise ConfigError(f"run {self.run_id} recorded a config this agentcli does not accept "
                              f"({loc}: {err.get('msg', 'invalid')}); it cannot be replayed with it") from None

    # ------------------------------------------------------------- plans and steps

    @cached_property
    def plans(self) -> list[RecordedPlan]:
        """Each plan in order (a re-plan's already merged), with the planner calls before it."""
        out: list[RecordedPlan] = []
        calls: list[CallRecord] = []
        for t in self.items:
            d = t.data
            if type(d) is LlmCall and d.role == "planner":
                calls.append(call_record(t))
            elif type(d) is PlanCreated:
                try:
                    plan = Plan.model_validate(d.plan)
                except ValidationError as e:
                    self.warnings.append(f"event {t.seq} of {self.run_id} is malformed: plan.{first_error(e)}")
                    continue
                plan.source = d.source  # said by the event, not the plan's JSON (see Plan.source)
                out.append(RecordedPlan(plan, d.replan, t.seq, calls, d.by_user))
                calls = []
        self._unplanned = calls
        return out

    @property
    def unplanned_calls(self) -> list[CallRecord]:
        """The planner calls after the last plan: a planning that failed (the run's end says why)."""
        _ = self.plans
        return self._unplanned

    @property
    def last_plan(self) -> Plan | None:
        """The plan the run was executing last (after any re-plans)."""
        return self.plans[-1].plan if self.plans else None

    @property
    def replans(self) -> int:
        """The re-plans that count against ``budget.max_replans`` (not those the user asked for)."""
        return sum(1 for p in self.plans if p.replan and not p.by_user)

    @property
    def user_messages(self) -> list[Typed[UserSaid]]:
        """The user's feedback and steering messages, in order (see :mod:`agentcli.engine.steering`)."""
        return self.of(UserSaid)

    @cached_property
    def steps(self) -> dict[str, StepFinished]:
        """The last recorded outcome of every finished step, in the order steps finished first."""
        out: dict[str, StepFinished] = {}
        for t in self.of(StepFinished):
            if t.step_id:
                out[t.step_id] = t.data
        return out

    def step_status(self) -> dict[str, str]:
        """Every step seen: ``running`` once started, then its last finish status, in first-seen order."""
        out: dict[str, str] = {}
        for t in self.items:
            if t.step_id and t.type in ("step_started", "step_finished"):
                out[t.step_id] = t.data.status if type(t.data) is StepFinished else "running"
        return out

    def transitions(self) -> list[Typed[TransitionMade]]:
        return self.of(TransitionMade)

    def confirmations(self) -> list[bool]:
        """Whether each recorded plan was confirmed (planning went on to execution)."""
        return [confirmed for _, confirmed in self.confirmations_at()]

    def confirmations_at(self) -> list[tuple[int, bool]]:
        """:meth:`confirmations`, each with the sequence number of its event."""
        return [(t.seq, t.data.to == "EXECUTING") for t in self.of(TransitionMade)
                if t.data.src in ("PLANNING", "REPLANNING")]

    def confirmations_of_plans(self) -> dict[str, list[tuple[int, bool]]]:
        """:meth:`confirmations_at` by the hash of the plan each was about (the last plan made
        before it): a plan's own answer, whether or not the plans between were asked about."""
        out: dict[str, list[tuple[int, bool]]] = {}
        last: str | None = None
        for t in self.items:
            d = t.data
            if type(d) is PlanCreated:
                h = d.plan.get("hash")
                last = h if isinstance(h, str) else None
            elif type(d) is TransitionMade and d.src in ("PLANNING", "REPLANNING") and last is not None:
                out.setdefault(last, []).append((t.seq, d.to == "EXECUTING"))
        return out

    # ------------------------------------------------------------- calls, tools, approvals, cost

    @cached_property
    def calls(self) -> list[Typed[LlmCall]]:
        return self.of(LlmCall)

    def call_records(self) -> list[CallRecord]:
        return [call_record(c) for c in self.calls]

    @property
    def tool_calls(self) -> list[Typed[ToolCalled]]:
        return self.of(ToolCalled)

    @property
    def approvals(self) -> list[Typed[ApprovalMade]]:
        return self.of(ApprovalMade)

    @property
    def cost_usd(self) -> float:
        """The known cost of every call (unpriced ones count zero; see :attr:`unpriced_calls`)."""
        return sum(c.data.cost_usd for c in self.calls if c.data.cost_usd is not None)

    @property
    def unpriced_calls(self) -> int:
        return sum(1 for c in self.calls if c.data.response is not None and c.data.cost_usd is None)

    @property
    def input_tokens(self) -> int:
        return sum(c.data.usage.input_tokens for c in self.calls)

    @property
    def output_tokens(self) -> int:
        return sum(c.data.usage.output_tokens for c in self.calls)

    # ------------------------------------------------------------- forks and replays

    @property
    def parent(self) -> str | None:
        start = self.start
        return start.parent if start is not None else None

    @cached_property
    def fork(self) -> ForkCut | None:
        """Where this run was forked from its parent (None: not a fork)."""
        start = self.start
        if start is None or not (start.parent and start.fork_from):
            return None
        return ForkCut(start.parent, start.fork_from, step_order([p.plan for p in self.plans]))

    def served(self) -> Callable[[Typed[LlmCall]], bool]:
        """A predicate: was this call served from a parent's recording (not paid again)? A replay's
        calls all were; a fork's planner calls and the steps before its cut were."""
        start = self.start
        if start is not None and start.replay_of:
            return lambda c: True
        fork = self.fork
        if fork is None:
            return lambda c: False
        return lambda c: c.data.role == "planner" or (c.step_id is not None and not fork.live(c.step_id))


#: Words that name the newest run wherever a run id is asked for (ids start with a digit).
LATEST_RUN = ("last", "latest")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def find_run(data_dir: Path, run_id: str) -> Path:
    """The events file of a run, by full id, unique prefix, or ``last`` (the newest run): the one
    resolver of a run id every command uses.

    A run id is a folder name of ``<data_dir>/runs``: anything else (a path, glob characters,
    a name too long for the file system) is a usage error, never a path to follow."""
    return find_record(data_dir / "runs", run_id, EVENTS_NAME, _RUN_ID, noun="run", listing="agent runs list")


def find_record(root: Path, key: str, file_name: str, pattern: re.Pattern[str], *, noun: str, listing: str) -> Path:
    """The record file ``root/<id>/file_name`` named by ``key``: a full id, a unique prefix, or
    ``last`` (the newest record). A key ``pattern`` does not match is a usage error, never a path to
    follow; so is an unknown or ambiguous one (runs and sessions are found the same way)."""
    if key in LATEST_RUN:
        paths = sorted(root.glob(f"*/{file_name}"), key=lambda p: p.parent.name, reverse=True) if root.is_dir() else []
        if not paths:
            raise UsageError(f"no {noun}s yet in {root}")
        return newest_record(paths)
    if not pattern.match(key):
        raise UsageError(f"'{key[:80]}' is not a {noun} id (see {listing})")
    exact = root / key / file_name
    if exact.is_file():
        return exact
    try:
        names = sorted(p.name for p in root.iterdir() if p.name.startswith(key)) if root.is_dir() else []
    except OSError as e:
        raise UsageError(f"cannot read {root}: {e.strerror}") from None
    matches = [root / n / file_name for n in names if (root / n / file_name).is_file()]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UsageError(f"{noun} id '{key}' is ambiguous: {', '.join(m.parent.name for m in matches[:5])}")
    raise UsageError(f"no {noun} '{key}' in {root}")


def _started(path: Path) -> float:
    """When a run's record began (its first line's time; 0 when that cannot be read)."""
    try:
        with path.open("rb") as f:
            return float(json.loads(f.readline()).get("time", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0.0


def newest_record(paths: list[Path]) -> Path:
    """The newest record of ``paths`` (sorted newest id first; a run's or a session's): ids are to
    the second, then random, so those of the same second as the first are told apart by when their
    records began."""
    second = paths[0].parent.name.rsplit("-", 1)[0]
    same = [p for p in paths if p.parent.name.rsplit("-", 1)[0] == second]
    return paths[0] if len(same) == 1 else max(same, key=_started)


def run_paths(data_dir: Path) -> list[Path]:
    """Every run's events file under ``data_dir``, newest id first."""
    root = data_dir / "runs"
    if not root.is_dir():
        return []
    return sorted(root.glob(f"*/{EVENTS_NAME}"), key=lambda p: p.parent.name, reverse=True)


__all__ = ["ForkCut", "MalformedEvent", "RecordedPlan", "RunRecord", "Typed", "call_record", "find_record", "find_run",
           "newest_record", "payload_of", "recorded_price", "response_of", "run_paths", "step_order"]
