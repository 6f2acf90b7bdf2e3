"""Command line of the benchmarks: run the sections, print the table, write bench/RESULTS.md."""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench.context import ROOT, Context
from bench.report import (
    Row,
    SectionResult,
    machine_info,
    markdown_table,
    merge_foreign_sections,
    render,
    render_section,
    versions,
    write_section,
)

RESULTS = ROOT / "bench" / "RESULTS.md"
SECTIONS = ("cold", "overhead", "executor", "parallel", "calls", "cache", "hosted", "logging", "replay", "memory",
            "local", "edits", "checkpoints", "map", "interrupt", "stream")  # the order they run in


#: Section -> the bench module whose ``run(ctx)`` measures it.
_MODULES = {"cold": "cold", "overhead": "overhead", "executor": "executor", "parallel": "parallel", "calls": "calls",
            "cache": "cache", "hosted": "hosted", "logging": "logcost", "replay": "replay", "memory": "memory",
            "local": "local", "edits": "edits_bench", "checkpoints": "checkpoints_bench", "map": "repomap_bench",
            "interrupt": "interrupt", "stream": "stream"}


def _section(name: str) -> Callable[[Context], SectionResult]:
    # Imported on demand: a section's imports (agentcli, peers) do not slow the others' start.
    run: Callable[[Context], SectionResult] = importlib.import_module(f"bench.{_MODULES[name]}").run
    return run


def calibration_ms() -> float:
    """Best of 5 of a fixed pure-Python loop: how fast this interpreter runs here and now (a busy
    machine shows up as a larger figure at the start or the end of a run)."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += i * i % 7
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description="agentcli benchmarks")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds: checks that everything runs")
    p.add_argument("--no-write", action="store_true", help="do not write bench/RESULTS.md")
    p.add_argument("--only", default="", help=f"comma-separated sections: {','.join(SECTIONS)}")
    p.add_argument("--output", type=Path, default=RESULTS, help="where to write the results (Markdown)")
    p.add_argument("--baseline", type=Path, default=None,
                   help="a folder holding another agentcli package (a copy from before a change): the executor "
                        "and run-overhead benches run it too, side by side, as 'agentcli (baseline)'")
    args = p.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or list(SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s): {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    args.sections = chosen
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    load_start = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    calib_start = calibration_ms()
    tmp = Path(tempfile.mkdtemp(prefix="agentcli-bench-"))
    baseline = args.baseline.resolve() if args.baseline else None
    if baseline is not None and not (baseline / "agentcli" / "__init__.py").is_file():
        print(f"--baseline {baseline}: no agentcli package there", file=sys.stderr)
        return 2
    ctx = Context(smoke=args.smoke, tmp=tmp, baseline=baseline)
    results: list[SectionResult] = []
    failed = False
    try:
        for name in args.sections:
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            try:
                res = _section(name)(ctx)
            except Exception as e:  # one broken section must not hide the others' figures
                failed = True
                traceback.print_exc()
                res = SectionResult(name, rows=[Row(name, "section", text=f"error: {type(e).__name__}: {e}"[:200])])
            res.seconds = time.perf_counter() - t0
            print(f"[bench] {name} done in {res.seconds:.1f} s", file=sys.stderr, flush=True)
            results.append(res)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    command = "python -m bench" + (" --smoke" if args.smoke else "") + \
        (f" --only {','.join(args.sections)}" if args.only else "") + \
        (f" --baseline {baseline}" if baseline else "")
    print(markdown_table([r for res in results for r in res.rows]))
    for res in results:
        for note in res.notes:
            print(f"- [{res.name}] {note}")
    for res in results:
        if res.extra_markdown:
            print(f"\n## {res.name} (its own table)\n\n{res.extra_markdown.strip()}")
    if not args.no_write:
        machine = machine_info(ROOT, Path(tempfile.gettempdir()))
        machine["load average (1, 5, 15 min) at the start"] = load_start
        machine["CPU calibration (fixed Python loop, best of 5), start / end"] = \
            f"{calib_start:.1f} ms / {calibration_ms():.1f} ms"
        if args.only:
            # A partial run must not throw away the full run's table: each section it ran replaces
            # only its own part of RESULTS.md.
            for key, res in zip(args.sections, results, strict=True):
                write_section(render_section(res, key, machine, smoke=args.smoke, command=command), args.output)
        else:
            text = render(results, machine, versions(), smoke=args.smoke, command=command)
            old = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
            args.output.write_text(merge_foreign_sections(text, old), encoding="utf-8")
        print(f"\nwrote {args.output}", file=sys.stderr)
    return 1 if failed else 0
