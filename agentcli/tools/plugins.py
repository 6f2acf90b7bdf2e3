"""Third-party tools from the ``agentcli.tools`` entry-point group.

A distribution declares, e.g. in its pyproject.toml::

    [project.entry-points."agentcli.tools"]
    mytools = "mypkg.tools:TOOLS"

The entry point may load a :class:`~agentcli.tools.base.Tool`, a list of Tools, or a
callable (no arguments) returning either. A plugin that fails to import, returns
something else, or raises never stops the agent: it becomes a warning naming it.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
from collections.abc import Iterable
from typing import Any

from agentcli.tools.base import Tool
from agentcli.tools.registry import ToolRegistry

__all__ = ["ENTRY_POINT_GROUP", "load_plugins"]

ENTRY_POINT_GROUP = "agentcli.tools"


def _as_tools(obj: Any) -> list[Tool] | None:
    if isinstance(obj, Tool):
        return [obj]
    if isinstance(obj, Iterable) and not isinstance(obj, str | bytes | dict):
        items = list(obj)
        if all(isinstance(t, Tool) for t in items):
            return items
    return None


def load_plugins(registry: ToolRegistry) -> list[Tool]:
    """Register the tools of every installed plugin; returns the tools added."""
    added: list[Tool] = []
    try:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception as exc:  # broken metadata of some unrelated distribution
        registry.add_warning(f"could not list tool plugins: {exc}")
        return added
    for ep in sorted(eps, key=lambda e: e.name):
        label = f"plugin {ep.name!r} ({ep.value})"
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, Tool):
                obj = obj()
        except (Exception, SystemExit) as exc:
            registry.add_warning(f"{label} failed to load: {type(exc).__name__}: {exc}")
            continue
        tools = _as_tools(obj)
        if tools is None:
            registry.add_warning(f"{label} gave {type(obj).__name__}, expected a Tool or a list of Tools")
            continue
        for original in tools:
            # A copy: the plugin's module-level Tool object may be shared by other registries.
            t = dataclasses.replace(original, source=f"plugin:{ep.name}")
            if t.name in registry:
                registry.add_warning(f"{label}: tool {t.name!r} is already defined; the plugin's is ignored")
                continue
            registry.register(t)
            added.append(t)
    return added
