"""Memory recall benchmark: a cold `agent memory search`, and warm recall at 10k and 100k chunks.

    .venv/bin/python -m bench.memory_recall                      # ~5 minutes on 2 cores
    .venv/bin/python -m bench.memory_recall --smoke              # tiny sizes, a functional check
    .venv/bin/python -m bench.memory_recall --baseline DIR       # "before": the agentcli package in DIR
    .venv/bin/python -m bench.memory_recall --write              # also replace its section of RESULTS.md

Cold: fresh ``agent memory search`` processes (``python -m agentcli``) on a memory holding this
repository's docs/ and README.md (static-embedded chunks), first without episodes, then with one
(episodes are MiniLM-embedded, so a search of all tiers loads MiniLM too). Each variant runs
interleaved with the others, after one untimed warm-up (page cache warm): this code; this code with
``AGENTCLI_EAGER_LANCE=1`` (lancedb imported the normal way); and, with ``--baseline DIR``, the
agentcli package in DIR (e.g. ``git archive <commit> agentcli | tar -x -C DIR``).

Warm: one process, ``Memory.recall(query, tiers=("semantic",), k=10)`` end to end (query
embedding, the vector and full-text searches, merge) and ``recall.search_table`` alone, p50/p95
over 200 queries of two kinds: held-out code/doc snippets (<= 40 tokens, many full-text terms)
and short questions (a user's words). recall@10 against exact search: the vector stage as
recall runs it (``search_table`` with no full-text side: the ANN's candidates re-ranked on exact
vectors) against numpy's exact cosine top 10 over the same vectors. The 10k table is all real
embeddings (snippets of installed packages); the 100k one adds 90k perturbed copies (v + noise,
cosine ~0.86 to their origin: tight clusters, a harder case for an index than spread-out data).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("LANCEDB_LOG", "error")

import numpy as np  # noqa: E402

from agentcli.config import MemoryConfig, load_settings  # noqa: E402
from agentcli.memory import Memory  # noqa: E402
from agentcli.memory import store as store_mod  # noqa: E402
from agentcli.memory.embeddings import get_embedder  # noqa: E402
from agentcli.memory.recall import CHUNK_COLUMNS, search_table  # noqa: E402
from bench.report import write_section  # noqa: E402

HEADING = "## Memory recall (bench/memory_recall.py)"
QUESTIONS = [
    "How do I read a file in Python?", "fix the failing unit test in the parser", "database connection pool settings",
    "how to roll back a bad deployment", "where are the logs written?", "run the test suite",
    "set an environment variable for the API key", "parse command line arguments",
    "retry a request with exponential backoff", "how is the cache invalidated?", "convert a string to a datetime",
    "sort a list of dicts by a key", "render a table in the terminal", "validate a model field",
    "handle a keyboard interrupt", "where is the user config file?", "print coloured text",
    "authenticate with a token", "match paths against gitignore patterns", "measure how long a function takes",
    "serialise an object to JSON", "define a command line option with a default", "add a column to the table",
    "download a file over HTTP",
]
COLD_QUERY = "how does the planner validate a plan"
NOTES = [
    "Wall times of real processes and of in-process calls on a shared 2-core machine: the load average above "
    "says how busy it was (other sessions' test suites); busier means slower, p95 most. A cold search's CPU "
    "time (user + system, all its threads) is less sensitive to that load than its wall time.",
    "Cold search, what this code does that the baseline did not: lancedb imported with its generated REST "
    "namespace client postponed to first use and lance's ~150 pydantic models built on first use "
    "(agentcli/memory/lazy_lance.py; AGENTCLI_EAGER_LANCE=1 turns both off, the second row); the static "
    "embedder's 47 MB table mapped instead of read, and only its tokenizer file hashed (not MiniLM's 23 MB "
    "model); the query embedded (MiniLM loaded, for episodes) while lancedb imports and the tables open.",
    "Warm recall, what changed: the vector side fetches the hits wanted (20 for k=10, as recall asks for "
    "twice k to fold duplicate chunks), the full-text side twice that (was 4x per side), no index lookup "
    "per query, rows kept as Arrow until the few kept; an IVF_HNSW_SQ index from 10k rows (was 25k: the "
    "flat scan row above is what 10k-25k-row tables paid); and an ingest folds its rows into the indices "
    "(the full-text index, made on the empty table, used to leave every ingested chunk searched flat until "
    "8 small fragments piled up: ~50 ms a recall at 3k chunks).",
    "recall@10 is the vector stage as recall runs it (search_table with no full-text side: 20 ANN candidates "
    "re-ranked on exact vectors) against numpy's exact top 10 over the same vectors; hybrid ranking adds a "
    "BM25 bonus on top by design, so its top 10 is not meant to equal the cosine top 10.",
]


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def fmt(values: list[float], unit: str, scale: float = 1.0, digits: int = 2) -> str:
    v = [x * scale for x in values]
    return (f"{statistics.median(v):.{digits}f} / {pct(v, 95):.{digits}f} {unit} "
            f"(min {min(v):.{digits}f}, n {len(v)})")


# ------------------------------------------------------------------ cold

def _wall(cmd: list[str], cwd: Path, env: dict[str, str], cpu: list[float] | None = None) -> float:
    """Wall seconds of one process; its CPU seconds (user + system, all threads) appended to ``cpu``."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-400:]}")
    if cpu is not None:
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return seconds


def cold(tmp: Path, reps: int, baseline: Path | None, baseline_label: str) -> list[tuple[str, str]]:
    ws = tmp / "cold-ws"
    ws.mkdir()
    shutil.copytree(ROOT / "docs", ws / "docs")
    shutil.copy(ROOT / "README.md", ws / "README.md")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT")}
    base_env.update({"PYTHONPATH": str(ROOT), "AGENT_ALLOW_MODEL_REQUESTS": "0"})
    agent = [sys.executable, "-m", "agentcli"]
    _wall([*agent, "memory", "add", "docs", "README.md"], ws, base_env)
    variants: dict[str, dict[str, str]] = {
        "this code": base_env,
        "this code, AGENTCLI_EAGER_LANCE=1 (lancedb's normal import)": {**base_env, "AGENTCLI_EAGER_LANCE": "1"},
    }
    if baseline is not None:
        variants[f"baseline ({baseline_label or baseline})"] = {**base_env, "PYTHONPATH": str(baseline)}
    search = [*agent, "memory", "search", COLD_QUERY]
    rows: list[tuple[str, str]] = []
    chunks = Memory.from_settings(load_settings(workspace=ws, environ={}, use_user_config=False)).stats()
    n_chunks = chunks.tables["chunks"].rows if "chunks" in chunks.tables else 0
    for case in ("chunks only", "chunks and an episode"):
        if case == "chunks and an episode":
            mem = Memory.from_settings(load_settings(workspace=ws, environ={}, use_user_config=False))
            mem.record_episode(run_id="20261201-000000-bench", task="validate the plan schema", plan_summary="s1 read",
                               status="COMPLETE", reason="complete", answer="ok", cost_usd=0.0)
        for env in variants.values():
            _wall(search, ws, env)  # warm-up: page cache
        samples: dict[str, list[float]] = {label: [] for label in variants}
        cpu: dict[str, list[float]] = {label: [] for label in variants}
        for _ in range(reps):
            for label, env in variants.items():  # interleaved: drift hits every variant alike
                samples[label].append(_wall(search, ws, env, cpu[label]))
        for label, values in samples.items():
            rows.append((f"cold `agent memory search` ({n_chunks} chunks, {case}): {label}, p50 / p95",
                         f"{fmt(values, 's')}; CPU p50 {statistics.median(cpu[label]):.2f} s"))
        log(f"cold, {case}: done")
    return rows


# ------------------------------------------------------------------ warm

def make_table(mem: Memory, texts: list[str], vecs: np.ndarray) -> Any:
    import pyarrow as pa

    dim = vecs.shape[1]
    mem._prepare_write(dim, [store_mod.CHUNKS])
    table = mem.store.open(store_mod.CHUNKS)
    assert table is not None
    batch = 20_000
    for start in range(0, len(texts), batch):
        end = min(start + batch, len(texts))
        data = pa.table({
            "id": [f"c{i}" for i in range(start, end)],
            "source": [f"src/file{i // 50}.py" for i in range(start, end)],
            "kind": ["file"] * (end - start),
            "start_line": pa.array([1 + (i % 50) * 10 for i in range(start, end)], pa.int32()),
            "end_line": pa.array([10 + (i % 50) * 10 for i in range(start, end)], pa.int32()),
            "text": texts[start:end],
            "content_hash": [f"h{i}" for i in range(start, end)],
            "file_hash": ["f"] * (end - start),
            "added_at": ["2026-01-01T00:00:00+00:00"] * (end - start),
            "origin": pa.array([None] * (end - start), pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs[start:end].ravel(), pa.float32()), dim),
        })
        table.add(data)
    table.optimize()
    return table


def timed_ms(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def recall_at_10(mem: Memory, qvecs: np.ndarray, base: np.ndarray) -> float:
    """The vector stage as recall runs it (20 candidates for k=10, re-ranked exactly) vs numpy's exact top 10."""
    exact = np.argsort(-(qvecs @ base.T), axis=1)[:, :10]
    got = 0
    for qi, q in enumerate(qvecs):
        rows = search_table(mem.store, store_mod.CHUNKS, "", q, k=20, threshold=0.0, columns=["id"])[:10]
        got += len({int(r["id"][1:]) for r in rows} & set(exact[qi].tolist()))
    return got / (10 * len(qvecs))


def plain_ann_recall(table: Any, qvecs: np.ndarray, base: np.ndarray) -> float:
    """The index alone, 10 results, no exact re-rank (for reference)."""
    exact = np.argsort(-(qvecs @ base.T), axis=1)[:, :10]
    got = 0
    for qi, q in enumerate(qvecs):
        rows = table.search(q, vector_column_name="vector").distance_type("cosine").limit(10).select(["id"]).to_list()
        got += len({int(r["id"][1:]) for r in rows} & set(exact[qi].tolist()))
    return got / (10 * len(qvecs))


def latency(mem: Memory, queries: list[str], qvecs: np.ndarray, n: int) -> tuple[list[float], list[float]]:
    e2e, only = [], []
    mem.recall(queries[0], tiers=("semantic",), k=10, min_score=0.0)  # tables open, embedder loaded
    for i in range(n):
        q, qv = queries[i % len(queries)], qvecs[i % len(qvecs)]
        e2e.append(timed_ms(lambda q=q: mem.recall(q, tiers=("semantic",), k=10, min_score=0.0)))
        only.append(timed_ms(lambda q=q, qv=qv: search_table(mem.store, store_mod.CHUNKS, q, qv, k=20, threshold=0.0,
                                                             columns=CHUNK_COLUMNS)))
    return e2e, only


def cold_on(uri: str, tmp: Path, label: str, reps: int) -> tuple[str, str]:
    """Fresh `agent memory search --tier semantic` processes on a big memory (its index loaded cold)."""
    ws = tmp / f"cold-{label}"
    ws.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT")}
    env.update({"PYTHONPATH": str(ROOT), "AGENT_ALLOW_MODEL_REQUESTS": "0", "AGENT_MEMORY__URI": uri})
    cmd = [sys.executable, "-m", "agentcli", "memory", "search", COLD_QUERY, "--tier", "semantic"]
    _wall(cmd, ws, env)
    cpu: list[float] = []
    walls = [_wall(cmd, ws, env, cpu) for _ in range(reps)]
    return (f"{label} rows: cold `agent memory search --tier semantic`, p50 / p95",
            f"{fmt(walls, 's')}; CPU p50 {statistics.median(cpu):.2f} s")


def scale(tmp: Path, *, real: int, large: int, n_queries: int, model: str = "builtin-static",
          cold_reps: int = 0) -> list[tuple[str, str]]:
    from bench.memory_bench import snippets

    emb = get_embedder(model)
    log(f"embedding {real + n_queries} real snippets ...")
    texts = snippets(real + n_queries)
    q_texts, base_texts = texts[:n_queries], texts[n_queries:]
    vecs = emb.embed(base_texts)
    qvecs = emb.embed(q_texts)
    short_vecs = emb.embed(QUESTIONS)
    rows: list[tuple[str, str]] = [("embedder", emb.name)]
    rng = np.random.default_rng(5)
    def name(n: int) -> str:
        return f"{n // 1000}k" if n >= 1000 else str(n)

    for label, n_rows in ((name(real), real), (name(large), large)):
        base, all_texts = vecs, list(base_texts)
        if n_rows > len(base_texts):
            extra = n_rows - len(base_texts)
            src = rng.integers(0, len(base_texts), extra)
            noise = rng.normal(size=(extra, vecs.shape[1])).astype(np.float32) * (0.6 / np.sqrt(vecs.shape[1]))
            synth = vecs[src] + noise
            synth /= np.linalg.norm(synth, axis=1, keepdims=True)
            base = np.vstack([vecs, synth]).astype(np.float32)
            all_texts += [base_texts[i] for i in src]
        mem = Memory(uri=str(tmp / f"db-{label}"), config=MemoryConfig(), workspace=tmp, embedder=emb)
        log(f"{label}: writing {n_rows} rows ...")
        t0 = time.perf_counter()
        table = make_table(mem, all_texts, base)
        write_s = time.perf_counter() - t0
        n_real = len(base_texts)
        kind_of = "real" if n_rows == n_real else f"{n_real} real + {n_rows - n_real} perturbed"
        if n_rows == real:  # the flat scan, before the index, for comparison
            e2e, _only = latency(mem, q_texts, qvecs, n_queries)
            rows.append((f"{label} rows flat (no index): recall end to end, snippet queries, p50 / p95",
                         fmt(e2e, "ms")))
        log(f"{label}: building the ANN index ...")
        t0 = time.perf_counter()
        built = mem.store.maybe_index(table)
        idx_s = time.perf_counter() - t0
        kind = "IVF_HNSW_SQ" if mem.store.has_vector_index(table) else "flat"
        rows.append((f"{label} rows ({kind_of}), {kind}",
                     f"write {write_s:.1f} s" + (f", index build {idx_s:.1f} s" if built else "")))
        e2e, only = latency(mem, q_texts, qvecs, n_queries)
        rows.append((f"{label} recall end to end, snippet queries, p50 / p95", fmt(e2e, "ms")))
        rows.append((f"{label} search_table alone, snippet queries, p50 / p95", fmt(only, "ms")))
        e2e, only = latency(mem, QUESTIONS, short_vecs, n_queries)
        rows.append((f"{label} recall end to end, short questions, p50 / p95", fmt(e2e, "ms")))
        r = recall_at_10(mem, qvecs, base)
        plain = plain_ann_recall(table, qvecs, base) if kind != "flat" else 1.0
        rows.append((f"{label} recall@10 vs exact (vector stage as recall runs it)",
                     f"{r:.3f} (the index alone, 10 results, no re-rank: {plain:.3f})"))
        if cold_reps:
            rows.append(cold_on(mem.uri, tmp, label, cold_reps))
        log(f"{label}: done")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: a functional check")
    ap.add_argument("--baseline", type=Path, help="a directory holding an older agentcli package, for before/after")
    ap.add_argument("--baseline-label", default="", help="what the baseline is, for the table (e.g. a commit)")
    ap.add_argument("--reps", type=int, default=15, help="cold processes per variant and case (default 15)")
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument("--no-warm", action="store_true")
    ap.add_argument("--write", action="store_true", help="replace this benchmark's section of bench/RESULTS.md")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="memory-recall-") as d:
        tmp = Path(d)
        if not args.no_cold:
            rows += cold(tmp, 2 if args.smoke else args.reps, args.baseline, args.baseline_label)
        if not args.no_warm:
            if args.smoke:
                store_mod.ANN_MIN_ROWS = 300
                rows += scale(tmp, real=400, large=2_000, n_queries=20, cold_reps=2)
            else:
                rows += scale(tmp, real=10_000, large=100_000, n_queries=200, cold_reps=args.reps)
    load1 = os.getloadavg()
    width = max(len(k) for k, _ in rows)
    given = " ".join(sys.argv[1:] if argv is None else argv)
    lines = [HEADING, "",
             f"Command: `python -m bench.memory_recall{' ' + given if given else ''}`"
             f"; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores; load average "
             f"(1, 5, 15 min) at the start {', '.join(f'{x:.2f}' for x in load0)}, at the end "
             f"{', '.join(f'{x:.2f}' for x in load1)}; {time.perf_counter() - t0:.0f} s"
             + (" (smoke sizes: not representative)" if args.smoke else "") + ".", "",
             f"| {'measure'.ljust(width)} | result |", f"|{'-' * (width + 2)}|--------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    lines += ["", *(f"- {n}" for n in NOTES)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write and not args.smoke:
        write_section(text, ROOT / "bench" / "RESULTS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
