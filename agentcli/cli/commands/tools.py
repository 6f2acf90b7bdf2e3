"""`agent tools list | show | call`: inspect the tool registry and run one tool by hand.

Exit codes of ``agent tools call``: 0 success; 1 the tool failed (``tool_error``,
``timeout``); 2 bad input (``--args`` not a JSON object, ``invalid_args``,
``tool_not_found``, ``path_outside_workspace``: a path you gave, refused as every command
refuses one); 4 approval denied (a write/exec/network tool without ``--yes`` and without a
terminal to ask on, a "no" at the prompt, or an ``approval.<risk> = "deny"`` policy, which
``--yes`` does not override).

Only light modules are imported here; the MCP SDK loads only if servers are configured.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from agentcli.cli.commands.common import MAX_SECONDS, in_range
from agentcli.errors import AgentError, ApprovalDenied, ExitCode, UsageError

if TYPE_CHECKING:  # pydantic-based modules load when a command runs, not for `agent --help`
    from agentcli.config import Settings
    from agentcli.tools import Tool, ToolError, ToolRegistry, ToolResult

app = typer.Typer(help="List, inspect and run the agent's tools.", no_args_is_help=True)

T = TypeVar("T")
_USAGE_ERRORS = {"invalid_args", "tool_not_found", "path_outside_workspace"}


def _settings(ctx: typer.Context) -> Settings:
    """The Settings the root command loaded (``ctx.obj["settings"]``), else load them now."""
    from agentcli.config import Settings, load_settings

    obj = ctx.obj
    if obj is not None and (isinstance(obj, dict) or hasattr(obj, "__getitem__")):
        try:
            settings = obj["settings"]
        except KeyError:
            settings = None
        if isinstance(settings, Settings):
            return settings
    return load_settings()


def _echo_err(message: str) -> None:
    typer.echo(" ".join(message.split()), err=True)


def _fail(exc: AgentError, *, json_out: bool, tool: str | None = None, kind: str | None = None) -> NoReturn:
    if json_out:
        error = {"type": kind or type(exc).__name__, "message": exc.one_line()}
        typer.echo(json.dumps({"tool": tool, "ok": False, "error": error}, indent=2))
    else:
        _echo_err(f"error: {exc.one_line()}")
    raise typer.Exit(exc.exit_code)


def _with_registry(settings: Settings, body: Callable[[ToolRegistry], Awaitable[T]]) -> T:
    from agentcli.tools import build_registry

    async def run() -> T:
        registry = await build_registry(settings)
        try:
            for w in registry.warnings:  # stderr, so --json output stays clean
                _echo_err(f"warning: {w}")
            return await body(registry)
        finally:
            await registry.aclose()

    return asyncio.run(run())


def _summary(t: Tool) -> dict[str, Any]:
    return {
        "name": t.name,
        "risk": t.risk,
        "source": t.source,
        "description": t.description,
        "schema_version": t.schema_version,
    }


@app.command("list", short_help="Every tool: its name, risk class, source and use.")
def list_tools(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Every tool: name, risk class, source (builtin, plugin:<name>, mcp:<server>) and description."""
    settings = _settings(ctx)

    async def collect(registry: ToolRegistry) -> list[Tool]:
        return registry.tools()

    tools = _with_registry(settings, collect)
    if json_out:
        typer.echo(json.dumps([_summary(t) for t in tools], indent=2))
        return
    from agentcli.cli.commands.common import console
    from agentcli.cli.tables import Col, fitted_table

    cols = [Col("name", style="cyan"), Col("risk"), Col("source", style="dim", flex=True),
            Col("description", flex=True)]
    rows = [[t.name, t.risk, t.source, t.description.splitlines()[0] if t.description else ""] for t in tools]
    console.print(fitted_table(cols, rows, console.width))


@app.command("show", short_help="A tool's risk class, source and JSON Schema.")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Tool name, e.g. read_file or server.tool.")],
) -> None:
    """A tool's risk class, source, JSON Schema (OpenAI function format) and the schema of what it
    returns (null when it declares none), as JSON."""
    from agentcli.tools import ToolError

    settings = _settings(ctx)

    async def find(registry: ToolRegistry) -> Tool | ToolError:
        found = registry.get(name)
        return found if found is not None else registry.not_found(name)

    found = _with_registry(settings, find)
    if isinstance(found, ToolError):
        _fail(UsageError(found.message), json_out=False)
    payload = {**_summary(found), "timeout_seconds": found.timeout_seconds, "schema": found.openai_schema(),
               "returns": found.output_schema()}
    typer.echo(json.dumps(payload, indent=2))


def _parse_args(raw: str, *, json_out: bool, name: str) -> dict[str, Any]:
    from agentcli.untrusted import InputError, load_json

    try:
        parsed = load_json(raw, "--args", max_bytes=1024 * 1024)
    except InputError as exc:
        _fail(exc, json_out=json_out, tool=name, kind="invalid_json")
    if not isinstance(parsed, dict):
        msg = f"--args must be a JSON object, not {type(parsed).__name__}"
        _fail(UsageError(msg), json_out=json_out, tool=name, kind="invalid_json")
    return parsed


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def _approve(settings: Settings, tool: Tool, preview: str | None, risks: tuple[str, ...], *, yes: bool
             ) -> None:
    """Raise ApprovalDenied unless the policy, --yes or the user at the terminal allows the call.
    The strictest policy among the call's risk classes applies (run_shell asking for the network)."""
    from agentcli.engine.approval import Approver

    risk, policy = Approver(settings.config.approval).strictest(risks)
    if policy == "auto":
        return
    if policy == "deny":
        raise ApprovalDenied(f"{tool.name} is a {risk} tool and approval.{risk} is 'deny'")
    if yes:
        return
    if not _stdin_is_tty():
        raise ApprovalDenied(f"{tool.name} is a {tool.risk} tool and there is no terminal to ask: pass --yes")
    from rich.prompt import Confirm
    from rich.syntax import Syntax

    from agentcli.cli.commands.common import err_console as console

    console.rule(f"{tool.name} ({tool.risk})")
    if preview:
        lexer = "diff" if tool.risk == "write" else "bash"
        console.print(Syntax(preview, lexer, theme="ansi_dark", word_wrap=True))
    if not Confirm.ask(f"Run {tool.name}?", console=console, default=False):
        raise ApprovalDenied(f"{tool.name} was not approved")


def _exit_code(result: ToolResult) -> int:
    if result.ok:
        return ExitCode.OK
    assert result.error is not None
    return ExitCode.USAGE if result.error.type in _USAGE_ERRORS else ExitCode.FAILED


def _render(result: ToolResult, *, json_out: bool) -> None:
    if json_out:
        typer.echo(result.model_dump_json(indent=2))
        return
    if result.error is not None:
        _echo_err(f"error: {result.error.one_line()}")
        return
    out = result.output
    if isinstance(out, str):
        typer.echo(out, nl=not out.endswith("\n"))
    else:
        typer.echo(json.dumps(out, indent=2, default=str))
    if result.truncated:
        _echo_err("note: the output was truncated (tools.output_limit_chars)")


@app.command("call")
def call(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Tool name.")],
    args: Annotated[str, typer.Option("--args", "-a", help="Arguments as a JSON object.")] = "{}",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Approve a write/exec tool unasked.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the whole result as JSON.")] = False,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", callback=in_range(0.001, MAX_SECONDS), help="Override the tool timeout (s).")] = None,
) -> None:
    """Validate and run one tool directly. Write and exec tools ask for approval first."""
    from agentcli.tools import ToolError

    settings = _settings(ctx)
    parsed = _parse_args(args, json_out=json_out, name=name)
    from agentcli.cli.commands.common import require_trusted, warn_short_secrets

    warn_short_secrets(settings, getattr(ctx.obj, "environ", None))
    try:
        require_trusted(settings)
    except AgentError as exc:
        _fail(exc, json_out=json_out, tool=name, kind="untrusted_change")

    async def run(registry: ToolRegistry) -> ToolResult | AgentError:
        validated = registry.validate(name, parsed)
        tool = registry.get(name)
        if isinstance(validated, ToolError) or tool is None:
            return await registry.call(name, parsed)  # the result carries the validation error
        try:
            _approve(settings, tool, registry.preview(name, parsed), tool.risks_for(validated), yes=yes)
        except ApprovalDenied as exc:
            return exc
        return await registry.call(name, parsed, timeout=timeout)

    outcome = _with_registry(settings, run)
    if isinstance(outcome, AgentError):
        _fail(outcome, json_out=json_out, tool=name, kind="approval_denied")
    _render(outcome, json_out=json_out)
    raise typer.Exit(_exit_code(outcome))
