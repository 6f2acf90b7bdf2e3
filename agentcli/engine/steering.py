"""The user's words during a run: feedback at a prompt, and messages that steer a running plan.

Two ways a person changes a plan while a run is under way, both applied by the run's loop as a
re-plan that keeps the completed steps and gives the planner the person's words whole:

* **Feedback** (:class:`Feedback`): text instead of yes/no at a prompt. At the plan's
  confirmation (``ConfirmFn`` returns a :class:`Feedback`) the planner revises the plan with it
  and the plan is confirmed again; at a step's approval (the approver's prompt returns one) the
  step is not run and the plan is revised (EXECUTING -> REPLANNING).
* **Steering** (:class:`SteeringQueue`): a message sent while the plan executes is queued, and
  taken at the next step boundary: before the executor starts another step, never during a tool
  call. The executor starts no new step, lets the running ones finish, and the loop moves
  EXECUTING -> REPLANNING with the message as the reason. After the last step, the review (when it
  judged the task complete) and the verify command are boundaries too (:data:`BoundaryKind`), so a
  message sent while they run is applied, not left for the end.

Each is recorded as a ``user_message`` event (kind, the words, where, the plan it was about and,
for a steer, the steps finished when it was taken). Where messages come from is a port,
:class:`Steering`: the live one is a :class:`SteeringQueue` any front end feeds (``agent run
--output jsonl`` from stdin, a chat loop from its input line); a replay's is the record, which
serves each message at the boundary it was taken at (:class:`Boundary`).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, Protocol

from agentcli.planning.diff import PlanDiff
from agentcli.planning.plan import Plan

__all__ = ["MAX_MESSAGE_CHARS", "Boundary", "BoundaryKind", "Feedback", "PlanRevision", "Steering", "SteeringQueue",
           "UserChange", "UserWords", "check_words"]

#: The longest message a person may send (a longer one is refused, not cut: no words are lost).
MAX_MESSAGE_CHARS = 8000

#: What the words were: feedback at a prompt, or a message that steers the running plan.
UserWords = Literal["feedback", "steer"]


@dataclass(frozen=True)
class Feedback:
    """Text a person answered with instead of yes/no: what to change."""

    text: str


#: Where the words were given: at the plan's confirmation, at a step's approval, at a step boundary.
UserAt = Literal["plan", "approval", "boundary"]


@dataclass(frozen=True)
class UserChange:
    """The user's words a re-plan is made for: what they were (feedback or a steer), where they
    were given, and (at an approval) the step declined and its tool."""

    kind: UserWords
    at: UserAt
    words: str
    step_id: str | None = None
    tool: str | None = None

    @classmethod
    def joined(cls, changes: list[UserChange]) -> UserChange:
        """Several changes the run has not applied yet as one (a resumed run's): the first's kind
        and place, every message's words, in order, so none is lost."""
        if len(changes) == 1:
            return changes[0]
        first = changes[0]
        return cls(first.kind, first.at, "\n".join(c.words for c in changes), first.step_id, first.tool)

    def request(self) -> str:
        """The first lines of the re-planner's context: the user's words whole, quoted as JSON."""
        quoted = json.dumps(self.words, ensure_ascii=False)
        if self.at == "plan":
            where = "The user read the plan below and asked for changes before confirming it"
        elif self.at == "approval":
            what = "the verify command" if self.step_id == "verify" else f"step {self.step_id} ({self.tool})"
            where = f"The user declined {what} when asked to approve it, and said what to do instead"
        else:
            where = "While the plan below was running, the user sent a message"
        return (f"{where}: {quoted}\nRevise the plan to do what the user says; the user's words take "
                "precedence over the plan so far.")


@dataclass(frozen=True)
class PlanRevision:
    """A plan revised for the user's words (``RunDeps.on_revision``): the change it was made for,
    the plan before and after, and how they differ (:func:`~agentcli.planning.diff.plan_diff`)."""

    change: UserChange
    old: Plan
    new: Plan
    diff: PlanDiff


#: Which boundary: before a step starts (or after the last one), after the reviewer judged the task
#: complete (before the verify command), after the verify command (before the run completes).
BoundaryKind = Literal["step", "review", "verify"]


@dataclass(frozen=True)
class Boundary:
    """A step boundary of a run: the plan being executed (its hash) and the steps finished (or
    skipped) so far; ``kind``: between steps, or one of the two after the last step (the review
    and the verify command, so a message sent while they run is applied too). A recorded steer is
    served at the first boundary of the same plan and kind where at least the steps it recorded
    are finished. ``done`` is worked out when read: a live queue never reads it, and a boundary
    comes before every step."""

    plan_hash: str
    finished: Callable[[], Iterable[str]] = field(repr=False, compare=False)
    kind: BoundaryKind = "step"

    @cached_property
    def done(self) -> frozenset[str]:
        return frozenset(self.finished())


class Steering(Protocol):
    """Where steering messages come from (a port of the run: live, a queue; in a replay, the record)."""

    def take(self, boundary: Boundary) -> str | None:
        """The next message to apply at ``boundary``, or None; a message taken is applied."""
        ...


def check_words(text: str) -> str:
    """``text`` stripped, or ValueError (one line) when it is empty or longer than
    :data:`MAX_MESSAGE_CHARS`."""
    words = text.strip()
    if not words:
        raise ValueError("the message is empty")
    if len(words) > MAX_MESSAGE_CHARS:
        raise ValueError(f"the message is {len(words)} characters long (at most {MAX_MESSAGE_CHARS})")
    return words


class SteeringQueue:
    """The live :class:`Steering`: messages put from any thread (a reader of stdin, a chat loop's
    input), taken by the run's loop at its next step boundary, first in first out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[str] = deque()

    def put(self, text: str) -> None:
        """Queue a message (see :func:`check_words`: ValueError when empty or too long)."""
        words = check_words(text)
        with self._lock:
            self._queue.append(words)

    def take(self, boundary: Boundary) -> str | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def pending(self) -> list[str]:
        """The messages not taken yet (the run ended before another step boundary): a front end
        says so, or makes them its next task."""
        with self._lock:
            return list(self._queue)
