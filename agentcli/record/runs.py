"""Reading run records back: summaries for `agent runs list`, details for `agent runs show`,
and the state a resumed run starts from.

Everything here is derived from ``events.jsonl`` alone, so it works on a run that
crashed (a torn last line is skipped with a warning) and on a run still going.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentcli.errors import UsageError
from agentcli.planning.plan import Plan
from agentcli.record.events import EVENTS_NAME, Recording, read_events


def runs_root(data_dir: Path) -> Path:
    return data_dir / "runs"


def find_run(data_dir: Path, run_id: str) -> Path:
    """The events file of a run, by full id or unique prefix."""
    root = runs_root(data_dir)
    exact = root / run_id / EVENTS_NAME
    if exact.is_file():
        return exact
    matches = sorted(p for p in root.glob(f"{run_id}*/{EVENTS_NAME}")) if root.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UsageError(f"run id '{run_id}' is ambiguous: {', '.join(m.parent.name for m in matches[:5])}")
    raise UsageError(f"no run '{run_id}' in {root}")


@dataclass
class RunSummary:
    """One row of `agent runs list`."""

    run_id: str
    started: float | None
    task: str
    status: str  # COMPLETE | FAILED | RUNNING/INTERRUPTED (no run_finished event)
    reason: str
    steps: int
    steps_ok: int
    cost_usd: float
    unpriced_calls: int
    calls: int
    input_tokens: int
    output_tokens: int
    duration_s: float | None
    parent: str | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["started_iso"] = iso(self.started)
        return d


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def summarize(rec: Recording) -> RunSummary:
    """A summary from events: costs and tokens are summed from the llm_call events."""
    started = rec.first("run_started")
    finished = None
    for e in rec.of_type("run_finished"):
        finished = e
    steps: dict[str, str] = {}
    for e in rec.of_type("step_finished"):
        if e.step_id:
            steps[e.step_id] = str(e.data.get("status"))
    calls = [e for e in rec.of_type("llm_call")]
    cost = sum(float(e.data["cost_usd"]) for e in calls if e.data.get("cost_usd") is not None)
    unpriced = sum(1 for e in calls if e.data.get("response") is not None and e.data.get("cost_usd") is None)
    usage = [e.data.get("usage") or {} for e in calls]
    status = str(finished.data.get("status")) if finished else "INTERRUPTED"
    last_time = rec.events[-1].time if rec.events else None
    return RunSummary(
        run_id=rec.run_id,
        started=started.time if started else None,
        task=str(started.data.get("task", "")) if started else "",
        status=status,
        reason=str(finished.data.get("reason", "")) if finished else "no run_finished event",
        steps=len(steps),
        steps_ok=sum(1 for s in steps.values() if s == "ok"),
        cost_usd=round(cost, 8),
        unpriced_calls=unpriced,
        calls=len(calls),
        input_tokens=sum(int(u.get("input_tokens", 0)) for u in usage),
        output_tokens=sum(int(u.get("output_tokens", 0)) for u in usage),
        duration_s=None if started is None or last_time is None else round(last_time - started.time, 3),
        parent=str(started.data.get("parent")) if started and started.data.get("parent") else None,
        warnings=rec.warnings,
    )


def list_runs(data_dir: Path, limit: int | None = None) -> list[RunSummary]:
    """Newest first. Runs whose log cannot be read at all are listed with the error as reason."""
    root = runs_root(data_dir)
    if not root.is_dir():
        return []
    paths = sorted((p for p in root.glob(f"*/{EVENTS_NAME}")), key=lambda p: p.parent.name, reverse=True)
    out = []
    for p in paths[:limit] if limit else paths:
        try:
            out.append(summarize(read_events(p)))
        except Exception as e:  # one unreadable run must not hide the others
            out.append(RunSummary(p.parent.name, None, "", "UNREADABLE", str(e)[:200], 0, 0, 0.0, 0, 0, 0, 0,
                                  None))
    return out


def last_plan(rec: Recording) -> Plan | None:
    """The plan the run was executing last (after any replans)."""
    plan = None
    for e in rec.of_type("plan_created"):
        plan = Plan.model_validate(e.data["plan"])
    return plan


@dataclass
class StepState:
    status: str
    output: Any
    error: Any
    attempts: int


def step_states(rec: Recording) -> dict[str, StepState]:
    """The last recorded outcome of every finished step."""
    out: dict[str, StepState] = {}
    for e in rec.of_type("step_finished"):
        if e.step_id:
            out[e.step_id] = StepState(str(e.data.get("status")), e.data.get("output"), e.data.get("error"),
                                       int(e.data.get("attempts", 0)))
    return out
