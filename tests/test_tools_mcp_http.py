"""MCP over Streamable HTTP: a real server (the SDK's own server side) on loopback, reached with
headers whose secrets come from the environment, never from the file."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentcli.config import load_settings
from agentcli.errors import ConfigError
from agentcli.tools import ToolRegistry, build_registry

pytest.importorskip("mcp")
TOKEN = "s3cr3t-token-for-the-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """An MCP server over Streamable HTTP that answers only requests with the bearer token."""
    import uvicorn
    from mcp.server.mcpserver import MCPServer

    mcp = MCPServer("calc")

    @mcp.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @mcp.tool()
    def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper()

    inner = mcp.streamable_http_app()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization") != f"Bearer {TOKEN}".encode():
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await inner(scope, receive, send)

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the test MCP server did not start"
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _registry(tmp_path: Path, server: dict[str, Any]) -> Any:
    settings = load_settings(workspace=tmp_path, use_user_config=False, environ={},
                             overrides={"mcp.servers": [server]})

    async def go() -> tuple[ToolRegistry, list[Any]]:
        reg = await build_registry(settings, plugins=False)
        try:
            results = [await reg.call("calc.add", {"a": 2, "b": 40}),
                       await reg.call("calc.shout", {"text": "hi"}),
                       await reg.call("calc.add", {"a": "two"})] if "calc.add" in reg else []
            return reg, results
        finally:
            await reg.aclose()

    return asyncio.run(asyncio.wait_for(go(), 60))


def test_http_server_round_trip_with_a_header_from_the_environment(
        tmp_path: Path, server_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALC_MCP_TOKEN", TOKEN)
    reg, results = _registry(tmp_path, {"name": "calc", "url": server_url, "risk": "network",
                                        "headers": {"Authorization": "Bearer ${CALC_MCP_TOKEN}"}})
    assert reg.warnings == []
    tool = reg.get("calc.add")
    assert tool is not None and tool.source == "mcp:calc" and tool.risk == "network"
    added, shouted, invalid = results
    assert added.ok and added.output == {"result": 42}  # the server's structured content
    assert shouted.ok and shouted.output == {"result": "HI"}
    assert invalid.error is not None and invalid.error.type == "invalid_args"


def test_a_wrong_or_missing_token_is_a_clear_warning(tmp_path: Path, server_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALC_MCP_TOKEN", raising=False)
    server = {"name": "calc", "url": server_url, "headers": {"Authorization": "Bearer ${CALC_MCP_TOKEN}"},
              "timeout_seconds": 10}
    reg, _ = _registry(tmp_path, server)
    assert "calc.add" not in reg
    assert reg.warnings == ["MCP server 'calc': environment variable CALC_MCP_TOKEN (in a header) is not set"]
    monkeypatch.setenv("CALC_MCP_TOKEN", "wrong")
    reg, _ = _registry(tmp_path, server)
    assert "calc.add" not in reg and len(reg.warnings) == 1
    assert reg.warnings[0].startswith("MCP server 'calc' failed to start") and "wrong" not in reg.warnings[0]


def test_secrets_never_come_from_the_file(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text(
        '[[mcp.servers]]\nname = "calc"\nurl = "http://127.0.0.1:1/mcp"\n'
        f'headers = {{ Authorization = "Bearer {TOKEN}" }}\n')
    with pytest.raises(ConfigError) as e:
        load_settings(workspace=tmp_path, use_user_config=False, environ={})
    message = e.value.one_line()
    assert "is a credential" in message and "${VAR}" in message and "agent.toml" in message


@pytest.mark.parametrize("server", [{"name": "x"}, {"name": "x", "command": "c", "url": "http://h/mcp"},
                                    {"name": "x", "url": "ftp://h/mcp"}])
def test_exactly_one_transport(tmp_path: Path, server: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        load_settings(workspace=tmp_path, use_user_config=False, environ={}, overrides={"mcp.servers": [server]})


def test_headers_are_not_recorded(tmp_path: Path) -> None:
    # The config recorded in run_started keeps the ${VAR} reference, never its value.
    settings = load_settings(workspace=tmp_path, use_user_config=False, environ={}, overrides={
        "mcp.servers": [{"name": "c", "url": "http://h/mcp", "headers": {"Authorization": "Bearer ${T}"}}]})
    dumped = json.dumps(settings.config.model_dump(mode="json"))
    assert "${T}" in dumped
