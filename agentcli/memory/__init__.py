"""Agent memory: working (the run's context), episodic (past runs) and semantic (files, notes).

Importing this package is cheap: lancedb, onnxruntime and the embedder load on first use.
Start at :class:`Memory` (or :func:`open_memory`); :func:`record_episode` is the one-call
form the run command uses after every run.
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
