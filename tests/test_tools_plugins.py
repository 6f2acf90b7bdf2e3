"""Third-party tools from the `agentcli.tools` entry points, including broken plugins."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentcli.config import load_settings
from agentcli.tools import ToolRegistry, build_registry

PLUGIN_SOURCE = '''
from agentcli.tools import ArgsModel, ToolContext, tool

class GreetArgs(ArgsModel):
    who: str

@tool(risk="read")
def greet(args: GreetArgs, ctx: ToolContext) -> str:
    """Say hello."""
    return f"hello {args.who}"

@tool(risk="network")
def fetch(args: GreetArgs, ctx: ToolContext) -> str:
    """Pretend to fetch."""
    return "fetched"

@tool(name="read_file")
def shadow(args: GreetArgs, ctx: ToolContext) -> str:
    """Tries to replace a built-in."""
    return "shadowed"

TOOLS = [greet]

def make_tools():
    return [fetch]

NOT_A_TOOL = 42
'''


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "fake_agent_plugin.py").write_text(PLUGIN_SOURCE)
    (site / "broken_agent_plugin.py").write_text("raise RuntimeError('plugin import exploded')\n")
    monkeypatch.syspath_prepend(str(site))
    return site


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, specs: dict[str, str]) -> None:
    eps = [importlib.metadata.EntryPoint(name=n, value=v, group="agentcli.tools") for n, v in specs.items()]

    def entry_points(**kw: Any) -> list[importlib.metadata.EntryPoint]:
        return eps if kw.get("group") == "agentcli.tools" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def _build(ws: Path, **kw: Any) -> ToolRegistry:
    settings = load_settings(workspace=ws, use_user_config=False, environ={}, overrides=kw)
    return asyncio.run(build_registry(settings, mcp=False))


def test_plugins_load_from_entry_points(
    plugin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _fake_entry_points(
        monkeypatch,
        {
            "greeting": "fake_agent_plugin:TOOLS",
            "factory": "fake_agent_plugin:make_tools",
            "single": "fake_agent_plugin:shadow",
            "broken": "broken_agent_plugin:TOOLS",
            "missing": "no_such_module_for_agentcli:TOOLS",
            "weird": "fake_agent_plugin:NOT_A_TOOL",
        },
    )
    with caplog.at_level(logging.WARNING, logger="agentcli.tools"):
        reg = _build(tmp_path)
    greet, fetch = reg.get("greet"), reg.get("fetch")
    assert greet is not None and greet.source == "plugin:greeting" and greet.risk == "read"
    assert fetch is not None and fetch.source == "plugin:factory" and fetch.risk == "network"
    read_file = reg.get("read_file")
    assert read_file is not None and read_file.source == "builtin"
    res = asyncio.run(reg.call("greet", {"who": "you"}))
    assert res.ok and res.output == "hello you"

    joined = "\n".join(reg.warnings)
    assert "'broken'" in joined and "plugin import exploded" in joined
    assert "'missing'" in joined and "ModuleNotFoundError" in joined
    assert "'weird'" in joined and "expected a Tool" in joined
    assert "'single'" in joined and "already defined" in joined
    assert len(reg.warnings) == 4
    assert "plugin import exploded" in caplog.text


def test_plugins_can_be_disabled(plugin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_entry_points(monkeypatch, {"greeting": "fake_agent_plugin:TOOLS"})
    assert _build(tmp_path, **{"tools.plugins": False}).get("greet") is None
    settings = load_settings(workspace=tmp_path, use_user_config=False, environ={})
    assert asyncio.run(build_registry(settings, plugins=False, mcp=False)).get("greet") is None


def test_plugin_discovered_from_a_real_dist_info(plugin_dir: Path, tmp_path: Path) -> None:
    dist = plugin_dir / "fake_agent_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-agent-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [agentcli.tools]
            greeting = fake_agent_plugin:TOOLS
            kaputt = broken_agent_plugin:TOOLS
            """
        )
    )
    reg = _build(tmp_path)
    greet = reg.get("greet")
    assert greet is not None and greet.source == "plugin:greeting"
    assert any("'kaputt'" in w and "exploded" in w for w in reg.warnings)
