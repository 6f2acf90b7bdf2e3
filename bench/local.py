"""The embedded model (``local/smollm2``) as the planner: time per plan, tokens per second, validity.

Runs in a worker process with ``AGENT_ALLOW_MODEL_REQUESTS=1`` (the guard tests set), through
the real path: ``planner.make_plan`` -> LLMClient -> litellm -> the llama.cpp custom provider,
with the planner's re-asks (``llm.max_reasks``) when a draft does not validate.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.context import Context, WorkerError
from bench.report import Row, SectionResult
from bench.stats import Summary

SECTION = "local model"
MODEL = "local/smollm2"


def worker(tasks: list[str], max_tasks: int) -> dict[str, Any]:
    """Plan each task with the real local model; one record per task."""
    from agentcli.config import load_settings
    from agentcli.errors import AgentError
    from agentcli.models.client import LLMClient
    from agentcli.models.local import loader as local_loader
    from agentcli.models.types import CallRecord
    from agentcli.planning.planner import make_plan
    from agentcli.tools import ToolRegistry, builtin_tools, tool_context
    from bench import suite

    ws = suite.make_workspace(Path(tempfile.mkdtemp(prefix="local-ws-")))
    settings = load_settings(workspace=ws, environ={}, use_user_config=False, overrides={"model": MODEL})
    registry = ToolRegistry(tool_context(settings))
    for t in builtin_tools(settings.config.tools):
        registry.register(t)
    calls: list[CallRecord] = []
    client = LLMClient(settings.config, observers=[calls.append])

    async def go() -> dict[str, Any]:
        t0 = time.perf_counter()
        await client.acomplete([{"role": "user", "content": "Say OK."}], max_tokens=4)
        load_s = time.perf_counter() - t0  # litellm import + model load + one tiny generation
        out = []
        for text in tasks[:max_tasks]:
            calls.clear()
            t0 = time.perf_counter()
            try:
                plan = await make_plan(text, settings=settings, registry=registry, client=client, save=False)
                valid, detail = True, " -> ".join(f"{s.tool or 'llm'}" for s in plan.steps)
            except AgentError as e:
                valid, detail = False, e.one_line()[:200]
            seconds = time.perf_counter() - t0
            ok = [c for c in calls if c.response is not None]
            out.append({
                "task": text, "seconds": seconds, "valid": valid, "detail": detail, "calls": len(calls),
                "output_tokens": sum(c.usage.output_tokens for c in ok),
                "input_tokens": sum(c.usage.input_tokens for c in ok),
                "generation_s": sum(c.latency_ms for c in ok) / 1000,
            })
        return {"load_s": load_s, "tasks": out}

    try:
        return asyncio.run(go())
    finally:
        local_loader.close_all()


def run(ctx: Context) -> SectionResult:
    import json

    from bench import suite

    res = SectionResult(SECTION)
    tasks = [t.text for t in suite.TASKS]
    n = 1 if ctx.smoke else 4
    try:
        out = ctx.worker("local", json.dumps(tasks), str(n), timeout=1800, AGENT_ALLOW_MODEL_REQUESTS="1")
    except WorkerError as e:
        res.rows.append(Row(SECTION, f"{MODEL} planning", text=f"failed: {str(e)[:160]}"))
        res.notes.append(f"The local model could not run: {e}")
        return res
    recs = out["tasks"]
    res.rows += [
        Row(SECTION, f"{MODEL}: time per plan (make_plan, re-asks included)",
            Summary.of([r["seconds"] for r in recs], "s"), text="(over tasks)"),
        Row(SECTION, f"{MODEL}: model calls per plan", Summary.of([r["calls"] for r in recs], "calls")),
        Row(SECTION, f"{MODEL}: prompt tokens per plan", Summary.of([r["input_tokens"] for r in recs], "tok")),
        Row(SECTION, f"{MODEL}: output tokens per second of call time (prompt evaluation included)",
            Summary.of([r["output_tokens"] / r["generation_s"] for r in recs if r["generation_s"] > 0], "tok/s")),
        Row(SECTION, f"{MODEL}: plans that validated",
            text=f"{sum(r['valid'] for r in recs)} of {len(recs)}"),
        Row(SECTION, f"{MODEL}: first call (litellm import + model load)", Summary.of([out["load_s"]], "s")),
    ]
    res.notes.append(f"{len(recs)} task(s) of the calls suite planned by the real embedded model (temperature 0, "
                     "grammar-constrained JSON from the planner's draft schema), workspace = the fixture project, 8 "
                     "built-in tools, through planner.make_plan -> LLMClient -> litellm -> llama.cpp. tok/s = output "
                     "tokens / summed call latency, so the evaluation of the ~1,600-token prompt is included; "
                     "llama.cpp uses every CPU, so other load on the machine slows it a lot. Per task:")
    for r in recs:
        res.notes.append(f"  \"{r['task']}\": {r['seconds']:.1f} s, {r['calls']} call(s), "
                         f"{r['output_tokens']} output tokens, {'valid' if r['valid'] else 'NOT valid'}: "
                         f"{r['detail']}")
    return res
