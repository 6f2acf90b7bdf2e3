"""The tool layer's core: results, validation errors, timeouts, truncation, schemas, the decorator."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from agentcli.config import ToolsConfig, load_settings
from agentcli.tools import (
    ArgsModel,
    Tool,
    ToolContext,
    ToolFailure,
    ToolRegistry,
    ToolResult,
    build_registry,
    tool,
)
from agentcli.tools.registry import cap_output


class EchoArgs(ArgsModel):
    text: str = Field(..., min_length=1)
    times: int = Field(1, ge=1, le=5)


def _ctx(ws: Path, **cfg: Any) -> ToolContext:
    return ToolContext(workspace=ws, config=ToolsConfig(**cfg), data_dir=ws / ".agent")


def _registry(ws: Path, *tools: Tool, **cfg: Any) -> ToolRegistry:
    reg = ToolRegistry(_ctx(ws, **cfg))
    for t in tools:
        reg.register(t)
    return reg


def _call(reg: ToolRegistry, name: str, args: Any, **kw: Any) -> ToolResult:
    return asyncio.run(reg.call(name, args, **kw))


@tool(risk="read")
def echo(args: EchoArgs, ctx: ToolContext) -> str:
    """Repeat the text."""
    return args.text * args.times


@pytest.fixture
def reg(tmp_path: Path) -> ToolRegistry:
    return _registry(tmp_path, echo)


def test_ok_result_records_duration(reg: ToolRegistry) -> None:
    res = _call(reg, "echo", {"text": "ab", "times": 2})
    assert res.ok and res.output == "abab" and res.error is None
    assert res.tool == "echo" and res.duration_ms >= 0 and not res.truncated


def test_unknown_tool_suggests_close_names(reg: ToolRegistry) -> None:
    res = _call(reg, "ecko", {})
    assert not res.ok and res.error is not None
    assert res.error.type == "tool_not_found"
    assert res.error.suggestions == ["echo"]
    assert "did you mean echo" in res.error.message


@pytest.mark.parametrize(
    ("args", "loc", "err_type"),
    [
        ({}, ["text"], "missing"),
        ({"text": "a", "colour": "red"}, ["colour"], "extra_forbidden"),
        ({"text": 5}, ["text"], "string_type"),
        ({"text": "a", "times": "many"}, ["times"], "int_parsing"),
        ({"text": "a", "times": 9}, ["times"], "less_than_equal"),
        ({"text": ""}, ["text"], "string_too_short"),
    ],
)
def test_invalid_args_are_structured(
    reg: ToolRegistry, args: dict[str, Any], loc: list[Any], err_type: str
) -> None:
    res = _call(reg, "echo", args)
    assert not res.ok and res.error is not None
    assert res.error.type == "invalid_args"
    assert res.error.details == [{"loc": loc, "msg": res.error.details[0]["msg"], "type": err_type}]
    assert res.error.details[0]["msg"]
    assert "echo" in res.error.message


def test_non_object_args_are_invalid(reg: ToolRegistry) -> None:
    res = _call(reg, "echo", ["not", "a", "dict"])
    assert res.error is not None and res.error.type == "invalid_args"
    assert res.error.details[0]["loc"] == []


def test_validate_runs_nothing(tmp_path: Path) -> None:
    calls: list[str] = []

    @tool()
    def spy(args: EchoArgs, ctx: ToolContext) -> str:
        calls.append(args.text)
        return "x"

    reg = _registry(tmp_path, spy)
    validated = reg.validate("spy", {"text": "hi"})
    assert isinstance(validated, EchoArgs) and validated.text == "hi"
    assert calls == []


def test_exceptions_become_tool_errors(tmp_path: Path) -> None:
    @tool()
    def boom(args: EchoArgs, ctx: ToolContext) -> str:
        raise KeyError("nope")

    @tool()
    def refuse(args: EchoArgs, ctx: ToolContext) -> str:
        raise ToolFailure("clearly explained")

    reg = _registry(tmp_path, boom, refuse)
    res = _call(reg, "boom", {"text": "a"})
    assert res.error is not None and res.error.type == "tool_error"
    assert res.error.exception_type == "KeyError" and "nope" in res.error.message
    res = _call(reg, "refuse", {"text": "a"})
    assert (
        res.error is not None and res.error.type == "tool_error" and res.error.message == "clearly explained"
    )


def test_hung_sync_tool_times_out(tmp_path: Path) -> None:
    release = threading.Event()

    @tool(timeout=0.2)
    def hang(args: EchoArgs, ctx: ToolContext) -> str:
        release.wait(30)
        return "late"

    reg = _registry(tmp_path, hang)
    try:
        res = _call(reg, "hang", {"text": "a"})
        assert not res.ok and res.error is not None and res.error.type == "timeout"
        assert "0.2" in res.error.message
    finally:
        release.set()


def test_sync_calls_reuse_their_worker_threads_and_a_hung_one_keeps_only_its_own(tmp_path: Path) -> None:
    release = threading.Event()
    seen: set[threading.Thread] = set()  # held, so no two threads can look the same

    @tool(timeout=0.2)
    def where(args: EchoArgs, ctx: ToolContext) -> str:
        if args.text == "hang":
            release.wait(30)
        seen.add(threading.current_thread())
        return args.text

    reg = _registry(tmp_path, where)

    async def calls() -> list[ToolResult]:
        out = [await reg.call("where", {"text": f"a{i}"}) for i in range(20)]
        out.append(await reg.call("where", {"text": "hang"}))
        out += [await reg.call("where", {"text": f"b{i}"}) for i in range(5)]
        return out

    try:
        results = asyncio.run(calls())
        assert [r.output for r in results[:20]] == [f"a{i}" for i in range(20)]
        assert results[20].error is not None and results[20].error.type == "timeout"
        assert [r.output for r in results[21:]] == [f"b{i}" for i in range(5)]  # not stuck behind the hung one
        # One after another, the calls ran on one or two reused threads, not one thread each.
        assert len(seen) <= 3
    finally:
        release.set()


def test_sync_tool_sleep_and_call_timeout_override(tmp_path: Path) -> None:
    @tool()
    def nap(args: EchoArgs, ctx: ToolContext) -> str:
        time.sleep(5)
        return "rested"

    res = _call(_registry(tmp_path, nap), "nap", {"text": "a"}, timeout=0.1)
    assert res.error is not None and res.error.type == "timeout"


def test_async_tool_and_default_timeout(tmp_path: Path) -> None:
    @tool()
    async def slow(args: EchoArgs, ctx: ToolContext) -> str:
        await asyncio.sleep(10)
        return "never"

    @tool()
    async def fast(args: EchoArgs, ctx: ToolContext) -> str:
        return args.text.upper()

    reg = _registry(tmp_path, slow, fast, default_timeout_seconds=0.1)
    assert _call(reg, "fast", {"text": "a"}).output == "A"
    res = _call(reg, "slow", {"text": "a"})
    assert res.error is not None and res.error.type == "timeout"


def test_output_is_capped_with_marker(tmp_path: Path) -> None:
    @tool()
    def big(args: EchoArgs, ctx: ToolContext) -> str:
        return "x" * 5000

    @tool()
    def many(args: EchoArgs, ctx: ToolContext) -> list[int]:
        return list(range(5000))

    reg = _registry(tmp_path, big, many, output_limit_chars=100)
    res = _call(reg, "big", {"text": "a"})
    assert res.ok and res.truncated
    assert res.output.startswith("x" * 100) and "output truncated: 100 of 5000 chars" in res.output
    res = _call(reg, "many", {"text": "a"})
    assert res.truncated and isinstance(res.output, list)
    assert "truncated" in res.output[-1] and "of 5000 items" in res.output[-1]


def test_cap_output_dicts_and_small_values() -> None:
    assert cap_output("short", 10) == ("short", False)
    assert cap_output({"a": 1}, 100) == ({"a": 1}, False)
    out, truncated = cap_output({"a": "y" * 500}, 50)
    assert truncated and isinstance(out, str) and "output truncated" in out


def test_openai_schema_and_version(tmp_path: Path) -> None:
    schema = echo.openai_schema()
    assert schema["type"] == "function"
    fn = schema["function"]
    assert fn["name"] == "echo" and fn["description"] == "Repeat the text."
    params = fn["parameters"]
    assert params["type"] == "object" and params["required"] == ["text"]
    assert params["additionalProperties"] is False
    assert params["properties"]["times"] == {"default": 1, "maximum": 5, "minimum": 1, "type": "integer"}
    assert "title" not in params
    assert len(echo.schema_version) == 12 and echo.schema_version == echo.schema_version
    reg = _registry(tmp_path, echo)
    assert reg.openai_schemas() == [schema]


def test_dotted_names_get_function_aliases(tmp_path: Path) -> None:
    t = Tool(name="srv.do-it", description="d", args_model=EchoArgs, func=lambda a, c: a.text)
    assert t.openai_schema()["function"]["name"] == "srv__do-it"
    reg = _registry(tmp_path, t)
    assert reg.get("srv__do-it") is t and "srv.do-it" in reg
    assert _call(reg, "srv__do-it", {"text": "z"}).output == "z"


def test_register_rejects_duplicates_and_bad_names(tmp_path: Path) -> None:
    reg = _registry(tmp_path, echo)
    with pytest.raises(ValueError, match="already registered"):
        reg.register(echo)
    with pytest.raises(ValueError, match="invalid tool name"):
        Tool(name="bad name", description="", args_model=EchoArgs, func=lambda a, c: None)


def test_decorator_accepts_single_parameter_functions(tmp_path: Path) -> None:
    @tool("shout", risk="write", description="Upper-case it.")
    async def _shout(args: EchoArgs) -> str:
        return args.text.upper()

    assert _shout.name == "shout" and _shout.risk == "write" and _shout.description == "Upper-case it."
    assert _call(_registry(tmp_path, _shout), "shout", {"text": "hey"}).output == "HEY"
    with pytest.raises(TypeError):
        tool()(lambda x: x)


def test_builtin_registry_contents_and_risks(tmp_path: Path) -> None:
    settings = load_settings(workspace=tmp_path, use_user_config=False, environ={})
    reg = asyncio.run(build_registry(settings, plugins=False, mcp=False))
    risks = {t.name: t.risk for t in reg.tools()}
    assert risks == {
        "read_file": "read",
        "list_files": "read",
        "search_code": "read",
        "git_status": "read",
        "git_diff": "read",
        "git_history": "read",
        "run_readonly": "read",
        "write_file": "write",
        "edit_file": "write",
        "apply_edits": "write",
        "run_shell": "exec",
    }
    assert all(t.source == "builtin" for t in reg.tools())
    for s in reg.openai_schemas():
        assert s["function"]["parameters"]["type"] == "object"
        assert s["function"]["description"]


class NoteArgs(ArgsModel):
    path: str


def test_a_call_given_its_validated_args_checks_the_workspace_again(tmp_path: Path) -> None:
    """Arguments validated before a call are used as they are unless the tool's check reads the
    workspace: that check is made again at the call, as the file may have changed since."""
    (tmp_path / "note.txt").write_text("x")

    def exists(args: NoteArgs, ctx: ToolContext) -> list[dict[str, Any]]:
        if (ctx.workspace / args.path).exists():
            return []
        return [{"loc": ["path"], "msg": "no such file", "type": "missing"}]

    @tool(name="note", risk="read")
    async def note(args: NoteArgs, ctx: ToolContext) -> str:
        """Read a note."""
        return (ctx.workspace / args.path).read_text()

    note.check_func = exists
    reg = _registry(tmp_path, note)
    validated = reg.validate("note", {"path": "note.txt"})
    assert isinstance(validated, NoteArgs)
    assert asyncio.run(reg.call("note", {"path": "note.txt"}, validated=validated)).output == "x"
    (tmp_path / "note.txt").unlink()
    result = asyncio.run(reg.call("note", {"path": "note.txt"}, validated=validated))
    assert not result.ok and result.error is not None and result.error.type == "invalid_args"


def test_a_call_given_its_validated_args_runs_with_them(tmp_path: Path) -> None:
    calls: list[EchoArgs] = []

    @tool(name="echo", risk="read")
    async def echo(args: EchoArgs, ctx: ToolContext) -> str:
        """Echo."""
        calls.append(args)
        return args.text * args.times

    reg = _registry(tmp_path, echo)
    validated = reg.validate("echo", {"text": "ab", "times": 2})
    assert isinstance(validated, EchoArgs)
    assert asyncio.run(reg.call("echo", {"text": "ab", "times": 2}, validated=validated)).output == "abab"
    assert calls == [validated] and calls[0] is validated  # not validated a second time
    # Something that is not this tool's validated arguments is not taken for them.
    bad = asyncio.run(reg.call("echo", {"text": ""}, validated=NoteArgs(path="x")))
    assert not bad.ok and bad.error is not None and bad.error.type == "invalid_args"
