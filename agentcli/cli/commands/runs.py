"""`agent runs list`, `agent runs show ID`, `agent runs stats`, and `agent replay ID`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from agentcli.cli.commands.common import MAX_LIST, console, counted, err_console, in_range, print_warning, state_of
from agentcli.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from agentcli.config import Settings, TelemetryConfig
    from agentcli.engine.replay import ReplayResult
    from agentcli.record.reader import RunRecord
    from agentcli.record.runs import RunSummary
    from agentcli.record.stats import RunStats, StepCost

app = typer.Typer(help="Inspect recorded runs.", no_args_is_help=True)




def _cost(value: float | None) -> str:
    from agentcli.cli.tables import format_cost

    return format_cost(value)


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3]


def status_text(r: RunSummary) -> str:
    """A run's status with why it ended, short enough for a table cell at 80 columns."""
    if r.status == "COMPLETE":
        return r.status
    if r.status == "INTERRUPTED":
        return "INTERRUPTED (killed?)"  # no end recorded: killed, or still going
    return f"{r.status} ({r.reason})"


#: What `agent runs list` says when there is none (instead of an empty table).
NO_RUNS = "no runs yet (start one with `agent run TASK` or `agent chat`)"


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", callback=in_range(1, MAX_LIST),
                                       help="Show at most N runs (newest first).")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Recorded runs: id, start, task, status, steps, cost, duration."""
    from agentcli.record.runs import list_runs

    runs = list_runs(state_of(ctx).settings.data_dir, limit)
    if json_out:
        typer.echo(json.dumps([r.as_dict() for r in runs], indent=2))
        return
    if not runs:
        console.print(NO_RUNS, highlight=False, soft_wrap=True)
        return
    from agentcli.cli.tables import Col, fitted_table, short_cost, short_time

    rows = []
    for r in runs:
        cost = short_cost(r.cost_usd) + (f" +{r.unpriced_calls}?" if r.unpriced_calls else "")
        rows.append([r.run_id, short_time(r.started), r.task, status_text(r),
                     f"{r.steps_ok}/{r.steps}", cost, "-" if r.duration_s is None else f"{r.duration_s:.1f}s"])
    # The id (what later commands take) and the whole status stay; the times go first, then the
    # task moves under its row (whole): nothing a decision depends on is cut.
    cols = [Col("id"), Col("started", optional=True), Col("task", flex=True, min_width=12, detail=True),
            Col("status"), Col("steps", justify="right"), Col("cost", justify="right"),
            Col("time", justify="right", optional=True)]
    table = fitted_table(cols, rows, console.width)
    console.print(table)
    cut = [r for r in runs if r.cut_short]
    if cut:
        # The newest run cut short is the one most likely to be resumed; the others take the same command.
        console.print(f"{counted(len(cut), 'run')} cut short: resume with {cut[0].resume_command}",
                      highlight=False)
    for r in runs:
        for w in r.warnings:
            print_warning(w)


def render_timeline(rec: RunRecord) -> None:
    """States, steps, tool calls, approvals and LLM calls in recorded order."""
    from agentcli.cli.tables import Col, fitted_table
    from agentcli.record import events as ev

    rows: list[list[str]] = []
    for t in rec:
        d = t.data
        if isinstance(d, ev.TransitionMade):
            detail = f"{d.src} -> {d.to}  {d.reason}"
        elif isinstance(d, ev.LlmCall):
            detail = (f"{d.role} {d.model} {d.outcome} {d.usage.input_tokens}+{d.usage.output_tokens} tok "
                      f"{_cost(d.cost_usd)} {d.latency_ms:.0f}ms")
        elif isinstance(d, ev.ToolCalled):
            r = d.result
            status = "ok" if r.get("ok") else f"error {(r.get('error') or {}).get('type')}"
            detail = f"{d.tool} {json.dumps(d.args)[:80]} -> {status}"
            out = r.get("output")
            if isinstance(out, dict) and out.get("sandbox"):
                detail += f" [sandbox: {out['sandbox']}]"
        elif isinstance(d, ev.ApprovalMade):
            detail = f"{d.tool} {d.decision} by {d.decided_by} {d.message}" + (
                f": {json.dumps(d.feedback, ensure_ascii=False)}" if d.feedback is not None else "")
        elif isinstance(d, ev.UserSaid):
            detail = f"{d.kind} at {d.at}: {json.dumps(d.text, ensure_ascii=False)}"
        elif isinstance(d, ev.PlanCreated) and d.by_user:
            p = d.plan
            detail = (f"plan {p.get('id')} {len(p.get('steps', []))} steps hash {str(p.get('hash'))[:12]} "
                      "(revised for the user's words)")
        elif isinstance(d, ev.StepFinished):
            detail = f"{d.status} after {counted(d.attempts, 'attempt')}"
        elif isinstance(d, ev.BudgetChecked):
            if d.ok:
                continue
            detail = f"{d.which} exceeded: {(d.model_extra or {}).get('message', '')}"
        elif isinstance(d, ev.RunFinished):
            detail = f"{d.status} ({d.reason})"
        elif isinstance(d, ev.PlanCreated):
            p = d.plan
            detail = f"plan {p.get('id')} {len(p.get('steps', []))} steps hash {str(p.get('hash'))[:12]}" + (
                " (the review's checks)" if d.source == "review" else "")
        elif isinstance(d, ev.Hooked):
            detail = f"{d.event} `{d.command}` {d.outcome}" + (f": {d.message}" if d.message else "")
        elif isinstance(d, ev.Reviewed):
            detail = " ".join(f"{k}={v}" for k, v in (("kind", d.kind), ("outcome", d.outcome),
                                                       ("reason", d.reason)) if v is not None) + (
                f" commands={json.dumps(d.commands, ensure_ascii=False)}" if d.commands is not None else "")
        elif isinstance(d, ev.CheckpointMade):
            x = d.event_data()
            detail = (f"{d.phase} error: {x['error']}" if x.get("error") else
                      f"{d.phase} {str(d.commit)[:12]}{' changed' if x.get('changed') else ''}"
                      + (f" ({len(x.get('skipped') or [])} files over max_file_bytes skipped)"
                         if x.get("skipped") else ""))
        elif isinstance(d, ev.Undone):
            x = d.event_data()
            detail = f"{d.kind} of {counted(len(x.get('files') or []), 'file')}" + (
                " (forced)" if x.get("forced") else "")
        else:
            detail = json.dumps(d.event_data(), default=str)[:120]
        rows.append([_clock(t.time), t.step_id or "", t.type, detail])
    cols = [Col("time"), Col("step"), Col("event"), Col("detail", flex=True)]
    console.print(fitted_table(cols, rows, console.width, title=f"timeline of {rec.run_id}"))


def render_user_words(rec: RunRecord) -> None:
    """Each of the user's feedback and steering messages, whole, and how the plan changed for it."""
    from agentcli.planning.diff import plan_diff

    said = rec.user_messages
    if not said:
        return
    plans = rec.plans
    console.print(f"[bold]the user's words[/bold] ({len(said)}):", highlight=False)
    for t in said:
        d = t.data
        where = {"plan": "at the plan's confirmation", "approval": f"at the approval of step {t.step_id}",
                 "boundary": "while the plan ran, after " + (", ".join(d.done) or "no step")}[d.at]
        console.print(f"  {d.kind} {escape(where)}: {escape(json.dumps(d.text, ensure_ascii=False))}",
                      highlight=False, soft_wrap=True)
        old = next((p.plan for p in reversed(plans) if p.seq < t.seq and p.plan.hash == d.plan_hash), None)
        new = next((p.plan for p in plans if p.seq > t.seq and p.by_user), None)
        if old is not None and new is not None:
            for line in plan_diff(old, new).lines():
                console.print(f"    {escape(line)}", highlight=False, soft_wrap=True)


def _signed(value: float | None) -> str:
    return "-" if value is None else ("+" if value >= 0 else "-") + _cost(abs(value))


def render_step_costs(costs: list[StepCost], *, ended: bool = True) -> None:
    """Per step: estimated vs actual cost (the actual is what its LLM calls cost, retries included).
    In a run with no end recorded (killed) a step still ``running`` is shown as ``cut short``."""
    if not costs:
        return
    from agentcli.cli.tables import Col, fitted_table

    rows = []
    for c in costs:
        overhead = c.kind in ("planner", "reviewer")
        what = c.tool or ("investigate" if c.kind == "investigate" else "llm")
        label = c.step_id if overhead else f"{c.step_id} {what}"
        est = "-" if overhead else _cost(c.estimated_cost_usd)
        status = "cut short" if c.status == "running" and not ended else c.status
        rows.append([label, status, str(c.calls), est, _cost(c.cost_usd), _signed(c.error_usd)])
    cols = [Col("step", flex=True), Col("status"), *(Col(n, justify="right") for n in
                                                     ("calls", "estimated", "actual", "actual - est."))]
    console.print(fitted_table(cols, rows, console.width, title="cost per step"))


@app.command("show", short_help="One run: its plan, timeline, approvals and costs.")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary and events as JSON.")] = False,
) -> None:
    """One run: its plan, the timeline of states and steps, approvals, calls and totals."""
    from agentcli.cli.render import render_plan
    from agentcli.record.reader import RunRecord
    from agentcli.record.runs import summarize
    from agentcli.record.stats import step_costs

    rec = RunRecord.open(state_of(ctx).settings.data_dir, run_id)
    summary = summarize(rec)
    costs = step_costs(rec)
    if json_out:
        typer.echo(json.dumps({"summary": summary.as_dict(), "step_costs": [c.as_dict() for c in costs],
                               "events": [e.model_dump(mode="json") for e in rec.events]}, indent=2))
        return
    for w in rec.warnings:
        print_warning(w)
    plan = rec.last_plan
    if plan is not None:
        render_plan(plan, console)
    render_user_words(rec)
    render_timeline(rec)
    render_step_costs(costs, ended=rec.finish is not None)
    s = summary
    items = [f"{s.status} ({s.reason})", f"steps {s.steps_ok}/{s.steps} ok", counted(s.calls, "LLM call"),
             f"{s.input_tokens}+{s.output_tokens} tokens",
             _cost(s.cost_usd) + (f" (+{s.unpriced_calls} unpriced)" if s.unpriced_calls else "")]
    if s.duration_s is not None:
        items.append(f"{s.duration_s:.1f}s")
    for i, line in enumerate(joined(items, console.width)):
        console.print(f"[bold]{escape(line)}[/bold]" if i == 0 else escape(line), highlight=False, soft_wrap=True)
    from agentcli.record.stats import cache_summary, run_usage

    cache = cache_summary(run_usage(rec))
    if cache:
        console.print(cache, highlight=False)
    if s.resume_command:
        console.print(f"cut short: resume with {s.resume_command}", highlight=False, soft_wrap=True)


def joined(items: list[str], width: int, sep: str = " · ") -> list[str]:
    """``items`` joined by ``sep`` in lines of at most ``width``, broken only between items (an
    item longer than a line has one of its own)."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + len(sep) + len(item) <= width:
            lines[-1] += sep + item
        else:
            lines.append(item)
    return lines


@app.command("stats", short_help="Calls, tokens and cost over recorded runs.")
def stats(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only runs started in this window (7d, 12h, 30m, 2w) or since a date (2026-01-31).")] = None,
    by: Annotated[str, typer.Option("--by", help="Group by model, day or status.")] = "model",
    json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Calls, tokens and cost over recorded runs, runs by outcome, and how good plan estimates were."""
    from agentcli.record.stats import compute_stats, parse_since

    report = compute_stats(state_of(ctx).settings.data_dir, since=parse_since(since) if since else None,
                           by=by)  # type: ignore[arg-type]
    if json_out:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    for w in report.warnings:
        print_warning(w)
    render_stats(report)


def render_stats(r: RunStats) -> None:
    from agentcli.record.stats import day_of

    window = "all runs" if r.since is None else f"runs since {day_of(r.since)} {_clock(r.since)[:8]} UTC"
    from agentcli.cli.tables import Col, fitted_table

    rows = []
    for g in [*r.groups, r.totals]:
        unpriced = "-" if not g.unpriced_calls else (
            f"{g.unpriced_calls} ({g.unpriced_input_tokens}+{g.unpriced_output_tokens} tok)")
        rows.append(["total" if g is r.totals else g.key, str(g.runs), str(g.calls), str(g.failed_calls),
                     str(g.input_tokens), str(g.output_tokens), _cost(g.cost_usd), unpriced])
    # The key (a model's name) is what a row is about: where the row cannot hold it whole, the
    # unpriced calls go to a line of their own under it, or, when there are none, are left out.
    none_unpriced = all(row[-1] == "-" for row in rows)
    cols = [Col(r.by, flex=True), *(Col(n, justify="right") for n in (
                "runs", "calls", "failed", "in tok", "out tok", "cost")),
            Col("unpriced", justify="right", optional=none_unpriced, detail=not none_unpriced)]
    table = fitted_table(cols, rows, console.width, title=f"usage by {r.by} ({window})")
    from rich.table import Table

    if len(rows) > 1 and isinstance(table, Table):  # no detail columns here: always a Table
        table.rows[-2].end_section = True
    console.print(table)
    from agentcli.record.stats import cache_summary

    cache = cache_summary(r.totals)
    if cache:
        console.print(cache, highlight=False)
    outcomes = ", ".join(f"{k} {v}" for k, v in r.runs_by_status.items()) or "none"
    console.print(f"runs: {r.runs} ({outcomes})", highlight=False)
    if r.failure_reasons:
        console.print("not completed: " + ", ".join(f"{escape(k)} {v}" for k, v in r.failure_reasons.items()),
                      highlight=False)
    if r.replayed_calls:
        console.print(f"{r.replayed_calls} calls served from recordings (replays, forks) not counted",
                      highlight=False)
    e = r.estimate
    if e.plans_compared:
        rel = "" if e.mean_abs_relative_error is None else f" ({e.mean_abs_relative_error:.0%} of the estimate)"
        console.print(f"plan estimates vs llm-step cost, {e.plans_compared} plans: mean error "
                      f"{_signed(e.mean_error_usd)}, mean absolute error ${e.mean_abs_error_usd or 0:.6f}{rel}; "
                      f"estimated ${e.estimated_usd:.6f}, actual ${e.actual_usd:.6f}", highlight=False)
    else:
        console.print(f"plan estimates: no comparable plan ({e.plans_skipped} not comparable)", highlight=False)


def _export_trace(rec: RunRecord, cfg: TelemetryConfig, json_out: bool) -> None:
    from agentcli.record.telemetry import export_recording

    for w in rec.warnings:
        print_warning(w)
    result = export_recording(rec, cfg)
    if json_out:
        typer.echo(json.dumps({"run_id": result.run_id, "exporter": cfg.exporter, "spans": result.spans,
                               "trace_ids": result.trace_ids}, indent=2))
    else:
        err_console.print(f"exported run {rec.run_id} as trace {', '.join(result.trace_ids) or '-'} "
                          f"({result.spans} spans, exporter {cfg.exporter})", highlight=False)


def replay(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(
        help="Run id (or a unique prefix), or a session id (s-...): every turn of the session.")],
    view: Annotated[bool, typer.Option("--view", help="Print the recorded timeline; execute nothing.")] = False,
    live_tools: Annotated[bool, typer.Option("--live-tools", help="Re-run read-only tools for real.")] = False,
    from_step: Annotated[str | None, typer.Option(
        "--from", help="Fork: recorded results before STEP, live from STEP on, as a new run.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="With --live-tools: re-run write/exec tools too; "
                                      "with --from: approve `ask` steps.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    export_trace: Annotated[bool, typer.Option(
        "--export-trace", help="Emit the recorded run as an OpenTelemetry trace ([telemetry] exporter); "
        "execute nothing.")] = False,
) -> None:
    """Re-execute a recorded run offline at zero cost and report `identical` or the first divergence."""
    import asyncio

    from agentcli.record.reader import RunRecord, find_run
    from agentcli.tools import build_registry

    state = state_of(ctx)
    settings = state.settings
    from agentcli.record.sessions import is_session_id

    if is_session_id(run_id):
        if view or live_tools or from_step is not None or export_trace:
            raise UsageError("a session is replayed turn by turn as recorded: no --view, --live-tools, --from "
                             "or --export-trace (give a turn's run id for those)")
        _replay_session(settings, run_id, json_out)
        return
    path = find_run(settings.data_dir, run_id)
    if export_trace:
        if live_tools or from_step is not None:
            raise UsageError("--export-trace executes nothing: it cannot be combined with --live-tools or --from")
        _export_trace(RunRecord.read(path), settings.config.telemetry, json_out)
        return
    if view:
        rec = RunRecord.read(path)
        for w in rec.warnings:
            print_warning(w)
        render_timeline(rec)
        return

    async def go() -> ReplayResult:
        from agentcli.engine.approval import Approver
        from agentcli.engine.replay import replay_run
        from agentcli.ids import new_run_id

        registry = await build_registry(settings, mcp=bool(live_tools or from_step))
        try:
            if from_step is None:
                return await replay_run(path, registry, live_tools=live_tools, live_writes=yes)
            from agentcli.models.routing import RoutingBackend

            fork_id = new_run_id()
            return await replay_run(path, registry, from_step=from_step, out_dir=settings.data_dir / "runs",
                                    new_run_id=fork_id, live_backend=state.backend or RoutingBackend(),
                                    live_approver=Approver(settings.config.approval, yes=yes), settings=settings)
        finally:
            await registry.aclose()

    result = asyncio.run(go())
    for w in result.warnings:
        print_warning(w)
    out = result.outcome
    if from_step is not None:
        payload = {"fork": out.run_id, "parent": run_id, "status": out.status, "reason": out.reason,
                   "answer": out.answer}
        if json_out:
            typer.echo(json.dumps(payload, indent=2))
        else:
            console.print(f"fork {out.run_id} of {run_id} from {from_step}: {out.status} ({escape(out.reason)})")
            if out.answer:
                console.print(escape(out.answer), highlight=False)
        raise typer.Exit(out.exit_code)
    if json_out:
        d = result.divergence
        typer.echo(json.dumps({"identical": d is None, "divergence": None if d is None else d.as_dict(),
                               "status": out.status, "reason": out.reason}, indent=2, default=str))
    elif result.divergence is None:
        calls = counted(out.totals["calls"], "LLM call")
        console.print(f"identical ({out.status}, {counted(len(out.steps), 'step')}, {calls} "
                      "served from the recording, $0 spent)", highlight=False)
    else:
        err_console.print(escape(result.divergence.describe()), highlight=False, soft_wrap=True)
    raise typer.Exit(ExitCode.OK if result.divergence is None else ExitCode.FAILED)


def _replay_session(settings: Settings, session_id: str, json_out: bool) -> None:
    """``agent replay SESSION``: each turn's run replayed, each turn's ledger built again."""
    import asyncio

    from agentcli.engine.turns import TurnReplay, replay_session
    from agentcli.record.sessions import SessionRecord
    from agentcli.tools import build_registry

    session = SessionRecord.open(settings.data_dir, session_id)
    for w in session.warnings:
        print_warning(w)

    async def go() -> list[TurnReplay]:
        registry = await build_registry(settings, mcp=False)
        try:
            return await replay_session(settings.data_dir, session, registry)
        finally:
            await registry.aclose()

    turns = asyncio.run(go())
    for t in turns:
        for w in t.result.warnings if t.result is not None else []:
            print_warning(f"turn {t.turn.turn}: {w}")
    same = all(t.identical for t in turns)
    if json_out:
        typer.echo(json.dumps({"session_id": session.session_id, "identical": same, "turns": [
            {"turn": t.turn.turn, "run_id": t.turn.run_id, "identical": t.identical, "detail": t.describe(),
             "ledger_tokens": t.turn.ledger.tokens} for t in turns]}, indent=2, default=str))
    else:
        for t in turns:
            line = f"turn {t.turn.turn} ({t.turn.run_id}): {t.describe()}"
            (console if t.identical else err_console).print(escape(line), highlight=False, soft_wrap=True)
        if same:
            console.print(f"identical: {counted(len(turns), 'turn')} of session {session.session_id}, their "
                          "ledgers built again byte for byte, $0 spent", highlight=False)
    raise typer.Exit(ExitCode.OK if same else ExitCode.FAILED)
