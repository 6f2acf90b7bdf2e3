"""The run state machine: a fixed table of states and transitions.

::

    IDLE ──> PLANNING ──> EXECUTING <──> WAITING_TOOL
                │            │  ▲ │
                │            │  │ └─────────┐       (the user's words)
                │            ▼  │           ▼
                │         REVIEWING ──> REPLANNING ──> EXECUTING
                │            │    │          ▲   │
                │            │    └─> VERIFYING  │      (the verify command, when files changed)
                ▼            ▼           │       ▼
              FAILED      COMPLETE <─────┘     FAILED   (EXECUTING, WAITING_TOOL, REVIEWING and
                 └──> IDLE <──┘                          VERIFYING may fail too)

REVIEWING -> FAILED is the reviewer's ``stop`` (or a budget running out during the review);
VERIFYING -> REPLANNING is a failed verify command with re-plans left; VERIFYING -> REVIEWING a run
whose review was left to the verify command (``review.mode = "auto"``) when the command could not run
(declined, unavailable), so the reviewer judges it after all; EXECUTING -> REPLANNING is
the user's words (feedback at a step's approval, or a steering message taken at a step boundary,
see :mod:`agentcli.engine.steering`).

The table is pure data (:data:`TRANSITIONS`). :class:`StateMachine` validates each
move against it, timestamps it, and hands it to listeners (the run's event log).
An illegal transition raises :class:`IllegalTransition`: that is a bug in the
executor, never a user error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    IDLE = "IDLE"
    PLANNING = "PLANNING"
    EXECUTING = "EXECUTING"
    WAITING_TOOL = "WAITING_TOOL"
    REVIEWING = "REVIEWING"
    REPLANNING = "REPLANNING"
    VERIFYING = "VERIFYING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.IDLE: frozenset({State.PLANNING}),
    State.PLANNING: frozenset({State.EXECUTING, State.FAILED}),
    State.EXECUTING: frozenset({State.WAITING_TOOL, State.REVIEWING, State.REPLANNING, State.FAILED}),
    State.WAITING_TOOL: frozenset({State.EXECUTING, State.FAILED}),
    State.REVIEWING: frozenset({State.EXECUTING, State.COMPLETE, State.REPLANNING, State.VERIFYING,
                                State.FAILED}),
    State.REPLANNING: frozenset({State.EXECUTING, State.FAILED}),
    State.VERIFYING: frozenset({State.COMPLETE, State.REPLANNING, State.REVIEWING, State.FAILED}),
    State.COMPLETE: frozenset({State.IDLE}),
    State.FAILED: frozenset({State.IDLE}),
}

TERMINAL: frozenset[State] = frozenset({State.COMPLETE, State.FAILED})


def is_allowed(src: State, dst: State) -> bool:
    """Whether the table has the edge ``src -> dst``."""
    return dst in TRANSITIONS[src]


class IllegalTransition(RuntimeError):
    """A transition the table does not have: a bug in the caller."""


# Not frozen: a frozen dataclass sets each field through object.__setattr__, ~4x the cost of building
# it, and two are built for every tool step (EXECUTING <-> WAITING_TOOL). Nothing changes one after.
@dataclass
class Transition:
    src: State
    dst: State
    time: float
    reason: str


class StateMachine:
    """Current state plus validated moves; listeners see every transition in order."""

    def __init__(self, state: State = State.IDLE, *, clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.history: list[Transition] = []
        self.listeners: list[Callable[[Transition], None]] = []
        self._clock = clock

    def can(self, dst: State) -> bool:
        return is_allowed(self.state, dst)

    def to(self, dst: State, reason: str = "") -> Transition:
        """Move to ``dst``, or raise IllegalTransition."""
        if not is_allowed(self.state, dst):
            raise IllegalTransition(f"illegal transition {self.state} -> {dst} ({reason or 'no reason'})")
        t = Transition(self.state, dst, self._clock(), reason)
        self.state = dst
        self.history.append(t)
        for listener in self.listeners:
            listener(t)
        return t

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL
