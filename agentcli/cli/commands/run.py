"""`agent run TASK` / `agent run --plan FILE`: plan, confirm, execute, review; show progress and results."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from agentcli.cli.commands.common import (
    MAX_COST_USD,
    MAX_SECONDS,
    MAX_STEPS,
    MAX_TOKENS,
    console,
    counted,
    err_console,
    in_range,
    print_error,
    print_warning,
    require_trusted,
    state_of,
    warn_short_secrets,
)
from agentcli.cli.prompts import STOP, Words, ask, say
from agentcli.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from agentcli.engine.approval import Answer, ApprovalRequest
    from agentcli.engine.executor import StepRun
    from agentcli.engine.fsm import Transition
    from agentcli.engine.runner import RunOutcome, UncertainStep
    from agentcli.engine.steering import Feedback, PlanRevision
    from agentcli.planning.plan import Plan


#: The approval prompt's choices: key, label (the key in brackets).
APPROVAL_CHOICES = [("y", "[y]es"), ("n", "[n]o"), ("a", "[a]lways (this tool, this run)"), ("b", "a[b]ort")]
#: The plan confirmation's.
PLAN_CHOICES = [("y", "[y]es"), ("n", "[n]o")]
#: The resume prompt's, for a step that may already have run.
UNCERTAIN_CHOICES = [("y", "[y]es"), ("d", "[d]one already, go on"), ("n", "[n]o, stop")]

#: The hints after the legends of the prompts that take the person's own words (feedback).
PLAN_WORDS = "or type what to change"
APPROVAL_WORDS = "or type what to do instead"

#: ``--output`` formats: text for people, one JSON document, or a JSON line per event.
OUTPUT_FORMATS = ("text", "json", "jsonl")
#: Set in the click context's ``meta`` by `agent chat`: the runs it makes are turns of a process
#: that goes on after an interrupted one.
CHAT_META_KEY = "agentcli.chat"
#: Set in ``meta`` by a turn of `agent chat`: what was typed while it ran and not applied (a line not
#: sent, messages queued after its last step boundary), for the chat's next prompt.
CHAT_UNSENT_KEY = "agentcli.chat.unsent"
#: Set in ``meta`` by `agent chat` for its turns: what runs a slash command typed while a turn runs
#: (returns whether it was done; see :class:`agentcli.cli.steer.TerminalSteering`).
CHAT_COMMAND_KEY = "agentcli.chat.command"
#: What the input line under the status line says while nothing is typed (`agent chat`'s turns).
STEER_HINT = "type a message: Enter queues it for this turn's next step boundary"


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def _ask_approval(req: ApprovalRequest) -> Answer | Feedback:
    err_console.rule(f"[bold]approve step {escape(req.step_id)}: {escape(req.tool)}[/bold] ({req.risk})")
    if req.preview:
        from rich.syntax import Syntax

        lexer = "diff" if req.preview.startswith(("---", "diff", "@@")) else "text"
        err_console.print(Syntax(req.preview, lexer, theme="ansi_dark", word_wrap=True))
    else:
        import json

        err_console.print(escape(json.dumps(req.args, indent=2, default=str)))
    answer = ask("run it?", APPROVAL_CHOICES, default="n", words=APPROVAL_WORDS)
    if isinstance(answer, Words):  # not run: the plan is revised with the user's words
        from agentcli.engine.steering import Feedback

        return Feedback(str(answer))
    # Ctrl-C at the prompt stops the run: an abort, recorded as the user's answer.
    return {"y": "yes", "n": "no", "a": "always", "b": "abort", STOP: "abort"}[answer]  # type: ignore[return-value]


def _confirm_factory(yes: bool, quiet: bool) -> Any:
    def confirm(plan: Plan, replan: bool) -> bool | Feedback:
        from agentcli.cli.render import render_plan

        if not quiet:
            if replan:
                err_console.print("[bold yellow]the plan changed:[/bold yellow]")
            render_plan(plan, err_console)
        if yes:
            return True
        if not _interactive():
            print_error("the plan needs confirmation and there is no terminal; re-run with --yes")
            return False
        answer = ask("run this plan?", PLAN_CHOICES, default="y", words=PLAN_WORDS)
        if isinstance(answer, Words):  # the plan is revised with the user's words, then asked again
            from agentcli.engine.steering import Feedback

            return Feedback(str(answer))
        return answer == "y"  # Ctrl-C: not confirmed
    return confirm


def _revision_shower(quiet: bool) -> Any:
    """Shows a plan revised for the user's words as its diff (waits for an open prompt)."""
    def show(rev: PlanRevision) -> None:
        if quiet:
            return
        from agentcli.cli.steer import render_revision

        say(lambda: render_revision(rev, err_console))
    return show


def _uncertain_factory(rerun: bool, yes: bool) -> Any:
    """How a resume settles a step that may already have run: the flag, the user at a terminal,
    and otherwise (``--yes`` alone, no terminal) stop: a side effect is never repeated unasked."""
    def decide(u: UncertainStep) -> tuple[str, str]:
        if rerun:
            return "rerun", "flag"
        if yes or not _interactive():
            return "stop", "policy"
        err_console.rule(f"[bold yellow]step {escape(u.step_id)} may already have run[/bold yellow]")
        err_console.print(f"It was started (attempt {u.attempt}) before the run stopped, and its result was "
                          "never recorded:", highlight=False)
        import json

        err_console.print(escape(f"  {u.tool} {json.dumps(u.args, ensure_ascii=False, default=str)}"),
                          highlight=False)
        answer = ask("run it again?", UNCERTAIN_CHOICES, default="n")
        return {"y": "rerun", "d": "done", "n": "stop", STOP: "stop"}[answer], "user"
    return decide


_PLAIN_ICONS = {"running": ">", "ok": "ok", "failed": "FAILED", "denied": "denied", "skipped": "skipped",
                "pending": ".."}


def _progress(quiet: bool) -> tuple[Any, Any]:
    icons = {"running": "[cyan]>[/cyan]", "ok": "[green]ok[/green]", "failed": "[red]FAILED[/red]",
             "denied": "[yellow]denied[/yellow]", "skipped": "[dim]skipped[/dim]", "pending": "[dim]..[/dim]"}
    # Two lines per step: on a terminal through rich (colours); piped, as plain lines written
    # straight to the stream (rich's markup parsing and rendering cost ~0.7 ms a line, more than
    # the step itself in a long run).
    styled = err_console.is_terminal

    def on_step(run: StepRun) -> None:
        if quiet:
            return
        s = run.step
        what = s.tool or ("investigate" if s.kind == "investigate" else "llm")
        if run.status == "running":
            if not styled:
                err_console.file.write(f"> {s.id} {what}: {s.title}\n")
                return
            line = f"{icons['running']} {s.id} {escape(what)}: {escape(s.title)}"
        else:
            cost = "" if run.cost_usd in (None, 0) else f" ${run.cost_usd:.6f}"
            message = str((run.error or {}).get("message", "")) if run.error else ""
            if not styled:
                err = f" - {message[:200]}" if run.error else ""
                err_console.file.write(f"  {_PLAIN_ICONS.get(run.status, run.status)} {s.id} {run.duration_s:.2f}s"
                                       f"{cost}{err}\n")
                return
            err = f" - {escape(message)[:200]}" if run.error else ""
            line = f"  {icons.get(run.status, run.status)} {s.id} {run.duration_s:.2f}s{cost}{err}"
        # A step finishing while an approval prompt is open is shown after the answer, not inside it
        # (a prompt needs a terminal: piped, there is none).
        say(lambda: err_console.print(line, highlight=False, soft_wrap=True))

    def on_transition(t: Transition) -> None:
        # Into review and re-planning with why; out of a re-plan with what it made (e.g. the check
        # steps a review added).
        if not quiet and (t.dst.value in ("REVIEWING", "REPLANNING") or t.src.value == "REPLANNING"):
            line = f"[dim]{t.dst.value.lower()}: {escape(t.reason)}[/dim]"
            say(lambda: err_console.print(line, highlight=False))

    return on_step, on_transition


def _took(step: dict[str, Any]) -> str:
    """A step's working time, and the wait for approval apart when there was one."""
    wait = step.get("approval_wait_s") or 0
    return f"{step['duration_s']:.2f}s" + (f" (+{wait:.1f}s approval)" if wait >= 0.05 else "")


def verify_line(out: RunOutcome, command: str | None) -> str:
    """Whether the verify command ran, and how it ended, in one line."""
    v = out.verify
    if v is None:
        if not command:
            return "verify: not run (no verify command: [verify] command, or AGENTS.md)"
        if not out.changed_files:
            return f"verify: not run (`{command}`: the run changed no files)"
        return f"verify: not run (`{command}`: the run stopped before it)"
    code = v.get("exit_code")
    status = {"passed": "PASSED", "failed": "FAILED", "denied": "not run (denied)",
              "unavailable": "not run (unavailable)"}.get(str(v.get("status")), str(v.get("status")))
    return f"verify: {status}: `{v.get('command', command)}`" + (f" (exit code {code})" if code is not None else "")


def render_outcome(out: RunOutcome, *, quiet: bool = False, verify_command: str | None = None) -> None:
    """The steps table (stdout), the answer (stdout), whether verification ran and passed, and
    the totals line (stderr); only the answer when ``quiet``."""
    from agentcli.cli.tables import Col, format_cost, quick_fitted_table, short_cost

    if not quiet and out.steps:  # stopped before any step (while planning): no empty table
        cols = [Col("step", flex=True), Col("status"), *(Col(n, justify="right") for n in
                                                         ("attempts", "tokens", "est. cost", "cost", "time"))]
        rows = [[f"{s['id']} {s['tool'] or s.get('kind') or 'llm'}", s["status"], str(s["attempts"]),
                 str(s["input_tokens"] + s["output_tokens"]), short_cost(s["estimated_cost_usd"]),
                 short_cost(s["cost_usd"]), f"{s['duration_s']:.2f}s"] for s in out.steps]
        console.print(quick_fitted_table(cols, rows, console.width, title=f"run {out.run_id}"))
    if out.answer and out.reason != "error":  # an error's message is the error line, on stderr, said once
        console.print(escape(out.answer), soft_wrap=True, highlight=False)
    if quiet:
        return
    if out.changed_files:
        shown = out.changed_files[:20]
        more = f" (+{len(out.changed_files) - 20} more)" if len(out.changed_files) > 20 else ""
        console.print(f"[bold]changed:[/bold] {escape(', '.join(shown))}{more}", soft_wrap=True, highlight=False)
    else:
        console.print("[bold]changed:[/bold] no files", highlight=False)
    console.print(escape(verify_line(out, verify_command)), highlight=False, soft_wrap=True)
    t = out.totals
    unpriced = t["unpriced_calls"]
    cost = format_cost(t["cost_usd"]) + (
        f" (+{unpriced} call{'s' if unpriced != 1 else ''} at an unknown price, counted as $0)" if unpriced else "")
    err_console.print(
        f"[bold]{out.status}[/bold] ({escape(out.reason)}) · {counted(t['calls'], 'LLM call')} · "
        f"{t['input_tokens']}+{t['output_tokens']} tokens · {cost} · {out.duration_s:.1f}s",
        highlight=False, soft_wrap=True)


#: The flag that raises each budget a run can stop on (``budget_exceeded:WHICH``).
_BUDGET_FLAGS = {"steps": "--max-steps N", "cost": "--max-cost USD", "tokens": "--max-tokens N",
                 "seconds": "--max-seconds S"}


def resume_hint(out: RunOutcome) -> str | None:
    """How to go on with a run that stopped short of its end and can be resumed: stopped on a budget
    (with the flag that raises it), or at a question (aborted, declined). An interrupted run's answer
    says it already; a failed one is not resumed by asking again."""
    command = f"agent run --resume {out.run_id}"
    if out.reason.startswith("budget_exceeded:"):
        which = out.reason.split(":", 1)[1]
        if which == "replans":
            return f"resume with more re-plans: AGENT_BUDGET__MAX_REPLANS=N {command}"
        flag = _BUDGET_FLAGS.get(which)
        return f"resume with a larger budget: {command} {flag}" if flag else f"resume with: {command}"
    if out.reason in ("aborted", "denied"):
        return f"resume with: {command}"
    return None


def _stdin_steering() -> Any:
    """A steering queue fed by stdin's JSON lines (:mod:`agentcli.cli.steer`), or None when stdin
    is a terminal or not a file."""
    import os

    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    if os.isatty(fd):
        return None
    from agentcli.cli.steer import read_steering
    from agentcli.engine.steering import SteeringQueue

    queue = SteeringQueue()
    read_steering(queue, fd, print_error)
    return queue


def _queued_line(text: str) -> None:
    from agentcli.cli.steer import one_line

    # A pasted message of many lines: its first, and how many follow (it is recorded whole).
    shown = escape(one_line(text))
    say(lambda: err_console.print(f"[dim]queued for the next step boundary of this turn: {shown}[/dim]",
                                  highlight=False, soft_wrap=True))


def _jsonl_listener() -> Any:
    """Writes each event to stdout as one JSON line as it is appended (``--output jsonl``)."""
    import json

    def emit(event: Any) -> None:
        sys.stdout.write(json.dumps(event.model_dump(mode="json"), separators=(",", ":"), default=str,
                                    ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return emit


def run(
    ctx: typer.Context,
    task: Annotated[str | None, typer.Argument(help="What the agent should do.")] = None,
    plan_file: Annotated[Path | None, typer.Option("--plan", help="Execute exactly this saved plan.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm the plan and approve `ask` steps.")] = False,
    approve_all: Annotated[bool, typer.Option(
        "--approve-all", help="Approve every step, even those the policy denies. Dangerous.")] = False,
    resume: Annotated[str | None, typer.Option(
        "--resume", help="Continue an interrupted, failed or budget-stopped run from its last completed step.")
    ] = None,
    rerun_uncertain: Annotated[bool, typer.Option(
        "--rerun-uncertain", help="On --resume, run again the steps whose side effect may already have "
        "happened (started before the run stopped, result never recorded). Without it they are asked "
        "about at a terminal, and stop the resume otherwise (exit 4).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the final result as JSON (--output json).")
                        ] = False,
    output: Annotated[str, typer.Option(
        "--output", help="text (for people), json (the result), or jsonl (every event as a JSON line "
        "on stdout as it happens, then the result line).")] = "text",
    output_schema: Annotated[Path | None, typer.Option(
        "--output-schema", help="A JSON Schema file: the final answer must be JSON valid against it.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the answer.")] = False,
    no_instructions: Annotated[bool, typer.Option(
        "--no-project-instructions", help="Do not read AGENTS.md into the prompts for this run.")] = False,
    max_steps: Annotated[int | None, typer.Option(
        "--max-steps", callback=in_range(1, MAX_STEPS), help="Step budget.")] = None,
    max_cost: Annotated[float | None, typer.Option(
        "--max-cost", callback=in_range(0, MAX_COST_USD), help="Cost budget in USD.")] = None,
    max_tokens: Annotated[int | None, typer.Option(
        "--max-tokens", callback=in_range(1, MAX_TOKENS), help="Token budget.")] = None,
    max_seconds: Annotated[float | None, typer.Option(
        "--max-seconds", callback=in_range(0.001, MAX_SECONDS), help="Wall-time budget.")] = None,
    sandbox: Annotated[str | None, typer.Option(
        "--sandbox", help="OS sandbox of commands this run: workspace-write, read-only or off.")] = None,
    steer_typed: Annotated[bool, typer.Option(
        "--steer-from-terminal", hidden=True, help="Lines typed while the plan runs steer it (agent chat's "
        "turns).")] = False,
    continue_from: Annotated[str | None, typer.Option(
        "--continue", help="Add TASK as the next turn of a session: the session of this run (a run id, a "
        "prefix or `last`; `agent run --continue \"TASK\"` continues the last run). A run in no session "
        "becomes its first turn. The planner gets the ledger of the earlier turns.")] = None,
    session_id: Annotated[str | None, typer.Option(
        "--session", help="Add TASK as the next turn of this session (an id, a prefix or `last`).")] = None,
) -> None:
    """Plan a task, confirm the plan, execute it step by step, and report."""
    from agentcli.cli.live import RunStatus, leave, run_interruptible

    # On a terminal, a status line from the first moment (before the engine is imported), taken
    # off the screen however the command ends.
    status = RunStatus(err_console, enabled=err_console.is_terminal and not quiet and not json_out
                       and output == "text" and not state_of(ctx).log_json)
    status.start()
    ctx.call_on_close(status.stop)

    from agentcli.engine.approval import Approver
    from agentcli.engine.runner import ReplanContext
    from agentcli.engine.runner import run as run_core
    from agentcli.engine.session import RunSession
    from agentcli.engine.verify import verify_command
    from agentcli.ids import new_run_id
    from agentcli.planning import planner
    from agentcli.planning.instructions import load_project_instructions

    if continue_from is not None and task is None:
        # `--continue "TASK"`: the option's value is the task, and the run continued is the last.
        task, continue_from = continue_from, "last"
    if (continue_from is not None or session_id is not None) and (task is None or plan_file or resume):
        raise UsageError("--continue and --session add a TASK as a new turn (not with --plan or --resume)")
    if continue_from is not None and session_id is not None:
        raise UsageError("give one of --continue RUN_ID and --session SESSION")
    if sum(x is not None for x in (task, plan_file, resume)) != 1:
        raise UsageError("give one of: a TASK, --plan FILE, --resume RUN_ID")
    if task is not None and not task.strip():
        raise UsageError("the task is empty")
    if rerun_uncertain and resume is None:
        raise UsageError("--rerun-uncertain only applies to --resume RUN_ID")
    if output not in OUTPUT_FORMATS:
        raise UsageError(f"--output must be one of {', '.join(OUTPUT_FORMATS)} (got {output!r})")
    if json_out:
        output = "json"
    schema = None
    if output_schema is not None:
        from agentcli.engine.answer import load_output_schema

        schema = load_output_schema(output_schema)
    state = state_of(ctx)
    state.overrides.update({k: v for k, v in {
        "budget.max_steps": max_steps, "budget.max_cost_usd": max_cost,
        "budget.max_tokens": max_tokens, "budget.max_seconds": max_seconds,
        "sandbox.mode": sandbox}.items() if v is not None})
    settings = state.settings
    warn_short_secrets(settings, state.environ)
    require_trusted(settings)
    if plan_file is not None:
        planner.read_plan_file(plan_file)  # a broken file fails here, before the run has a folder
    resume_from = None
    if resume is not None:
        from agentcli.engine.runner import resume_state
        from agentcli.record.reader import RunRecord

        rec = RunRecord.open(settings.data_dir, resume)
        for w in rec.warnings:
            print_warning(w)
        resume_from = resume_state(rec)
        task = rec.task or (resume_from.plan.task if resume_from.plan is not None else None)
        run_id = rec.run_id
    else:
        run_id = new_run_id()
    conversation = ledger = None
    if continue_from is not None or session_id is not None:
        from agentcli.record.ledger import session_ledger
        from agentcli.record.sessions import session_to_continue

        conversation = session_to_continue(settings.data_dir, settings.workspace, run=continue_from,
                                           session=session_id)
        ledger = session_ledger(settings.data_dir, conversation, settings.config)
    elif resume is not None:
        from agentcli.record.ledger import resumed_turn_ledger

        # A turn of a session, resumed: a re-plan gets the ledger the turn began with.
        ledger = resumed_turn_ledger(settings.data_dir, run_id, rec.recorded_config())
    # What would fail the first model call (a key, a server, a model name, the task's length)
    # fails here, exit 2, before the run has a folder.
    from agentcli.models.client import LLMClient
    from agentcli.models.preflight import preflight

    status.set_phase("checking the model")
    for warning in preflight(LLMClient(settings.config, backend=state.backend),
                             task if resume is None and plan_file is None else None):
        print_warning(warning)
    instructions = None if no_instructions else load_project_instructions(settings.instructions_dir,
                                                                           settings.config.instructions)
    quiet = quiet or output != "text"  # machine output: no progress, no plan table
    on_step, on_transition = status.watch(*_progress(quiet))
    approver = Approver(settings.config.approval, prompt=status.pausing(_ask_approval) if _interactive() else None,
                        yes=yes, approve_all=approve_all)

    checkpoint_error: list[str] = []
    if conversation is not None and ledger is not None:
        # Recorded (fsynced) before the run exists: a turn killed at once is still the session's.
        conversation.append_turn(run_id, task or "", ledger.made())
    # --output jsonl: JSON lines on stdin steer the running plan (a terminal's stdin is a person's,
    # for the prompts: steering there is left to an interactive session).
    steering = _stdin_steering() if output == "jsonl" else None
    typed = None
    if steer_typed and steering is None and _interactive() and not quiet:
        # In `agent chat`: a line typed while the plan runs steers it (read only between questions).
        from agentcli.cli.steer import TerminalSteering
        from agentcli.engine.steering import SteeringQueue

        steering = SteeringQueue()
        typed = TerminalSteering(steering, on_queued=_queued_line, on_error=print_warning, on_key=status.refresh,
                                 on_command=ctx.meta.get(CHAT_COMMAND_KEY))
    verify_cmd = verify_command(settings.config, instructions.verify_command if instructions else None)

    async def go() -> RunOutcome:
        session = await RunSession.open(settings, run_id, backend=state.backend, approver=approver,
                                        log_json=state.log_json, resume=resume_from, on_warning=print_warning,
                                        resumed_from=rec if resume is not None else None,
                                        extra_start={**({"resumed": True} if resume_from else {}),
                                                     **({"no_project_instructions": True} if no_instructions
                                                        else {})})
        try:
            status.watch_client(session.client)
            if output == "jsonl":
                session.events.listeners.append(_jsonl_listener())
            if session.hooks is not None and not quiet:
                session.hooks.on_warning = lambda r: print_warning(f"hook `{r.command}` ({r.event}): {r.message}")
            registry, client, memory = session.registry, session.client, session.memory
            assert registry is not None
            if status.enabled:  # a running command's last output line under the status line
                registry.ctx.on_output = status.command_output
                if session.hooks is not None:
                    session.hooks.on_output = status.command_output
            for warning in registry.warnings:
                print_warning(warning)
            given = None
            if plan_file is not None:
                given, changed, diff = planner.load_plan(plan_file, registry, settings.config, client=client)
                if changed:
                    print_warning(f"{plan_file} differs from the plan as made; it was re-validated and "
                                  f"re-hashed ({given.hash[:12]})")
                    if diff and not quiet:
                        err_console.print(escape(diff), highlight=False)

            recall = memory.recall_for_planner if memory is not None else None
            past_plans = memory.recall_plans if memory is not None else None

            earlier = ledger.text if ledger is not None else ""
            revisions = 0

            async def plan_fn(t: str, rc: ReplanContext | None) -> Plan:
                nonlocal revisions
                if rc is not None and rc.user is not None:  # the user's words: its own plan id each time
                    revisions += 1
                    return await planner.make_plan(t, settings=settings, registry=registry, client=client,
                                                   plan_id=f"{run_id}-u{revisions}", replan=rc.replan(),
                                                   recall=recall, past_plans=past_plans, instructions=instructions,
                                                   ledger=earlier)
                if rc is None:
                    return await planner.make_plan(t, settings=settings, registry=registry, client=client,
                                                   plan_id=run_id, recall=recall, past_plans=past_plans,
                                                   instructions=instructions, ledger=earlier)
                return await planner.make_plan(t, settings=settings, registry=registry, client=client,
                                               plan_id=f"{run_id}-r{len(rc.plan.steps)}",
                                               replan=rc.replan(), recall=recall, past_plans=past_plans,
                                               instructions=instructions, ledger=earlier)

            deps = session.deps(plan_fn, status.pausing(_confirm_factory(yes, quiet)), on_step=on_step,
                                on_transition=on_transition, output_schema=schema, instructions=instructions,
                                verify_command=verify_cmd, steering=steering,
                                on_revision=status.pausing(_revision_shower(quiet)))
            deps.decide_uncertain = status.pausing(_uncertain_factory(rerun_uncertain, yes))
            return await run_core(given.task if given else (task or ""), deps, plan=given)
        finally:
            if session.checkpoints is not None and session.checkpoints.error:
                checkpoint_error.append(session.checkpoints.error)
            await session.aclose()

    try:
        # Ctrl-C: the first stops the run (recorded, resumable), a second quits at once.
        with typed if typed is not None else contextlib.nullcontext():
            if typed is not None and typed.quiet:  # the terminal echoes no key: the status line draws them
                status.show_typing(lambda: typed.typed if typed is not None else "", STEER_HINT)
            done, interrupted = run_interruptible(go, status)
    except KeyboardInterrupt:
        done, interrupted = None, True
    status.stop()
    late = steering.pending() if steering is not None else []
    back = typed is not None and bool(ctx.meta.get(CHAT_META_KEY))
    if late:  # an interrupted run's too: none is dropped unsaid
        said = f"{counted(len(late), 'message')} {'typed' if typed is not None else 'on stdin'} " \
               f"{'was' if len(late) == 1 else 'were'} not applied"
        if back:  # the words themselves are on the screen, in the prompt
            print_warning(f"{said} (the turn ended before another step boundary); the prompt below starts "
                          f"with {'it' if len(late) == 1 else 'them'}: Enter sends it as the next turn")
        else:
            print_warning(f"{said}: the run ended before another step boundary: " + "; ".join(m[:80] for m in late))
    if back and typed is not None:  # nothing typed is lost: the chat's next prompt starts with it
        ctx.meta[CHAT_UNSENT_KEY] = "\n".join([*late, *([typed.unsent()] if typed.unsent() else [])])
    # In `agent chat` the process goes on to the next turn: a model call still in flight is left to
    # end in its thread (the local model stops at its next token), not the chat.
    ends_process = not ctx.meta.get(CHAT_META_KEY)
    if done is None:
        print_error(f"interrupted; the run is recorded, resume with: agent run --resume {run_id}")
        if ends_process:
            leave(ExitCode.INTERRUPTED)
        raise typer.Exit(ExitCode.INTERRUPTED)
    outcome = done
    if output == "json":
        typer.echo(outcome.model_dump_json(indent=2))
    elif output == "jsonl":
        import json

        typer.echo(json.dumps({"type": "run_outcome", **outcome.model_dump(mode="json")}, ensure_ascii=False))
    else:
        render_outcome(outcome, quiet=quiet, verify_command=verify_cmd)
        if outcome.undo and not quiet:
            # Two lines: each fits 80 columns whole (one wrapped mid-phrase there).
            err_console.print(f"[dim]changed the workspace; undo with: {escape(outcome.undo)}\n"
                              f"see what changed: agent runs diff {run_id}[/dim]", highlight=False)
        elif checkpoint_error:
            print_warning(f"no checkpoint of this run, so no undo: {checkpoint_error[0]}")
        hint = resume_hint(outcome)
        if hint and not quiet:
            err_console.print(f"[dim]{escape(hint)}[/dim]", highlight=False, soft_wrap=True)
    if outcome.exit_code != ExitCode.OK and output == "text":
        # On one terminal the answer is on the screen just above: the error line does not repeat it.
        shown = bool(outcome.answer) and not quiet and console.is_terminal and err_console.is_terminal
        detail = outcome.answer if outcome.reason == "error" else (
            f"{outcome.reason}: {outcome.answer}" if outcome.answer and not shown else outcome.reason)
        print_error(detail)
    if interrupted and ends_process:
        leave(outcome.exit_code)  # a model call still in flight in a thread must not hold the exit
    raise typer.Exit(outcome.exit_code)
