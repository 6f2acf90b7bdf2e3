"""The benchmarks still run: `python -m bench --smoke` at tiny sizes, no timing asserted.

Peers (LangGraph, PydanticAI, smolagents) come from the optional `bench` extra; when they are
not installed the bench lists them as skipped, which this test accepts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = "cold,overhead,executor,parallel,calls,logging,replay,edits,checkpoints,map,steering,investigate"


@pytest.mark.slow
def test_bench_smoke_runs_and_prints_the_table() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--no-write", "--only", SECTIONS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    assert "| section | measure | median | min-max | IQR | n | target |" in out
    for section in ("| cold start |", "| run overhead |", "| executor |", "| parallel |", "| calls |", "| logging |",
                    "| replay |", "| edits |", "| checkpoints |",
                    "| repository map |", "| steering |",
                    "| investigate |"):
        assert section in out, f"no rows for {section} in:\n{out}"
    assert "| agent --help |" in out
    assert "agentcli (plan executor, durable event log): marginal per step" in out
    assert "error:" not in out, out  # a section that crashed
