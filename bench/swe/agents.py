"""The agents under test, each run as a subprocess on one workspace.

* ``agentcli``: ``agent run --yes --json`` with the problem statement; its figures are read from the
  run's outcome and its ``events.jsonl`` (its data directory is kept outside the workspace);
* ``mini``: mini-SWE-agent (the ``swe-baseline`` extra, or a virtualenv of its own named by
  ``$BENCH_SWE_MINI_PYTHON``), driven by :mod:`bench.swe.mini_driver` with its local environment
  and the same litellm model and endpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

AGENTS = ("agentcli", "mini")


@dataclass
class AgentResult:
    """What one agent run cost and how it ended."""

    status: str = ""
    exit_code: int = 0
    calls: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    replans: int = 0
    wall_s: float = 0.0
    #: The agent's own time: its wall time minus the time spent waiting on the model and in tools.
    agent_s: float | None = None
    run_id: str = ""
    #: One line when the agent could not run or its result could not be read.
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tail(text: str, n: int = 400) -> str:
    return " ".join(text.strip().split())[-n:]


def _cached(usage: dict[str, Any]) -> int:
    for key in ("cached_tokens", "cache_read_input_tokens", "cached_input_tokens"):
        if isinstance(usage.get(key), int):
            return int(usage[key])
    return 0


def agentcli_figures(events_path: Path) -> dict[str, Any]:
    """Re-plans, cached tokens and time spent in the model and in tools, from a run's record."""
    from agentcli.record.events import LlmCall, PlanCreated, ToolCalled
    from agentcli.record.reader import RunRecord

    if not events_path.is_file():
        return {"replans": 0, "cached_tokens": 0, "model_s": 0.0, "tool_s": 0.0}
    rec = RunRecord.read(events_path)
    calls = [t.data for t in rec.of(LlmCall)]
    return {"replans": sum(1 for t in rec.of(PlanCreated) if t.data.replan),
            "cached_tokens": sum(_cached(c.usage.model_dump()) for c in calls),
            "model_s": sum(c.latency_ms for c in calls) / 1000,
            "tool_s": sum(float(t.data.result.get("duration_ms") or 0.0) for t in rec.of(ToolCalled)) / 1000}


def run_agentcli(problem: str, workspace: Path, rundir: Path, model: str, api_base: str | None,
                 timeout: float, env: dict[str, str] | None = None) -> AgentResult:
    data = rundir / "agent-data"
    cmd = [sys.executable, "-m", "agentcli", "--workspace", str(workspace), "--data-dir", str(data),
           "--model", model]
    if api_base:
        cmd += ["--api-base", api_base]
    cmd += ["run", "--yes", "--json", problem]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=workspace, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return AgentResult(status="TIMEOUT", exit_code=-1, wall_s=time.monotonic() - t0,
                           error=f"the agent ran longer than {timeout:.0f} s")
    wall = time.monotonic() - t0
    (rundir / "agent.stderr").write_text(proc.stderr)
    (rundir / "agent.stdout").write_text(proc.stdout)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        return AgentResult(status="ERROR", exit_code=proc.returncode, wall_s=wall,
                           error=f"no JSON outcome (exit {proc.returncode}): {_tail(proc.stderr or proc.stdout)}")
    totals = out.get("totals") or {}
    figs = agentcli_figures(data / "runs" / str(out.get("run_id", "")) / "events.jsonl")
    duration = float(out.get("duration_s") or 0.0)
    return AgentResult(status=str(out.get("status", "")), exit_code=proc.returncode,
                       calls=int(totals.get("calls") or 0), input_tokens=int(totals.get("input_tokens") or 0),
                       cached_tokens=figs["cached_tokens"], output_tokens=int(totals.get("output_tokens") or 0),
                       cost_usd=float(totals.get("cost_usd") or 0.0), replans=figs["replans"], wall_s=wall,
                       agent_s=max(0.0, duration - figs["model_s"] - figs["tool_s"]),
                       run_id=str(out.get("run_id", "")),
                       extra={"reason": out.get("reason", ""), "model_s": round(figs["model_s"], 3),
                              "tool_s": round(figs["tool_s"], 3), "unpriced_calls": totals.get("unpriced_calls", 0)})


def run_mini(problem: str, workspace: Path, rundir: Path, model: str, api_base: str | None,
             timeout: float, env: dict[str, str] | None = None) -> AgentResult:
    out_file = rundir / "mini.json"
    # mini-SWE-agent may live in a virtualenv of its own (its dependencies are heavy): $BENCH_SWE_MINI_PYTHON.
    python = os.environ.get("BENCH_SWE_MINI_PYTHON") or sys.executable
    cmd = [python, "-m", "bench.swe.mini_driver", "--model", model, "--workspace", str(workspace),
           "--out", str(out_file), "--timeout", str(timeout)]
    if api_base:
        cmd += ["--api-base", api_base]
    t0 = time.monotonic()
    root = str(Path(__file__).resolve().parents[2])
    penv = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    try:
        proc = subprocess.run(cmd, cwd=workspace, input=problem, capture_output=True, text=True,
                              timeout=timeout + 60, env=penv)
    except subprocess.TimeoutExpired:
        return AgentResult(status="TIMEOUT", exit_code=-1, wall_s=time.monotonic() - t0,
                           error=f"the agent ran longer than {timeout:.0f} s")
    wall = time.monotonic() - t0
    (rundir / "agent.stderr").write_text(proc.stderr)
    (rundir / "agent.stdout").write_text(proc.stdout)
    try:
        out = json.loads(out_file.read_text())
    except (OSError, ValueError):
        return AgentResult(status="ERROR", exit_code=proc.returncode, wall_s=wall,
                           error=f"mini-SWE-agent wrote no result (exit {proc.returncode}): {_tail(proc.stderr)}")
    return AgentResult(status=str(out.get("status", "")), exit_code=proc.returncode, calls=int(out.get("calls", 0)),
                       input_tokens=int(out.get("input_tokens", 0)), cached_tokens=int(out.get("cached_tokens", 0)),
                       output_tokens=int(out.get("output_tokens", 0)), cost_usd=float(out.get("cost_usd", 0.0)),
                       wall_s=wall, agent_s=out.get("agent_s"), error=str(out.get("error", "")),
                       extra={"model_s": out.get("model_s")})


RUNNERS = {"agentcli": run_agentcli, "mini": run_mini}
