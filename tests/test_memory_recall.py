"""Recall at scale: the ANN index path ranks as the flat path does, rows written after an index
(or by another process, into a memory this process already searched) are found, and an
ingest leaves its rows in the indices rather than searched flat. Speed is in bench/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentcli.config import load_settings
from agentcli.memory import Memory
from agentcli.memory import store as store_mod

ENV = {"AGENT_MEMORY__EMBEDDING_MODEL": "test/hash"}
FILES = 240


def memory_for(ws: Path) -> Memory:
    return Memory.from_settings(load_settings(workspace=ws, environ=ENV, use_user_config=False))


def write_topics(ws: Path, start: int, stop: int) -> None:
    (ws / "notes").mkdir(exist_ok=True)
    for i in range(start, stop):
        (ws / "notes" / f"topic-{i:03d}.md").write_text(
            f"# Widget {i}\n\nThe widget{i} procedure: open valve {i * 7 % 97}, then log reading w{i}x.\n")


def top(mem: Memory, query: str, k: int = 5) -> list[tuple[str, float]]:
    hits = mem.recall(query, tiers=("semantic",), k=k, min_score=0.0).hits
    return [(h.source.split(":")[0], round(h.score, 4)) for h in hits]


@pytest.mark.slow
def test_an_indexed_table_ranks_as_the_flat_one_and_finds_later_rows(workspace: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    write_topics(workspace, 0, FILES)
    mem = memory_for(workspace)
    assert mem.add_paths(["notes"]).inserted == FILES
    queries = ["widget17 procedure valve", "log reading w203x", "open valve for widget 99"]
    flat = {q: top(mem, q) for q in queries}
    assert flat[queries[0]][0][0] == "notes/topic-017.md"
    assert not any("IvfHnswSq" in i for i in mem.stats().tables["chunks"].indices)

    # The next write crosses the (lowered) threshold: the ANN index is built, and the ranking and
    # the scores (exact cosines of the re-ranked candidates) stay what the flat scan gave.
    monkeypatch.setattr(store_mod, "ANN_MIN_ROWS", 100)
    mem.add_text("an unrelated note about lunch")
    assert any("IvfHnswSq" in i for i in mem.stats().tables["chunks"].indices)
    for q in queries:
        assert top(mem, q)[:3] == flat[q][:3]

    # Another process adds files to the memory this one has open and searched: found at once.
    write_topics(workspace, FILES, FILES + 5)
    proc = subprocess.run([sys.executable, "-m", "agentcli", "memory", "add", "notes"], cwd=workspace,
                          env={**os.environ, **ENV}, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert top(mem, "widget242 procedure valve")[0][0] == "notes/topic-242.md"


def test_an_ingest_leaves_its_rows_indexed(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The full-text index is made with the empty table; the rows added after it would be searched
    # flat, on every recall, until compaction folds them in.
    monkeypatch.setattr(store_mod, "MAX_UNINDEXED_ROWS", 50)
    write_topics(workspace, 0, 120)
    mem = memory_for(workspace)
    mem.add_paths(["notes"])
    table = mem.store.open(store_mod.CHUNKS)
    assert table is not None
    assert mem.store.unindexed_rows(table) == 0
    assert top(mem, "log reading w77x")[0][0] == "notes/topic-077.md"
