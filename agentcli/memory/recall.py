"""Searching the stored tiers, and merging hits from all tiers into one ranking.

Scores are comparable across tiers and embedders: ``(1 + cosine) / 2`` in 0..1
(unrelated texts sit near 0.5 with the built-in embedder, paraphrases above 0.8).
Search is hybrid: the vector search's candidates and LanceDB's native full-text
(BM25) candidates are pooled, every candidate is scored by its exact cosine, and a
full-text match adds up to :data:`FTS_BOOST` in proportion to its BM25 score. The
full-text side rescues exact names (``parse_config``, an error code) that an
embedding blurs; the bonus is small (worth 0.2 of cosine), so the score stays a
similarity and the per-tier thresholds keep their meaning.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar, cast

from agentcli.memory.chunking import content_hash
from agentcli.memory.store import REFINE_FACTOR, Store
from agentcli.memory.types import MemoryHit, Tier

if TYPE_CHECKING:
    from agentcli.memory.embeddings import Matrix

T = TypeVar("T")

#: Largest score bonus of a full-text match (the best BM25 match of the query gets all of it).
FTS_BOOST = 0.10
#: Working memory has no config knobs: the run's own context is small and always relevant-ish.
WORKING_K = 5
WORKING_THRESHOLD = 0.65
#: Candidates fetched per search side: the vector search fetches the hits wanted (at least
#: MIN_CANDIDATES), the full-text search twice as many. Measured on bench/memory_quality.py's 43
#: questions (static embedder): fetching 20 to 80 vector candidates ranks the same; 2k full-text
#: candidates gave recall@5 0.70 / MRR 0.51 against 0.67 / 0.50-0.51 for k or 4k (noise-level
#: differences of one question). Every candidate costs a read of its columns.
MIN_CANDIDATES = 20

EPISODE_COLUMNS = ["id", "time", "task", "plan_summary", "status", "reason", "answer", "cost_usd", "text"]
CHUNK_COLUMNS = ["id", "source", "kind", "start_line", "end_line", "text", "content_hash"]


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="recall")
        return _executor


def background(fn: Callable[..., T], *args: Any) -> Future[T]:
    """Run ``fn(*args)`` on recall's thread pool (the full-text searches', and early query embeddings)."""
    return _pool().submit(fn, *args)


def cos_score(cos: float) -> float:
    """Cosine similarity (-1..1) onto the 0..1 score scale."""
    return max(0.0, min(1.0, (1.0 + cos) / 2.0))


def search_table(store: Store, name: str, query: str, qvec: Matrix, *, k: int, threshold: float,
                 columns: list[str]) -> list[dict[str, Any]]:
    """Hybrid search of one table: rows with ``_score`` (>= threshold), ``_vector_score`` and
    ``_fts`` (BM25 or None), best first, at most ``k``.

    Two queries, at once: the vector search (exact re-rank of the ANN's candidates when the
    table has an index; an exact scan when it has none) and the full-text search, which also
    reads its rows' vectors so that every candidate is scored by its exact cosine. Results
    stay Arrow until the few rows kept are turned into dicts. Each query reads the latest
    table version (``read_consistency_interval=0``), so rows other processes added are found."""
    import numpy as np

    table = store.open(name)
    if table is None or k <= 0:
        return []
    n = max(MIN_CANDIDATES, k)
    n_text = max(MIN_CANDIDATES, 2 * k)
    # refine_factor is a no-op without an index (a flat scan is exact): no need to ask which.
    vq = (table.search(qvec, vector_column_name="vector").distance_type("cosine").limit(n)
          .refine_factor(REFINE_FACTOR).select(columns))

    def full_text() -> Any:
        from lancedb.query import MatchQuery

        try:
            # Match, not a parsed query string: user text with quotes or colons is just text.
            match = cast(Any, MatchQuery)(query, "text")
            return table.search(match, query_type="fts").limit(n_text).select([*columns, "vector"]).to_arrow()
        except Exception:
            return None  # no full-text index (a failed concurrent build): vectors alone still work

    # The two searches run at once (lance releases the GIL): recall costs the slower one, not both.
    fts_future = _pool().submit(full_text) if query.strip() else None
    pool: dict[str, dict[str, Any]] = {}
    for row in vq.to_arrow().to_pylist():
        row["_vector_score"] = cos_score(1.0 - float(row.pop("_distance")))
        row["_fts"] = None
        pool[row["id"]] = row
    fts = fts_future.result() if fts_future is not None else None
    if fts is not None and fts.num_rows:
        bm25 = fts["_score"].to_numpy()
        top = float(bm25.max())
        vecs = fts["vector"].combine_chunks()
        matrix = np.asarray(vecs.flatten(), dtype=np.float32).reshape(len(vecs), -1)
        cosines = matrix @ np.asarray(qvec, dtype=np.float32)
        for i, r in enumerate(fts.drop_columns(["vector", "_score"]).to_pylist()):
            row = pool.get(r["id"])
            if row is None:
                row = r
                row["_vector_score"] = cos_score(float(cosines[i]))
                pool[r["id"]] = row
            row["_fts"] = float(bm25[i]) / top if top > 0 else 0.0
    out = []
    for row in pool.values():
        bonus = FTS_BOOST * row["_fts"] if row["_fts"] else 0.0
        row["_score"] = min(1.0, row["_vector_score"] + bonus)
        if row["_score"] >= threshold:
            out.append(row)
    out.sort(key=lambda r: (-r["_score"], r["id"]))
    return out[:k]


def _scores(row: dict[str, Any]) -> dict[str, Any]:
    return {"vector_score": round(row["_vector_score"], 4),
            "fts": None if row["_fts"] is None else round(row["_fts"], 4)}


def episode_hits(rows: list[dict[str, Any]]) -> list[MemoryHit]:
    hits = []
    for r in rows:
        meta = {key: r.get(key) for key in ("time", "task", "plan_summary", "status", "reason", "answer",
                                            "cost_usd")}
        hits.append(MemoryHit("episodic", r["id"], r["_score"], r["text"], f"run {r['id']}",
                              {**meta, **_scores(r)}))
    return hits


def chunk_source(row: dict[str, Any]) -> str:
    if row.get("kind") == "text":
        return "text"
    return f"{row['source']}:{row['start_line']}-{row['end_line']}"


def chunk_hits(rows: list[dict[str, Any]]) -> list[MemoryHit]:
    """Chunk rows as hits; the same content under several sources is returned once (the best)."""
    best: dict[str, MemoryHit] = {}
    also: dict[str, list[str]] = {}
    for r in rows:
        key = r.get("content_hash") or r["id"]
        source = chunk_source(r)
        if key in best:
            also.setdefault(key, []).append(source)
            continue
        best[key] = MemoryHit("semantic", r["id"], r["_score"], r["text"], source,
                              {"path": r["source"], "kind": r.get("kind"), "start_line": r["start_line"],
                               "end_line": r["end_line"], **_scores(r)})
    out = []
    for key, hit in best.items():
        if key in also:
            hit.meta["also_in"] = also[key]
        out.append(hit)
    return out


def merge(per_tier: dict[Tier, list[MemoryHit]], k: int | None) -> list[MemoryHit]:
    """One ranking: best score first, the same text recalled by two tiers kept once."""
    seen: set[str] = set()
    out = []
    for hit in sorted((h for hs in per_tier.values() for h in hs), key=lambda h: (-h.score, h.tier, h.id)):
        key = content_hash(hit.text)
        if key in seen:
            continue
        seen.add(key)
        out.append(hit)
    return out if k is None else out[:k]
