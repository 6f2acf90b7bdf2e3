"""Summaries of run records for `agent runs list` and `agent runs show`.

Everything here is derived from the run's record (:class:`~agentcli.record.reader.RunRecord`)
alone, so it works on a run that crashed (a torn last line is skipped with a warning) and on a
run still going.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentcli.errors import AgentError
from agentcli.record.events import RunStarted
from agentcli.record.reader import LATEST_RUN, RunRecord, find_run, run_paths

#: ``find_run`` (from the reader, which opens runs by it) is the one resolver of a run id: a full
#: id, a unique prefix of one, or ``last``.
__all__ = ["LATEST_RUN", "RunSummary", "changed_files", "find_run", "iso", "list_runs", "runs_root", "summarize"]


def runs_root(data_dir: Path) -> Path:
    return data_dir / "runs"


@dataclass
class RunSummary:
    """One row of `agent runs list`."""

    run_id: str
    started: float | None
    task: str
    status: str  # COMPLETE | FAILED | INTERRUPTED (no run_finished event: killed, or still going)
    reason: str
    #: The steps of the plan the run executed last (the steps recorded as finished when it has no plan).
    steps: int
    #: Its steps that finished ``ok``.
    steps_ok: int
    cost_usd: float
    unpriced_calls: int
    calls: int
    input_tokens: int
    output_tokens: int
    duration_s: float | None
    parent: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: Whether undo has something to restore: the run's checkpoints differ from first to last (a
    #: run cut short counts: its last step's changes were never checkpointed), and it is not undone.
    changed_files: bool = False

    @property
    def cut_short(self) -> bool:
        """Stopped before its end: killed (no end recorded) or interrupted (Ctrl-C)."""
        return self.status == "INTERRUPTED" or self.reason == "interrupted"

    @property
    def resume_command(self) -> str | None:
        """How to go on with a run cut short (``agent run --resume`` takes it from its last step)."""
        return f"agent run --resume {self.run_id}" if self.cut_short else None

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["started_iso"] = iso(self.started)
        return d


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def summarize(rec: RunRecord) -> RunSummary:
    """A summary from the record: costs and tokens are summed from the llm_call events."""
    steps = rec.steps
    plan = rec.last_plan
    planned = len(plan.steps) if plan is not None else 0
    last_time = rec.last_time
    started = rec.first(RunStarted)
    return RunSummary(
        run_id=rec.run_id,
        started=started.time if started else None,
        task=rec.task,
        status=rec.status,
        reason=rec.reason,
        steps=max(planned, len(steps)),
        steps_ok=sum(1 for s in steps.values() if s.status == "ok"),
        cost_usd=round(rec.cost_usd, 8),
        unpriced_calls=rec.unpriced_calls,
        calls=len(rec.calls),
        input_tokens=rec.input_tokens,
        output_tokens=rec.output_tokens,
        duration_s=None if started is None or last_time is None else round(last_time - started.time, 3),
        parent=rec.parent or None,
        warnings=rec.warnings,
        changed_files=changed_files(rec),
    )


def changed_files(rec: RunRecord) -> bool:
    """Whether `agent undo` of the run has anything to restore (see :attr:`RunSummary.changed_files`)."""
    from agentcli.record.checkpoints import run_checkpoints

    cps = run_checkpoints(rec)
    if cps.first is None or cps.capped is not None:
        return False
    if cps.undos and cps.undos[-1].get("kind") == "undo":
        return False
    return cps.first != cps.last or not cps.finished


def list_runs(data_dir: Path, limit: int | None = None) -> list[RunSummary]:
    """Newest first. Runs whose log cannot be read at all are listed with the error as reason."""
    paths = run_paths(data_dir)
    out = []
    for p in paths[:limit] if limit else paths:
        try:
            out.append(summarize(RunRecord.read(p)))
        except Exception as e:  # one unreadable run must not hide the others
            out.append(RunSummary(p.parent.name, None, "", "UNREADABLE", one_line(e)[:200], 0, 0, 0.0, 0, 0, 0, 0,
                                  None))
    return out


def one_line(e: Exception) -> str:
    return e.one_line() if isinstance(e, AgentError) else " ".join(f"{type(e).__name__}: {e}".split())
