"""`agent doctor`: one line per check (ok, warn or FAIL); exit 1 when one fails."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from agentcli.cli.commands.common import console, state_of
from agentcli.errors import ExitCode


def doctor(ctx: typer.Context) -> None:
    """Check the config, data dir, models, offline tokenizer and LanceDB."""
    from agentcli.cli.doctor import run_checks

    st = state_of(ctx)
    checks = run_checks(lambda: st.settings, st.workspace or Path.cwd(), st.environ)
    for c in checks:
        mark = "[red]FAIL[/red]" if not c.ok else "[yellow]warn[/yellow]" if c.warn else "[green]ok  [/green]"
        console.print(f"{mark} {escape(c.name)}: {escape(c.detail)}", soft_wrap=True, highlight=False)
    if not all(c.ok for c in checks):
        raise typer.Exit(ExitCode.FAILED)
