"""Ingest benchmark: `agent memory add .` on a real repository, first add and re-adds.

    .venv/bin/python bench/ingest_bench.py            # the sphinx 9.0.4 sdist (~1 minute on 2 cores)
    .venv/bin/python bench/ingest_bench.py --smoke    # a 40-file slice of it, a functional check
    .venv/bin/python bench/ingest_bench.py --write    # also replace its section of bench/RESULTS.md

The corpus is the sdist of sphinx 9.0.4 from PyPI (``pip download --no-binary :all:``, cached
under the bench cache dir; 2,023 files, docs, code and test roots). Each step is a fresh
``agent memory add . --json`` process in a copy of it, as a user runs it (so the CLI's start-up and
lancedb's import are in the figures), with the default config (chunks by ``builtin-static``; its
table is built once per machine before timing):

1. first add, nothing stored;
2. re-add, nothing changed (the ingest manifest vouches for every file: the store is not opened);
3. re-add without the manifest (``memory.ingest_manifest = false``: every file read and hashed and
   checked against the store, as before the manifest);
4. re-add after every file's mtime changed (the manifest cannot vouch: each file is read again,
   found unchanged, nothing written);
5. re-add after 20 files were edited (re-chunked, new chunks embedded, one commit per group).

Then one first add in-process under cProfile, for where the time goes (cumulative seconds of the
phases; the profiler inflates Python-heavy parts).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402

HEADING = "## memory: ingest of a real repository (bench/ingest_bench.py)"
SDIST = "sphinx==9.0.4"

#: (label, profile entry substring): the phases reported from the profile.
PHASES = (
    ("walk, ignore rules, binary sniff (resolve_sources)", "chunking.py", "resolve_sources"),
    ("read, hash, chunk, count tokens (plan_files)", "ingest.py", "plan_files"),
    ("static embedding: WordPiece tokenizing", "~", "of 'tokenizers.Tokenizer' objects>"),
    ("static embedding: all (tokenize + sum rows)", "static.py", "embed"),
    ("lancedb import", "store.py", "_lancedb"),
    ("LanceDB merge_insert commits", "store.py", "upsert"),
    ("stored vectors looked up", "ingest.py", "stored_vectors"),
    ("compaction + index upkeep", "api.py", "_after_write"),
)


def cache_root() -> Path:
    return Path(os.environ.get("AGENTCLI_BENCH_CACHE", Path(tempfile.gettempdir()) / "agentcli-bench-cache"))


def corpus() -> Path:
    root = cache_root() / "sphinx-sdist"
    done = root / "unpacked"
    if not done.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                        "-d", str(root), SDIST], check=True)
        with tarfile.open(next(root.glob("sphinx-*.tar.gz"))) as tar:
            tar.extractall(done, filter="data")
    return next(done.iterdir())


def add(ws: Path, **env: str) -> tuple[float, dict[str, Any]]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "agentcli", "memory", "add", ".", "--json"], cwd=ws, env=full,
                          capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"agent memory add failed: {proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout)


def profile_first_add(src: Path, tmp: Path) -> dict[str, float]:
    from agentcli.config import MemoryConfig
    from agentcli.memory import Memory

    ws = tmp / "profiled"
    shutil.copytree(src, ws)
    mem = Memory(uri=str(ws / ".agent" / "memory"), config=MemoryConfig(), workspace=ws, data_dir=ws / ".agent")
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.runcall(mem.add_paths, ["."])
    total = time.perf_counter() - t0
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    out = {"total (profiled)": total}
    for label, file_part, func in PHASES:
        # Built-ins have no file ("~"): matched by the end of their name (encode_batch[_fast]).
        out[label] = sum(v[3] for (f, _line, name), v in stats.items()
                         if file_part in f and (name == func or (f == "~" and name.startswith("<method 'encode")
                                                                  and name.endswith(func))))
    return out


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a 40-file slice, a functional check")
    ap.add_argument("--write", action="store_true", help="replace this section of bench/RESULTS.md")
    args = ap.parse_args(argv)
    src = corpus()
    from agentcli.memory.embeddings import get_embedder

    get_embedder("builtin-static").embed(["warm"])  # the one-time table build is not an ingest cost
    load0 = os.getloadavg()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as d:
        tmp = Path(d)
        if args.smoke:
            slice_ = tmp / "src"
            for p in sorted(src.joinpath("sphinx").rglob("*.py"))[:40]:
                dest = slice_ / p.relative_to(src)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, dest)
            src = slice_
        ws = tmp / "ws"
        shutil.copytree(src, ws)  # copy2: the sdist's mtimes, files not modified seconds ago
        files = sum(1 for p in ws.rglob("*") if p.is_file())
        wall, first = add(ws)
        n_src = len(first["sources"])
        rows.append(("first `agent memory add .`", f"{files} files, {n_src} ingested, {len(first['skipped'])} "
                     f"skipped; {first['inserted']} chunks in {wall:.1f} s wall "
                     f"({first['inserted'] / wall:.0f} chunks/s end to end)"))
        wall, again = add(ws)
        rows.append(("re-add, nothing changed (manifest)", f"{wall:.2f} s wall; {again['unchanged']} unchanged, "
                     f"{again['inserted']} written"))
        wall, off = add(ws, AGENT_MEMORY__INGEST_MANIFEST="false")
        rows.append(("re-add, nothing changed, no manifest", f"{wall:.2f} s wall; {off['unchanged']} unchanged, "
                     f"{off['inserted']} written"))
        now = time.time() - 30
        for p in ws.rglob("*"):
            if p.is_file() and ".agent" not in p.parts:
                os.utime(p, (now, now))
        wall, touched = add(ws)
        rows.append(("re-add after every file's mtime changed", f"{wall:.2f} s wall; {touched['unchanged']} "
                     f"unchanged, {touched['inserted']} written"))
        edited = [p for p in sorted(ws.rglob("*.py")) if ".agent" not in p.parts][:20]
        for p in edited:
            p.write_text(p.read_text(encoding="utf-8") + "\n\ndef bench_marker():\n    return 'edited'\n",
                         encoding="utf-8")
        wall, changed = add(ws)
        rows.append((f"re-add after {len(edited)} files were edited", f"{wall:.2f} s wall; {len(changed['sources'])} "
                     f"sources written, {changed['embedded']} chunks embedded"))
        prof = profile_first_add(src, tmp)
    load1 = os.getloadavg()
    rows.append(("machine", f"{os.cpu_count()} cores, load average {load0[0]:.1f} before, {load1[0]:.1f} after"))
    lines = [HEADING, "",
             f"Command: `PYTHONPATH=. .venv/bin/python bench/ingest_bench.py{' --smoke' if args.smoke else ''}`, "
             f"{time.strftime('%Y-%m-%d', time.gmtime())}; corpus: the {SDIST} sdist from PyPI; each step a fresh "
             "`agent memory add . --json` process (start-up and lancedb import included).", "",
             "| step | result |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    lines += ["", "Where a first add's time goes (in-process, under cProfile; cumulative seconds, phases overlap):",
              "", "| phase | s |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in prof.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(text, ROOT / "bench" / "RESULTS.md")
    return text


if __name__ == "__main__":
    main()
