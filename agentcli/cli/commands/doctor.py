"""`agent doctor`: one line per check (ok, warn or FAIL); exit 1 when one fails."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from agentcli.cli.commands.common import console, state_of
from agentcli.errors import ExitCode


def doctor(ctx: typer.Context) -> None:
    """Check the config, data dir, models, offline tokenizer and LanceDB."""
    from rich.table import Table

    from agentcli.cli.doctor import iter_checks

    st = state_of(ctx)
    failed = False
    for c in iter_checks(lambda: st.settings, st.workspace or Path.cwd(), st.environ):  # each line as it is done
        failed = failed or not c.ok
        mark = "[red]FAIL[/red]" if not c.ok else "[yellow]warn[/yellow]" if c.warn else "[green]ok  [/green]"
        line = f"{escape(c.name)}: {escape(c.detail)}"
        if not console.is_terminal:  # piped: one line per check, whatever its length
            console.print(f"{mark} {line}", soft_wrap=True, highlight=False)
            continue
        # On a terminal a long line wraps under its own text, the marks a column of their own.
        row = Table.grid(padding=(0, 1))
        row.add_column(width=4, no_wrap=True)
        row.add_column(overflow="fold")
        row.add_row(mark, line)
        console.print(row, highlight=False)
    if failed:
        raise typer.Exit(ExitCode.FAILED)
