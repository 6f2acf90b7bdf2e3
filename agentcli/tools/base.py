"""Core tool types: the result a call returns, the :class:`Tool` itself, and the ``@tool`` decorator.

A tool never raises for a model's mistake. Whatever goes wrong ends up as a
:class:`ToolResult` with a :class:`ToolError` of one stable ``type``:

``tool_not_found``          no such tool; ``suggestions`` holds close names
``invalid_args``            the arguments failed validation; ``details`` holds one
                            ``{"loc", "msg", "type"}`` entry per problem (pydantic's shape)
``timeout``                 the call did not finish in time
``path_outside_workspace``  a path argument escapes the workspace root (``..``, an
                            absolute path elsewhere, or a symlink pointing out)
``tool_error``              the tool ran and failed; ``exception_type`` names the cause
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from agentcli.config import RiskClass, SandboxConfig, ToolsConfig

__all__ = [
    "ArgsModel",
    "Capped",
    "ErrorType",
    "InvalidArgs",
    "RiskClass",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolFailure",
    "ToolResult",
    "compact_type",
    "tool",
]

#: ``blocked``: a ``pre_tool`` hook refused the call (its reason is the message).
ErrorType = Literal["tool_not_found", "invalid_args", "timeout", "tool_error", "path_outside_workspace", "blocked"]
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?$")


class ToolError(BaseModel):
    """Why a call failed, in a form a model can act on."""

    type: ErrorType
    message: str
    details: list[dict[str, Any]] = Field(default_factory=list)
    suggestions: list[str] = Field(default_factory=list)
    exception_type: str | None = None

    def one_line(self) -> str:
        """``<type>: <message>`` folded onto one line."""
        return " ".join(f"{self.type}: {self.message}".split())


class ToolResult(BaseModel):
    """The outcome of one call: ``ok`` with ``output``, or not ok with ``error``."""

    tool: str
    ok: bool
    output: Any = None
    error: ToolError | None = None
    duration_ms: float
    truncated: bool = False


@dataclass
class ToolContext:
    """What every tool may rely on: the workspace root, the tool limits, the data dir and the
    sandbox the processes it starts run in."""

    workspace: Path
    config: ToolsConfig
    data_dir: Path
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    #: Paths in the workspace the sandbox keeps read-only (:func:`agentcli.tools.trust.protected_paths`).
    protected: tuple[Path, ...] = ()
    #: Told a running command's output as it arrives (its label, a piece of text; None when it
    #: ended): a live display's tail. Never recorded; None: nobody watches.
    on_output: Callable[[str, str | None], None] | None = None


class ArgsModel(BaseModel):
    """Convenient base for tool argument models: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class ToolFailure(Exception):
    """Raised inside a tool for an expected, clearly explained failure.

    The registry turns it into a :class:`ToolError` of ``error_type`` (``tool_error``
    unless a subclass says otherwise), so tools need not build results themselves.
    """

    error_type: ErrorType = "tool_error"

    def __init__(self, message: str, *, error_type: ErrorType | None = None) -> None:
        super().__init__(message)
        self.message = message
        if error_type is not None:
            self.error_type = error_type


class InvalidArgs(Exception):
    """Arguments rejected by a validator other than pydantic (e.g. an MCP tool's JSON Schema)."""

    def __init__(self, details: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{_loc_str(d['loc'])}: {d['msg']}" for d in details))
        self.details = details


@dataclass
class Capped:
    """A tool's output that the tool already shortened itself (e.g. the head and tail of a log)."""

    value: Any
    truncated: bool


def _loc_str(loc: Any) -> str:
    parts = [str(p) for p in loc] if isinstance(loc, list | tuple) else [str(loc)]
    return ".".join(parts) or "(arguments)"


def error_details(exc: ValidationError | InvalidArgs) -> list[dict[str, Any]]:
    """Reduce validation errors to the ``loc``/``msg``/``type`` triples a model can correct from."""
    if isinstance(exc, InvalidArgs):
        return exc.details
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def invalid_args_error(tool_name: str, details: list[dict[str, Any]]) -> ToolError:
    summary = "; ".join(f"{_loc_str(d['loc'])}: {d['msg']}" for d in details[:5])
    more = f" (+{len(details) - 5} more)" if len(details) > 5 else ""
    n = len(details)
    return ToolError(
        type="invalid_args",
        message=f"{n} invalid argument{'s' if n != 1 else ''} for {tool_name}: {summary}{more}",
        details=details,
    )


def _strip_titles(schema: Any) -> Any:
    # pydantic puts a "title" on every model and field; it is noise in a prompt and costs tokens.
    if isinstance(schema, list):
        return [_strip_titles(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs") and isinstance(value, dict):
            out[key] = {name: _strip_titles(sub) for name, sub in value.items()}
        else:
            out[key] = _strip_titles(value)
    return out


def function_name(name: str) -> str:
    """The name as OpenAI function calling allows it (``^[A-Za-z0-9_-]+$``): ``srv.tool`` -> ``srv__tool``."""
    return name.replace(".", "__")


def compact_type(schema: Any, depth: int = 0) -> str:
    """A JSON Schema as a short type for a prompt: ``text``, ``int``, ``list of {file: text, line:
    int}``, ``{exit_code: int, output: text}``; ``any`` for what it cannot say briefly."""
    if not isinstance(schema, dict) or depth > 4:
        return "any"
    defs = schema.get("$defs", {})

    def walk(node: Any, d: int) -> str:
        if not isinstance(node, dict) or d > 4:
            return "any"
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return walk(defs.get(ref.rsplit("/", 1)[-1], {}), d + 1)
        alts = node.get("anyOf") or node.get("oneOf")
        if isinstance(alts, list):
            return " or ".join(dict.fromkeys(walk(a, d + 1) for a in alts))
        kind = node.get("type")
        if kind == "array":
            return f"list of {walk(node.get('items', {}), d + 1)}"
        if kind == "object" or "properties" in node:
            props = node.get("properties") or {}
            if not props:
                return "object"
            return "{" + ", ".join(f"{k}: {walk(v, d + 1)}" for k, v in props.items()) + "}"
        names = {"string": "text", "integer": "int", "number": "number", "boolean": "bool", "null": "null"}
        return names.get(str(kind), "any")

    return walk(schema, depth)


ToolFunc = Callable[[Any, ToolContext], Any] | Callable[[Any, ToolContext], Awaitable[Any]]
PreviewFunc = Callable[[Any, ToolContext], "str | None"]
#: ``check(args, ctx)``: problems with validated args that only the workspace can tell (a search
#: text that is not in its file), as ``{"loc", "msg", "type"}`` entries; [] when there are none.
CheckFunc = Callable[[Any, ToolContext], list[dict[str, Any]]]


@dataclass(eq=False, kw_only=True)
class Tool:
    """One callable capability.

    ``func`` is called as ``func(args, ctx)`` with a validated instance of ``args_model``;
    it may be sync (run in a worker thread, so a timeout still holds) or async.
    ``preview_func`` (optional) returns what the approval prompt shows, e.g. a diff.
    ``returns`` (optional) is the Python type of the output (a pydantic model, ``list[Model]``,
    ``str`` ...): the planner is shown its shape, and ``{{sN.output...}}`` paths are checked
    against it. ``check_func`` (optional) finds problems with validated args that need the
    workspace (see :data:`CheckFunc`); they are ``invalid_args`` like any other, so the executor's
    model is asked to correct them. ``small_planner`` False keeps the tool out of a small local
    planner's choices (a tool that consumes what only a hosted planner's steps produce); ``planned``
    False keeps it out of every planner's (a tool only an investigate step's model calls).
    ``timeout_for(args, default_timeout)`` (optional) derives the call timeout from the
    arguments, for tools that take a timeout argument of their own and enforce it themselves
    (the registry then waits that long plus a grace period, so the tool's own, more
    informative, timeout handling wins).
    ``call_risks(args)`` (optional) names risk classes a call adds to the tool's own from its
    arguments (run_shell with ``network`` adds ``network``): approval then needs all of them.
    """

    name: str
    description: str
    args_model: type[BaseModel]
    func: ToolFunc
    risk: RiskClass = "read"
    timeout_seconds: float | None = None
    source: str = "builtin"
    preview_func: PreviewFunc | None = None
    timeout_for: Callable[[Any, float], float | None] | None = None
    returns: Any = None
    check_func: CheckFunc | None = None
    small_planner: bool = True
    planned: bool = True
    call_risks: Callable[[Any], tuple[RiskClass, ...]] | None = None
    _schema_version: tuple[tuple[str, str, type[BaseModel]], str] | None = field(
        default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"invalid tool name {self.name!r}: use letters, digits, '_' and '-'")
        self.description = inspect.cleandoc(self.description)

    @property
    def is_async(self) -> bool:
        # Asked at every call: inspect's answer, kept per function.
        return _is_coroutine_function(self.func)

    def parameters_schema(self) -> dict[str, Any]:
        """JSON Schema of the arguments (an object schema)."""
        schema: dict[str, Any] = _strip_titles(self.args_model.model_json_schema())
        schema.setdefault("properties", {})
        return schema

    def output_schema(self) -> dict[str, Any] | None:
        """JSON Schema of the output, or None when the tool does not declare one."""
        if self.returns is None:
            return None
        schema: dict[str, Any] = _strip_titles(TypeAdapter(self.returns).json_schema())
        return schema

    def output_shape(self) -> str:
        """The output's shape in a few words (:func:`compact_type`), ``any`` when undeclared."""
        schema = self.output_schema()
        return "any" if schema is None else compact_type(schema)

    def openai_schema(self) -> dict[str, Any]:
        """The tool in OpenAI function-calling format. Dots in names become ``__`` there."""
        return {
            "type": "function",
            "function": {
                "name": function_name(self.name),
                "description": self.description,
                "parameters": self.parameters_schema(),
            },
        }

    @property
    def schema_version(self) -> str:
        """Short sha256 of the schema; a plan records it to notice a tool that changed since."""
        # Asked for every step of a plan: the schema is built once per (name, description, args
        # model), the fields it is made of (a plugin may still reassign them).
        key = (self.name, self.description, self.args_model)
        cached = self._schema_version
        if cached is None or cached[0] != key:
            blob = json.dumps(self.openai_schema(), sort_keys=True, separators=(",", ":"))
            cached = self._schema_version = (key, hashlib.sha256(blob.encode()).hexdigest()[:12])
        return cached[1]

    def validate_args(self, args: dict[str, Any], ctx: ToolContext) -> BaseModel:
        """Validate without running (``check_func`` included). Raises ``ValidationError`` or
        :class:`InvalidArgs`."""
        validated = self.args_model.model_validate(args, context={"tools_config": ctx.config})
        if self.check_func is not None:
            problems = self.check_func(validated, ctx)
            if problems:
                raise InvalidArgs(problems)
        return validated

    def preview(self, args: BaseModel, ctx: ToolContext) -> str | None:
        """What a call with these (validated) args would do, for an approval prompt."""
        return self.preview_func(args, ctx) if self.preview_func else None

    def risks_for(self, args: BaseModel) -> tuple[RiskClass, ...]:
        """Every risk class a call with these (validated) args has: the tool's own first."""
        if self.call_risks is None:
            return (self.risk,)
        return (self.risk, *(r for r in self.call_risks(args) if r != self.risk))

    def effective_timeout(self, args: BaseModel, default: float) -> float:
        base = self.timeout_seconds if self.timeout_seconds is not None else default
        if self.timeout_for is not None:
            derived = self.timeout_for(args, default)
            if derived is not None:
                return max(base, derived)
        return base


def tool(
    name: str | None = None,
    *,
    risk: RiskClass = "read",
    timeout: float | None = None,
    description: str | None = None,
    preview: PreviewFunc | None = None,
    returns: Any = None,
) -> Callable[[Callable[..., Any]], Tool]:
    """Build a :class:`Tool` from a function whose first parameter is annotated with its args model.

    ::

        class EchoArgs(ArgsModel):
            text: str

        @tool(risk="read")
        def echo(args: EchoArgs, ctx: ToolContext) -> str:
            '''Repeat the text.'''
            return args.text

    The name defaults to the function's, the description to its docstring; ``returns`` declares
    the output's type (see :class:`Tool`).
    """

    def wrap(func: Callable[..., Any]) -> Tool:
        params = list(inspect.signature(func).parameters)
        if not params:
            raise TypeError(f"{func.__name__}: a tool function takes (args, ctx)")
        hints = get_type_hints(func)
        model = hints.get(params[0])
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{func.__name__}: annotate the first parameter with a pydantic model")
        return Tool(
            name=name or func.__name__,
            description=description or inspect.getdoc(func) or "",
            args_model=model,
            func=func if len(params) > 1 else _ignore_ctx(func),
            risk=risk,
            timeout_seconds=timeout,
            preview_func=preview,
            returns=returns,
        )

    return wrap


_is_coroutine_function = functools.cache(inspect.iscoroutinefunction)


def _ignore_ctx(func: Callable[..., Any]) -> ToolFunc:
    # Lets simple plugin tools be written as func(args) without the context parameter.
    if inspect.iscoroutinefunction(func):

        async def acall(args: Any, ctx: ToolContext) -> Any:
            return await func(args)

        return acall

    def call(args: Any, ctx: ToolContext) -> Any:
        return func(args)

    return call
