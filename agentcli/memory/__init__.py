"""Agent memory: working (the run's context), episodic (past runs) and semantic (files, notes).

Importing this package is cheap: lancedb, onnxruntime and the embedder load on first use.
Start at :class:`Memory` (or :func:`open_memory`); :func:`record_episode` is the one-call
form the run command uses after every run.

- `api`: the facade, three tiers behind one object; `types`: what was recalled, what was written.
- `working`: the current run's context, in process.
- `store`: LanceDB tables, schemas, indices and upkeep; `lazy_lance`: lancedb imported without its
  REST namespace client.
- `recall`: searching the stored tiers and merging their hits into one ranking.
- `ingest`: files into stored chunks, embedding only what is new; `chunking`: which files, cut where;
  `manifest`: what was last ingested, so an unchanged re-add is a stat per file.
- `embeddings`: text embedders (the offline built-in one, litellm's, a test fake); `static`: a static
  token embedder distilled from the built-in one.
"""

from agentcli.memory.api import Memory, flush, open_memory, record_episode
from agentcli.memory.embeddings import Embedder, get_embedder
from agentcli.memory.ingest import chunk_id
from agentcli.memory.store import EmbedderMismatch, MemoryUnavailable
from agentcli.memory.types import (
    TIERS,
    EventSink,
    MemoryHit,
    MemoryStats,
    PastPlan,
    Progress,
    RecallResult,
    TableStats,
    Tier,
    WriteResult,
)
from agentcli.memory.working import WorkingMemory

__all__ = [
    "TIERS",
    "Embedder",
    "EmbedderMismatch",
    "EventSink",
    "Memory",
    "MemoryHit",
    "MemoryStats",
    "MemoryUnavailable",
    "PastPlan",
    "Progress",
    "RecallResult",
    "TableStats",
    "Tier",
    "WorkingMemory",
    "WriteResult",
    "chunk_id",
    "flush",
    "get_embedder",
    "open_memory",
    "record_episode",
]
