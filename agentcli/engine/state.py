"""The state of one run, and what a phase of the run decides next.

:class:`RunState` is everything a run has reached: its plan, its step records, its state
machine, its reviews so far, its answer and the workspace's changes. One owner holds it: the
run's loop (:mod:`agentcli.engine.runner`). Each phase (planning, executing, reviewing,
verifying, re-planning) does its work and returns a :class:`Next`, the state to move to and
why; only the loop moves the machine. Step records change in two places only: the step
pipeline (:mod:`agentcli.engine.executor`) writes the outcome of the step it runs, and the
methods here say what the run keeps of them across a re-plan or a "continue" verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentcli.engine.executor import StepRun, VerifyResult
from agentcli.engine.fsm import State, StateMachine
from agentcli.engine.reviewer import ReviewHistory
from agentcli.engine.workspace import WorkspaceChanges
from agentcli.planning.plan import Plan

__all__ = ["Next", "RunState"]


@dataclass(frozen=True)
class Next:
    """What a phase decided: the state the loop moves the machine to, and why (the transition's
    reason; for REPLANNING, also the reason the planner is given)."""

    state: State
    reason: str


@dataclass
class RunState:
    """One run's state (see the module docstring)."""

    machine: StateMachine = field(default_factory=StateMachine)
    plan: Plan | None = None
    #: Every step of the plan (and the completed steps of earlier plans), in plan order.
    runs: dict[str, StepRun] = field(default_factory=dict)
    #: The run's reviews as one conversation (each continues the last: a cached prefix).
    reviews: ReviewHistory = field(default_factory=ReviewHistory)
    answer: str = ""
    #: With an output schema: the answer as JSON.
    data: Any = None
    #: The workspace's changes as last read (None: unknown).
    changes: WorkspaceChanges | None = None
    #: The verify command's outcome, if it ran.
    verified: VerifyResult | None = None
    #: The review was left to the facts (``review.mode = "auto"``): the verify command's pass ends the
    #: run; if it cannot run (declined, unavailable), the reviewer judges after all.
    facts_pending: bool = False
    #: That verify command could not run: the review that follows ends the run without asking again.
    verify_unavailable: bool = False

    # ----------------------------------------------------------- step records

    def adopt(self, plan: Plan, done: dict[str, StepRun] | None = None) -> None:
        """Track the steps of ``plan``; steps already done (resume, re-plan) are kept as they are."""
        for step in plan.steps:
            if step.id not in self.runs:
                self.runs[step.id] = StepRun(step)
        for sid, run in (done or {}).items():
            self.runs[sid] = run

    def keep_succeeded(self) -> None:
        """Before a new plan is adopted: steps that did not succeed are dropped; completed ones
        keep their results."""
        for sid in [sid for sid, r in self.runs.items() if r.status != "ok"]:
            del self.runs[sid]  # in place: the step pipeline holds this same mapping

    def skip(self, runs: list[StepRun]) -> None:
        """A "continue" verdict: the failed steps are accepted as not done."""
        for r in runs:
            r.status = "skipped"

    # ----------------------------------------------------------- questions

    def failed(self) -> list[StepRun]:
        return [r for r in self.runs.values() if r.status in ("failed", "denied")]

    def succeeded(self) -> bool:
        """Whether any step succeeded."""
        return any(r.status == "ok" for r in self.runs.values())

    def policy_denials(self) -> list[StepRun]:
        return [r for r in self.runs.values()
                if r.status == "denied" and r.approval is not None and r.approval.decided_by == "policy"]

    def declined(self) -> bool:
        return any(r.status == "denied" for r in self.runs.values())

    def can_continue(self) -> bool:
        """Whether a pending step does not depend on a failed one."""
        failed = {sid for sid, r in self.runs.items() if r.status in ("failed", "denied")}
        return any(not (set(r.step.depends_on) & failed) for r in self.runs.values() if r.status == "pending")

    def worked(self) -> bool:
        """Every step of the final plan succeeded."""
        runs = self.runs.values()
        return bool(runs) and all(r.status == "ok" for r in runs)

    def written_paths(self) -> list[str]:
        """The paths the run's successful write steps named (when the workspace's own record of
        changes is unknown)."""
        paths: list[str] = []
        for r in self.runs.values():
            s = r.step
            if r.status == "ok" and s.risk == "write" and isinstance(s.args.get("path"), str):
                paths.append(s.args["path"])
        return sorted(set(paths))

    def changed_files(self) -> list[str]:
        """The files the run changed: from the workspace when known, else the write steps' paths."""
        return self.changes.files if self.changes is not None else self.written_paths()
