"""Memory benchmark: embedder quality and speed, ingest rate, recall latency and ANN recall.

    .venv/bin/python bench/memory_bench.py            # full size (~10 minutes on 2 cores)
    .venv/bin/python bench/memory_bench.py --smoke    # tiny sizes, a functional check (~1 minute)

Prints one results table (markdown) on stdout; progress goes to stderr. Not part of the
test suite: numbers depend on the machine.

What is measured
* embedder: mean cosine of related (query, passage) pairs vs unrelated ones (every other
  pair's passage), top-1 accuracy (the own passage ranks first), texts/s for short
  sentences and for full 160-token chunks;
* ingest: ``Memory.add_paths`` over real source files (copied from installed packages):
  chunking + embedding + writing, chunks/s;
* recall latency p50/p95 and recall@10 vs exact at 10k and 100k semantic chunks:
  bench/memory_recall.py's measurement (``scale``), run here with the same sizes.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("LANCEDB_LOG", "error")

import numpy as np

from agentcli.config import MemoryConfig
from agentcli.memory import Memory, flush
from agentcli.memory import store as store_mod
from agentcli.memory.chunking import chunk_text
from agentcli.memory.embeddings import get_embedder

PAIRS: list[tuple[str, str]] = [
    ("How do I read a file in Python?", "Open the file with open(path) and call .read() to get its contents."),
    ("fix the failing unit test in the parser", "The parser tests fail because the tokenizer drops the last token."),
    ("database connection pool settings", "Configure the maximum number of SQL connections kept in the pool."),
    ("how to roll back a bad deployment", "To revert a release, redeploy the previous image tag."),
    ("where are the logs written?", "Log records go to stdout as JSON lines and are collected by the platform."),
    ("run the test suite", "Execute pytest from the repository root to run all tests."),
    ("set an environment variable for the API key", "Export OPENAI_API_KEY in your shell before starting."),
    ("parse command line arguments", "argparse.ArgumentParser defines the flags and parses sys.argv."),
    ("retry a request with exponential backoff", "On a 429 or 5xx response wait, doubling the delay each attempt."),
    ("how is the cache invalidated?", "Entries expire after the TTL, and a write to the key evicts them."),
    ("convert a string to a datetime", "datetime.strptime(text, format) returns a datetime object."),
    ("sort a list of dicts by a key", "sorted(items, key=lambda d: d['name']) orders the dictionaries."),
    ("what does the build script do?", "make build compiles the sources and packages the wheel into dist/."),
    ("handle a keyboard interrupt", "Catch KeyboardInterrupt around the main loop and exit with code 130."),
    ("where is the user config file?", "Settings are read from ~/.config/agentcli/config.toml."),
    ("limit memory usage of the process", "Set a resource limit on RSS so the process is killed past it."),
    ("authenticate with a token", "Send the bearer token in the Authorization header of each request."),
    ("rename a git branch", "git branch -m old new renames the branch locally."),
    ("measure how long a function takes", "Use time.perf_counter() before and after the call."),
    ("serialise an object to JSON", "json.dumps(obj) returns the JSON text of the object."),
    ("why is the build slow?", "Compilation takes long because every file is rebuilt without caching."),
    ("add a column to the table", "ALTER TABLE users ADD COLUMN email TEXT adds the field."),
    ("download a file over HTTP", "requests.get(url).content fetches the bytes of the file."),
    ("compress a directory", "tar czf archive.tar.gz dir/ creates a gzip-compressed archive."),
]

PACKAGES_FOR_TEXT = ("rich", "click", "typer", "pydantic", "httpx", "jsonschema", "pathspec", "structlog")


@dataclass
class Sizes:
    real: int
    queries: int
    small_rows: int
    large_rows: int
    ingest_files: int
    chunk_speed_texts: int
    latency_queries: int


FULL = Sizes(real=10_000, queries=200, small_rows=10_000, large_rows=100_000, ingest_files=16,
             chunk_speed_texts=128, latency_queries=200)
SMOKE = Sizes(real=400, queries=20, small_rows=300, large_rows=2_000, ingest_files=4,
              chunk_speed_texts=16, latency_queries=20)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def site_packages() -> Path:
    import rich

    return Path(rich.__file__).resolve().parent.parent


def source_files(limit: int) -> list[Path]:
    root = site_packages()
    out: list[Path] = []
    for pkg in PACKAGES_FOR_TEXT:
        d = root / pkg
        if d.is_dir():
            out += sorted(p for p in d.rglob("*.py") if 2_000 < p.stat().st_size < 60_000)
    random.Random(7).shuffle(out)
    return out[:limit]


def snippets(n: int) -> list[str]:
    """Short real texts (<= 40 tokens) from installed packages' sources and docs."""
    out: list[str] = []
    seen: set[str] = set()
    for path in source_files(10_000):
        for c in chunk_text(path.read_text(encoding="utf-8", errors="replace"), max_tokens=40, overlap_tokens=0):
            t = c.text.strip()
            if len(t) > 40 and t not in seen:
                seen.add(t)
                out.append(t)
        if len(out) >= n:
            break
    random.Random(11).shuffle(out)
    return out[:n]


def bench_embedder(model: str, sizes: Sizes, rows: list[tuple[str, str]]) -> None:
    emb = get_embedder(model)
    _, load_s = timed(lambda: emb.embed(["warm up"]))
    q = emb.embed([a for a, _ in PAIRS])
    p = emb.embed([b for _, b in PAIRS])
    sim = q @ p.T
    related = float(np.mean(np.diag(sim)))
    mask = ~np.eye(len(PAIRS), dtype=bool)
    unrelated = float(np.mean(sim[mask]))
    top1 = float(np.mean(np.argmax(sim, axis=1) == np.arange(len(PAIRS))))
    short = [f"{a} ({i})" for i in range(8) for a, _ in PAIRS][:256 if sizes is FULL else 32]
    _, s_short = timed(lambda: emb.embed(short))
    text = (site_packages() / "rich" / "console.py").read_text()
    chunks = [c.text for c in chunk_text(text)][:sizes.chunk_speed_texts]
    _, s_chunks = timed(lambda: emb.embed(chunks))
    rows += [
        ("embedder", emb.name),
        ("embedder load + first call", f"{load_s:.2f} s"),
        ("related / unrelated mean cosine", f"{related:.3f} / {unrelated:.3f} (separation {related - unrelated:.3f})"),
        ("related / unrelated as scores (1+cos)/2", f"{(1 + related) / 2:.3f} / {(1 + unrelated) / 2:.3f}"),
        ("top-1 pair accuracy", f"{top1:.0%} of {len(PAIRS)}"),
        ("embed short sentences", f"{len(short) / s_short:.0f} texts/s"),
        ("embed 160-token chunks", f"{len(chunks) / s_chunks:.1f} chunks/s"),
    ]


def bench_ingest(model: str, sizes: Sizes, rows: list[tuple[str, str]], tmp: Path) -> None:
    ws = tmp / "ingest-ws"
    (ws / "src").mkdir(parents=True)
    files = source_files(sizes.ingest_files)
    for i, f in enumerate(files):
        shutil.copy(f, ws / "src" / f"{i:03d}_{f.name}")
    mem = Memory(uri=str(tmp / "ingest-db"), config=MemoryConfig(embedding_model=model, chunk_embedding_model=model),
                 workspace=ws)
    mem.chunk_embedder.embed(["warm up"])
    mem.stats()  # lancedb imported and connected: the ingest rate is the ingest's, not the import's
    res, secs = timed(lambda: mem.add_paths(["src"]))
    again, secs2 = timed(lambda: mem.add_paths(["src"]))
    size = sum(f.stat().st_size for f in (ws / "src").iterdir())
    # A run's episode: what the user waits for at the end of a run, blocking vs in the background.
    ep = {"task": "tidy the changelog", "plan_summary": "s1 edit", "status": "COMPLETE", "reason": "complete",
          "answer": "done", "cost_usd": None}
    waits_sync, waits_bg = [], []
    for i in range(5):
        _, s_sync = timed(partial(mem.record_episode, run_id=f"sync-{i}", **ep))
        _, s_bg = timed(partial(mem.record_episode, run_id=f"bg-{i}", wait=False, **ep))
        flush()
        waits_sync.append(s_sync * 1000)
        waits_bg.append(s_bg * 1000)
    # A cold `agent memory search`: a new process, nothing loaded (the median of 3).
    env = {**os.environ, "AGENT_MEMORY__URI": str(tmp / "ingest-db"), "AGENT_MEMORY__EMBEDDING_MODEL": model,
           "AGENT_MEMORY__CHUNK_EMBEDDING_MODEL": model}
    agent = [sys.executable, "-m", "agentcli", "memory", "search", "render a table", "--tier", "semantic"]
    colds = []
    for _ in range(3):
        _, s_cold = timed(partial(subprocess.run, agent, cwd=ws, env=env, capture_output=True, check=True))
        colds.append(s_cold)
    rows += [
        ("episode write at the end of a run: blocking / background (p50 of 5)",
         f"{statistics.median(waits_sync):.1f} / {statistics.median(waits_bg):.2f} ms"),
        ("cold `agent memory search` (new process, p50 of 3)", f"{statistics.median(colds):.2f} s"),
    ]
    rows += [
        ("ingest (add_paths)", f"{len(files)} files, {size / 1024:.0f} KB -> {res.inserted} chunks in {secs:.1f} s"),
        ("ingest rate", f"{res.inserted / secs:.1f} chunks/s"),
        ("re-add unchanged files", f"{again.unchanged} unchanged, {again.embedded} embedded, {secs2 * 1000:.0f} ms"),
    ]


def bench_scale(model: str, sizes: Sizes, rows: list[tuple[str, str]], tmp: Path) -> None:
    """Recall latency and recall@10 at 10k and 100k rows: bench/memory_recall.py's measurement."""
    from bench.memory_recall import scale

    if sizes is SMOKE:
        store_mod.ANN_MIN_ROWS = min(store_mod.ANN_MIN_ROWS, sizes.small_rows)  # exercise the index path
    rows += scale(tmp, real=sizes.small_rows, large=sizes.large_rows, n_queries=sizes.queries, model=model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: a quick functional run")
    ap.add_argument("--embedder", default="builtin-static",
                    help="the chunks' embedder to measure (default builtin-static, memory's default for chunks)")
    ap.add_argument("--no-quality", action="store_true", help="skip bench/memory_quality.py's table")
    args = ap.parse_args()
    sizes = SMOKE if args.smoke else FULL
    rows: list[tuple[str, str]] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as d:
        tmp = Path(d)
        log("embedder quality and speed ...")
        bench_embedder(args.embedder, sizes, rows)
        log("ingest ...")
        bench_ingest(args.embedder, sizes, rows, tmp)
        bench_scale(args.embedder, sizes, rows, tmp)
    rows.append(("machine", f"{os.cpu_count()} cores, load avg {os.getloadavg()[0]:.1f}; "
                            f"total {time.perf_counter() - t0:.0f} s" + (" (smoke sizes)" if args.smoke else "")))
    width = max(len(k) for k, _ in rows)
    print(f"| {'measure'.ljust(width)} | result |")
    print(f"|{'-' * (width + 2)}|--------|")
    for k, v in rows:
        print(f"| {k.ljust(width)} | {v} |")
    if not args.smoke and not args.no_quality:
        from bench import memory_quality

        print("\n### Retrieval quality vs ingest speed per embedder option (bench/memory_quality.py)\n")
        sys.stdout.flush()
        memory_quality.main([])


if __name__ == "__main__":
    main()
