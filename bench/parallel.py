"""Parallel plan: 8 independent steps with simulated tool latency, max_parallel = 8."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from agentcli.models.fakes import ScriptedModel
from bench import kit
from bench.context import Context
from bench.report import Row, SectionResult
from bench.stats import Summary

SECTION = "parallel"
TARGET_SPEEDUP = 6.5
STEPS = 8


async def _once(root: Path, seconds: float, max_parallel: int) -> tuple[float, float]:
    """(wall, sum of the steps' own durations) of one run."""
    config = kit.bench_config(executor={"max_parallel": max_parallel})
    registry = kit.make_registry(root, config, [kit.nap_tool()])
    plan = kit.tool_plan([("nap", {"seconds": seconds, "label": f"n{i}"}) for i in range(STEPS)], chain=False)
    deps = kit.make_deps(root, config, registry, ScriptedModel([kit.review_reply()]))
    try:
        outcome, wall = await kit.timed_run("parallel bench", deps, plan)
    finally:
        kit.close_deps(deps)
    if outcome.status != "COMPLETE":
        raise RuntimeError(f"parallel run did not complete: {outcome.reason}")
    return wall, sum(float(s["duration_s"]) for s in outcome.steps)


def run(ctx: Context) -> SectionResult:
    res = SectionResult(SECTION)
    seconds = 0.02 if ctx.smoke else 0.2
    reps = 2 if ctx.smoke else 7
    seq_reps = 1 if ctx.smoke else 3
    root = Path(tempfile.mkdtemp(prefix="parallel-", dir=ctx.tmp))

    async def go() -> tuple[list[tuple[float, float]], list[float]]:
        await _once(root, seconds / 10, STEPS)  # warm-up
        par = [await _once(root, seconds, STEPS) for _ in range(reps)]
        seq = [(await _once(root, seconds, 1))[0] for _ in range(seq_reps)]
        return par, seq

    par, seq = asyncio.run(go())
    walls = Summary.of([w for w, _ in par], "s")
    res.rows.append(Row(SECTION, f"wall, {STEPS} x {seconds * 1000:g} ms steps, max_parallel={STEPS}", walls))
    res.rows.append(Row(SECTION, "sum of the steps' own durations", Summary.of([s for _, s in par], "s")))
    speedups = Summary.of([s / w for w, s in par], "x")
    res.rows.append(Row(SECTION, "speed-up: sum of step durations / wall", speedups,
                        target=f"≥ {TARGET_SPEEDUP:g}x", met=speedups.median >= TARGET_SPEEDUP))
    seq_s = Summary.of(seq, "s")
    res.rows.append(Row(SECTION, "wall, same plan, max_parallel=1", seq_s))
    res.rows.append(Row(SECTION, "speed-up: max_parallel=1 wall / max_parallel=8 wall (medians)",
                        Summary.of([seq_s.median / walls.median], "x")))
    res.notes += [
        f"{STEPS} independent steps of an async tool that sleeps {seconds * 1000:g} ms; runner.run() with a "
        "real EventLog, reviewer answered by a zero-latency ScriptedModel. Wall includes the run's fixed costs "
        "(start, plan event, reviewer call); the ideal is the sum / 1 step's latency = 8x.",
    ]
    return res
