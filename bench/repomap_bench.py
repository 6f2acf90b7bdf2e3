"""Repository map benchmark: what the hosted planner's map costs to build and how big it is.

    .venv/bin/python bench/repomap_bench.py            # this repository and generated ones
    .venv/bin/python bench/repomap_bench.py --smoke    # tiny sizes, a functional check
    .venv/bin/python bench/repomap_bench.py --write    # also replace its section of bench/RESULTS.md

Measured in one process: on this repository, and on generated Python packages of 1,000 and
5,000 modules (20 functions each), the map at the default budget (``planner.context_tokens`` =
2000): the first build (every file parsed), a second one (outlines cached by size and mtime, as
for a re-plan), its size in tokens against the budget, and, for comparison, the workspace summary
the planner had before the map (top-level names, a file count, heads of key files).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentcli.models import tokens  # noqa: E402
from agentcli.planning import repomap  # noqa: E402
from agentcli.planning.prompt import workspace_summary  # noqa: E402
from bench.report import write_section  # noqa: E402

HEADING = "## Repository map (bench/repomap_bench.py)"
BUDGET = 2000
MODEL = "openai/gpt-4o-mini"


def _generate(root: Path, modules: int) -> Path:
    ws = root / f"gen{modules}"
    for i in range(modules):
        pkg = ws / "pkg" / f"sub{i // 100:03}"
        pkg.mkdir(parents=True, exist_ok=True)
        body = "".join(f"def function_{i}_{j}(value: int, *, scale: float = 1.0) -> float:\n"
                       f"    return value * scale\n\n\n" for j in range(20))
        (pkg / f"mod{i:05}.py").write_text(f"from pkg.sub000 import mod00000\n\n\n{body}")
    return ws


def _measure(ws: Path, task: str) -> dict[str, str]:
    repomap._CACHE.clear()
    t0 = time.perf_counter()
    text = repomap.repo_map(ws, ws / ".agent", task, max_tokens=BUDGET, model=MODEL)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(3):
        t0 = time.perf_counter()
        repomap.repo_map(ws, ws / ".agent", task, max_tokens=BUDGET, model=MODEL)
        warm.append(time.perf_counter() - t0)
    outlined = text.count("\n", text.find("most relevant first:")) if "most relevant first:" in text else 0
    return {
        "cold": f"{cold * 1000:.0f} ms", "warm": f"{statistics.median(warm) * 1000:.0f} ms",
        "tokens": f"{tokens.count_text(text, MODEL)} of {BUDGET}",
        "outline lines": str(outlined),
        "summary before": f"{tokens.count_text(workspace_summary(ws, ws / '.agent'), MODEL)} tokens",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--write", action="store_true", help="replace this section of bench/RESULTS.md")
    args = p.parse_args(argv)
    tokens.count_text("warm up the tokenizer", MODEL)
    tmp = Path(tempfile.mkdtemp(prefix="agentcli-repomap-bench-"))
    rows: list[tuple[str, dict[str, str]]] = []
    try:
        if not args.smoke:
            rows.append(("this repository", _measure(ROOT, "add a verify step to agentcli/engine/runner.py")))
        for n in ([50] if args.smoke else [1_000, 5_000]):
            ws = _generate(tmp, n)
            rows.append((f"{n:,} generated modules", _measure(ws, f"rename function_7_3 in pkg/sub000/mod{7:05}.py")))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cols = ["cold", "warm", "tokens", "outline lines", "summary before"]
    lines = [HEADING, "", "| workspace | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(r[c] for c in cols) + " |" for name, r in rows]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines += ["", f"Budget {BUDGET} tokens ({MODEL}'s tokenizer). cold: every file parsed; warm: outlines cached "
              f"(a re-plan). The map walks at most {repomap.MAX_FILES:,} files. Machine: {os.cpu_count()} cores, "
              f"load average {load}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(text, ROOT / "bench" / "RESULTS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
