"""The entry point: the first thing `agent run` shows on a terminal, before anything is imported.

Importing the command line (typer, rich, pydantic, the command modules) takes a few hundred
milliseconds; :func:`main` writes ``starting…`` to stderr first when the command is ``run`` or ``plan`` on a
terminal with its status line on (see :mod:`agentcli.cli.live`, whose status line then takes
this line's place). Only the standard library is imported here.
"""

from __future__ import annotations

import os
import sys

#: Global options that take a value (the command is the first argument that is not an option).
_VALUED = frozenset({"--config", "-c", "--workspace", "-w", "--model", "-m", "--api-base", "--data-dir"})
#: Options after which no status line is drawn: machine output, quiet, help.
_NO_STATUS = frozenset({"--quiet", "-q", "--json", "--output", "--log-json", "--help", "-h", "--version"})


def show_early(argv: list[str]) -> bool:
    """Write the first status line when ``argv`` is an ``agent run`` the status line is drawn for;
    whether it was written."""
    command, skip = None, False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _VALUED:
            skip = True
        elif not arg.startswith("-"):
            command = arg
            break
    if command not in ("run", "plan") or _NO_STATUS.intersection(a.split("=", 1)[0] for a in argv):
        return False
    try:
        if not os.isatty(2) or os.environ.get("TERM") == "dumb":
            return False
        utf8 = "UTF" in (getattr(sys.stderr, "encoding", "") or "").upper()
        os.write(2, ("⠋ starting…\n" if utf8 else "- starting...\n").encode())
    except (OSError, ValueError):
        return False
    return True


def main() -> None:
    """Console-script entry point (``agent``)."""
    if show_early(sys.argv[1:]):
        from agentcli.cli import live

        live.early_line = True  # the status line takes its place
    from agentcli.cli.app import main as app_main

    app_main()
