"""The `agent` command line: parse, build dependencies from config, call the core, render.

Start-up must stay fast (`agent --help` under 0.3 s): this module and the command
modules import only typer, rich and pydantic at import time. litellm, lancedb,
llama.cpp and mcp are imported inside the commands that need them.

Errors: every :class:`agentcli.errors.AgentError` is caught in one place,
:class:`_RootGroup.invoke`, printed as one ``error: ...`` line on stderr, and
turned into its documented exit code. Ctrl-C exits 130.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from agentcli import __version__
from agentcli.cli.commands import chat as chat_cmd
from agentcli.cli.commands import config as config_cmd
from agentcli.cli.commands import doctor as doctor_cmd
from agentcli.cli.commands import map as map_cmd
from agentcli.cli.commands import memory as memory_cmd
from agentcli.cli.commands import plan as plan_cmd
from agentcli.cli.commands import run as run_cmd
from agentcli.cli.commands import runs as runs_cmd
from agentcli.cli.commands import sessions as sessions_cmd
from agentcli.cli.commands import tools as tools_cmd
from agentcli.cli.commands import trust as trust_cmd
from agentcli.cli.commands import undo as undo_cmd
from agentcli.cli.commands.common import (
    RedactingStream,
    State,
    configure_consoles,
    counted,
    err_console,
    print_error,
    print_warning,
)
from agentcli.errors import AgentError, ExitCode


class _RootGroup(typer.core.TyperGroup):
    """Turns AgentError and Ctrl-C into one line and an exit code, for every subcommand."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # Bytes that are not UTF-8 reach us as lone surrogates (Python's argv decoding); no file,
        # hash or terminal can hold them, so they stop here, named, before any command runs.
        for i, arg in enumerate(args, start=1):
            if isinstance(arg, str) and _has_surrogate(arg):
                print_error(f"argument {i} is not valid UTF-8 text: {arg.encode('utf-8', 'replace').decode()!r}")
                raise typer.Exit(ExitCode.USAGE)
        try:
            return super().parse_args(ctx, args)
        except Exception as e:  # `agent --bogus`: one line too
            if _is_click_error(e) and not _shows_help(e):
                _usage_error(e)
            raise

    def invoke(self, ctx: Any) -> Any:
        # Whatever a command prints (tool output, answers, errors, tables) passes the redactor.
        streams = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
        try:
            return self._invoke(ctx)
        finally:
            sys.stdout, sys.stderr = streams

    def _invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AgentError as e:
            print_error(e.one_line())
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            print_error("interrupted")
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as e:
            if _is_click_error(e):
                if not _shows_help(e):
                    _usage_error(e)  # an unknown option, a missing argument, a bad value: one line
                raise
            # A bug: one line for the user, the traceback in a file for the report.
            where = _write_crash_report(e, _data_dir(ctx))
            from agentcli.redact import Redactor

            detail = Redactor().text(" ".join(str(e).split()))[:300]
            print_error(f"internal error: {type(e).__name__}: {detail} (traceback in {where})")
            raise typer.Exit(ExitCode.FAILED) from None


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and any("\ud800" <= c <= "\udfff" for c in text)


def _is_click_error(e: Exception) -> bool:
    # Usage errors are click's own exceptions; they render themselves with exit code 2.
    return any(c.__name__ in ("ClickException", "UsageError", "BadParameter") for c in type(e).__mro__)


def _shows_help(e: Exception) -> bool:
    # `agent runs` with no subcommand: click prints the group's help, which is what was asked for.
    return type(e).__name__ == "NoArgsIsHelpError"


def _usage_error(e: Exception) -> None:
    """Click's usage error (usage, a hint and ``Error: ...`` on four lines) as one ``error: ...`` line
    naming the command's help, exit 2."""
    message = " ".join(str(getattr(e, "format_message", lambda: str(e))()).split()).rstrip(".")
    message = re.sub(r"\. Did you mean ", "; did you mean ", message)
    message = re.sub(r" \(Possible options?: ([^)]*)\)", r"; did you mean \1?", message)
    message = re.sub(r": Input should ", ": input should ", message)
    if message[:1].isupper() and message[1:2].islower():  # "No such option" -> "no such option"
        message = message[0].lower() + message[1:]
    ctx = getattr(e, "ctx", None)
    command = getattr(ctx, "command_path", "") or "agent"
    from agentcli.cli import live

    if live.early_line:  # `agent run --yse`: the entry point's "starting…" line goes, as the status line's would
        live.early_line = False
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write("\x1b[1A\r\x1b[2K")
    print_error(f"{message} (see {command} --help)")
    raise typer.Exit(int(getattr(e, "exit_code", ExitCode.USAGE))) from None


def _data_dir(ctx: Any) -> Path | None:
    """The data dir, if the settings were loaded and it exists (a crash must not create it)."""
    state = ctx.obj
    settings = getattr(state, "_settings", None) if isinstance(state, State) else None
    if settings is None:
        return None
    try:
        d: Path = settings.data_dir
        return d if d.is_dir() else None
    except OSError:  # a data dir whose name the OS refuses: the report goes to the temp dir
        return None


def _write_crash_report(e: Exception, data_dir: Path | None = None) -> str:
    """The traceback, redacted, in ``<data_dir>/crash/`` (else the system temp dir)."""
    import tempfile
    import traceback

    from agentcli.redact import Redactor

    text = Redactor().text("".join(traceback.format_exception(e)))
    try:
        folder = None
        if data_dir is not None:
            folder = data_dir / "crash"
            folder.mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile("w", prefix="agentcli-crash-", suffix=".txt", delete=False,
                                         dir=folder, encoding="utf-8", errors="replace") as f:
            f.write(text)
            return f.name
    except OSError:
        return "(could not be written)"


app = typer.Typer(
    cls=_RootGroup,
    name="agent",
    help="A developer agent: plans as typed data, an explicit state machine, budgets, approvals, replay.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(tools_cmd.app, name="tools")
app.add_typer(memory_cmd.app, name="memory")
app.command("doctor", short_help="Check the config, data dir, models, tokenizer and LanceDB.")(doctor_cmd.doctor)
app.command("plan", short_help="Plan a task and show the plan, without running it.")(plan_cmd.plan)
app.command("map", short_help="Print the repository map the planner gets for a task.")(map_cmd.map_)
app.command("run", short_help="Plan a task, confirm the plan, run it and report.")(run_cmd.run)
app.command("chat", short_help="An interactive session: each line you type is a turn.")(chat_cmd.chat)
app.command("sessions", short_help="List sessions, or show one: its turns, status and cost.")(sessions_cmd.sessions)
app.add_typer(runs_cmd.app, name="runs")
app.command("replay", short_help="Re-run a recorded run offline, at no cost, and compare.")(runs_cmd.replay)
runs_cmd.app.command("diff", short_help="What a run (or one of its steps) changed in the workspace.")(undo_cmd.diff)
app.command("undo", short_help="Restore the files a run changed to how they were before.")(undo_cmd.undo)
app.command("trust", short_help="Trust the project config, AGENTS.md and hooks as they are.")(trust_cmd.trust)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"agentcli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config file (default: ./agent.toml).")
    ] = None,
    workspace: Annotated[
        Path | None, typer.Option("--workspace", "-w", help="Workspace root (default: current dir).")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model for every role.")] = None,
    api_base: Annotated[str | None, typer.Option("--api-base", help="Provider endpoint override.")] = None,
    data_dir: Annotated[str | None, typer.Option(
        "--data-dir", metavar="<path>",
        help="Runs, memory and logs (a relative path is from the current directory).")] = None,
    log_json: Annotated[
        bool, typer.Option("--log-json", help="Also write every LLM-call record to stderr as JSON.")
    ] = False,
    no_color: Annotated[
        bool, typer.Option("--no-color", help="No colour in any output (as the NO_COLOR variable).")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Global options apply to every command."""
    configure_consoles(no_color=no_color)
    if data_dir:
        # A path typed on the command line is from where it was typed, as --workspace and --config
        # are; the data_dir config key (in a project's agent.toml) stays relative to the workspace.
        data_dir = os.path.abspath(os.path.expanduser(data_dir))
    overrides = {"model": model, "api_base": api_base, "data_dir": data_dir}
    state = ctx.obj if isinstance(ctx.obj, State) else State()
    state.configure(config_file=config, workspace=workspace, overrides=overrides, log_json=log_json)
    ctx.obj = state


@app.command(short_help="Ask the model one question (no tools, no plan).")
def ask(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="What to ask the model.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the answer.")] = False,
) -> None:
    """Ask the configured model one question (no tools, no plan): checks the model end to end."""
    from agentcli.cli.live import RunStatus, leave, run_interruptible

    if not prompt.strip():
        from agentcli.errors import UsageError

        raise UsageError("the prompt is empty")
    state: State = ctx.obj
    # As `agent run` shows it: a status line while the model thinks (its answer streaming under
    # it), off the screen however the command ends; Ctrl-C stops at once.
    status = RunStatus(err_console, enabled=err_console.is_terminal and not quiet and not json_out
                       and not state.log_json)
    status.set_phase("asking")
    status.start()
    ctx.call_on_close(status.stop)
    from agentcli.engine.session import build_llm_client
    from agentcli.ids import new_run_id

    settings = state.settings
    from agentcli.models.preflight import model_readiness

    client = build_llm_client(settings, new_run_id(), log_json=state.log_json, backend=state.backend)
    status.watch_client(client)
    warning = model_readiness(client, settings.config.model_for("executor"))
    if warning and not quiet:
        print_warning(warning)
    result, interrupted = run_interruptible(
        lambda: client.acomplete([{"role": "user", "content": prompt}], role="executor"), status)
    status.stop()
    if result is None or interrupted:
        print_error("interrupted")
        leave(ExitCode.INTERRUPTED)  # a model call still in flight in a thread must not hold the exit
        raise typer.Exit(ExitCode.INTERRUPTED)
    if json_out:
        typer.echo(result.model_dump_json(indent=2))
    else:
        typer.echo(result.text)
        if quiet:
            return
        from agentcli.cli.tables import format_cost

        cost = format_cost(result.cost_usd)
        err_console.print(
            f"[dim]{result.response_model} · {result.usage.input_tokens}+{result.usage.output_tokens} tokens"
            f" · {cost} · {result.latency_ms:.0f} ms · {counted(result.attempts, 'attempt')}[/dim]"
        )


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - a Ctrl-C outside any command
        print_error("interrupted")
        sys.exit(ExitCode.INTERRUPTED)
