"""`agent sessions`: the recorded sessions (chains of runs on one workspace), or one session's turns
and the ledger its next turn would get."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from agentcli.cli.commands.common import MAX_LIST, console, counted, in_range, print_warning, state_of

#: What `agent sessions` says when there is none (instead of an empty table).
NO_SESSIONS = "no sessions yet (start one with `agent chat` or `agent run --continue TASK`)"


def sessions(
    ctx: typer.Context,
    session: Annotated[str | None, typer.Argument(
        help="Show this session's turns (an id, a unique prefix, or `last`); without it, list sessions.")] = None,
    ledger: Annotated[bool, typer.Option(
        "--ledger", help="With SESSION: print the ledger its next turn's planner would get.")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", callback=in_range(1, MAX_LIST),
                                       help="List at most N sessions (newest first).")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Sessions: id, workspace, turns, last task, status of the last turn, cost."""
    from agentcli.cli.tables import Col, fitted_table, short_cost, short_time
    from agentcli.errors import UsageError
    from agentcli.record.sessions import SessionRecord, list_sessions, summarize_session

    settings = state_of(ctx).settings
    if session is None:
        if ledger:
            raise UsageError("--ledger shows one session's: give SESSION")
        rows = list_sessions(settings.data_dir, limit)
        if json_out:
            typer.echo(json.dumps([r.as_dict() for r in rows], indent=2))
            return
        if not rows:
            console.print(NO_SESSIONS, highlight=False, soft_wrap=True)
            return
        cols = [Col("id"), Col("started", optional=True), Col("workspace", optional=True, flex=True),
                Col("turns", justify="right"), Col("last task", flex=True, min_width=12, detail=True),
                Col("status"), Col("cost", justify="right")]
        console.print(fitted_table(cols, [[r.session_id, short_time(r.created), r.workspace, str(r.turns),
                                           r.last_task, r.status, short_cost(r.cost_usd)] for r in rows],
                                   console.width))
        for r in rows:
            for w in r.warnings:
                print_warning(w)
        return
    rec = SessionRecord.open(settings.data_dir, session)
    for w in rec.warnings:
        print_warning(w)
    if ledger:
        from agentcli.record.ledger import session_ledger

        built = session_ledger(settings.data_dir, rec, settings.config)
        if json_out:
            typer.echo(json.dumps({"session_id": rec.session_id, "text": built.text, "tokens": built.tokens,
                                   "budget": built.budget, "forms": built.forms, "sha256": built.sha256}, indent=2))
        else:
            typer.echo(built.text)
        return
    summary = summarize_session(settings.data_dir, rec)
    chain = {t.turn for t in rec.chain()}
    turns = [{"turn": t.turn, "run_id": t.run_id, "task": t.task, "after": t.after, "in_chain": t.turn in chain,
              "copied": t.copied, "ledger_tokens": t.ledger.tokens, "ledger_forms": t.ledger.forms}
             for t in rec.turns]
    if json_out:
        typer.echo(json.dumps({**summary.as_dict(), "head": rec.head, "turn_list": turns}, indent=2))
        return
    console.print(f"session {rec.session_id} · {escape(rec.workspace)} · "
                  f"{counted(summary.turns, 'turn')} in the chain · {summary.status} · {short_cost(summary.cost_usd)}",
                  highlight=False, soft_wrap=True)
    cols = [Col("turn", justify="right"), Col("run"), Col("task", flex=True, min_width=12, detail=True),
            Col("ledger", justify="right")]
    console.print(fitted_table(cols, [[str(t["turn"]) + ("" if t["in_chain"] else " (off)"), str(t["run_id"]),
                                       str(t["task"]), f"{t['ledger_tokens']} tok"] for t in turns], console.width))
