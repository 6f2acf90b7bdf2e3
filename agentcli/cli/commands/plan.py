"""`agent plan TASK`: make a plan, save it, show it. Never runs a step and never prompts.

On a terminal it shows what `agent run` shows while it plans: the status line (the phase, the
survey's reads, the time, tokens and cost, the model call in flight) with the planner's answer
streaming under it; Ctrl-C stops it at once (exit 130)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from agentcli.cli.commands.common import (
    console,
    err_console,
    print_error,
    print_warning,
    state_of,
    warn_short_secrets,
)

if TYPE_CHECKING:
    from agentcli.planning.plan import Plan


def plan(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(help="What the agent should do.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the plan as JSON on stdout, nothing else.")]
    = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also save the plan to this file.")]
    = None,
    no_instructions: Annotated[bool, typer.Option(
        "--no-project-instructions", help="Do not read AGENTS.md into the planner's prompt.")] = False,
) -> None:
    """Plan a task as typed steps (tools, args, dependencies, approvals, cost estimate)."""
    from agentcli.cli.live import RunStatus, leave, run_interruptible

    state = state_of(ctx)
    # As `agent run` shows it, from the first moment, and off the screen however the command ends.
    status = RunStatus(err_console, enabled=err_console.is_terminal and not json_out and not state.log_json)
    status.set_phase("planning")
    status.start()
    ctx.call_on_close(status.stop)

    from agentcli.cli.render import render_plan
    from agentcli.engine.session import build_llm_client
    from agentcli.errors import ExitCode, UsageError
    from agentcli.ids import new_run_id
    from agentcli.models.preflight import preflight
    from agentcli.planning import planner
    from agentcli.planning.instructions import load_project_instructions
    from agentcli.tools import build_registry

    if not task.strip():
        raise UsageError("the task is empty")
    settings = state.settings
    warn_short_secrets(settings, state.environ)
    plan_id = new_run_id()
    instructions = None if no_instructions else load_project_instructions(settings.instructions_dir,
                                                                           settings.config.instructions)
    client = build_llm_client(settings, plan_id, log_json=state.log_json, backend=state.backend)
    status.watch_client(client)  # the call in flight, the totals, the answer as it streams
    for warning in preflight(client, task):
        print_warning(warning)

    memory = None
    if settings.config.memory.enabled:  # plan as `agent run` would: with what memory recalls
        from agentcli.memory import open_memory

        memory = open_memory(settings, on_warning=print_warning)

    async def make() -> Plan:
        registry = await build_registry(settings)
        try:
            for warning in registry.warnings:
                print_warning(warning)
            return await planner.make_plan(
                task, settings=settings, registry=registry, client=client, plan_id=plan_id,
                recall=memory.recall_for_planner if memory is not None else None,
                past_plans=memory.recall_plans if memory is not None else None, instructions=instructions)
        finally:
            await registry.aclose()

    result, interrupted = run_interruptible(make, status)
    status.stop()
    if result is None or interrupted:
        print_error("interrupted; no plan was made")
        leave(ExitCode.INTERRUPTED)  # a model call still in flight in a thread must not hold the exit
        raise typer.Exit(ExitCode.INTERRUPTED)
    saved = planner.plan_path(settings.data_dir, result.id)
    if output is not None:
        planner.save_plan(result, output)
    if json_out:
        typer.echo(result.to_json(), nl=False)
        return
    render_plan(result, console)
    where = str(saved) + (f" and {output}" if output is not None else "")
    err_console.print(f"[dim]plan saved to {escape(where)}[/dim]", soft_wrap=True, highlight=False)
