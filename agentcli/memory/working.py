"""Working memory: the current run's context (task, plan, step results), in process.

Nothing is persisted and LanceDB is not involved: a run adds items as it goes, and
recall searches them by cosine similarity (embedding lazily, in one batch at search
time, so adding stays free) plus a small keyword bonus, like the stored tiers' hybrid
search. Long texts (a file read by a step) are cut into token-sized chunks first so
all of them are searchable, not just their head.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentcli.memory.types import MemoryHit

if TYPE_CHECKING:
    from agentcli.memory.embeddings import Embedder, Matrix

#: Texts longer than this many characters are chunked (cheap pre-check before counting tokens).
_CHUNK_ABOVE_CHARS = 600
_WORD = re.compile(r"[A-Za-z0-9_]{2,}")


@dataclass
class WorkingItem:
    id: str
    kind: str  # task | plan | step | note
    ref: str  # a step id, or ""
    text: str
    lines: str = ""  # "10-30" when the item is a chunk of a longer text


def keyword_overlap(query: str, text: str) -> float:
    """Fraction of the query's distinct words (2+ chars, case-folded) found in ``text``."""
    q = {w.lower() for w in _WORD.findall(query)}
    if not q:
        return 0.0
    t = {w.lower() for w in _WORD.findall(text)}
    return len(q & t) / len(q)


class WorkingMemory:
    """The run's context, searchable during the run. Thread-safe."""

    def __init__(self) -> None:
        self._items: list[WorkingItem] = []
        self._vectors: dict[str, Any] = {}
        self._vec_name: str | None = None
        self._lock = threading.Lock()
        self._next = 1

    def __len__(self) -> int:
        return len(self._items)

    def add(self, text: str, *, kind: str = "note", ref: str = "") -> list[str]:
        """Remember ``text``; returns the ids of the item(s) added (several if it was chunked)."""
        text = text.strip()
        if not text:
            return []
        pieces: list[tuple[str, str]] = [(text, "")]
        if len(text) > _CHUNK_ABOVE_CHARS:
            from agentcli.memory.chunking import chunk_text

            pieces = [(c.text, f"{c.start_line}-{c.end_line}") for c in chunk_text(text)] or pieces
        ids = []
        with self._lock:
            for body, lines in pieces:
                item = WorkingItem(f"w{self._next}", kind, ref, body, lines)
                self._next += 1
                self._items.append(item)
                ids.append(item.id)
        return ids

    def add_task(self, task: str) -> list[str]:
        return self.add(task, kind="task")

    def add_plan(self, plan_summary: str) -> list[str]:
        return self.add(plan_summary, kind="plan")

    def add_step(self, step_id: str, title: str, output: str) -> list[str]:
        """A step's result: its title and output, tagged with the step id."""
        return self.add(f"{title}\n{output}", kind="step", ref=step_id)

    def items(self) -> list[WorkingItem]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._vectors.clear()

    def _embed_missing(self, embedder: Embedder) -> None:
        with self._lock:
            if self._vec_name != embedder.name:  # another embedder: another space
                self._vectors.clear()
                self._vec_name = embedder.name
            todo = [it for it in self._items if it.id not in self._vectors]
        if not todo:
            return
        vecs = embedder.embed([it.text for it in todo])
        with self._lock:
            for it, v in zip(todo, vecs, strict=True):
                self._vectors[it.id] = v

    def search(self, query: str, query_vec: Matrix, embedder: Embedder, *, k: int, threshold: float,
               fts_boost: float) -> list[MemoryHit]:
        """Items scoring at least ``threshold`` (``(1+cos)/2`` plus the keyword bonus), best first."""
        if k <= 0 or not self._items:
            return []
        self._embed_missing(embedder)
        hits = []
        for it in self.items():
            vec = self._vectors.get(it.id)
            if vec is None:
                continue
            cos = float(vec @ query_vec)
            score = min(1.0, (1.0 + cos) / 2.0 + fts_boost * keyword_overlap(query, it.text))
            if score < threshold:
                continue
            source = f"working:{it.kind}" + (f":{it.ref}" if it.ref else "") + (f":{it.lines}" if it.lines else "")
            hits.append(MemoryHit("working", it.id, score, it.text, source,
                                  {"kind": it.kind, "ref": it.ref, "vector_score": (1.0 + cos) / 2.0}))
        hits.sort(key=lambda h: -h.score)
        return hits[:k]
