"""agentcli: a command-line developer agent with explicit plans, budgets, approvals and replayable runs.

The public API is re-exported here and listed in `__all__`; the packages below own one concern each
(see `docs/architecture.md`):

    `models/`    LLM client, backends (litellm, local llama.cpp, fakes), types, the call log
    `tools/`     typed tools, the registry, built-ins, plugins, MCP
    `memory/`    working, episodic and semantic memory (LanceDB)
    `planning/`  plans as typed data, planners, prompts, examples
    `record/`    the run's event log and its readers, stats, telemetry
    `engine/`    the state machine, executor, reviewer, runner, budgets, approvals, replay
    `cli/`       the Typer commands

and the base modules every layer may use: `config` (layered, validated configuration), `errors` (the
error hierarchy and exit codes), `ids` (run and plan ids), `redact` (secrets kept out of everything
written and shown), `untrusted` (bounded reading of input agentcli does not control). `__main__` is
``python -m agentcli``.

Names are imported on first use (PEP 562), so `import agentcli` stays cheap for `agent --help`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.4.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors and config
    "AgentError": "agentcli.errors",
    "ExitCode": "agentcli.errors",
    "Config": "agentcli.config",
    "Settings": "agentcli.config",
    "load_settings": "agentcli.config",
    # models
    "LLMClient": "agentcli.models.client",
    "LLMResult": "agentcli.models.types",
    "ModelBackend": "agentcli.models.types",
    "ModelRequest": "agentcli.models.types",
    "ModelResponse": "agentcli.models.types",
    "Usage": "agentcli.models.types",
    "ScriptedModel": "agentcli.models.fakes",
    "FunctionModel": "agentcli.models.fakes",
    # tools
    "Tool": "agentcli.tools",
    "ToolRegistry": "agentcli.tools",
    "ToolResult": "agentcli.tools",
    "tool": "agentcli.tools",
    # planning
    "Plan": "agentcli.planning.plan",
    "Step": "agentcli.planning.plan",
    # record
    "EventLog": "agentcli.record.events",
    "read_events": "agentcli.record.events",
    # engine
    "State": "agentcli.engine.fsm",
    "StateMachine": "agentcli.engine.fsm",
    "Budget": "agentcli.engine.budget",
    "RunDeps": "agentcli.engine.runner",
    "RunOutcome": "agentcli.engine.runner",
    "run": "agentcli.engine.runner",
    "Feedback": "agentcli.engine.steering",
    "SteeringQueue": "agentcli.engine.steering",
    "PlanRevision": "agentcli.engine.steering",
    "plan_diff": "agentcli.planning.diff",
}

__all__ = [
    "AgentError",
    "Budget",
    "Config",
    "EventLog",
    "ExitCode",
    "Feedback",
    "FunctionModel",
    "LLMClient",
    "LLMResult",
    "ModelBackend",
    "ModelRequest",
    "ModelResponse",
    "Plan",
    "PlanRevision",
    "RunDeps",
    "RunOutcome",
    "ScriptedModel",
    "Settings",
    "State",
    "StateMachine",
    "SteeringQueue",
    "Step",
    "Tool",
    "ToolRegistry",
    "ToolResult",
    "Usage",
    "__version__",
    "load_settings",
    "plan_diff",
    "read_events",
    "run",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentcli' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from agentcli.config import Config, Settings, load_settings
    from agentcli.engine.budget import Budget
    from agentcli.engine.fsm import State, StateMachine
    from agentcli.engine.runner import RunDeps, RunOutcome, run
    from agentcli.engine.steering import Feedback, PlanRevision, SteeringQueue
    from agentcli.errors import AgentError, ExitCode
    from agentcli.models.client import LLMClient
    from agentcli.models.fakes import FunctionModel, ScriptedModel
    from agentcli.models.types import LLMResult, ModelBackend, ModelRequest, ModelResponse, Usage
    from agentcli.planning.diff import plan_diff
    from agentcli.planning.plan import Plan, Step
    from agentcli.record.events import EventLog, read_events
    from agentcli.tools import Tool, ToolRegistry, ToolResult, tool
