"""The hook for the memory benchmark, written separately in ``bench/memory_bench.py``.

Contract (what this hook calls): ``memory_bench.main``, either ``main(smoke: bool)``,
``main(argv: list[str])`` or ``main()`` parsing ``sys.argv`` (``--smoke`` for tiny sizes). It may
print its own Markdown table (captured, printed, and put in RESULTS.md whole) and may return
rows, each a dict ``{"measure": str, "values": [float, ...], "unit": str}`` with optional
``"target"`` (text) and ``"met"`` (bool), or ``{"measure": str, "text": str}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import io
import sys
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.report import Row, SectionResult
from bench.stats import Summary

SECTION = "memory"
MODULE = "bench.memory_bench"


def _rows(out: Any) -> list[Row]:
    rows: list[Row] = []
    if not isinstance(out, list):
        return rows
    for item in out:
        if not isinstance(item, dict) or "measure" not in item:
            continue
        values = item.get("values")
        if values:
            rows.append(Row(SECTION, str(item["measure"]), Summary.of(list(values), str(item.get("unit", ""))),
                            target=str(item.get("target", "")), met=item.get("met")))
        else:
            rows.append(Row(SECTION, str(item["measure"]), text=str(item.get("text", ""))))
    return rows


def run(ctx: Context) -> SectionResult:
    res = SectionResult(SECTION)
    try:
        mod = importlib.import_module(MODULE)
    except ModuleNotFoundError as e:
        if e.name != MODULE:
            raise
        res.rows.append(Row(SECTION, "memory benchmark", text="not run: bench/memory_bench.py does not exist yet"))
        res.notes.append("Hook ready: add bench/memory_bench.py with main(smoke: bool) (see bench/memory.py).")
        return res
    main = getattr(mod, "main", None)
    if main is None:
        res.rows.append(Row(SECTION, "memory benchmark", text="not run: bench/memory_bench.py has no main()"))
        return res
    params = inspect.signature(main).parameters
    printed = io.StringIO()
    argv = ["--smoke"] if ctx.smoke else []
    saved = sys.argv
    try:
        with contextlib.redirect_stdout(printed):
            if "smoke" in params:
                out = main(smoke=ctx.smoke)
            elif params:
                out = main(argv)
            else:  # main() parses sys.argv itself
                sys.argv = [str(Path(mod.__file__ or "memory_bench.py")), *argv]
                out = main()
            if inspect.isawaitable(out):
                out = asyncio.run(out)
    except SystemExit as e:
        if e.code not in (0, None):
            raise RuntimeError(f"memory_bench exited {e.code}") from None
        out = None
    finally:
        sys.argv = saved
    rows = _rows(out)
    text = printed.getvalue()
    if text.strip():
        res.extra_markdown = text  # printed after the main table, and put in RESULTS.md whole
    res.rows += rows or [Row(SECTION, "memory benchmark (bench/memory_bench.py)",
                             text="ran: its table is printed in full" + (" (smoke sizes)" if ctx.smoke else ""))]
    return res
