"""The tool registry: lookup, validation, previews, and calls that never raise for a model's mistake."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import difflib
import json
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from agentcli import redact
from agentcli.tools.base import (
    Capped,
    InvalidArgs,
    Tool,
    ToolContext,
    ToolError,
    ToolFailure,
    ToolResult,
    error_details,
    function_name,
    invalid_args_error,
)

log = logging.getLogger("agentcli.tools")
# A library logger: the application decides where records go. Without this, Python's
# last-resort handler would print every registry warning a second time on stderr.
log.addHandler(logging.NullHandler())

__all__ = ["ToolRegistry", "cap_output", "truncation_marker"]


def truncation_marker(shown: int, total: int, unit: str = "chars") -> str:
    return f"[... output truncated: {shown} of {total} {unit} shown ...]"


def cap_output(output: Any, limit: int) -> tuple[Any, bool]:
    """Shorten ``output`` to about ``limit`` characters, marking clearly that it was cut.

    Strings keep their head; lists keep their first items (then a marker item); anything
    else that is too long once rendered as JSON becomes its truncated JSON text.
    """
    if isinstance(output, str):
        if len(output) <= limit:
            return output, False
        return output[:limit] + "\n" + truncation_marker(limit, len(output)), True
    try:
        rendered = json.dumps(output, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        rendered = repr(output)
    if len(rendered) <= limit:
        return output, False
    if isinstance(output, list):
        kept: list[Any] = []
        used = 2
        for item in output:
            size = len(json.dumps(item, default=str, ensure_ascii=False)) + 2
            if used + size > limit:
                break
            kept.append(item)
            used += size
        kept.append(truncation_marker(len(kept), len(output), "items"))
        return kept, True
    return rendered[:limit] + "\n" + truncation_marker(limit, len(rendered)), True


def masked_error(error: ToolError) -> ToolError:
    """``error`` with every secret masked in its strings (its message may quote a file, a command's
    output or the arguments), before a model or a record sees it."""
    dumped = error.model_dump()
    masked = redact.current().strings(dumped)
    return error if masked == dumped else ToolError.model_validate(masked)


class _DaemonWorkers:
    """Reusable daemon threads for sync tool calls.

    Not asyncio.to_thread: the default executor is joined when asyncio.run() ends, so one hung
    sync tool would hang the whole process at exit. A daemon thread may leak, but never blocks.
    Starting one thread per call cost more than a short call itself (a 1,000-step run of
    read_file steps), so a worker that finishes waits a while for the next call; a hung call
    keeps only its own worker, and a call that finds no idle worker starts a new one.
    """

    IDLE_SECONDS = 30.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Callable[[], Callable[[], None]]] = queue.SimpleQueue()
        self._idle = 0  # workers waiting for a job and not yet promised one

    def submit(self, job: Callable[[], Callable[[], None]]) -> None:
        """Run ``job`` on a worker; what it returns is called once the worker is free again (so
        a call submitted as soon as that lets its caller go on finds the worker idle)."""
        with self._lock:
            self._jobs.put(job)
            if self._idle:
                self._idle -= 1  # that worker takes this job
                return
        threading.Thread(target=self._work, name="tool-worker", daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self.IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._idle and self._jobs.empty():
                        self._idle -= 1
                        return
                continue  # a job was promised to this worker as it timed out: take it
            then = job()
            with self._lock:
                self._idle += 1
            then()


_WORKERS = _DaemonWorkers()


def _run_in_daemon_thread(func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    cvars = contextvars.copy_context()

    def settle(setter: Callable[[Any], None], value: Any) -> None:
        if not fut.done():
            setter(value)

    def runner() -> Callable[[], None]:
        try:
            result = cvars.run(func, *args)
        except BaseException as exc:
            callback, value = fut.set_exception, exc
        else:
            callback, value = fut.set_result, result

        def notify() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting any more
                loop.call_soon_threadsafe(settle, callback, value)
        return notify

    _WORKERS.submit(runner)
    return fut


class ToolRegistry:
    """All tools an agent may call, by name.

    ``warnings`` collects non-fatal problems met while building it (a plugin that failed
    to import, an MCP server that did not start), for the CLI to show.
    """

    def __init__(self, ctx: ToolContext) -> None:
        self.ctx = ctx
        self.warnings: list[str] = []
        self._tools: dict[str, Tool] = {}
        self._aliases: dict[str, str] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []

    # -- contents --------------------------------------------------------------------------

    def register(self, tool: Tool) -> None:
        """Add a tool. A second tool with the same name is a ``ValueError``."""
        if tool.name in self._tools or tool.name in self._aliases:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        alias = function_name(tool.name)
        if alias != tool.name:
            self._aliases[alias] = tool.name

    def add_warning(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)

    def add_closer(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Register a coroutine function :meth:`aclose` awaits (e.g. stopping an MCP server)."""
        self._closers.append(closer)

    def get(self, name: str) -> Tool | None:
        """The tool called ``name`` (or its OpenAI function name, ``srv__tool``), if any."""
        return self._tools.get(name) or self._tools.get(self._aliases.get(name, ""))

    def names(self) -> list[str]:
        return sorted(self._tools)

    def tools(self) -> list[Tool]:
        return [self._tools[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __len__(self) -> int:
        return len(self._tools)

    def openai_schemas(self) -> list[dict[str, Any]]:
        """Every tool in OpenAI function-calling format, sorted by name."""
        return [t.openai_schema() for t in self.tools()]

    # -- validation and preview -------------------------------------------------------------

    def not_found(self, name: str) -> ToolError:
        """The ``tool_not_found`` error for ``name``, with close names as suggestions."""
        suggestions = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        message = f"unknown tool {name!r}{hint}"
        return ToolError(type="tool_not_found", message=message, suggestions=suggestions)

    def validate(self, name: str, args: Any, *, step_id: str | None = None) -> BaseModel | ToolError:
        """Validated arguments for ``name``, or the :class:`ToolError` explaining why not (secrets
        masked: it may quote the file). Runs nothing. ``step_id`` names the plan step asking (a
        registry serving a recording answers by it)."""
        checked = self._validate(name, args)
        return masked_error(checked) if isinstance(checked, ToolError) else checked

    def _validate(self, name: str, args: Any) -> BaseModel | ToolError:
        tool = self.get(name)
        if tool is None:
            return self.not_found(name)
        if args is None:
            args = {}
        if not isinstance(args, dict):
            details = [{"loc": [], "msg": "arguments must be a JSON object", "type": "dict_type"}]
            return invalid_args_error(tool.name, details)
        try:
            return tool.validate_args(args, self.ctx)
        except (ValidationError, InvalidArgs) as exc:
            return invalid_args_error(tool.name, error_details(exc))

    def preview(self, name: str, args: Any) -> str | None:
        """What the call would do, for an approval prompt: the diff of a write or edit, the
        command and cwd of a shell call. ``None`` if the tool has no preview or the call is
        invalid (the call itself then reports why)."""
        tool = self.get(name)
        if tool is None or (tool.preview_func is None and type(tool).preview is Tool.preview):
            return None  # nothing to show whatever the args: skip validating them
        validated = self.validate(name, args)
        if isinstance(validated, ToolError):
            return None
        try:
            return tool.preview(validated, self.ctx)
        except Exception as exc:
            log.debug("preview of %s failed: %s", name, exc)
            return None

    # -- calls --------------------------------------------------------------------------------

    async def call(self, name: str, args: Any, *, timeout: float | None = None,
                   step_id: str | None = None, validated: BaseModel | None = None) -> ToolResult:
        """Validate and run one tool. Never raises for bad input or a failing tool.

        ``timeout`` overrides the tool's own timeout (itself defaulting to
        ``tools.default_timeout_seconds``). ``step_id`` names the plan step calling (a registry
        that serves recorded results looks them up by it). ``validated``: ``args`` as
        :meth:`validate` has just returned them for this call; used as they are when the tool's
        validation reads nothing but the arguments (a tool whose check reads the workspace is
        validated again: the workspace may have changed since).
        """
        start = time.perf_counter()

        def done(
            *, output: Any = None, error: ToolError | None = None, truncated: bool = False
        ) -> ToolResult:
            # Secrets are masked here, in the result's own strings, before anything embeds them
            # (a prompt, a reviewer's digest as JSON text, a re-plan, an event, memory): a token
            # at the start of a line is still at the start of a line here, as it would no
            # longer be once JSON-escaped.
            if output is not None:
                output = redact.current().strings(output)
            return ToolResult(
                tool=tool.name if tool else name,
                ok=error is None,
                output=output,
                error=None if error is None else masked_error(error),
                duration_ms=round((time.perf_counter() - start) * 1000, 3),
                truncated=truncated,
            )

        tool = self.get(name)
        if validated is None or tool is None or tool.check_func is not None or not isinstance(
                validated, tool.args_model):
            validated = self.validate(name, args)
        if tool is None or isinstance(validated, ToolError):
            return done(error=validated if isinstance(validated, ToolError) else self.not_found(name))
        limit = timeout if timeout is not None else tool.effective_timeout(
            validated, self.ctx.config.default_timeout_seconds
        )
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for wraps the call in a new Task
            # (one more task per tool call). The timeout and its TimeoutError are the same, and the
            # caller still yields to the event loop before the tool starts, as it did waiting for
            # that task: concurrent steps interleave as before, even with tools that never await.
            async with asyncio.timeout(limit if limit > 0 else None):
                await asyncio.sleep(0)
                if limit <= 0:
                    # As wait_for(..., 0) does: no time left, so the tool is not started at all.
                    raise TimeoutError
                # A sync tool runs on a worker thread (an async one here, with no coroutine between).
                output = await (tool.func(validated, self.ctx) if tool.is_async
                                else _run_in_daemon_thread(tool.func, validated, self.ctx))
        except TimeoutError:
            msg = f"{tool.name} did not finish within {limit:g} s"
            return done(error=ToolError(type="timeout", message=msg))
        except ToolFailure as exc:
            return done(
                error=ToolError(type=exc.error_type, message=exc.message, exception_type=type(exc).__name__)
            )
        except Exception as exc:
            log.debug("tool %s raised", tool.name, exc_info=True)
            message = str(exc) or type(exc).__name__
            exc_type = type(exc).__name__
            return done(error=ToolError(type="tool_error", message=message, exception_type=exc_type))
        limit_chars = self.ctx.config.output_limit_chars
        pre_truncated = False
        if isinstance(output, Capped):
            # The tool cut its output itself, more usefully (head and tail, a "read on from
            # line N" hint); only a tool far past the limit is cut again.
            output, pre_truncated = output.value, output.truncated
            limit_chars = limit_chars * 2 + 1000
        output, truncated = cap_output(output, limit_chars)
        return done(output=output, truncated=truncated or pre_truncated)

    async def aclose(self) -> None:
        """Stop whatever the tools hold open (MCP servers). Safe to call twice."""
        closers, self._closers = self._closers, []
        for closer in reversed(closers):
            try:
                await closer()
            except Exception as exc:
                log.warning("closing tools: %s", exc)
