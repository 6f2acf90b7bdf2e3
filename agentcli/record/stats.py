"""Cost and usage reports from the run records: `agent runs stats` and the per-step costs of
`agent runs show`.

Everything is computed from each run's ``events.jsonl``:

* **calls, tokens, cost** are summed over the ``llm_call`` events: one per request sent, retries
  and failed attempts included, exactly the records of ``llm_calls.jsonl``. Cost is split into
  the known cost (USD) and the calls whose price was unknown (answered, but ``cost_usd`` is null:
  their tokens are counted, their cost is not guessed). Calls a replay or a fork served from a
  parent's recording (``replay_of`` runs; a fork's planner calls and the steps before its fork
  point) were not paid for again: they are left out and counted as ``replayed_calls``.
* **runs by outcome**: the ``run_finished`` status (COMPLETE / FAILED; INTERRUPTED when the run
  has none) and, for failures, the reason.
* **estimate error**: for each run whose plan was carried out as planned, the planner's estimate
  ``plan_created.plan.estimated_cost_usd`` (the sum of its ``llm`` steps' estimates; tool steps
  call no model and are estimated at 0) is compared with the actual cost of those ``llm`` steps:
  the ``cost_usd`` of every executor ``llm_call`` made for them, retries included. Argument
  corrections of tool steps, planner and reviewer calls are in neither number. A run is compared
  only when it has one plan (no re-plan), at least one ``llm`` step, every ``llm`` step finished
  ``ok``, and both numbers are known (priced). Reported: the mean signed error (actual -
  estimate; positive means the plan underestimated), the mean absolute error, and the mean
  absolute error relative to the estimate.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from agentcli.errors import UsageError
from agentcli.planning.plan import Plan, Step
from agentcli.record.events import LlmCall
from agentcli.record.reader import RunRecord, Typed, recorded_price, run_paths
from agentcli.record.runs import one_line

GroupBy = Literal["model", "day", "status"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(value: str, now: float | None = None) -> float:
    """``7d``, ``12h``, ``30m``, ``2w``, ``90s`` ago, or an ISO date/time (UTC unless it says), as a
    Unix time."""
    now = time.time() if now is None else now
    m = _DURATION.match(value)
    if m:
        # A window longer than the epoch is every run (and a date before 1970 cannot be shown).
        return max(0.0, now - float(m.group(1)) * _UNIT[m.group(2).lower()])
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(f"--since '{value}': give a duration (7d, 12h, 30m, 2w) or a date (2026-01-31)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return max(0.0, dt.timestamp())


def day_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


@dataclass
class Usage:
    """Calls, tokens and cost of a set of LLM calls (one group of the report, or all of them)."""

    key: str = "total"
    runs: int = 0
    calls: int = 0
    failed_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    unpriced_input_tokens: int = 0
    unpriced_output_tokens: int = 0
    #: Input tokens the provider served from its cache (its own count).
    cached_input_tokens: int = 0
    #: Input tokens a provider's prefix cache could serve (shared with an earlier request of the run).
    cacheable_tokens: int = 0
    #: What caching saved against the full input price.
    cache_saved_usd: float = 0.0
    _costs: list[float] = field(default_factory=list, repr=False)
    _saved: list[float] = field(default_factory=list, repr=False)
    _runs: set[str] = field(default_factory=set, repr=False)

    def add(self, call: Call) -> None:
        self._runs.add(call.run_id)
        self.calls += 1
        self.input_tokens += call.input_tokens
        self.output_tokens += call.output_tokens
        self.cached_input_tokens += call.cached_input_tokens
        self.cacheable_tokens += call.cacheable_tokens
        if call.saved_usd:
            self._saved.append(call.saved_usd)
        if not call.answered:
            self.failed_calls += 1
        elif call.cost_usd is None:
            self.unpriced_calls += 1
            self.unpriced_input_tokens += call.input_tokens
            self.unpriced_output_tokens += call.output_tokens
        if call.cost_usd is not None:
            self._costs.append(call.cost_usd)

    def add_run(self, run_id: str) -> None:
        self._runs.add(run_id)

    def finish(self) -> Usage:
        """Set the derived totals; the cost is an exactly rounded sum (math.fsum), whatever the order."""
        self.cost_usd = math.fsum(self._costs)
        self.cache_saved_usd = math.fsum(self._saved)
        self.runs = len(self._runs)
        return self

    @property
    def cache_hit_share(self) -> float:
        """The share of input tokens served from the provider's cache."""
        return self.cached_input_tokens / self.input_tokens if self.input_tokens else 0.0

    @property
    def cacheable_share(self) -> float:
        """The share of input tokens a prefix cache could serve."""
        return self.cacheable_tokens / self.input_tokens if self.input_tokens else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        d["cache_hit_share"] = round(self.cache_hit_share, 4)
        d["cacheable_share"] = round(self.cacheable_share, 4)
        return d


def run_usage(rec: RunRecord) -> Usage:
    """One run's calls summed (tokens, cost, what the cache served and saved)."""
    u = Usage(key=rec.run_id)
    for t in rec.calls:
        u.add(Call.from_event(t))
    return u.finish()


def cache_summary(u: Usage) -> str | None:
    """One line on prompt caching for a report, or None when there was no input."""
    if not u.input_tokens:
        return None
    line = (f"prompt cache: {u.cacheable_share:.0%} of {u.input_tokens} input tokens cacheable by prefix, "
            f"{u.cache_hit_share:.0%} served cached by the provider")
    if u.cache_saved_usd:
        line += f", saving ${u.cache_saved_usd:.6f}"
    return line


@dataclass(frozen=True)
class Call:
    """One ``llm_call`` event, as the report counts it."""

    run_id: str
    time: float
    model: str
    role: str
    step_id: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    answered: bool
    cached_input_tokens: int = 0
    cacheable_tokens: int = 0
    #: What the provider's cache saved on this call against the full input price.
    saved_usd: float = 0.0

    @classmethod
    def from_event(cls, t: Typed[LlmCall]) -> Call:
        d = t.data
        u = d.usage
        price = recorded_price(d.price)
        saved = 0.0
        if price is not None and d.cost_usd is not None:
            saved = max(0.0, price.cost(u.input_tokens, u.output_tokens) - d.cost_usd)
        return cls(t.event.run_id, t.time, d.model or "?", d.role or "?", t.step_id, u.input_tokens,
                   u.output_tokens, d.cost_usd, d.response is not None, u.cached_input_tokens,
                   d.cacheable_tokens, saved)


@dataclass
class EstimateError:
    """How far plans' cost estimates were from what their llm steps cost (see the module docstring)."""

    plans_compared: int = 0
    plans_skipped: int = 0
    estimated_usd: float = 0.0
    actual_usd: float = 0.0
    mean_error_usd: float | None = None
    mean_abs_error_usd: float | None = None
    mean_abs_relative_error: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunStats:
    """The whole report."""

    by: GroupBy
    since: float | None
    runs: int
    runs_by_status: dict[str, int]
    failure_reasons: dict[str, int]
    totals: Usage
    groups: list[Usage]
    estimate: EstimateError
    replayed_calls: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "by": self.by, "since": self.since,
            "since_iso": None if self.since is None else datetime.fromtimestamp(self.since, UTC).isoformat(
                timespec="seconds"),
            "runs": self.runs, "runs_by_status": self.runs_by_status, "failure_reasons": self.failure_reasons,
            "totals": self.totals.as_dict(), "groups": [g.as_dict() for g in self.groups],
            "estimate": self.estimate.as_dict(), "replayed_calls": self.replayed_calls,
            "warnings": self.warnings,
        }


# ----------------------------------------------------------------------- one run


def _plans(rec: RunRecord) -> list[Plan]:
    return [p.plan for p in rec.plans]


def plan_estimate_error(rec: RunRecord) -> tuple[float, float] | None:
    """(estimated, actual) USD of the run's llm steps, or None when the run is not comparable."""
    plans = _plans(rec)
    if len(plans) != 1 or rec.finish is None:
        return None
    plan = plans[0]
    estimate = plan.estimated_cost_usd
    llm_steps = {s.id for s in plan.steps if s.kind != "tool"}
    if estimate is None or not llm_steps:
        return None
    status = {sid: f.status for sid, f in rec.steps.items()}
    if any(status.get(sid) != "ok" for sid in llm_steps):
        return None
    costs: list[float] = []
    for c in rec.calls:
        if c.step_id in llm_steps and c.data.role == "executor" and c.data.response is not None:
            if c.data.cost_usd is None:
                return None
            costs.append(c.data.cost_usd)
    return float(estimate), math.fsum(costs)


# ----------------------------------------------------------------------- many runs


def _recordings(data_dir: Path, warnings: list[str]) -> Iterable[RunRecord]:
    for path in sorted(run_paths(data_dir)):
        try:
            rec = RunRecord.read(path)
        except Exception as e:  # one unreadable run must not hide the others
            warnings.append(f"{path.parent.name}: not counted: {one_line(e)[:200]}")
            continue
        warnings.extend(rec.warnings)
        yield rec


def compute_stats(data_dir: Path, *, since: float | None = None, by: GroupBy = "model") -> RunStats:
    """The report over every run in ``<data_dir>/runs`` that started at or after ``since``."""
    if by not in ("model", "day", "status"):
        raise UsageError(f"--by '{by}': one of model, day, status")
    warnings: list[str] = []
    totals = Usage()
    groups: dict[str, Usage] = {}
    by_status: dict[str, int] = {}
    reasons: dict[str, int] = {}
    errors: list[tuple[float, float]] = []
    skipped = 0
    replayed = 0
    n_runs = 0
    for rec in _recordings(data_dir, warnings):
        started = rec.started_at
        if started is None or (since is not None and started < since):
            continue
        n_runs += 1
        status, reason = rec.status, rec.reason
        by_status[status] = by_status.get(status, 0) + 1
        if status != "COMPLETE":
            reasons[reason] = reasons.get(reason, 0) + 1
        totals.add_run(rec.run_id)
        if by != "model":
            key = status if by == "status" else day_of(started)
            groups.setdefault(key, Usage(key)).add_run(rec.run_id)
        served = rec.served()
        for c in rec.calls:
            if served(c):
                replayed += 1
                continue
            call = Call.from_event(c)
            totals.add(call)
            key = call.model if by == "model" else status if by == "status" else day_of(call.time)
            groups.setdefault(key, Usage(key)).add(call)
        if _plans(rec):
            pair = plan_estimate_error(rec)
            if pair is None:
                skipped += 1
            else:
                errors.append(pair)
    est = EstimateError(plans_compared=len(errors), plans_skipped=skipped)
    if errors:
        est.estimated_usd = math.fsum(e for e, _ in errors)
        est.actual_usd = math.fsum(a for _, a in errors)
        est.mean_error_usd = math.fsum(a - e for e, a in errors) / len(errors)
        est.mean_abs_error_usd = math.fsum(abs(a - e) for e, a in errors) / len(errors)
        rel = [abs(a - e) / e for e, a in errors if e > 0]
        est.mean_abs_relative_error = math.fsum(rel) / len(rel) if rel else None
    totals.finish()
    for g in groups.values():
        g.finish()
    ordered = sorted(groups.values(), key=lambda g: g.key if by == "day" else (-g.cost_usd, -g.calls, g.key))
    return RunStats(by=by, since=since, runs=n_runs, runs_by_status=dict(sorted(by_status.items())),
                    failure_reasons=dict(sorted(reasons.items(), key=lambda kv: -kv[1])), totals=totals,
                    groups=ordered, estimate=est, replayed_calls=replayed, warnings=warnings)


# ----------------------------------------------------------------------- per step


@dataclass
class StepCost:
    """One row of the per-step cost breakdown of `agent runs show`."""

    step_id: str
    title: str
    kind: str  # tool | llm | investigate | planner | reviewer
    tool: str | None
    status: str
    calls: int
    estimated_cost_usd: float | None
    cost_usd: float | None  # None: some answered call had no known price

    @property
    def error_usd(self) -> float | None:
        if self.estimated_cost_usd is None or self.cost_usd is None:
            return None
        return self.cost_usd - self.estimated_cost_usd

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "error_usd": self.error_usd}


def _cost_of(calls: list[Typed[LlmCall]]) -> float | None:
    if any(c.data.response is not None and c.data.cost_usd is None for c in calls):
        return None
    return math.fsum(c.data.cost_usd for c in calls if c.data.cost_usd is not None)


def step_costs(rec: RunRecord) -> list[StepCost]:
    """Estimated vs actual cost of every step (any plan of the run), then the planner's and the
    reviewer's calls. Actual = the ``cost_usd`` of the step's ``llm_call`` events (retries and
    argument corrections included); estimated = the plan's ``estimated_cost_usd`` for the step."""
    plans = _plans(rec)
    steps: dict[str, Step] = {}
    for plan in plans:
        for s in plan.steps:
            steps[s.id] = s
    status = rec.step_status()
    order = list(status)
    for s in plans[-1].steps if plans else []:
        if s.id not in order:
            order.append(s.id)
    calls: dict[str | None, list[Typed[LlmCall]]] = {}
    by_role: dict[str, list[Typed[LlmCall]]] = {}
    for c in rec.calls:
        if c.step_id:
            calls.setdefault(c.step_id, []).append(c)
        else:
            by_role.setdefault(c.data.role, []).append(c)
    rows = []
    for sid in order:
        st = steps.get(sid)
        mine = calls.get(sid, [])
        rows.append(StepCost(sid, st.title if st else "", st.kind if st else "?", st.tool if st else None,
                             status.get(sid, "not run"), len(mine), st.estimated_cost_usd if st else None,
                             _cost_of(mine)))
    for role in ("planner", "reviewer"):
        mine = by_role.pop(role, [])
        if mine:
            rows.append(StepCost(f"({role})", f"{role} calls", role, None, "-", len(mine), None, _cost_of(mine)))
    for role, mine in by_role.items():
        rows.append(StepCost(f"({role})", f"{role} calls", role, None, "-", len(mine), None, _cost_of(mine)))
    return rows
