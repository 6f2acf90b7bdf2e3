"""Sessions: an ordered chain of runs on one workspace, kept as a record.

A session is ``<data_dir>/sessions/<session_id>/session.jsonl``: events in the envelope of a run's
``events.jsonl`` (``schema_version``, ``seq``, ``time``, ``type``, the session id in ``run_id``),
read by the same reader (:class:`~agentcli.record.reader.RunRecord`: each payload typed once, a
torn or malformed line a warning). It points at its runs and holds nothing a run
already holds:

* ``session_started``: the workspace (and, for a fork, the session and turn it branched from);
* ``turn_started``: the turn's number, its run id, the user's words, the turn it follows and the
  ledger its planner got (sha256, tokens, each earlier turn's form, the records it was built
  from). Written and fsynced before the run starts: a turn killed at once still belongs to it;
* ``session_rolled_back``: ``agent undo --session S --to TURN``.

The *chain* is what a new turn follows: from the head (the last turn started, or the turn a
rollback went back to) back through each turn's ``after``. A turn's outcome (status, cost,
answer) is read from its run's record, the source of truth, so a session killed mid-turn lists and
resumes like any run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from agentcli.errors import AgentError, UsageError
from agentcli.ids import new_run_id
from agentcli.record.events import (
    EventLog,
    LedgerMade,
    SessionRolledBack,
    SessionStarted,
    TurnStarted,
)
from agentcli.record.reader import RunRecord, find_record, find_run

__all__ = ["SESSION_NAME", "SessionRecord", "SessionSummary", "Turn", "find_session", "list_sessions",
           "new_session_id", "session_of_run", "session_paths", "sessions_root", "start_session"]

SESSION_NAME = "session.jsonl"
#: A session id starts with this (a run id starts with a digit): ``agent replay`` takes either.
SESSION_PREFIX = "s-"
_SESSION_ID = re.compile(r"^s-[A-Za-z0-9._-]{1,120}$")


def new_session_id() -> str:
    """A sortable session id: ``s-`` and a run id (``s-20261207-101500-a1b2c3``)."""
    return SESSION_PREFIX + new_run_id()


def sessions_root(data_dir: Path) -> Path:
    return data_dir / "sessions"


@dataclass(frozen=True)
class Turn:
    """One turn as the session recorded it (its outcome is in its run's record)."""

    turn: int
    run_id: str
    task: str
    after: int
    copied: bool
    ledger: LedgerMade
    seq: int


class SessionRecord:
    """A session's file read back and typed (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        rec = RunRecord.read(path)  # the one reader: the same envelope, each payload typed once
        self.path = path
        self.session_id = rec.run_id
        self.warnings: list[str] = list(rec.warnings)
        self.start: SessionStarted | None = None
        self.turns: list[Turn] = []
        self.rollbacks: list[SessionRolledBack] = []
        self.last_seq = rec.last_seq
        self.head = 0
        self.created: float | None = None
        for t in rec.items:
            data = t.data
            if isinstance(data, SessionStarted) and self.start is None:
                self.start, self.created = data, t.time
            elif isinstance(data, TurnStarted):
                self.turns.append(Turn(data.turn, data.run_id, data.task, data.after, data.copied, data.ledger, t.seq))
                self.head = data.turn
            elif isinstance(data, SessionRolledBack):
                self.rollbacks.append(data)
                self.head = data.to_turn
        if self.start is None:
            raise AgentError(f"{path} is not a session record (no session_started event)")

    @classmethod
    def open(cls, data_dir: Path, session_id: str) -> SessionRecord:
        return cls(find_session(data_dir, session_id))

    @property
    def workspace(self) -> str:
        return self.start.workspace if self.start is not None else ""

    def turn(self, number: int) -> Turn:
        for t in self.turns:
            if t.turn == number:
                return t
        raise UsageError(f"session {self.session_id} has no turn {number} "
                         f"(turns: {', '.join(str(t.turn) for t in self.turns) or 'none'})")

    def chain(self, head: int | None = None) -> list[Turn]:
        """The turns a new turn follows, oldest first: from ``head`` (default: the session's) back
        through each turn's ``after``."""
        by_number = {t.turn: t for t in self.turns}
        out: list[Turn] = []
        at = self.head if head is None else head
        while at and at in by_number and len(out) <= len(by_number):
            t = by_number[at]
            out.append(t)
            at = t.after
        return out[::-1]

    @property
    def next_turn(self) -> int:
        return max((t.turn for t in self.turns), default=0) + 1

    def append_turn(self, run_id: str, task: str, ledger: LedgerMade, *, after: int | None = None) -> Turn:
        """Record a new turn (fsynced before returning: the run starts after it)."""
        number = self.next_turn
        follows = self.head if after is None else after
        self._emit(TurnStarted(turn=number, run_id=run_id, task=task, after=follows, ledger=ledger))
        t = Turn(number, run_id, task, follows, False, ledger, self.last_seq)
        self.turns.append(t)
        self.head = number
        return t

    def roll_back(self, to_turn: int, undone: list[str]) -> None:
        """Record that the chain went back to ``to_turn`` (0: before the first turn)."""
        self._emit(SessionRolledBack(to_turn=to_turn, undone=undone))
        self.rollbacks.append(SessionRolledBack(to_turn=to_turn, undone=undone))
        self.head = to_turn

    def _emit(self, payload: TurnStarted | SessionRolledBack | SessionStarted) -> None:
        log = EventLog(self.path, self.session_id, start_seq=self.last_seq)
        try:
            log.emit(payload, durable=True)
            self.last_seq = log.seq
        finally:
            log.close()


def start_session(data_dir: Path, workspace: Path, *, forked_from: SessionRecord | None = None,
                  fork_turn: int | None = None, session_id: str | None = None) -> SessionRecord:
    """A new session's file; a fork's starts with the chain of ``forked_from`` up to ``fork_turn``
    (the same runs, marked ``copied``)."""
    sid = session_id or new_session_id()
    path = sessions_root(data_dir) / sid / SESSION_NAME
    if path.exists():
        raise UsageError(f"session {sid} exists already")
    log = EventLog(path, sid)
    try:
        log.emit(SessionStarted(workspace=str(workspace),
                                **({"forked_from": forked_from.session_id, "fork_turn": fork_turn}
                                   if forked_from is not None else {})), durable=True)
        if forked_from is not None:
            for t in forked_from.chain(fork_turn):
                log.emit(TurnStarted(turn=t.turn, run_id=t.run_id, task=t.task, after=t.after, copied=True,
                                     ledger=t.ledger), durable=True)
    finally:
        log.close()
    return SessionRecord(path)


def session_paths(data_dir: Path) -> list[Path]:
    """Every session's file, newest id first."""
    root = sessions_root(data_dir)
    if not root.is_dir():
        return []
    return sorted(root.glob(f"*/{SESSION_NAME}"), key=lambda p: p.parent.name, reverse=True)


def find_session(data_dir: Path, session_id: str) -> Path:
    """A session's file by full id, unique prefix, or ``last`` (the newest)."""
    return find_record(sessions_root(data_dir), session_id, SESSION_NAME, _SESSION_ID, noun="session",
                       listing="agent sessions")


def is_session_id(text: str) -> bool:
    return text.startswith(SESSION_PREFIX)


def session_of_run(data_dir: Path, run_id: str) -> SessionRecord | None:
    """The session whose chain ends with run ``run_id`` (else one that holds it anywhere; None: the
    run belongs to no session)."""
    holding: SessionRecord | None = None
    for path in session_paths(data_dir):
        try:
            s = SessionRecord(path)
        except AgentError:
            continue
        chain = s.chain()
        if chain and chain[-1].run_id == run_id:
            return s
        if holding is None and any(t.run_id == run_id for t in s.turns if not t.copied):
            holding = s
    return holding


@dataclass
class SessionSummary:
    """One row of `agent sessions`."""

    session_id: str
    workspace: str
    turns: int
    last_task: str
    status: str
    cost_usd: float
    created: float | None
    forked_from: str | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def summarize_session(data_dir: Path, s: SessionRecord) -> SessionSummary:
    """A session's row: its chain's length, last task and that turn's status (from the run's record),
    and the cost of every turn it ran (copied turns were paid by the session they came from)."""
    chain = s.chain()
    cost = 0.0
    status = "EMPTY"
    warnings = list(s.warnings)
    for t in s.turns:
        try:
            rec = RunRecord.read(find_run(data_dir, t.run_id))
        except AgentError as e:
            warnings.append(f"turn {t.turn}: {e.one_line()}")
            if chain and t is chain[-1]:
                status = "MISSING"
            continue
        if not t.copied:
            cost += rec.cost_usd
        if chain and t is chain[-1]:
            status = rec.status
    return SessionSummary(s.session_id, s.workspace, len(chain), chain[-1].task if chain else "", status, cost,
                          s.created, s.start.forked_from if s.start is not None else None, warnings)


def list_sessions(data_dir: Path, limit: int | None = None) -> list[SessionSummary]:
    out = []
    for path in session_paths(data_dir)[:limit]:
        try:
            out.append(summarize_session(data_dir, SessionRecord(path)))
        except AgentError:
            continue
    return out


def session_to_continue(data_dir: Path, workspace: Path, *, run: str | None = None,
                        session: str | None = None) -> SessionRecord:
    """The session a new turn goes into: ``session`` (an id, a prefix or ``last``), or the session of
    ``run`` (a run id, a prefix or ``last``). A run that is in no session becomes the first turn of
    a new one; a run that is an earlier turn of its session makes the new turn branch there (the
    session's head moves to that run's turn first)."""
    if session is not None:
        return SessionRecord.open(data_dir, session)
    assert run is not None
    run_id = find_run(data_dir, run).parent.name
    found = session_of_run(data_dir, run_id)
    if found is None:
        rec = RunRecord.read(find_run(data_dir, run_id))
        found = start_session(data_dir, workspace)
        found.append_turn(run_id, rec.task, LedgerMade(), after=0)
        return found
    chain = found.chain()
    if not chain or chain[-1].run_id != run_id:
        at = next(t for t in reversed(found.turns) if t.run_id == run_id)
        found.head = at.turn  # the new turn follows it (recorded by its ``after``)
    return found
