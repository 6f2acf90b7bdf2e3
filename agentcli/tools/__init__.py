"""The tool layer: typed tools, a registry whose calls never raise for a model's mistake,
the built-in developer tools, third-party plugins and MCP servers.

::

    registry = await build_registry(settings)
    result = await registry.call("read_file", {"path": "README.md", "end_line": 20})
    if result.ok: ...
    else: result.error.type  # tool_not_found | invalid_args | timeout | tool_error | path_outside_workspace
    await registry.aclose()

- `base`: the core types (`Tool`, `ToolResult`, the ``@tool`` decorator); `registry`: lookup,
  validation, previews and calls; `paths`: workspace confinement and walking (with .gitignore).
- Built-ins: `files` (read, list, write, edit), `edits` (``apply_edits``), `search` (``search_code``),
  `shell` (``run_shell``), `git` (``git_status``, ``git_diff``); `text`: text as a model should see it;
  `closest`: the closest lines of a file to a search text that is not in it (bounded time).
- `sandbox`: the OS sandbox around the processes agentcli starts (`sandbox_bpf`: its seccomp program
  denying unix sockets); `trust`: the files that run outside the sandbox later (read-only inside it,
  and a record of what the user last trusted); `plugins`: third-party tools from entry points;
  `mcp_client`: tools of MCP servers.
"""

from __future__ import annotations

from agentcli.config import Settings, ToolsConfig
from agentcli.tools.base import (
    ArgsModel,
    Capped,
    ErrorType,
    InvalidArgs,
    RiskClass,
    Tool,
    ToolContext,
    ToolError,
    ToolFailure,
    ToolResult,
    tool,
)
from agentcli.tools.paths import PathOutsideWorkspace
from agentcli.tools.registry import ToolRegistry

__all__ = [
    "ArgsModel",
    "Capped",
    "ErrorType",
    "InvalidArgs",
    "PathOutsideWorkspace",
    "RiskClass",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolFailure",
    "ToolRegistry",
    "ToolResult",
    "build_registry",
    "builtin_tools",
    "tool",
    "tool_context",
]


def builtin_tools(config: ToolsConfig) -> list[Tool]:
    """Fresh instances of every built-in tool for this configuration."""
    from agentcli.tools.edits import apply_edits_tool
    from agentcli.tools.files import file_tools
    from agentcli.tools.git import git_tools
    from agentcli.tools.search import search_tool
    from agentcli.tools.shell import readonly_tool, shell_tool

    return [*file_tools(), apply_edits_tool(), search_tool(), shell_tool(), readonly_tool(), *git_tools()]


def tool_context(settings: Settings) -> ToolContext:
    from agentcli.tools.trust import protected_paths

    return ToolContext(workspace=settings.workspace, config=settings.config.tools, data_dir=settings.data_dir,
                       sandbox=settings.config.sandbox, protected=protected_paths(settings))


async def build_registry(settings: Settings, *, plugins: bool = True, mcp: bool = True) -> ToolRegistry:
    """The registry for these settings: built-ins, then plugins (if ``tools.plugins``), then the
    tools of the configured MCP servers (started now; stop them with ``await registry.aclose()``).

    Plugins that fail to load and MCP servers that fail to start end up in ``registry.warnings``.
    """
    registry = ToolRegistry(tool_context(settings))
    for t in builtin_tools(settings.config.tools):
        registry.register(t)
    if plugins and settings.config.tools.plugins:
        from agentcli.tools.plugins import load_plugins

        load_plugins(registry)
    if mcp and settings.config.mcp.servers:
        from agentcli.tools.mcp_client import start_mcp_servers

        await start_mcp_servers(registry, settings.config.mcp.servers)
    return registry
