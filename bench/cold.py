"""Cold start: wall time of CLI commands in fresh processes, against Python itself and litellm."""

from __future__ import annotations

import subprocess
import time

from bench.context import Context
from bench.report import Row, SectionResult
from bench.stats import Summary

SECTION = "cold start"
TARGET_S = 0.3


def _wall(cmd: list[str], ctx: Context) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ctx.tmp, env=ctx.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=120)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-300:]}")
    return seconds


def run(ctx: Context) -> SectionResult:
    res = SectionResult(SECTION)
    reps = 2 if ctx.smoke else 9
    py, agent = str(ctx.python), str(ctx.agent)
    cases: list[tuple[str, list[str], int]] = [
        ("python -c pass", [py, "-c", "pass"], reps),
        ("python -c 'import litellm'", [py, "-c", "import litellm"], 1 if ctx.smoke else 7),
        ("agent --help", [agent, "--help"], reps),
        ("agent plan --help", [agent, "plan", "--help"], reps),
    ]
    for _label, cmd, n in cases:  # warm the page cache: these are warm-start figures
        if n > 1:
            _wall(cmd, ctx)
    samples: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    for i in range(max(n for _, _, n in cases)):
        for label, cmd, n in cases:  # interleaved, so that drift hits every command alike
            if i < n:
                samples[label].append(_wall(cmd, ctx))
    base = Summary.of(samples["python -c pass"], "s")
    for label, _, _ in cases:
        s = Summary.of(samples[label], "s")
        is_help = label == "agent --help"
        res.rows.append(Row(SECTION, label, s, target=f"≤ {TARGET_S:g} s" if is_help else "",
                            met=(s.median <= TARGET_S) if is_help else None))
    help_s = Summary.of(samples["agent --help"], "s")
    res.rows.append(Row(SECTION, "agent --help minus python -c pass",
                        Summary.of([h - base.median for h in help_s.values], "s")))
    lite = Summary.of(samples["python -c 'import litellm'"], "s")
    res.rows.append(Row(SECTION, "ratio import litellm / agent --help (medians)",
                        Summary.of([lite.median / help_s.median], "x")))
    res.notes += [
        f"Wall time of a subprocess from spawn to exit (venv python {py}, {agent}), stdout discarded, run from "
        "an empty temp dir; one untimed warm-up each (page cache warm), then the commands interleaved.",
        "`import litellm` runs with LITELLM_LOCAL_MODEL_COST_MAP=True (as agentcli sets it), so no price-map "
        "fetch is included. agentcli imports litellm lazily, on the first real model call only.",
    ]
    return res
