"""A session's turns replayed: every turn's run replayed identical, and every turn's ledger built
again, byte for byte, from the records as they stood when the turn began.

A turn's run is replayed as any run (:func:`~agentcli.engine.replay.replay_run`): its planner is
served the recorded plans. What the session adds to a run is the ledger its planner was sent, so
that is checked here: :func:`~agentcli.record.ledger.ledger_of_turn` folds the earlier turns again
with the turn's own recorded config, its sha256 must be the one ``turn_started`` recorded, and its
section must be in the recorded planner request as sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agentcli.engine.replay import ReplayResult, replay_run
from agentcli.errors import AgentError
from agentcli.planning.prompt import ledger_section
from agentcli.record.ledger import LEDGER_FORMAT, ledger_of_turn
from agentcli.record.reader import RunRecord, find_run
from agentcli.record.sessions import SessionRecord, Turn
from agentcli.tools import ToolRegistry

__all__ = ["TurnReplay", "replay_session"]


@dataclass
class TurnReplay:
    """One turn's replay: the run's result and the ledger's check ("" when it holds)."""

    turn: Turn
    result: ReplayResult | None
    ledger_problem: str = ""
    error: str = ""
    #: Why there was nothing to replay (a turn stopped before its plan was made).
    skipped: str = ""

    @property
    def identical(self) -> bool:
        if self.error or self.ledger_problem:
            return False
        return self.result.identical if self.result is not None else bool(self.skipped)

    def describe(self) -> str:
        if self.error:
            return self.error
        if self.ledger_problem:
            return self.ledger_problem
        if self.result is None:
            return self.skipped
        d = self.result.divergence
        return "identical" if d is None else d.describe()


def _check_ledger(data_dir: Path, session: SessionRecord, turn: Turn, rec: RunRecord) -> str:
    made = turn.ledger
    if not made.sha256:
        return ""  # the session's first turn, or a run adopted as one: its planner got no ledger
    rebuilt = ledger_of_turn(data_dir, session, turn, rec.recorded_config())
    if rebuilt.sha256 != made.sha256 and made.format != LEDGER_FORMAT:
        return (f"turn {turn.turn}: its ledger was laid out by another agentcli (ledger format {made.format}; this "
                f"is {LEDGER_FORMAT}), so it builds to other bytes now")
    if rebuilt.sha256 != made.sha256:
        return (f"turn {turn.turn}: its ledger builds to other bytes now (sha256 {rebuilt.sha256[:12]}, recorded "
                f"{made.sha256[:12]}; forms {rebuilt.forms} vs {made.forms})")
    section = ledger_section(rebuilt.text)
    for p in rec.plans[:1]:
        for call in p.planner_calls:
            if not any(section in str(m.get("content") or "") for m in call.request.messages):
                return f"turn {turn.turn}: its planner request (call {call.call_id}) does not hold the ledger"
    return ""


async def replay_session(data_dir: Path, session: SessionRecord, registry: ToolRegistry) -> list[TurnReplay]:
    """Replay every turn the session ran itself (a fork's copied turns are its parent's), oldest first."""
    out: list[TurnReplay] = []
    for turn in session.turns:
        if turn.copied:
            continue
        try:
            path = find_run(data_dir, turn.run_id)
            rec = RunRecord.read(path)
            problem = _check_ledger(data_dir, session, turn, rec)
            result = await replay_run(path, registry) if rec.plans else None
        except AgentError as e:
            out.append(TurnReplay(turn, None, error=f"turn {turn.turn} ({turn.run_id}): {e.one_line()}"))
            continue
        if result is None:
            out.append(TurnReplay(turn, None, problem, skipped="recorded no plan (stopped before planning): "
                                  "nothing to replay"))
            continue
        out.append(TurnReplay(turn, result, problem))
    return out
