"""Replay: a recorded 20-step run re-executed from its record, in-process and as `agent replay`.

The run: 16 tool steps (reads of small files) and 4 llm steps on the scripted model, one
reviewer call, recorded like any ``agent run --yes``. Measured: the live run (``runner.run``),
its replay (``replay_run``: same runner, every input served from the record, compared event by
event), and the whole command ``agent replay ID --json`` in a fresh process (which imports
neither litellm nor a model). Each replay must say ``identical``.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from agentcli.engine.replay import replay_run
from agentcli.models.fakes import ScriptedModel
from agentcli.planning.plan import Plan
from bench import kit
from bench.context import Context
from bench.report import Row, SectionResult
from bench.stats import Summary

SECTION = "replay"
STEPS = 20
TARGET_SECONDS = 1.0


def _plan(ws: Path) -> Plan:
    steps = []
    for i in range(1, STEPS + 1):
        if i % 5 == 0:
            steps.append(kit.llm_step(f"s{i}", f"Summarise {{{{s{i - 1}.output}}}}", [f"s{i - 1}"]))
        else:
            (ws / f"f{i}.txt").write_text(f"file {i}\n" * 20)
            steps.append(kit.tool_plan([("read_file", {"path": f"f{i}.txt"})], chain=False).steps[0].model_copy(
                update={"id": f"s{i}", "depends_on": [f"s{i - 1}"] if i > 1 else []}))
    base = kit.tool_plan([], chain=False, task="replay bench")
    return base.model_copy(update={"steps": steps}).rehash()


def _record(root: Path) -> tuple[Path, float, str]:
    """Run the 20-step plan live; (events path, live seconds, run id)."""
    from agentcli.tools import builtin_tools

    config = kit.bench_config()
    registry = kit.make_registry(root, config, list(builtin_tools(config.tools)))
    plan = _plan(root)
    answers = [f"summary {i}" for i in range(STEPS // 5)] + [kit.review_reply()]
    deps = kit.make_deps(root / ".agent", config, registry, ScriptedModel(answers))
    try:
        outcome, wall = asyncio.run(kit.timed_run("replay bench", deps, plan))
    finally:
        kit.close_deps(deps)
    if outcome.status != "COMPLETE" or len(outcome.steps) != STEPS:
        raise RuntimeError(f"the recorded run did not complete: {outcome.reason}")
    return root / ".agent" / "runs" / deps.run_id / "events.jsonl", wall, deps.run_id


def _replay_once(root: Path, path: Path) -> float:
    from agentcli.tools import builtin_tools

    config = kit.bench_config()
    registry = kit.make_registry(root, config, list(builtin_tools(config.tools)))
    t0 = time.perf_counter()
    result = asyncio.run(replay_run(path, registry))
    took = time.perf_counter() - t0
    if not result.identical:
        assert result.divergence is not None
        raise RuntimeError(result.divergence.describe())
    return took


def _diverged(root: Path) -> Path:
    """A run of 4 parallel reads, its record then given an input the replay never asks for,
    recorded before every other one (a replay that diverged there): the events path."""
    from agentcli.tools import builtin_tools

    ws = root / "diverged"
    ws.mkdir()
    config = kit.bench_config()
    registry = kit.make_registry(ws, config, list(builtin_tools(config.tools)))
    for i in range(1, 5):
        (ws / f"p{i}.txt").write_text(f"part {i}\n")
    plan = kit.tool_plan([("read_file", {"path": f"p{i}.txt"}) for i in range(1, 5)], chain=False,
                         task="diverged replay bench")
    deps = kit.make_deps(ws / ".agent", config, registry, ScriptedModel([kit.review_reply()]))
    try:
        outcome, _ = asyncio.run(kit.timed_run("diverged replay bench", deps, plan))
    finally:
        kit.close_deps(deps)
    if outcome.status != "COMPLETE":
        raise RuntimeError(f"the recorded run did not complete: {outcome.reason}")
    path = ws / ".agent" / "runs" / deps.run_id / "events.jsonl"
    ghost = {"schema_version": 1, "seq": 2, "time": 0.0, "type": "tool_call", "run_id": deps.run_id,
             "step_id": "ghost", "data": {"tool": "read_file", "args": {"path": "ghost.txt"}, "attempt": 1,
                                           "result": {"tool": "read_file", "ok": True, "output": "boo",
                                                      "error": None, "duration_ms": 1.0, "truncated": False}}}
    with path.open("a") as f:
        f.write(json.dumps(ghost) + "\n")
    return path


def _diverged_once(root: Path, path: Path) -> float:
    from agentcli.tools import builtin_tools

    config = kit.bench_config()
    registry = kit.make_registry(path.parents[3], config, list(builtin_tools(config.tools)))
    t0 = time.perf_counter()
    result = asyncio.run(replay_run(path, registry))
    took = time.perf_counter() - t0
    if result.divergence is None or result.divergence.step != "ghost":
        raise RuntimeError("the diverged replay did not report the input it never asked for")
    return took


def _cli_once(ctx: Context, root: Path, run_id: str) -> tuple[float, float]:
    """(wall, CPU seconds: user + system) of one ``agent replay`` process."""
    env = {**os.environ, "AGENT_MEMORY__ENABLED": "false", "PYTHONPATH": str(ctx.root)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([str(ctx.agent), "replay", run_id, "--json"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or not json.loads(done.stdout)["identical"]:
        raise RuntimeError(f"agent replay failed: {done.stdout[-300:]} {done.stderr[-300:]}")
    return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(ctx: Context) -> SectionResult:
    res = SectionResult(SECTION)
    reps = 2 if ctx.smoke else 7
    cli_reps = 1 if ctx.smoke else 5
    root = Path(tempfile.mkdtemp(prefix="replay-", dir=ctx.tmp))
    path, live, run_id = _record(root)
    _replay_once(root, path)  # warm-up
    replays = Summary.of([_replay_once(root, path) for _ in range(reps)], "s")
    cli_runs = [_cli_once(ctx, root, run_id) for _ in range(cli_reps)]
    cli = Summary.of([w for w, _ in cli_runs], "s")
    cpu = Summary.of([c for _, c in cli_runs], "s")
    diverged = _diverged(root)
    stalled = Summary.of([_diverged_once(root, diverged) for _ in range(reps)], "s")
    res.rows.append(Row(SECTION, f"live run, {STEPS} steps ({STEPS // 5} llm, scripted model)",
                        Summary.of([live], "s")))
    res.rows.append(Row(SECTION, "replay_run of it (identical), in-process", replays,
                        target=f"< {TARGET_SECONDS:g} s", met=replays.median < TARGET_SECONDS))
    res.rows.append(Row(SECTION, "agent replay ID --json, fresh process (no litellm, no model)", cli,
                        target=f"< {TARGET_SECONDS:g} s", met=cli.median < TARGET_SECONDS))
    res.rows.append(Row(SECTION, "agent replay ID --json: CPU time (user + system) of the process", cpu,
                        target=f"< {TARGET_SECONDS:g} s", met=cpu.median < TARGET_SECONDS))
    res.rows.append(Row(SECTION, "replay_run of a diverged run (4 parallel reads, an input never asked for)",
                        stalled, target="no wall-clock wait", met=stalled.median < 1.0))
    res.notes += [
        f"A {STEPS}-step run (16 read_file steps, 4 llm steps, one review) recorded by runner.run through "
        "RunSession, then replayed: the same runner with every input served from the record and the events "
        "compared; the CLI figures include interpreter start and imports (wall time on a shared, loaded "
        "machine is mostly waiting for a core: the CPU time is what the command costs).",
        "Diverged run: a record of 4 independent read_file steps (run in parallel) given one more tool result, "
        "recorded before all the others, that the replay never asks for. Every other input waits for its turn "
        "until the replay has nothing else to do (counted in turns of the event loop); the replay then goes on "
        "and reports the divergence. Before, such a wait ended after 2 s of wall clock.",
    ]
    return res
