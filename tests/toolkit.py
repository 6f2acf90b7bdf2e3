"""Helpers shared by the tool tests: a registry from real settings, and a synchronous call."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agentcli.config import load_settings
from agentcli.tools import ToolRegistry, ToolResult, build_registry


def make_registry(ws: Path, *, sandbox: str | None = None, **tools_cfg: Any) -> ToolRegistry:
    """Built-in tools for ``ws`` with ``tools.*`` overrides; ``sandbox`` sets ``sandbox.mode``."""
    overrides: dict[str, Any] = {f"tools.{k}": v for k, v in tools_cfg.items()}
    if sandbox is not None:
        overrides["sandbox.mode"] = sandbox
    settings = load_settings(workspace=ws, use_user_config=False, environ={}, overrides=overrides)
    return asyncio.run(build_registry(settings, plugins=False, mcp=False))


def call(reg: ToolRegistry, name: str, args: dict[str, Any]) -> ToolResult:
    return asyncio.run(reg.call(name, args))
