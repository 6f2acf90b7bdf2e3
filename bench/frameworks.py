"""One run of N no-op tool steps, per framework, with a zero-latency fake model.

Each ``prepare_*`` function imports its framework (so a worker process can time the import)
and returns ``run(n) -> seconds``: the wall time of one complete run of ``n`` tool steps,
measured around the framework's own entry point (set-up and tear-down outside it).

What "a step" is differs by design, and that is the point of the comparison:

* agentcli: one plan step (the plan is given; no model call per step). The run includes
  run start, the plan event, per step the budget check, approval by policy, argument
  validation, the tool call, the state-machine transitions and 7 durable-log events, and
  at the end one reviewer call to the fake model;
* LangGraph, PydanticAI, smolagents: one model turn that asks for one tool call, plus the
  tool call (a ReAct loop: N + 1 model turns per run);
* floor: a plain Python loop validating the (empty) args with pydantic and awaiting the tool.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

RunFn = Callable[[int], float]

#: name -> (import name that must exist, label)
FRAMEWORKS: dict[str, tuple[str, str]] = {
    "agentcli": ("agentcli", "agentcli (plan executor, durable event log)"),
    "agentcli_nolog": ("agentcli", "agentcli, diagnostic: event log off (EventLog.append and .sync do nothing)"),
    "langgraph": ("langgraph", "LangGraph (StateGraph + ToolNode, fake chat model)"),
    "pydantic_ai": ("pydantic_ai", "PydanticAI (Agent + FunctionModel)"),
    "smolagents": ("smolagents", "smolagents (ToolCallingAgent, fake model)"),
    "floor": ("pydantic", "plain loop + pydantic validation (floor)"),
}


def _loop_runner(make: Callable[[int], Awaitable[None]]) -> RunFn:
    """Time an async run on one long-lived event loop (no loop start-up in the figure)."""
    loop = asyncio.new_event_loop()

    def run(n: int) -> float:
        coro = make(n)
        t0 = time.perf_counter()
        loop.run_until_complete(coro)
        return time.perf_counter() - t0

    return run


# --------------------------------------------------------------------------- agentcli


#: Seconds spent inside Executor.execute() during the last agentcli run (see prepare_agentcli).
EXECUTE_SECONDS: list[float] = [0.0]


def prepare_agentcli() -> RunFn:
    import json

    from agentcli.engine import executor as executor_mod
    from agentcli.models.fakes import ScriptedModel
    from agentcli.models.types import ModelResponse
    from bench import kit

    # Time the executor proper (the steps, without the run's start, plan event and reviewer call)
    # by wrapping Executor.execute in this worker process only.
    original = executor_mod.Executor.execute

    async def timed_execute(self: Any, plan: Any) -> None:
        t0 = time.perf_counter()
        try:
            await original(self, plan)
        finally:
            EXECUTE_SECONDS[0] += time.perf_counter() - t0

    executor_mod.Executor.execute = timed_execute  # type: ignore[method-assign]

    root = Path(tempfile.mkdtemp(prefix="agentcli-bench-exec-"))
    config = kit.bench_config(budget={"max_steps": 1000, "max_tokens": 10_000_000})
    registry = kit.make_registry(root, config, [kit.noop_tool()])
    plans: dict[int, Any] = {}
    loop = asyncio.new_event_loop()

    def run(n: int) -> float:
        plan = plans.get(n)
        if plan is None:
            plan = plans[n] = kit.tool_plan([("noop", {})] * n, chain=True)
        # Usage comes with the reply, as from a provider: the fake does not count tokens itself.
        reply = ModelResponse(text=json.dumps(kit.review_reply()), input_tokens=0, output_tokens=0)
        deps = kit.make_deps(root, config, registry, ScriptedModel([reply]))
        EXECUTE_SECONDS[0] = 0.0
        try:
            outcome, seconds = loop.run_until_complete(kit.timed_run("bench", deps, plan))
        finally:
            kit.close_deps(deps)
        if outcome.status != "COMPLETE":
            raise RuntimeError(f"agentcli run did not complete: {outcome.reason}")
        return seconds

    return run


# --------------------------------------------------------------------------- floor


def prepare_floor() -> RunFn:
    from pydantic import BaseModel, ConfigDict

    class Args(BaseModel):
        model_config = ConfigDict(extra="forbid")

    async def noop(args: Args) -> str:
        return "ok"

    async def once(n: int) -> None:
        history: list[dict[str, Any]] = []
        for i in range(n):
            call = {"id": f"c{i}", "name": "noop", "args": {}}
            result = await noop(Args.model_validate(call["args"]))
            history.append({"call": call, "result": result})

    return _loop_runner(once)


# --------------------------------------------------------------------------- LangGraph


def prepare_langgraph() -> RunFn:
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool as lc_tool
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    @lc_tool
    async def noop() -> str:
        """Do nothing and return "ok"."""
        return "ok"

    class FakeToolModel(BaseChatModel):
        """Asks for one `noop` call per turn until `steps` calls were made, then answers."""

        steps: int = 1

        @property
        def _llm_type(self) -> str:
            return "fake-tool-model"

        def _reply(self, messages: list[BaseMessage]) -> ChatResult:
            done = (len(messages) - 1) // 2  # [user, (ai, tool) * done]
            if done < self.steps:
                msg = AIMessage(content="", tool_calls=[{"name": "noop", "args": {}, "id": f"call_{done}"}])
            else:
                msg = AIMessage(content="done")
            return ChatResult(generations=[ChatGeneration(message=msg)])

        def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                      **kwargs: Any) -> ChatResult:
            return self._reply(messages)

        async def _agenerate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                             **kwargs: Any) -> ChatResult:
            return self._reply(messages)

    apps: dict[int, Any] = {}

    def app_for(n: int) -> Any:
        if n not in apps:
            model = FakeToolModel(steps=n)

            async def agent(state: MessagesState) -> dict[str, Any]:
                return {"messages": [await model.ainvoke(state["messages"])]}

            graph = StateGraph(MessagesState)
            graph.add_node("agent", agent)
            graph.add_node("tools", ToolNode([noop]))
            graph.add_edge(START, "agent")
            graph.add_conditional_edges("agent", tools_condition)
            graph.add_edge("tools", "agent")
            apps[n] = graph.compile()
        return apps[n]

    async def once(n: int) -> None:
        out = await app_for(n).ainvoke({"messages": [("user", "bench")]}, {"recursion_limit": 2 * n + 10})
        if len(out["messages"]) != 2 * n + 2:
            raise RuntimeError(f"langgraph: {len(out['messages'])} messages for {n} steps")

    for n in (1, 2):
        app_for(n)
    return _loop_runner(once)


# --------------------------------------------------------------------------- PydanticAI


def prepare_pydantic_ai() -> RunFn:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.usage import UsageLimits

    state = {"calls": 0, "target": 0}

    def model_fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if state["calls"] < state["target"]:
            state["calls"] += 1
            return ModelResponse(parts=[ToolCallPart(tool_name="noop", args={}, tool_call_id=f"c{state['calls']}")])
        return ModelResponse(parts=[TextPart("done")])

    agent = Agent(FunctionModel(model_fn))

    @agent.tool_plain
    async def noop() -> str:
        """Do nothing and return "ok"."""
        return "ok"

    limits = UsageLimits(request_limit=None)

    async def once(n: int) -> None:
        state["calls"], state["target"] = 0, n
        result = await agent.run("bench", usage_limits=limits)
        if state["calls"] != n or result.output != "done":
            raise RuntimeError(f"pydantic_ai: {state['calls']} tool calls for {n} steps")

    return _loop_runner(once)


# --------------------------------------------------------------------------- smolagents


def prepare_smolagents() -> RunFn:
    from smolagents import Model, ToolCallingAgent, tool
    from smolagents.models import ChatMessage, ChatMessageToolCall, ChatMessageToolCallFunction, MessageRole
    from smolagents.monitoring import LogLevel, TokenUsage

    @tool
    def noop() -> str:
        """Do nothing and return "ok"."""
        return "ok"

    class FakeModel(Model):
        """Asks for one `noop` call per turn until `target` calls were made, then the final answer."""

        def __init__(self) -> None:
            super().__init__(model_id="fake")
            self.calls = 0
            self.target = 0

        def generate(self, messages: list[Any], stop_sequences: list[str] | None = None,
                     response_format: dict[str, str] | None = None, tools_to_call_from: list[Any] | None = None,
                     **kwargs: Any) -> ChatMessage:
            self.calls += 1
            if self.calls <= self.target:
                fn = ChatMessageToolCallFunction(name="noop", arguments={})
            else:
                fn = ChatMessageToolCallFunction(name="final_answer", arguments={"answer": "done"})
            call = ChatMessageToolCall(id=f"c{self.calls}", type="function", function=fn)
            return ChatMessage(role=MessageRole.ASSISTANT, content=None, tool_calls=[call],
                               token_usage=TokenUsage(input_tokens=0, output_tokens=0))

    model = FakeModel()
    agents: dict[int, Any] = {}

    def run(n: int) -> float:
        agent = agents.get(n)
        if agent is None:
            agent = agents[n] = ToolCallingAgent(tools=[noop], model=model, max_steps=n + 5,
                                                 verbosity_level=LogLevel.OFF)
        model.calls, model.target = 0, n
        t0 = time.perf_counter()
        answer = agent.run("bench")
        seconds = time.perf_counter() - t0
        if model.calls != n + 1 or answer != "done":
            raise RuntimeError(f"smolagents: {model.calls} model calls for {n} steps (answer {answer!r})")
        return seconds

    return run


def prepare_agentcli_nolog() -> RunFn:
    """agentcli with the event log switched off: what durability costs (a diagnostic, not a mode)."""
    from agentcli.record.events import EventLog

    EventLog.append = lambda self, *args, **kwargs: None  # type: ignore[assignment, method-assign, return-value]
    EventLog.sync = lambda self, *args, **kwargs: None  # type: ignore[method-assign]
    return prepare_agentcli()


PREPARE: dict[str, Callable[[], RunFn]] = {
    "agentcli": prepare_agentcli,
    "agentcli_nolog": prepare_agentcli_nolog,
    "langgraph": prepare_langgraph,
    "pydantic_ai": prepare_pydantic_ai,
    "smolagents": prepare_smolagents,
    "floor": prepare_floor,
}
