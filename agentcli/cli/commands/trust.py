"""`agent trust`: accept the project's config, AGENTS.md and hook scripts as they are now.

agentcli refuses (exit 4) to use files that run outside the sandbox when they changed since the
last run and nobody at a terminal accepted them (:mod:`agentcli.tools.trust`); this command
records them as trusted after the user has reviewed them.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from agentcli.cli.commands.common import console, counted, state_of


def trust(
    ctx: typer.Context,
    check: Annotated[bool, typer.Option("--check", help="Only say what changed; exit 4 if anything did.")
                     ] = False,
) -> None:
    """Trust the project config, AGENTS.md and hook scripts as they are now (after reviewing them)."""
    from agentcli.errors import ExitCode
    from agentcli.tools.trust import accept, changed_files, trusted_files

    settings = state_of(ctx).settings
    if check:
        changed = changed_files(settings)
        for line in changed:
            console.print(f"changed: {escape(line)}", highlight=False, soft_wrap=True)
        if changed:
            raise typer.Exit(ExitCode.DENIED)
        console.print("nothing changed since the last run", highlight=False)
        return
    changed = accept(settings)
    for line in changed:
        console.print(f"accepted: {escape(line)}", highlight=False, soft_wrap=True)
    files = trusted_files(settings)
    console.print(f"trusted {counted(len(files), 'file')} of {escape(str(settings.workspace))}", highlight=False,
                  soft_wrap=True)
