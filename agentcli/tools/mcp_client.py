"""Tools of MCP servers (``[[mcp.servers]]``) with the official ``mcp`` SDK: started over stdio
(``command``), or reached over Streamable HTTP (``url``, with headers whose ``${VAR}`` come from
the environment at connect time, so a token is never in a file, an event or a log).

Each server's tools are registered as ``<server>.<tool>`` with the server's risk class
and timeout. Arguments are validated against the tool's JSON Schema (``jsonschema``)
and errors reported in the same ``loc``/``msg``/``type`` shape as pydantic's. Every
wait is bounded: a server that cannot start, never answers, or dies mid-call gives a
clear error instead of a hang.

The SDK is imported lazily (it is heavy), and both its 2.x (``input_schema``,
``is_error``) and 1.x (``inputSchema``, ``isError``) field names are understood.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from agentcli.config import McpServerConfig
from agentcli.tools.base import InvalidArgs, Tool, ToolContext, ToolFailure
from agentcli.tools.registry import ToolRegistry
from agentcli.tools.sandbox import Sandbox, SandboxUnavailable, parent_death

__all__ = ["McpServer", "McpStartError", "McpTool", "start_mcp_servers"]

_CONNECTION_CLOSED = -32000
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_STOP_SECONDS = 8.0  # the SDK closes stdin, waits 2 s, then kills the tree


class McpStartError(Exception):
    """A server that could not be started or did not complete the MCP handshake."""


class McpToolError(ToolFailure):
    """The server ran the tool and reported an error (``is_error``)."""


class McpArgs(BaseModel):
    """Arguments of an MCP tool, already checked against its JSON Schema."""

    model_config = ConfigDict(extra="allow")


def _field(obj: Any, snake: str, camel: str, default: Any = None) -> Any:
    value = getattr(obj, snake, None)
    return getattr(obj, camel, default) if value is None else value


def _leaf(exc: BaseException) -> BaseException:
    # anyio task groups wrap failures in ExceptionGroups; the first leaf says what happened.
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> str:
    exc = _leaf(exc)
    return str(exc) or type(exc).__name__


class McpServer:
    """One running server: a background task holds the SDK's context managers open
    (anyio requires them to be entered and left in the same task) until :meth:`stop`."""

    def __init__(self, cfg: McpServerConfig, workspace: Path, sandbox: Sandbox | None = None) -> None:
        self.cfg = cfg
        self.workspace = workspace
        self.sandbox = sandbox
        self.tools: list[Any] = []
        self._session: Any = None
        self._dead: str | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Closed in stop(); a context manager cannot span the server's lifetime.
        self._errlog = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")  # noqa: SIM115

    def stderr_tail(self, chars: int = 400) -> str:
        """The end of what the server wrote to stderr (it goes to a temp file, not our terminal)."""
        try:
            fd = self._errlog.fileno()
            size = os.fstat(fd).st_size
            data = os.pread(fd, chars, max(0, size - chars))
        except (OSError, ValueError):
            return ""
        return " ".join(data.decode("utf-8", errors="replace").split())

    def _with_stderr(self, message: str) -> str:
        tail = self.stderr_tail()
        return f"{message} (stderr: {tail})" if tail else message

    def http_headers(self) -> dict[str, str]:
        """The configured headers with ``${VAR}`` taken from the environment (read at connect time,
        never stored); :class:`McpStartError` naming a variable that is not set."""
        def value(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                raise McpStartError(f"MCP server {self.cfg.name!r}: environment variable {name} (in a header) "
                                    "is not set")
            return os.environ[name]

        return {k: _ENV_REF.sub(value, v) for k, v in self.cfg.headers.items()}

    async def _run(self) -> None:
        if self.cfg.url:
            await self._run_http()
            return
        from mcp import ClientSession, StdioServerParameters, stdio_client

        argv = [self.cfg.command, *self.cfg.args]
        env = dict(self.cfg.env) or None
        if self.sandbox is not None and self.sandbox.active:
            argv = self.sandbox.wrap(argv, self.workspace, reads=argv)
            from mcp.client.stdio import get_default_environment

            env = {**get_default_environment(), **(env or {}), **self.sandbox.env()}
        else:  # unconfined, it still dies with the agent (the SDK takes no preexec_fn)
            argv = parent_death(argv)[0]
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=str(self.workspace))
        async with (
            stdio_client(params, errlog=self._errlog) as (read, write),
            ClientSession(read, write, read_timeout_seconds=self.cfg.timeout_seconds) as session,
        ):
            await self._serve(session)

    async def _serve(self, session: Any) -> None:
        """Initialise the session, list the tools, and hold the connection until :meth:`close`."""
        await session.initialize()
        self.tools = await _list_tools(session)
        self._session = session
        self._ready.set()
        await self._stop.wait()

    async def _run_http(self) -> None:
        from mcp import ClientSession
        from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

        http = create_mcp_http_client(headers=self.http_headers())
        async with (
            http,
            streamable_http_client(self.cfg.url, http_client=http) as (read, write),
            ClientSession(read, write, read_timeout_seconds=self.cfg.timeout_seconds) as session,
        ):
            await self._serve(session)

    async def start(self) -> None:
        """Start the server and fetch its tools; :class:`McpStartError` if that fails or times out."""
        name, cmd = self.cfg.name, self.cfg.command
        if self.cfg.url:
            self.http_headers()  # a missing variable is a clear error before any connection
        elif not (shutil.which(cmd) or (os.sep in cmd and Path(cmd).is_file())):
            raise McpStartError(f"MCP server {name!r}: command {cmd!r} not found")
        self._task = asyncio.create_task(self._run(), name=f"mcp:{name}")
        ready = asyncio.create_task(self._ready.wait())
        try:
            await asyncio.wait({self._task, ready}, timeout=self.cfg.timeout_seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if self._ready.is_set():
            return
        if self._task.done():
            exc = self._task.exception() if not self._task.cancelled() else None
            why = _describe(exc) if exc else "it exited"
            message = self._with_stderr(f"MCP server {name!r} failed to start: {why}")
        else:
            limit = self.cfg.timeout_seconds
            message = self._with_stderr(f"MCP server {name!r} did not start within {limit:g} s")
        await self.stop()
        raise McpStartError(message)

    async def call(self, tool: str, arguments: dict[str, Any], timeout: float) -> Any:
        """Call one tool; raises :class:`ToolFailure` if the server is gone, dies or is too slow."""
        name = self.cfg.name
        if self._dead or self._session is None or self._task is None or self._task.done():
            why = self._dead or "it exited"
            raise ToolFailure(self._with_stderr(f"MCP server {name!r} is not running: {why}"))
        call = asyncio.ensure_future(self._session.call_tool(tool, arguments, read_timeout_seconds=timeout))
        try:
            done, _ = await asyncio.wait(
                {call, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if call in done:
                exc = call.exception()
                if exc is None:
                    return call.result()
                code = getattr(exc, "code", None)
                if code == _CONNECTION_CLOSED:
                    self._dead = "the connection closed (the server exited)"
                    raise ToolFailure(self._with_stderr(f"MCP server {name!r} exited during the call"))
                raise ToolFailure(f"MCP server {name!r}: {_describe(exc)}") from None
            if self._task in done:
                self._dead = "it exited"
                raise ToolFailure(self._with_stderr(f"MCP server {name!r} exited during the call"))
            raise ToolFailure(
                f"MCP tool {name}.{tool} did not answer within {timeout:g} s", error_type="timeout"
            )
        finally:
            if not call.done():
                call.cancel()

    async def stop(self) -> None:
        """Stop the server (bounded wait, then cancellation). Safe to call twice."""
        self._stop.set()
        task, self._task = self._task, None
        self._session = None
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), _STOP_SECONDS)
            except Exception:  # timed out, or the server task failed: either way, end it
                task.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(task, 2.0)
        elif task is not None and not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved
        self._errlog.close()


async def _list_tools(session: Any) -> list[Any]:
    tools: list[Any] = []
    cursor: str | None = None
    for _ in range(100):  # a server that paginates forever must not hang us
        if cursor is None:
            page = await session.list_tools()
        else:
            from mcp import types

            page = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
        tools.extend(page.tools)
        cursor = _field(page, "next_cursor", "nextCursor")
        if not cursor:
            break
    return tools


# -- JSON Schema validation ---------------------------------------------------------------------


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    # Our own tools forbid unknown arguments; do the same for a plain object schema that is
    # silent about it, since an unknown key from a model is almost always a mistake.
    combinators = {"allOf", "anyOf", "oneOf", "$ref", "not", "if"}
    if "properties" in schema and "additionalProperties" not in schema and not combinators & schema.keys():
        return {**schema, "additionalProperties": False}
    return schema


def schema_errors(validator: Any, args: dict[str, Any]) -> list[dict[str, Any]]:
    """jsonschema errors as pydantic-shaped ``{"loc", "msg", "type"}`` entries."""
    details: list[dict[str, Any]] = []
    for err in validator.iter_errors(args):
        base = list(err.absolute_path)
        instance = err.instance
        if err.validator == "required" and isinstance(instance, dict):
            for prop in err.validator_value:
                if prop not in instance:
                    details.append({"loc": [*base, prop], "msg": "Field required", "type": "missing"})
        elif err.validator == "additionalProperties" and isinstance(instance, dict):
            known = set(err.schema.get("properties", {}))
            patterns = [re.compile(p) for p in err.schema.get("patternProperties", {})]
            for key in instance:
                if key not in known and not any(p.search(key) for p in patterns):
                    msg = "Extra inputs are not permitted"
                    details.append({"loc": [*base, key], "msg": msg, "type": "extra_forbidden"})
        else:
            details.append({"loc": base, "msg": err.message, "type": str(err.validator)})
    unique = {(tuple(map(str, d["loc"])), d["type"], d["msg"]): d for d in details}
    return sorted(unique.values(), key=lambda d: [str(p) for p in d["loc"]])


@dataclass(eq=False, kw_only=True)
class McpTool(Tool):
    """A tool served by an MCP server; its schema is the server's ``input_schema``."""

    input_schema: dict[str, Any]
    server: McpServer | None = None
    remote_name: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        # Imported by name: it ships no type hints, and only MCP tools need it.
        jsonschema: Any = importlib.import_module("jsonschema")
        schema = _strict(self.input_schema)
        cls = jsonschema.validators.validator_for(schema)
        try:
            cls.check_schema(schema)
            self._validator: Any = cls(schema)
        except jsonschema.SchemaError:
            self._validator = None  # a broken schema: let the server judge the arguments

    def parameters_schema(self) -> dict[str, Any]:
        schema = dict(self.input_schema)
        schema.pop("title", None)
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        return schema

    def validate_args(self, args: dict[str, Any], ctx: ToolContext) -> BaseModel:
        if self._validator is not None:
            details = schema_errors(self._validator, args)
            if details:
                raise InvalidArgs(details)
        return McpArgs(**args)


def _render_result(result: Any) -> Any:
    content = list(_field(result, "content", "content", []) or [])
    texts = [c.text for c in content if getattr(c, "type", None) == "text"]
    if _field(result, "is_error", "isError", False):
        raise McpToolError("\n".join(texts) or "the MCP tool reported an error")
    structured = _field(result, "structured_content", "structuredContent")
    if structured is not None:
        return structured
    if len(texts) == len(content):
        return "\n".join(texts)
    return [c.model_dump(mode="json", exclude_none=True) if isinstance(c, BaseModel) else c for c in content]


def _make_tool(server: McpServer, remote: Any) -> McpTool:
    remote_name: str = remote.name
    local = re.sub(r"[^A-Za-z0-9_-]", "_", remote_name)
    timeout = server.cfg.timeout_seconds

    async def run(args: BaseModel, ctx: ToolContext) -> Any:
        result = await server.call(remote_name, args.model_dump(), timeout)
        return _render_result(result)

    return McpTool(
        name=f"{server.cfg.name}.{local}",
        description=remote.description or _field(remote, "title", "title") or f"MCP tool {remote_name}",
        args_model=McpArgs,
        func=run,
        risk=server.cfg.risk,
        timeout_seconds=timeout + 1.0,  # the server's own timeout fires first, with a clearer message
        source=f"mcp:{server.cfg.name}",
        input_schema=dict(_field(remote, "input_schema", "inputSchema", None) or {"type": "object"}),
        server=server,
        remote_name=remote_name,
    )


async def start_mcp_servers(registry: ToolRegistry, servers: Sequence[McpServerConfig]) -> None:
    """Start every configured server at once; register their tools. Failures become warnings."""
    ctx = registry.ctx
    started: list[McpServer] = []
    for cfg in servers:
        try:
            # A server of risk "network" (or any, with sandbox.network) keeps the network. A url
            # server is no process of ours: nothing to confine.
            sandbox = Sandbox.from_config(ctx.sandbox, ctx.workspace, ctx.data_dir, network=cfg.risk == "network",
                                          protected=ctx.protected) if cfg.sandbox and not cfg.url else None
        except SandboxUnavailable as exc:
            registry.add_warning(f"MCP server {cfg.name!r} not started: {exc}")
            continue
        started.append(McpServer(cfg, ctx.workspace, sandbox))
    outcomes = await asyncio.gather(*(s.start() for s in started), return_exceptions=True)
    for server, outcome in zip(started, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            registry.add_warning(str(outcome) if isinstance(outcome, McpStartError) else
                                 f"MCP server {server.cfg.name!r} failed to start: {_describe(outcome)}")
            await server.stop()
            continue
        registry.add_closer(server.stop)
        for remote in server.tools:
            tool = _make_tool(server, remote)
            if tool.name in registry:
                registry.add_warning(f"MCP tool {tool.name!r} is defined twice; the second is ignored")
                continue
            registry.register(tool)
