"""Ingesting files as chunks: plan what changed, embed only what is new, write in groups.

A file's chunks are keyed by ``chunk_id(source, content hash)``: re-adding an unchanged
file touches nothing, a chunk whose text survived an edit keeps its vector, and each
group of files is one ``merge_insert`` commit that inserts new chunks, updates kept ones
(line ranges move) and deletes the sources' chunks that are gone, atomically.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentcli.memory import chunking
from agentcli.memory.store import CHUNKS, Store, sql_in, sql_str, upsert
from agentcli.memory.types import Progress, WriteResult
from agentcli.redact import REDACTED, Redactor

if TYPE_CHECKING:
    from agentcli.memory.embeddings import Matrix

#: Texts per embedder call while ingesting (progress is reported after each).
EMBED_BATCH = 128
#: Rows per merge_insert: one commit per group of files, not per file.
WRITE_BATCH_ROWS = 2048
#: Sources (or ids) per ``IN (...)`` filter.
FILTER_BATCH = 400

#: ``(sources, rows)`` written by one commit.
Group = tuple[list[str], list[dict[str, Any]]]


def chunk_id(source: str, chash: str, origin: str = "") -> str:
    """A chunk's id: stable for the same content at the same source of the same origin (so
    re-adding is a no-op); notes (origin "") are shared by every workspace."""
    key = f"{source}\0{chash}" if not origin else f"{origin}\0{source}\0{chash}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def workspace_origin(workspace: Path) -> str:
    """Which checkout a file chunk comes from, so that workspaces sharing one memory (a team's,
    on object storage) never replace or forget each other's files: the git remote ``origin``
    (credentials cut out) when there is one, so clones of one repository share chunks, else
    this machine and directory."""
    import configparser
    import re
    import socket

    cfg = workspace / ".git" / "config"
    if cfg.is_file():
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        try:
            parser.read(cfg, encoding="utf-8")
            url = parser.get('remote "origin"', "url", fallback="").strip()
        except (configparser.Error, OSError, UnicodeDecodeError):
            url = ""
        if url:
            url = re.sub(r"^([a-z+]+://)[^/@]*@", r"\1", url)  # https://user:token@host/... -> https://host/...
            return "git:" + url.removesuffix(".git").rstrip("/")
    return f"dir:{socket.gethostname()}:{workspace.resolve().as_posix()}"


def origin_filter(origin: str) -> str:
    """Rows of this origin, and rows stored before origins were (schema 3 migration: NULL)."""
    return f"(origin = {sql_str(origin)} OR origin IS NULL)"


def chunk_embed_text(source: str, kind: str, text: str) -> str:
    """What is embedded for a chunk: a file chunk carries its path (names carry meaning)."""
    return text if kind == "text" else f"{source}\n{text}"


def note_rows(text: str, now: str) -> list[dict[str, Any]]:
    """A note's chunk rows (source ``text``); the same note twice yields the same ids."""
    rows: dict[str, dict[str, Any]] = {}
    for c in chunking.chunk_text(text, boundary=chunking.boundary_for("note.md")):
        h = c.content_hash
        cid = chunk_id("text", h)
        rows.setdefault(cid, {"id": cid, "source": "text", "kind": "text", "start_line": c.start_line,
                              "end_line": c.end_line, "text": c.text, "content_hash": h, "file_hash": h,
                              "added_at": now, "origin": None})
    return list(rows.values())


def plan_files(files: list[tuple[Path, str]], now: str, origin: str = "", *,
               progress: Progress | None = None, stored: dict[str, dict[str, str]] | None = None,
               known: dict[str, str] | None = None, masked: dict[str, int] | None = None,
               ) -> dict[str, tuple[str, list[dict[str, Any]] | None]]:
    """``{source: (file hash, chunk rows without vectors)}``; identical chunks of a file kept once.
    A file whose stored chunks (``stored``: :func:`existing_chunks`) all carry its current hash is
    not chunked again: its rows are None. Its current hash is read from ``known`` (files whose
    size and mtime the ingest manifest vouches for) when it is there, else the file is read and
    hashed (re-adding an unchanged repository reads nothing it can vouch for).

    Secrets are masked in a file's text before anything is hashed, chunked, embedded or stored
    (:mod:`agentcli.redact`); ``masked``, if given, receives the number of chunks holding a mask
    per source whose text had one."""
    planned: dict[str, tuple[str, list[dict[str, Any]] | None]] = {}
    redact = Redactor()
    for n, (path, rel) in enumerate(files, 1):
        if progress is not None and (n % 50 == 0 or n == len(files)):
            progress("reading files", n, len(files))
        old = (stored or {}).get(rel)
        vouched = (known or {}).get(rel)
        if old and vouched is not None and all(v == vouched for v in old.values()):
            planned[rel] = (vouched, None)
            continue
        try:
            raw = chunking.read_text(path)
        except OSError:
            continue
        text = redact.text(raw)
        fhash = chunking.content_hash(text)
        if old and all(v == fhash for v in old.values()):
            planned[rel] = (fhash, None)
            continue
        rows: dict[str, dict[str, Any]] = {}
        for c in chunking.chunk_text(text, boundary=chunking.boundary_for(rel)):
            h = c.content_hash
            cid = chunk_id(rel, h, origin)
            rows.setdefault(cid, {"id": cid, "source": rel, "kind": "file", "start_line": c.start_line,
                                  "end_line": c.end_line, "text": c.text, "content_hash": h,
                                  "file_hash": fhash, "added_at": now, "origin": origin or None})
        planned[rel] = (fhash, list(rows.values()))
        if masked is not None and text != raw:
            masked[rel] = sum(REDACTED in r["text"] for r in rows.values())
    return planned


def existing_chunks(store: Store, sources: list[str], origin: str) -> dict[str, dict[str, str]]:
    """``{source: {chunk id: file hash}}`` of what is stored for ``sources`` (of this origin)."""
    table = store.open(CHUNKS)
    out: dict[str, dict[str, str]] = {}
    if table is None:
        return out
    for i in range(0, len(sources), FILTER_BATCH):
        part = sources[i:i + FILTER_BATCH]
        where = f"kind = 'file' AND {sql_in('source', part)} AND {origin_filter(origin)}"
        rows = (table.search().where(where).select(["id", "source", "file_hash"])
                .limit(None).to_arrow().to_pylist())
        for r in rows:
            out.setdefault(r["source"], {})[r["id"]] = r["file_hash"]
    return out


def stored_vectors(store: Store, ids: list[str]) -> dict[str, list[float]]:
    """The stored vectors of the chunks with these ids (those that exist)."""
    table = store.open(CHUNKS)
    out: dict[str, list[float]] = {}
    if table is None or not ids:
        return out
    for i in range(0, len(ids), FILTER_BATCH):
        rows = (table.search().where(sql_in("id", ids[i:i + FILTER_BATCH])).select(["id", "vector"])
                .limit(None).to_arrow().to_pylist())
        out.update({r["id"]: r["vector"] for r in rows})
    return out


def stale_sources(store: Store, workspace: Path, dirs: list[str], present: set[str], origin: str,
                  ) -> tuple[list[str], set[str]]:
    """``(stale, stored)``: the sources of this origin stored under the given directories
    (``stored``), and those of them whose files are gone (``stale``, to forget). A stored file that
    still exists but is no longer ingested (ignored now, binary, too big) is kept."""
    table = store.open(CHUNKS)
    if table is None or not dirs:
        return [], set()
    stale: set[str] = set()
    stored: set[str] = set()
    for d in dirs:
        where = f"kind = 'file' AND {origin_filter(origin)}"
        if d != ".":
            where += f" AND starts_with(source, {sql_str(d + '/')})"
        for s in set(table.search().where(where).select(["source"]).limit(None).to_arrow()
                     .column("source").to_pylist()):
            stored.add(s)
            if s not in present and not chunking.name_path(workspace, s).is_file():
                stale.add(s)
    return sorted(stale), stored


def write_groups(todo: dict[str, list[dict[str, Any]]], stale: list[str]) -> list[Group]:
    """Sources batched into groups of at most WRITE_BATCH_ROWS rows (a big file alone)."""
    groups: list[Group] = []
    cur_sources: list[str] = []
    cur_rows: list[dict[str, Any]] = []
    for rel in [*todo, *stale]:
        rows = todo.get(rel, [])
        if cur_sources and (len(cur_rows) + len(rows) > WRITE_BATCH_ROWS or len(cur_sources) >= FILTER_BATCH):
            groups.append((cur_sources, cur_rows))
            cur_sources, cur_rows = [], []
        cur_sources.append(rel)
        cur_rows.extend(rows)
    if cur_sources:
        groups.append((cur_sources, cur_rows))
    return groups


def embed_and_write(store: Store, groups: list[Group], total: int, result: WriteResult, *,
                    embed: Callable[[list[str]], Matrix], prepare: Callable[[int], None],
                    progress: Progress | None, origin: str) -> None:
    """Embed and write group by group: memory stays bounded on a big ingest, and an
    interrupted one keeps what it finished."""
    import pyarrow as pa

    done = 0
    if progress is not None and total:
        progress("embedding", 0, total)
    for sources, rows in groups:
        # Chunks already stored under the same id keep their vectors (same text, same path).
        reused = stored_vectors(store, [r["id"] for r in rows])
        need = [r for r in rows if r["id"] not in reused]
        for r in rows:
            if r["id"] in reused:
                r["vector"] = reused[r["id"]]
        for i in range(0, len(need), EMBED_BATCH):
            batch = need[i:i + EMBED_BATCH]
            vecs = embed([chunk_embed_text(r["source"], r["kind"], r["text"]) for r in batch])
            for r, v in zip(batch, vecs, strict=True):
                r["vector"] = v.tolist()
            done += len(batch)
            result.embedded += len(batch)
            if progress is not None:
                progress("embedding", min(done, total), max(total, done))
        if rows:
            prepare(len(rows[0]["vector"]))
        table = store.open(CHUNKS)
        if table is None:  # only deletions, and nothing was ever stored
            continue
        # One commit per group: new chunks in, changed line ranges updated, and every
        # old chunk of these sources that is not in the new set deleted.
        data = pa.Table.from_pylist(rows, schema=table.schema)
        res = upsert(table, data, delete_missing_where=(f"kind = 'file' AND {sql_in('source', sources)} "
                                                        f"AND {origin_filter(origin)}"))
        result.inserted += int(res.num_inserted_rows)
        result.updated += int(res.num_updated_rows)
        result.deleted += int(res.num_deleted_rows)
        result.ids.extend(r["id"] for r in rows)
        rows.clear()  # the vectors are written: let them go
