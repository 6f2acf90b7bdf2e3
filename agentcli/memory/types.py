"""Plain result types of the memory API: what was recalled, what was written.

Each result can describe itself as an event payload (:meth:`RecallResult.event`,
:meth:`WriteResult.event`) so the run loop can append ``memory_recall`` /
``memory_write`` events to its log; the memory package never writes the log itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Tier = Literal["working", "episodic", "semantic"]
TIERS: tuple[Tier, ...] = ("working", "episodic", "semantic")

#: ``progress(phase, done, total)``: the command layer draws it; the core never prints.
Progress = Callable[[str, int, int], None]
#: ``on_event(kind, payload)`` with kind ``memory_recall`` or ``memory_write``.
EventSink = Callable[[str, dict[str, Any]], None]


def _one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class MemoryHit:
    """One recalled item. ``score`` is in 0..1: ``(1 + cosine) / 2``, raised by at most
    :data:`~agentcli.memory.recall.FTS_BOOST` for a full-text match, capped at 1."""

    tier: Tier
    id: str
    score: float
    text: str
    #: ``run <run_id>`` for an episode, ``path:10-30`` for a file chunk, ``text`` for a note,
    #: ``working:<kind>[:ref]`` for the current run's context.
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    def snippet(self, chars: int = 160) -> str:
        """The text on one line, cut to ``chars``."""
        t = _one_line(self.text)
        return t if len(t) <= chars else t[: chars - 3] + "..."

    def planner_line(self, chars: int = 360) -> str:
        """A short line with its source, for the planner's prompt."""
        if self.tier == "episodic":
            m = self.meta
            outcome = m.get("answer") or m.get("reason") or ""
            line = f"episode {self.id} ({m.get('status', '?')}): {_one_line(m.get('task', ''))}"
            if outcome:
                line += f" → {_one_line(str(outcome))}"
        else:
            line = f"{self.source}: {_one_line(self.text)}"
        return line if len(line) <= chars else line[: chars - 3] + "..."

    def as_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "id": self.id, "score": round(self.score, 4), "source": self.source,
                "text": self.text, "meta": self.meta}


@dataclass(frozen=True)
class PastPlan:
    """The plan of a past run that completed (:meth:`~agentcli.memory.api.Memory.recall_plans`)."""

    run_id: str
    task: str
    #: The run's final plan as JSON (:func:`agentcli.engine.runner.episode_plan`).
    plan: str
    #: Similarity of its task to the one asked about: ``(1 + cosine) / 2``.
    score: float
    time: str = ""


@dataclass
class RecallResult:
    """Hits from every tier asked, merged: best first, duplicates removed."""

    query: str
    tiers: tuple[Tier, ...]
    hits: list[MemoryHit]
    took_ms: float
    #: Hits per tier above its threshold, before the overall cut.
    per_tier: dict[str, int] = field(default_factory=dict)

    def event(self) -> dict[str, Any]:
        """Payload of a ``memory_recall`` event."""
        return {
            "query": self.query,
            "tiers": list(self.tiers),
            "hits": [{"tier": h.tier, "id": h.id, "score": round(h.score, 4), "source": h.source}
                     for h in self.hits],
            "per_tier": dict(self.per_tier),
            "took_ms": round(self.took_ms, 2),
        }


@dataclass
class WriteResult:
    """What one write changed. ``ids`` are the rows inserted or updated."""

    tier: Tier
    ids: list[str] = field(default_factory=list)
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    #: Rows (or files) left as they were because nothing changed.
    unchanged: int = 0
    #: Texts sent to the embedder.
    embedded: int = 0
    sources: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    took_ms: float = 0.0
    #: Written in the background (``record_episode(wait=False)``): the counts are not known yet.
    queued: bool = False
    #: Chunks written with a secret masked in their text (see :mod:`agentcli.redact`).
    masked: int = 0

    def event(self) -> dict[str, Any]:
        """Payload of a ``memory_write`` event."""
        out = {
            "tier": self.tier, "ids": list(self.ids), "inserted": self.inserted, "updated": self.updated,
            "deleted": self.deleted, "unchanged": self.unchanged, "embedded": self.embedded,
            "sources": list(self.sources), "skipped": list(self.skipped), "took_ms": round(self.took_ms, 2),
        }
        if self.queued:
            out["queued"] = True
        if self.masked:
            out["masked"] = self.masked
        return out


@dataclass
class TableStats:
    rows: int
    version: int
    versions: int
    size_bytes: int
    fragments: int
    indices: list[str]


@dataclass
class MemoryStats:
    """What ``agent memory stats`` shows."""

    uri: str
    embedder: str | None
    dim: int | None
    configured_embedder: str
    tables: dict[str, TableStats]
    size_on_disk: int | None
    working_rows: int
    #: The chunks' embedder (``memory.chunk_embedding_model``), stored and configured.
    chunk_embedder: str | None = None
    chunk_dim: int | None = None
    configured_chunk_embedder: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri, "embedder": self.embedder, "dim": self.dim,
            "configured_embedder": self.configured_embedder, "chunk_embedder": self.chunk_embedder,
            "chunk_dim": self.chunk_dim, "configured_chunk_embedder": self.configured_chunk_embedder,
            "size_on_disk": self.size_on_disk,
            "working_rows": self.working_rows,
            "tables": {k: vars(v) for k, v in self.tables.items()},
        }
