"""`agent config show` and `agent config path`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from agentcli.cli.commands.common import console, state_of

app = typer.Typer(help="Show the effective configuration and where it comes from.", no_args_is_help=True)


@app.command("show", short_help="The effective config: every key, its value and source.")
def show(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """The effective config: every key, its value and its source (default, file, env or flag)."""
    from agentcli.config import effective_items
    from agentcli.planning.instructions import load_project_instructions

    settings = state_of(ctx).settings
    items = [(k, _masked(k, v), src) for k, v, src in effective_items(settings)]
    instructions = load_project_instructions(settings.instructions_dir, settings.config.instructions)
    if json_out:
        payload = {
            "workspace": str(settings.workspace),
            "data_dir": str(settings.data_dir),
            "files": [str(f) for f in settings.files],
            "instructions": None if instructions is None else {
                k: v for k, v in instructions.record().items() if k != "text"},
            "values": {k: {"value": v, "source": s} for k, v, s in items},
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    from agentcli.cli.tables import Col, fitted_table

    cols = [Col("key", style="cyan"), Col("value", flex=True), Col("source", style="dim", flex=True)]
    rows = [[key, json.dumps(value), source] for key, value, source in items]
    console.print(fitted_table(cols, rows, console.width, title=f"workspace {settings.workspace}"))
    if instructions is None:
        console.print("project instructions: none", highlight=False)
    else:
        cut = " (cut to instructions.max_tokens)" if instructions.truncated else ""
        console.print(f"project instructions: {instructions.tokens} tokens{cut}", highlight=False)
        for f in instructions.files:
            console.print(f"  {escape(str(f))}", highlight=False, soft_wrap=True)
        if instructions.verify_command:
            console.print(f"  test command: {escape(instructions.verify_command)}", highlight=False)


def _masked(key: str, value: Any) -> Any:
    """Telemetry headers are credentials whatever their name: shown as set, never shown. Any
    other value has every known secret masked."""
    from agentcli.redact import REDACTED, Redactor

    if key.startswith("telemetry.headers.") and value:
        return REDACTED
    return Redactor()(value)


@app.command("path", short_help="Where config files are looked for, in precedence order.")
def path(ctx: typer.Context) -> None:
    """Where config files are looked for, in precedence order (lowest first)."""
    from agentcli.config import PROJECT_CONFIG_NAME, user_config_path

    st = state_of(ctx)
    user = user_config_path()
    typer.echo(f"user     {user}{'' if user.is_file() else '  (not present)'}")
    if st.config_file is not None:
        typer.echo(f"project  {st.config_file}  (--config)")
    else:
        from pathlib import Path

        proj = (st.workspace or Path.cwd()) / PROJECT_CONFIG_NAME
        typer.echo(f"project  {proj.resolve()}{'' if proj.is_file() else '  (not present)'}")
    typer.echo("env      AGENT_<KEY>, nested with __ (e.g. AGENT_MODEL, AGENT_BUDGET__MAX_COST_USD)")
