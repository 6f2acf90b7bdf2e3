"""Investigate steps: a bounded, read-only tool-using loop inside one step.

The executor's model is given a question (the step's resolved ``prompt``) and the read tools
(:data:`INVESTIGATE_TOOLS`: read_file, search_code, list_files, git_history, and run_readonly, a
command in the sandbox with the workspace mounted read-only and no network). It calls them until it
answers with its findings, within ``[investigate]``'s limits: ``max_calls`` tool calls (used up, it
is asked once more, with no tools, for what it found), ``max_tokens`` and ``max_seconds`` (checked
before each of its model calls; reached, the step fails with what it found so far). The run's own
budgets are checked before every call as for any call (the client's guard).

Every model call is an ``llm_call`` of the step and every tool call a ``tool_called`` event of the
step, made through the registry: a replay serves both from the record, as for any step. The
pre_tool and post_tool hooks run for each tool call. The output is a
:class:`~agentcli.planning.plan.Findings`: what was established, the evidence lines, the commands
run with their exit codes, the calls made and why it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from agentcli.config import Config
from agentcli.engine.hooks import Hooks
from agentcli.errors import BudgetExceeded, LLMError
from agentcli.models.client import LLMClient
from agentcli.planning.plan import CommandRun, Findings
from agentcli.planning.prompt import callable_tool_spec
from agentcli.record.events import EventLog, ToolCalled
from agentcli.tools import ToolRegistry
from agentcli.tools.text import head_tail, strip_ansi, tail_with_failures

__all__ = ["INVESTIGATE_TOOLS", "Investigation", "InvestigationResult", "investigate_system"]

#: The tools an investigation may call, where the registry has them (all read-only).
INVESTIGATE_TOOLS = ("read_file", "search_code", "list_files", "git_history", "run_readonly")
#: The read-only command tool, whose calls are listed in the findings with their exit codes.
COMMAND_TOOL = "run_readonly"

_SYSTEM = (
    "You investigate one question for a plan that carries out this task: {task}\n"
    "Find the answer with the tools you are given: read files, search, list, read the history, and run "
    "commands with run_readonly (the workspace is read-only there and there is no network: tests and "
    "scripts run, nothing changes). Establish facts from what the tools return; do not guess. You have "
    "at most {calls} tool calls. When you know the answer, or cannot find out, reply without a tool call, "
    'with JSON only: {{"established": "what you found, in a few sentences (or that you could not, and '
    'why)", "evidence": ["path:line: text", "a line of a command\'s output", ...]}}. Quote the lines a fix '
    "would change exactly as they are in the file, indentation included: a later step may copy them. "
    "A long output is cut to its head, the lines that report a failure and its end; to read more of one, "
    "write it to a file under $TMPDIR and search that."
)
_LAST_CALL = ("No tool calls are left. Reply now, without a tool call, with your findings as JSON: "
              '{"established": ..., "evidence": [...]}.')


def investigate_system(task: str, calls: int) -> str:
    """The investigation's system message (the task and the call limit)."""
    return _SYSTEM.format(task=task, calls=calls)


class FindingsAnswer(BaseModel):
    """What the model writes at the end of an investigation (the engine adds the commands and counts)."""

    established: str = Field(..., min_length=1, description="What was established, in a few sentences.")
    evidence: list[str] = Field(default_factory=list, description="The lines it rests on.")


@dataclass
class InvestigationResult:
    """An investigation's findings, the tokens and cost of its model calls, and its error (None: it answered)."""

    findings: Findings
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    error: dict[str, Any] | None = None


@dataclass
class Investigation:
    """One investigation, run by the executor for an investigate step (or by the runner before a
    re-plan), through the run's client, registry, events and hooks."""

    config: Config
    client: LLMClient
    registry: ToolRegistry
    events: EventLog
    hooks: Hooks | None = None
    #: Told when a tool call starts and ends (the run's EXECUTING <-> WAITING_TOOL).
    on_tool: Callable[[bool, str], None] | None = None
    #: Seconds left of the run's wall-time budget (a tool call is cut there, as a tool step's is).
    remaining: Callable[[], float] | None = None
    clock: Callable[[], float] = time.monotonic
    _deadline: float = field(default=0.0, init=False)
    _commands: list[CommandRun] = field(default_factory=list, init=False)

    def tools(self) -> list[Any]:
        """The tools offered: :data:`INVESTIGATE_TOOLS` the registry has, read-only ones only."""
        found = [self.registry.get(n) for n in INVESTIGATE_TOOLS]
        return [t for t in found if t is not None and t.risk == "read" and t.call_risks is None]

    async def run(self, step_id: str, question: str, *, task: str, instructions: str = "",
                  reminder: str = "") -> InvestigationResult:
        """Investigate ``question`` for step ``step_id``; never raises for the model's or a tool's
        mistakes (BudgetExceeded and cancellation pass through)."""
        limits = self.config.investigate
        tools = self.tools()
        specs = [callable_tool_spec(t) for t in tools]
        offered = {t.name for t in tools}
        system = investigate_system(task, limits.max_calls)
        if instructions:
            system += "\n\nProject instructions (follow them):\n" + instructions
        user = (reminder + "\n\n" if reminder else "") + f"Question: {question}"
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        out = InvestigationResult(Findings(established=""))
        self._commands = []
        calls = 0
        started = self.clock()
        self._deadline = started + limits.max_seconds
        while True:
            stop = self._limit(out, started)
            if stop is not None:
                return self._stopped(out, stop, calls)
            last = calls >= limits.max_calls
            try:
                result = await self.client.acomplete(
                    messages, role="executor", step_id=step_id, response_model=FindingsAnswer,
                    tools=None if last else specs)
            except BudgetExceeded:
                raise
            except LLMError as e:
                out.error = {"type": e.error_type, "message": e.one_line()}
                out.findings = self._findings("", [], calls, "answered")
                return out
            out.input_tokens += result.usage.input_tokens
            out.output_tokens += result.usage.output_tokens
            out.cost_usd = None if result.cost_usd is None or out.cost_usd is None else out.cost_usd + result.cost_usd
            if not result.tool_calls or last:
                answer: FindingsAnswer = result.parsed
                out.findings = self._findings(answer.established, answer.evidence, calls,
                                              "calls" if last else "answered")
                return out
            asked = [{"id": c.id, "type": "function",
                      "function": {"name": c.name, "arguments": json.dumps(c.arguments)}} for c in result.tool_calls]
            replies = []
            for c in result.tool_calls:
                if calls >= limits.max_calls:
                    content = json.dumps({"error": "no tool calls left: reply with your findings"})
                elif c.name not in offered:
                    content = json.dumps({"error": f"{c.name} is not a tool you may call here; use one of: "
                                                   f"{', '.join(sorted(offered))}"})
                else:
                    calls += 1
                    content = await self._call(step_id, c.name, c.arguments, calls)
                replies.append({"role": "tool", "tool_call_id": c.id, "content": content})
            messages = [*messages, {"role": "assistant", "content": result.text or None, "tool_calls": asked},
                        *replies]
            if calls >= limits.max_calls:
                messages.append({"role": "user", "content": _LAST_CALL})

    def _limit(self, out: InvestigationResult, started: float) -> str | None:
        limits = self.config.investigate
        if out.input_tokens + out.output_tokens >= limits.max_tokens:
            return "tokens"
        if self.clock() - started >= limits.max_seconds:
            return "seconds"
        return None

    def _stopped(self, out: InvestigationResult, stop: str, calls: int) -> InvestigationResult:
        limits = self.config.investigate
        what = (f"its token limit ({limits.max_tokens}, [investigate] max_tokens)" if stop == "tokens"
                else f"its time limit ({limits.max_seconds:g} s, [investigate] max_seconds)")
        message = f"the investigation reached {what} after {calls} tool call(s) without findings"
        out.findings = self._findings(f"not established: {message}", [], calls, stop)
        out.error = {"type": "investigate_limit", "message": message}
        return out

    def _findings(self, established: str, evidence: list[str], calls: int, stopped: str) -> Findings:
        return Findings.model_validate({"established": established, "evidence": list(evidence),
                                        "commands": [c.model_dump() for c in self._commands], "calls": calls,
                                        "stopped": stopped})

    async def _call(self, step_id: str, name: str, args: Any, n: int) -> str:
        """One tool call, validated, hooked, recorded; what the model is shown of its result."""
        checked = self.registry.validate(name, args, step_id=step_id)
        if not isinstance(checked, BaseModel):
            return json.dumps({"error": checked.model_dump(mode="json")}, ensure_ascii=False)
        if self.hooks is not None:
            blocked = await self.hooks.pre_tool(step_id, name, args)
            if blocked is not None:
                return json.dumps({"error": f"a pre_tool hook blocked this call: {blocked.message}"})
        # The tool's own timeout, unless the investigation's time or the run's runs out first.
        tool = self.registry.get(name)
        default = self.config.tools.default_timeout_seconds
        own = tool.effective_timeout(checked, default) if tool is not None else default
        left = max(self._deadline - self.clock(), 0.001)
        if self.remaining is not None:
            left = min(left, self.remaining())
        timeout = left if left < own else None
        if self.on_tool is not None:
            self.on_tool(True, f"{step_id}: {name}")
        try:
            result = await self.registry.call(name, args, timeout=timeout, step_id=step_id)
        finally:
            if self.on_tool is not None:
                self.on_tool(False, f"{step_id}: {name} returned")
        called = ToolCalled(tool=name, args=args, attempt=n, result=result.model_dump(mode="json"))
        self.events.emit(called, step_id=step_id)
        if self.hooks is not None:
            await self.hooks.post_tool(step_id, name, called.event_data())
        if name == COMMAND_TOOL and isinstance(args, dict):
            code = result.output.get("exit_code") if result.ok and isinstance(result.output, dict) else None
            self._commands.append(CommandRun(command=str(args.get("command", "")),
                                             exit_code=code if isinstance(code, int) else None))
        if not result.ok:
            error = result.error.model_dump(mode="json") if result.error is not None else "failed"
            return json.dumps({"error": error}, ensure_ascii=False)
        return self._shown(result.output)

    def _shown(self, output: Any) -> str:
        limit = self.config.investigate.output_chars
        if isinstance(output, dict) and set(output) >= {"exit_code", "output"}:
            # A command's verdict is at the end of its output: head and tail, and the failures between.
            text = strip_ansi(str(output.get("output") or ""))
            return f"exit_code: {output['exit_code']}\n{tail_with_failures(text, limit, head_share=0.3)}"
        text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False, indent=1, default=str)
        return head_tail(text, limit, head_share=0.7)
