"""Run overhead: the fixed cost of a trivial run, `agent run --plan FILE --yes` with one read step.

Everything a run pays whatever it does: start-up, imports, config, the tool registry, the run's
records, memory (the episode), exit. Measured in fresh processes (as a user runs it), this tree
and, with ``--baseline DIR``, another agentcli package side by side, interleaved.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from bench.context import Context
from bench.report import Row, SectionResult
from bench.stats import Summary

SECTION = "run overhead"
TARGET_S = 1.0

_PROBE = (
    "import sys, runpy\n"
    "sys.argv = ['agent', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('agentcli', run_name='__main__')\nexcept SystemExit as e:\n    code = e.code or 0\n"
    "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'litellm', 'lancedb', 'llama_cpp', 'onnxruntime'})\n"
    "print('HEAVY ' + ','.join(heavy), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _workspace(root: Path) -> Path:
    ws = root / "overhead-ws"
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "a.txt").write_text("hello\n")
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    step = {"id": "s1", "title": "read a.txt", "kind": "tool", "tool": "read_file", "args": {"path": "a.txt"},
            "risk": "read"}
    plan = {"schema_version": "1", "id": "overhead", "task": "read a.txt", "created_at": "2026-12-01T00:00:00Z",
            "model": "local/smollm2", "steps": [step]}
    (ws / "plan.json").write_text(json.dumps(plan))
    return ws


def _once(ctx: Context, ws: Path, first: Path | None) -> tuple[float, str]:
    env = ctx.env(AGENT_WORKSPACE=str(ws))
    if first is not None:
        env["PYTHONPATH"] = f"{first}:{env['PYTHONPATH']}"
    t0 = time.perf_counter()
    proc = subprocess.run([str(ctx.python), "-c", _PROBE, "run", "--plan", "plan.json", "--yes"], cwd=ws, env=env,
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
    res.notes += [
        "A fresh `python -m agentcli run --plan plan.json --yes` per sample (one read_file step, default config: "
        "memory on, the embedded model as the default), in a git workspace; one untimed warm-up per variant, "
        "then the variants interleaved. 'heavy modules' = which of litellm, lancedb, llama_cpp, onnxruntime the "
        "process had imported when it exited.",
        "Peers: Codex CLI, Claude Code and Aider are not installed here (no network to fetch them), so there is "
        "no like-for-like figure; the libraries' cold imports are in the cold start section and research notes.",
    ]
    return res
