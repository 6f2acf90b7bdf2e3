"""MCP servers over stdio: a real round trip (mcp-server-time), and servers that fail in every way."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from agentcli.config import load_settings
from agentcli.tools import ToolRegistry, build_registry
from agentcli.tools.mcp_client import schema_errors

pytest.importorskip("mcp")

# A server that misbehaves on request: dies mid-call, hangs, reports errors.
FLAKY_SERVER = '''
import os, sys, time
try:
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server

server = Server("flaky")

@server.tool()
def die(code: int) -> str:
    """Exit at once."""
    sys.stderr.write("flaky: dying now\\n")
    sys.stderr.flush()
    os._exit(code)

@server.tool()
def slow(seconds: float) -> str:
    """Sleep."""
    time.sleep(seconds)
    return "done"

@server.tool()
def fail() -> str:
    """Raise."""
    raise ValueError("flaky failure")

@server.tool()
def pair(a: int, b: str = "x") -> dict:
    """Return structured content."""
    return {"a": a, "b": b}

server.run()
'''


def _registry(tmp_path: Path, *servers: dict[str, Any]) -> ToolRegistry:
    settings = load_settings(
        workspace=tmp_path, use_user_config=False, environ={}, overrides={"mcp.servers": list(servers)}
    )
    return asyncio.run(asyncio.wait_for(build_registry(settings, plugins=False), 60))


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))  # a hang fails the test instead of the session


def test_time_server_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("mcp_server_time")
    server = {
        "name": "time",
        "command": sys.executable,
        "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
    }

    async def scenario() -> None:
        settings = load_settings(
            workspace=tmp_path, use_user_config=False, environ={}, overrides={"mcp.servers": [server]}
        )
        reg = await build_registry(settings, plugins=False)
        try:
            assert reg.warnings == []
            tool = reg.get("time.get_current_time")
            assert tool is not None and tool.source == "mcp:time" and tool.risk == "exec"
            assert "time.convert_time" in reg
            fn = tool.openai_schema()["function"]
            assert fn["name"] == "time__get_current_time"
            assert fn["parameters"]["required"] == ["timezone"]
            assert reg.get("time__get_current_time") is tool

            res = await reg.call("time.get_current_time", {"timezone": "UTC"})
            assert res.ok, res.error
            assert res.output["timezone"] == "UTC" and "datetime" in res.output

            res = await reg.call(
                "time.convert_time",
                {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
            )
            assert res.ok and "21:00" in str(res.output)

            res = await reg.call("time.get_current_time", {})
            assert res.error is not None and res.error.type == "invalid_args"
            assert res.error.details == [{"loc": ["timezone"], "msg": "Field required", "type": "missing"}]

            res = await reg.call("time.get_current_time", {"timezone": 5, "zone": "x"})
            assert res.error is not None and res.error.type == "invalid_args"
            kinds = {(tuple(d["loc"]), d["type"]) for d in res.error.details}
            assert kinds == {(("timezone",), "type"), (("zone",), "extra_forbidden")}

            res = await reg.call("time.get_current_time", {"timezone": "Mars/Olympus_Mons"})
            assert res.error is not None and res.error.type == "tool_error"
            assert "Invalid timezone" in res.error.message

            res = await reg.call("time.get_time", {})
            assert res.error is not None and res.error.type == "tool_not_found"
            assert "time.get_current_time" in res.error.suggestions
        finally:
            await reg.aclose()

    _run(scenario())


def test_missing_command_is_a_clear_warning(tmp_path: Path) -> None:
    reg = _registry(tmp_path, {"name": "ghost", "command": "agentcli-no-such-mcp-server"})
    assert len(reg.warnings) == 1
    assert "'ghost'" in reg.warnings[0] and "not found" in reg.warnings[0]
    assert not any(t.source.startswith("mcp:") for t in reg.tools())


def test_server_exiting_at_once_reports_its_stderr(tmp_path: Path) -> None:
    code = "import sys; sys.stderr.write('bad config: no token\\n'); sys.exit(3)"
    reg = _registry(tmp_path, {"name": "quitter", "command": sys.executable, "args": ["-c", code]})
    assert len(reg.warnings) == 1
    assert "'quitter' failed to start" in reg.warnings[0] and "bad config: no token" in reg.warnings[0]


def test_server_that_never_answers_times_out(tmp_path: Path) -> None:
    code = "import time; time.sleep(120)"
    reg = _registry(
        tmp_path, {"name": "mute", "command": sys.executable, "args": ["-c", code], "timeout_seconds": 1}
    )
    assert len(reg.warnings) == 1 and "'mute' did not start within 1 s" in reg.warnings[0]


def test_server_failures_during_calls(tmp_path: Path) -> None:
    script = tmp_path / "flaky_server.py"
    script.write_text(FLAKY_SERVER)
    server = {
        "name": "flaky",
        "command": sys.executable,
        "args": [str(script)],
        # The start-up bound: a Python MCP server took ~6 s to start on a loaded 2-core machine.
        "timeout_seconds": 60,
        "risk": "read",
    }

    async def scenario() -> None:
        settings = load_settings(
            workspace=tmp_path, use_user_config=False, environ={}, overrides={"mcp.servers": [server]}
        )
        reg = await build_registry(settings, plugins=False)
        try:
            assert reg.warnings == [], reg.warnings
            assert reg.get("flaky.die").risk == "read"  # type: ignore[union-attr]
            res = await reg.call("flaky.pair", {"a": 1})
            assert res.ok
            out = json.loads(res.output) if isinstance(res.output, str) else res.output
            assert out in ({"a": 1, "b": "x"}, {"result": {"a": 1, "b": "x"}})

            res = await reg.call("flaky.fail", {})
            assert res.error is not None and res.error.type == "tool_error"
            assert res.error.exception_type == "McpToolError"

            res = await reg.call("flaky.slow", {"seconds": 30}, timeout=1)
            assert res.error is not None and res.error.type == "timeout"

            res = await reg.call("flaky.die", {"code": 7})
            assert res.error is not None and res.error.type == "tool_error"
            assert "exited during the call" in res.error.message and "dying now" in res.error.message

            res = await reg.call("flaky.pair", {"a": 2})
            assert res.error is not None and res.error.type == "tool_error"
            assert "not running" in res.error.message
        finally:
            await reg.aclose()

    _run(scenario())


def test_schema_errors_shape() -> None:
    jsonschema: Any = importlib.import_module("jsonschema")  # ships no type hints

    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 1},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["n"],
        "additionalProperties": False,
    }
    validator = jsonschema.Draft202012Validator(schema)
    errors = schema_errors(validator, {"n": 0, "tags": ["a", 3], "bogus": 1})
    assert errors == [
        {"loc": ["bogus"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"},
        {"loc": ["n"], "msg": errors[1]["msg"], "type": "minimum"},
        {"loc": ["tags", 1], "msg": errors[2]["msg"], "type": "type"},
    ]
    assert schema_errors(validator, {"n": 3}) == []
