"""`agent map [--task TEXT]`: the repository map a hosted planner gets, as it gets it."""

from __future__ import annotations

from typing import Annotated

import typer

from agentcli.cli.commands.common import MAX_MAP_TOKENS, err_console, in_range, print_warning, state_of


def map_(
    ctx: typer.Context,
    task: Annotated[str, typer.Option("--task", "-t", help="Rank the map for this task, as the planner would.")]
    = "",
    max_tokens: Annotated[int | None, typer.Option(
        "--tokens", callback=in_range(0, MAX_MAP_TOKENS),
        help="Budget in tokens (default: planner.context_tokens).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the map and its figures as JSON.")] = False,
) -> None:
    """Print the repository map the planner's request carries: the file tree and ranked outlines."""
    import json

    from agentcli.models.profile import apply_overrides
    from agentcli.models.routing import static_profile
    from agentcli.planning.strategy import planner_map

    state = state_of(ctx)
    settings = state.settings
    config = settings.config
    model = config.model_for("planner")
    override = config.models.get(model)
    profile = apply_overrides(static_profile(model), override.model_dump() if override is not None else None)
    memory = None
    if task and config.memory.enabled:  # ranked as the planner ranks: with the words memory recalls
        from agentcli.memory import open_memory

        memory = open_memory(settings, on_warning=print_warning)
    result = planner_map(settings.workspace, settings.data_dir, config, task, profile=profile,
                         recall=memory.recall_for_planner if memory is not None else None, max_tokens=max_tokens)
    if json_out:
        typer.echo(json.dumps({"model": result.model, "planner_gets_it": result.planner_gets_it,
                               "budget": result.budget, "tokens": result.tokens, "map": result.text}, indent=2))
        return
    if not result.planner_gets_it:
        print_warning(f"{result.model} is a small local planner: its requests carry no map. "
                      "This is the map a hosted planner would get.")
    if not result.text:
        err_console.print("no map: " + ("planner.context_tokens is 0" if result.budget == 0
                                        else "the workspace has no files to show"), highlight=False)
        return
    typer.echo(result.text)
    err_console.print(f"[dim]{result.tokens} of {result.budget} tokens ({result.model}'s tokenizer)[/dim]",
                      highlight=False)
