"""Run overhead: the fixed cost of a trivial run, `agent run --plan FILE --yes` with one read step.

Everything a run pays whatever it does: start-up, imports, config, the tool registry, the run's
records, memory (the episode), exit. Measured in fresh processes (as a user runs it), this tree
and, with ``--baseline DIR``, another agentcli package side by side, interleaved.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import time
from pathlib import Path

from bench.context import Context
from bench.report import Row, SectionResult
from bench.stats import Summary

SECTION = "run overhead"
TARGET_S = 1.0
#: CPU per step of a long run in a whole process (the CLI, its rendering and records included).
TARGET_STEP_MS = 0.5
LONG_STEPS = 1000

_PROBE = (
    "import sys, runpy\n"
    "sys.argv = ['agent', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('agentcli', run_name='__main__')\nexcept SystemExit as e:\n    code = e.code or 0\n"
    "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'litellm', 'lancedb', 'llama_cpp', 'onnxruntime'})\n"
    "print('HEAVY ' + ','.join(heavy), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _plan(n: int) -> dict[str, object]:
    steps = [{"id": f"s{i}", "title": "read a.txt", "kind": "tool", "tool": "read_file", "args": {"path": "a.txt"},
              "risk": "read"} for i in range(1, n + 1)]
    return {"schema_version": "1", "id": f"overhead-{n}", "task": "read a.txt", "created_at": "2026-12-01T00:00:00Z",
            "model": "local/smollm2", "steps": steps}


def _workspace(root: Path) -> Path:
    ws = root / "overhead-ws"
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "a.txt").write_text("hello\n")
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    (ws / "plan.json").write_text(json.dumps(_plan(1)))
    (ws / f"plan{LONG_STEPS}.json").write_text(json.dumps(_plan(LONG_STEPS)))
    (ws / "review.json").write_text(json.dumps([{"outcome": "complete", "answer": "hello", "reason": ""}]))
    return ws


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _cpu_of(ctx: Context, ws: Path, first: Path | None, plan: str) -> float:
    """CPU seconds (user + system) of one whole `agent run --plan PLAN --yes` process. The review
    is the scripted model's (the embedded model's would cost more for a longer digest, which is not
    the steps' cost)."""
    c0 = _children_cpu()
    _once(ctx, ws, first, plan, AGENT_MODEL="test/script", AGENT_TEST_SCRIPT=str(ws / "review.json"),
          AGENT_BUDGET__MAX_STEPS=str(LONG_STEPS), AGENT_BUDGET__MAX_TOKENS="100000000")
    return _children_cpu() - c0


def _once(ctx: Context, ws: Path, first: Path | None, plan: str = "plan.json", **env_extra: str
          ) -> tuple[float, str]:
    env = ctx.env(AGENT_WORKSPACE=str(ws), **env_extra)
    if first is not None:
        env["PYTHONPATH"] = f"{first}:{env['PYTHONPATH']}"
    t0 = time.perf_counter()
    proc = subprocess.run([str(ctx.python), "-c", _PROBE, "run", "--plan", plan, "--yes"], cwd=ws, env=env,
                          capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"agent run exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    heavy = next((ln[6:] for ln in proc.stderr.splitlines() if ln.startswith("HEAVY ")), "")
    return seconds, heavy or "none"


def run(ctx: Context) -> SectionResult:
    res = SectionResult(SECTION)
    ws = _workspace(ctx.tmp)
    reps = 1 if ctx.smoke else 7
    kinds: list[tuple[str, Path | None]] = [("agentcli", None)]
    if ctx.baseline is not None:
        kinds.append(("agentcli (baseline)", ctx.baseline))
    for _label, first in kinds:  # warm-up: page cache, the memory store's first creation
        _once(ctx, ws, first)
    samples: dict[str, list[float]] = {label: [] for label, _ in kinds}
    heavy: dict[str, str] = {}
    for _ in range(reps):
        for label, first in kinds:  # interleaved: drift hits both alike
            s, h = _once(ctx, ws, first)
            samples[label].append(s)
            heavy[label] = h
    for label, _ in kinds:
        s = Summary.of(samples[label], "s")
        mine = label == "agentcli"
        res.rows.append(Row(SECTION, f"{label}: agent run --plan (1 read step) --yes, wall", s,
                            target=f"≤ {TARGET_S:g} s" if mine else "", met=(s.median <= TARGET_S) if mine else None))
        res.rows.append(Row(SECTION, f"{label}: heavy modules imported", text=heavy[label]))
    if ctx.baseline is not None:
        a = Summary.of(samples["agentcli"], "s").median
        b = Summary.of(samples["agentcli (baseline)"], "s").median
        res.rows.append(Row(SECTION, "ratio baseline / agentcli (medians)", Summary.of([b / a], "x")))
    _long_run(ctx, ws, kinds, res)
    res.notes += [
        "A fresh `python -m agentcli run --plan plan.json --yes` per sample (one read_file step, default config: "
        "memory on, the embedded model as the default), in a git workspace; one untimed warm-up per variant, "
        "then the variants interleaved. 'heavy modules' = which of litellm, lancedb, llama_cpp, onnxruntime the "
        "process had imported when it exited.",
        f"CPU per step of a long run: a whole `agent run --plan` of {LONG_STEPS} read_file steps and one of 1 step "
        f"in fresh processes (children's user + system CPU time), (CPU({LONG_STEPS}) - CPU(1)) / {LONG_STEPS - 1}: "
        "what a step costs everything in the process (CLI progress lines, the executor, records), the fixed "
        "costs cancelled. Progress lines go to a pipe here, as in CI.",
        "Peers: Codex CLI, Claude Code and Aider are not installed here (no network to fetch them), so there is "
        "no like-for-like figure; the libraries' cold imports are in the cold start section and research notes.",
    ]
    return res


def _long_run(ctx: Context, ws: Path, kinds: list[tuple[str, Path | None]], res: SectionResult) -> None:
    reps = 1 if ctx.smoke else 3
    plan = f"plan{LONG_STEPS}.json"
    per_step: dict[str, list[float]] = {label: [] for label, _ in kinds}
    for _ in range(reps):
        for label, first in kinds:  # interleaved, as above
            big = _cpu_of(ctx, ws, first, plan)
            small = _cpu_of(ctx, ws, first, "plan.json")
            per_step[label].append((big - small) / (LONG_STEPS - 1) * 1e3)
    for label, _ in kinds:
        s = Summary.of(per_step[label], "ms")
        mine = label == "agentcli"
        res.rows.append(Row(SECTION, f"{label}: CPU per step of a {LONG_STEPS:,}-step run, whole process", s,
                            target=f"≤ {TARGET_STEP_MS:g} ms" if mine else "",
                            met=(s.median <= TARGET_STEP_MS) if mine else None))
    if ctx.baseline is not None:
        a = statistics.median(per_step["agentcli"])
        b = statistics.median(per_step["agentcli (baseline)"])
        res.rows.append(Row(SECTION, f"ratio baseline / agentcli, CPU per step of the {LONG_STEPS:,}-step run",
                            Summary.of([b / a], "x")))
