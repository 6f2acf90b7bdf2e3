"""The typed ledger: what a later turn's planner is told of the session's earlier turns.

Each earlier turn of the chain becomes a :class:`TurnFacts`, read from its run's record alone (as
the record stood when the ledger was built: ``LedgerMade.basis`` keeps each run's last ``seq``, so
an undo written later does not change what an earlier turn was sent): the user's words (the task
and any feedback they gave during the turn), the final plan with each step's status and a bounded
digest of its output, the files changed with a bounded diff, and the answer.

A turn is rendered in one of four forms, longest first (:data:`FORMS`):

* ``full``: everything above;
* ``short``: the user's words, the status, the files changed and the answer;
* ``words``: the user's words and the names of the files changed;
* ``dropped``: left out (counted in a line at the top).

When the rendered ledger is over ``session.ledger_tokens`` (counted with the planner model's
tokenizer), turns fold one at a time, oldest first, one form at a time: every turn before the
newest goes to ``short`` before any goes to ``words``; the newest earlier turn (what "the function
you just added" refers to) stays ``full`` until all the others are at ``words``; and every turn is
at ``words`` before the oldest is left out, so the user's own words are kept whole longest. The
folding depends on the records and the budget only: the same chain gives the same bytes, which a
replay checks (the sha256 is recorded in the turn's ``turn_started``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentcli.config import Config, SessionConfig
from agentcli.errors import UsageError
from agentcli.models import tokens
from agentcli.record.events import LedgerMade, Recording, StepFinished, Undone, WorkspaceChanged
from agentcli.record.reader import RunRecord, find_run
from agentcli.record.sessions import SessionRecord, Turn, session_of_run
from agentcli.tools.text import head_tail

__all__ = ["FORMS", "LEDGER_FORMAT", "Ledger", "TurnFacts", "build_ledger", "ledger_of_turn", "render_turn",
           "resumed_turn_ledger", "session_ledger", "turn_facts", "user_feedback"]

#: The ledger's layout: raised with any change to what a turn renders as (a replay of a session whose
#: turns were given another layout says so, as a record made by other prompts does).
LEDGER_FORMAT = 1
#: A turn's forms in the ledger, longest first.
FORMS = ("full", "short", "words", "dropped")
#: Characters of a turn's answer its short form keeps (the full form keeps it whole up to 4x this).
SHORT_ANSWER_CHARS = 400

_PREFACE = ("The turns before this task in the same session, oldest first. The files they changed are "
            "changed already; build on what they did. \"user\" and \"feedback\" are the user's own words.")


@dataclass(frozen=True)
class StepFacts:
    """A step of a turn's final plan, as it ended."""

    id: str
    what: str
    title: str
    status: str
    digest: str


@dataclass(frozen=True)
class TurnFacts:
    """One earlier turn, typed, from its run's record."""

    turn: int
    run_id: str
    task: str
    #: ``(kind, words)``: ``feedback`` or ``steer``, in the order the user gave them.
    feedback: list[tuple[str, str]]
    status: str
    steps: list[StepFacts]
    files: list[str]
    diff: str
    answer: str
    undone: bool


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return head_tail(flat, limit, head_share=0.5).replace("\n", " ") if len(flat) > limit else flat


def user_feedback(rec: RunRecord) -> list[tuple[str, str]]:
    """What the user said during the turn besides its task, in order: ``("feedback", words)`` given at
    the plan's confirmation or a step's approval, ``("steer", words)`` typed while the plan ran (the
    run's ``user_message`` events)."""
    return [(m.data.kind, m.data.text) for m in rec.user_messages]


def turn_facts(turn: int, rec: RunRecord, cfg: SessionConfig, task: str = "") -> TurnFacts:
    """A turn's facts from its run's record (``task``: the words the session recorded, for a record
    that has none: its run's folder is gone)."""
    if not rec.events:
        return TurnFacts(turn, rec.run_id, task, [], "MISSING: its run's record is gone", [], [], "", "", False)
    plan = rec.last_plan
    finished: dict[str, StepFinished] = rec.steps
    status = rec.step_status()
    steps = []
    for s in plan.steps if plan is not None else []:
        done = finished.get(s.id)
        digest = ""
        if done is not None:
            body = _text(done.output) if done.status == "ok" else _text((done.error or {}).get("message", done.error))
            digest = _one_line(body, cfg.output_chars) if cfg.output_chars else ""
        steps.append(StepFacts(s.id, s.tool or "llm", _one_line(s.title, 120), status.get(s.id, "not run"), digest))
    change = rec.last(WorkspaceChanged)
    files: list[str] = []
    diff = ""
    if change is not None and change.data.known:
        files = [f if isinstance(f, str) else str(f.get("path", f)) if isinstance(f, dict) else str(f)
                 for f in change.data.files]
        diff = head_tail(change.data.diff, cfg.diff_chars) if cfg.diff_chars and change.data.diff else ""
    undo = rec.last(Undone)
    finish = rec.finish
    return TurnFacts(turn, rec.run_id, rec.task, user_feedback(rec), rec.status if finish is None else finish.status,
                     steps, files, diff, finish.answer if finish is not None else "",
                     undo is not None and undo.data.kind == "undo")


def render_turn(f: TurnFacts, form: str) -> str:
    """One turn in one of :data:`FORMS` (``dropped``: "")."""
    if form == "dropped":
        return ""
    lines = [f"## Turn {f.turn}" + ("" if form == "words" else f" ({f.status}"
                                    + (", undone since: its changes were reverted" if f.undone else "") + ")")]
    lines.append(f"user: {json.dumps(f.task, ensure_ascii=False)}")
    lines.extend(f"{kind}: {json.dumps(w, ensure_ascii=False)}" for kind, w in f.feedback)
    if form == "full" and f.steps:
        lines.append("plan:")
        for s in f.steps:
            lines.append(f"  {s.id} {s.what} [{s.status}] {s.title}" + (f" -> {s.digest}" if s.digest else ""))
    lines.append("files changed: " + (", ".join(f.files) if f.files else "none"))
    if form == "full" and f.diff:
        lines.append("diff:\n" + f.diff.rstrip("\n"))
    if form != "words" and f.answer:
        answer = f.answer if form == "full" else _one_line(f.answer, SHORT_ANSWER_CHARS)
        answer = head_tail(answer, 4 * SHORT_ANSWER_CHARS) if form == "full" else answer
        lines.append(f"answer: {answer}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Ledger:
    """A built ledger: its text, its size, and how it was folded (what ``turn_started`` records)."""

    text: str
    tokens: int
    budget: int
    forms: dict[str, str]
    basis: dict[str, int]

    @property
    def sha256(self) -> str:
        """The text's sha256 ("" for no ledger: a session's first turn)."""
        return hashlib.sha256(self.text.encode()).hexdigest() if self.text else ""

    def made(self) -> LedgerMade:
        return LedgerMade(format=LEDGER_FORMAT, sha256=self.sha256, tokens=self.tokens, budget=self.budget,
                          forms=self.forms, basis=self.basis)


def _compose(facts: list[TurnFacts], forms: list[str]) -> str:
    dropped = [f.turn for f, form in zip(facts, forms, strict=True) if form == "dropped"]
    parts = [_PREFACE]
    if dropped:
        parts.append(f"({len(dropped)} older turn{'s' if len(dropped) != 1 else ''} "
                     f"({dropped[0]}-{dropped[-1]}) left out to fit the budget)")
    parts.extend(render_turn(f, form) for f, form in zip(facts, forms, strict=True) if form != "dropped")
    return "\n\n".join(parts)


def build_ledger(records: list[tuple[int, RunRecord]], cfg: SessionConfig, model: str,
                 tasks: dict[int, str] | None = None) -> Ledger:
    """The ledger of ``records`` (turn number and run record, oldest first), folded to
    ``cfg.ledger_tokens`` as the module docstring says (``tasks``: each turn's words as the session
    recorded them, for a record that is gone). Empty for no turns."""
    basis = {rec.run_id: rec.last_seq for _, rec in records}
    if not records:
        return Ledger("", 0, cfg.ledger_tokens, {}, basis)
    facts = [turn_facts(n, rec, cfg, (tasks or {}).get(n, "")) for n, rec in records]
    forms = ["full"] * len(facts)
    budget = cfg.ledger_tokens
    # Each turn's rendering counted once per form; the whole is counted again before it is accepted
    # (joins may tokenize differently from the parts).
    sizes: dict[tuple[int, str], int] = {}

    def size(i: int, form: str) -> int:
        key = (i, form)
        if key not in sizes:
            sizes[key] = tokens.count_text(render_turn(facts[i], form), model) + 2 if form != "dropped" else 0
        return sizes[key]

    header = tokens.count_text(_PREFACE, model) + 24

    def fitted() -> Ledger | None:
        if header + sum(size(j, fm) for j, fm in enumerate(forms)) > budget:
            return None
        text = _compose(facts, forms)
        n = tokens.count_text(text, model)
        return Ledger(text, n, budget, _forms(facts, forms), basis) if n <= budget else None

    # The folds in the order they are made: the turns before the newest to `short`, oldest first,
    # then to `words`; then the newest one (what the user most likely refers to stays whole
    # longest); then turns left out, oldest first.
    newest = len(facts) - 1
    folds = ([(i, "short") for i in range(newest)] + [(i, "words") for i in range(newest)]
             + [(newest, "short"), (newest, "words")] + [(i, "dropped") for i in range(len(facts))])
    done = fitted()
    for i, form in folds:
        if done is not None:
            return done
        forms[i] = form
        done = fitted()
    if done is not None:
        return done
    text = _compose(facts, forms)  # every turn left out: only the preface and the count
    return Ledger(text, tokens.count_text(text, model), budget, _forms(facts, forms), basis)


def _forms(facts: list[TurnFacts], forms: list[str]) -> dict[str, str]:
    return {str(f.turn): form for f, form in zip(facts, forms, strict=True)}


def session_ledger(data_dir: Path, session: SessionRecord, config: Config, *, head: int | None = None) -> Ledger:
    """The ledger the next turn of ``session`` gets: its chain (from ``head``, default the
    session's) as the runs' records stand now."""
    chain = session.chain(head)
    records = [(t.turn, _record_of(data_dir, t)) for t in chain]
    return build_ledger(records, config.session, config.model_for("planner"), tasks={t.turn: t.task for t in chain})


def _record_of(data_dir: Path, turn: Turn) -> RunRecord:
    """A turn's run record; an empty one when it is gone (its turn still shows, with the words the
    session recorded)."""
    try:
        return RunRecord.read(find_run(data_dir, turn.run_id))
    except UsageError:
        return RunRecord(Recording(turn.run_id, []))


def ledger_of_turn(data_dir: Path, session: SessionRecord, turn: Turn, config: Config) -> Ledger:
    """The ledger ``turn`` got, built again from the records as they stood when it was built (each
    run's record up to the ``seq`` its ``basis`` names) with ``config`` (the turn's own run's):
    the same bytes, or the record changed in a way a replay reports."""
    records = []
    chain = session.chain(turn.after)
    for t in chain:
        rec = _record_of(data_dir, t)
        last = turn.ledger.basis.get(t.run_id)
        records.append((t.turn, rec.before(last + 1) if last is not None else rec))
    return build_ledger(records, config.session, config.model_for("planner"), tasks={t.turn: t.task for t in chain})


def resumed_turn_ledger(data_dir: Path, run_id: str, config: Config) -> Ledger | None:
    """The ledger of the session turn run ``run_id`` carries (None: the run is no session's turn)."""
    session = session_of_run(data_dir, run_id)
    if session is None:
        return None
    turn = next((t for t in session.turns if t.run_id == run_id and not t.copied), None)
    return None if turn is None else ledger_of_turn(data_dir, session, turn, config)
