"""The memory facade: three tiers behind one object.

* **working**: the current run's context (:class:`~agentcli.memory.working.WorkingMemory`,
  in process);
* **episodic**: one record per finished run ("what happened when I did X?");
* **semantic**: chunks of files and notes ("what do I know about X?").

Episodic and semantic live in LanceDB at ``memory.uri`` (see :mod:`.store`). Opening
is lazy: constructing a :class:`Memory` costs nothing; lancedb and the embedder load
on the first call that needs them.

The embedder's name and dimension are stored in the ``meta`` table. Memory holding
rows embedded by another embedder refuses to be used (:class:`EmbedderMismatch`,
exit 2) until ``agent memory reindex`` re-embeds it: vectors from two models are not
comparable, and mixing them would silently return nonsense.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentcli.config import MemoryConfig, Settings
from agentcli.errors import UsageError
from agentcli.memory import chunking, ingest, recall
from agentcli.memory import manifest as manifest_mod
from agentcli.memory.embeddings import BUILTIN, BUILTIN_NAME, MINILM, STATIC, Embedder, get_embedder
from agentcli.memory.static import NAME as STATIC_NAME
from agentcli.memory.store import (
    CHUNKS,
    EPISODES,
    REFINE_FACTOR,
    SCHEMA_VERSION,
    SCHEMAS,
    EmbedderMismatch,
    MemoryUnavailable,
    Store,
    delete_where,
    sql_in,
    sql_str,
    upsert,
)
from agentcli.memory.types import (
    TIERS,
    EventSink,
    MemoryHit,
    MemoryStats,
    PastPlan,
    Progress,
    RecallResult,
    Tier,
    WriteResult,
)
from agentcli.memory.working import WorkingMemory
from agentcli.redact import REDACTED, Redactor
from agentcli.untrusted import check_text

if TYPE_CHECKING:
    from agentcli.memory.embeddings import Matrix

#: How many recalled items the planner hook returns (the planner shows at most 5).
PLANNER_ITEMS = 5
#: Episodes queued by ``record_episode(wait=False)`` wait here (one JSON file each, under the
#: data dir) until they are in the store: a process killed before its write finished leaves
#: the file, and the next process that opens the memory writes it.
PENDING_DIR = "memory-pending"
PENDING_SCHEMA_VERSION = 1
#: Pending episodes that cannot be written are moved here (one warning), out of every later command's way.
PENDING_FAILED_DIR = "failed"

#: Background episode writes in flight in this process, per memory URI.
_inflight: dict[str, list[threading.Thread]] = {}
_inflight_lock = threading.Lock()


def flush(timeout: float | None = None, *, uri: str | None = None) -> bool:
    """Wait for this process's background episode writes (those to ``uri``, or all); True if
    none is left. The interpreter also waits for them at exit (they are non-daemon threads),
    so a run's episode is in the store when ``agent run`` returns to the shell."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with _inflight_lock:
        threads = [t for u, ts in _inflight.items() if uri is None or u == uri for t in ts]
    for t in threads:
        t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in threads)


def memory_uri(settings: Settings) -> str:
    """Where memory lives: `memory.uri` if set, else `<data_dir>/memory`."""
    return settings.config.memory.uri or str(settings.data_dir / "memory")


def _now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _iso(value: datetime | str | None) -> str:
    if value is None:
        return _now_iso()
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


class Memory:
    """Working, episodic and semantic memory of one workspace.

    ``on_event(kind, payload)``, if given, receives a ``memory_write`` or
    ``memory_recall`` payload after every write and recall (the same payloads the
    results' ``event()`` methods return), for the run's event log.
    """

    def __init__(self, *, uri: str, config: MemoryConfig, workspace: Path, data_dir: Path | None = None,
                 embedder: Embedder | None = None, api_base: str | None = None,
                 working: WorkingMemory | None = None, on_event: EventSink | None = None,
                 on_warning: Callable[[str], None] | None = None, max_file_bytes: int = 2_000_000,
                 chunk_embedder: Embedder | None = None) -> None:
        self.uri = uri
        self.config = config
        self.workspace = workspace.resolve()
        self.data_dir = data_dir
        self.working = working if working is not None else WorkingMemory()
        self.on_event = on_event
        #: Told (once per process and memory) when the store is unreachable and a run goes on without it.
        self.on_warning = on_warning
        self.max_file_bytes = max_file_bytes
        self.store = Store(uri, config.storage_options)
        self._warned = False
        self._drained = False
        self._origin: str | None = None
        self.last_recall: RecallResult | None = None
        self._embedder = embedder
        # One embedder given (tests, benchmarks) embeds everything; else each tier's from config.
        self._chunk_embedder = chunk_embedder or embedder
        self._api_base = api_base
        self._checked = False

    @classmethod
    def from_settings(cls, settings: Settings, *, working: WorkingMemory | None = None,
                      on_event: EventSink | None = None, embedder: Embedder | None = None,
                      on_warning: Callable[[str], None] | None = None) -> Memory:
        """Memory as configured: ``memory.uri`` (default ``<data_dir>/memory``) and ``memory.embedding_model``."""

        cfg = settings.config
        return cls(uri=memory_uri(settings), config=cfg.memory, workspace=settings.workspace,
                   data_dir=settings.data_dir, embedder=embedder, api_base=cfg.api_base or None,
                   working=working, on_event=on_event, on_warning=on_warning,
                   max_file_bytes=cfg.tools.max_file_bytes)

    @property
    def origin(self) -> str:
        """This workspace's identity in the ``origin`` column of file chunks (:func:`ingest.workspace_origin`)."""
        if self._origin is None:
            self._origin = ingest.workspace_origin(self.workspace)
        return self._origin

    # ------------------------------------------------------------------ embedder identity

    @property
    def embedder(self) -> Embedder:
        """The episodes' (and working memory's) embedder: ``memory.embedding_model``."""
        if self._embedder is None:
            self._embedder = get_embedder(self.config.embedding_model, self._api_base)
        return self._embedder

    @property
    def chunk_embedder(self) -> Embedder:
        """The chunks' embedder: ``memory.chunk_embedding_model`` (``auto``: builtin-static when the
        episodes' embedder is the builtin one, else the episodes' embedder)."""
        if self._chunk_embedder is None:
            spec = self.config.chunk_embedding_model.strip() or "auto"
            if spec == "auto":
                base = self.config.embedding_model.strip() or BUILTIN
                spec = STATIC if base in (BUILTIN, BUILTIN_NAME, MINILM) else ""
            self._chunk_embedder = self.embedder if not spec else get_embedder(spec, self._api_base)
        return self._chunk_embedder

    def embedder_for(self, name: str) -> Embedder:
        return self.chunk_embedder if name == CHUNKS else self.embedder

    def _rows(self, name: str) -> int:
        table = self.store.open(name)
        return 0 if table is None else int(table.count_rows())

    def _table_dim(self, name: str) -> int | None:
        table = self.store.open(name)
        return None if table is None else int(table.schema.field("vector").type.list_size)

    @staticmethod
    def _stored_embedder(meta: dict[str, str], name: str) -> tuple[str | None, str | None]:
        """(embedder, dim) recorded for a table; memory written before the chunks had an
        embedder of their own recorded one for both tables."""
        if name == CHUNKS and "chunks_embedder" in meta:
            return meta.get("chunks_embedder"), meta.get("chunks_dim")
        return meta.get("embedder"), meta.get("dim")

    def check_embedder(self) -> None:
        """Raise :class:`EmbedderMismatch` if a table's rows were embedded by another embedder
        than the one configured for it. Chunks embedded by the built-in MiniLM, when the built-in
        static embedder is configured for them, are re-embedded here instead (the named migration
        ``chunks_to_static_embedder``: static embedding is fast, ~1,000 chunks/s)."""
        if self._checked:
            return
        meta = self.store.meta()
        for name in (EPISODES, CHUNKS):
            emb = self.embedder_for(name)
            stored, stored_dim = self._stored_embedder(meta, name)
            dim = self._table_dim(name)
            wrong_name = stored is not None and stored != emb.name
            wrong_dim = emb.dim is not None and dim is not None and dim != emb.dim
            if not (wrong_name or wrong_dim) or self._rows(name) == 0:
                continue
            if name == CHUNKS and stored == BUILTIN_NAME and emb.name == STATIC_NAME:
                self._reembed(CHUNKS, migration="chunks_to_static_embedder")
                continue
            what = f"embedder {stored} ({stored_dim or '?'}-d)" if stored else f"{dim}-d vectors"
            key = "memory.chunk_embedding_model" if name == CHUNKS else "memory.embedding_model"
            raise EmbedderMismatch(
                f"memory at {self.uri} ({name}) was built with {what}, but {key} is {emb.name!r}; "
                f"run `agent memory reindex` to re-embed it with the configured embedder, or set {key} back"
            )
        self._checked = True

    def _prepare_write(self, dim: int, names: Sequence[str]) -> None:
        """Before the first write: record the embedder; drop empty tables of another dimension."""
        self.check_embedder()
        meta = self.store.meta()
        for name in names:
            emb = self.embedder_for(name)
            keys = ("chunks_embedder", "chunks_dim") if name == CHUNKS else ("embedder", "dim")
            if meta.get(keys[0]) != emb.name or meta.get(keys[1]) != str(dim):
                if self._table_dim(name) not in (None, dim):
                    self.store.drop(name)  # empty (check_embedder passed): safe to recreate
                values = {keys[0]: emb.name, keys[1]: str(dim), "schema_version": SCHEMA_VERSION}
                if name == CHUNKS and "embedder" not in meta and self._rows(EPISODES) == 0:
                    values.update(embedder=self.embedder.name)  # name the episodes' embedder too
                self.store.set_meta(values)
                meta = {**meta, **values}
            self.store.create(name, SCHEMAS[name](dim))

    def _embed(self, texts: Sequence[str], embedder: Embedder | None = None) -> Matrix:
        emb = embedder or self.embedder
        vecs = emb.embed(list(texts))
        if emb.dim is not None and vecs.shape[1] != emb.dim:
            raise EmbedderMismatch(f"embedder {emb.name} returned {vecs.shape[1]}-d vectors, expected {emb.dim}")
        return vecs

    def _show_build(self, progress: Progress | None) -> None:
        """The static embedder's one-time distillation (~10-30 s) is shown as a phase of its own."""
        from agentcli.memory.static import StaticEmbedder

        emb = self.chunk_embedder
        if progress is not None and isinstance(emb, StaticEmbedder):
            emb.on_build = lambda done, total: progress("preparing the static embedder (once)", done, total)

    def _embed_chunks(self, texts: Sequence[str]) -> Matrix:
        return self._embed(texts, self.chunk_embedder)

    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(kind, payload)

    def _after_write(self, name: str, progress: Progress | None = None) -> None:
        table = self.store.open(name)
        if table is None:
            return
        self.store.maybe_index(table, progress)
        self.store.maybe_optimize(table, name)

    # ------------------------------------------------------------------ episodic

    def record_episode(self, *, run_id: str, task: str, plan_summary: str, status: str, reason: str,
                       answer: str, cost_usd: float | None, time: datetime | str | None = None,
                       plan: str | None = None, wait: bool = True) -> WriteResult:
        """Record (or replace) the episode of run ``run_id``; writing it twice is harmless.

        The task is what gets embedded ("what happened when I did X?" asks about tasks);
        the full-text index covers task, plan, outcome and answer. ``plan`` is the run's final
        plan as JSON (:func:`agentcli.engine.runner.episode_plan`), recalled by :meth:`recall_plans`.

        ``wait=False`` (what a run does at its end) returns at once: the episode is put in a
        pending file under the data dir, and the ``memory_write`` event (``queued: true``) is
        emitted now, while the run's log is open. The next process that opens this memory (the
        next run's recall, any ``agent memory`` command) writes it first, so nothing of LanceDB or
        the embedder is loaded to end a run. Without a data dir to keep the file in, a background
        thread writes it, and the process waits for it at exit (or :func:`flush`).
        """
        if not run_id:
            raise UsageError("an episode needs a run id")
        # Memory is a file agentcli writes like any other: no secret value goes in.
        redact = Redactor()
        task, plan_summary, reason, answer = (_utf8(redact.text(x)) for x in (task, plan_summary, reason, answer))
        plan = _utf8(redact.text(plan)) if plan else plan
        fields = {"run_id": run_id, "task": task, "plan_summary": plan_summary, "status": status,
                  "reason": reason, "answer": answer, "cost_usd": cost_usd, "time": _iso(time), "plan": plan}
        if wait:
            self._drain_pending()
            return self._write_episode(fields)
        t0 = _perf()
        pending = self._save_pending(fields)
        result = WriteResult("episodic", [run_id], sources=[f"run {run_id}"], queued=True)
        if pending is not None:
            result.took_ms = _ms(t0)
            self._emit("memory_write", result.event())
            return result

        def write() -> None:
            try:
                self._write_episode(fields, emit=False)
            except Exception:
                return  # nowhere to keep it: lost, as the store was unreachable (the run's record has it)

        thread = threading.Thread(target=write, name=f"memory-episode-{run_id}", daemon=False)
        with _inflight_lock:
            live = [t for t in _inflight.get(self.uri, []) if t.is_alive()]
            _inflight[self.uri] = [*live, thread]
        thread.start()
        result.took_ms = _ms(t0)
        self._emit("memory_write", result.event())
        return result

    def _write_episode(self, fields: dict[str, Any], *, emit: bool = True) -> WriteResult:
        t0 = _perf()
        run_id, task = fields["run_id"], fields["task"]
        status, reason, answer = fields["status"], fields["reason"], fields["answer"]
        outcome = answer or reason
        text = "\n".join(p for p in (task, fields["plan_summary"], f"{status}: {outcome}" if outcome else status)
                         if p)
        vec = self._embed([task or text])
        self._prepare_write(int(vec.shape[1]), [EPISODES])
        import pyarrow as pa

        row = {"id": run_id, "time": fields["time"], "task": task, "plan_summary": fields["plan_summary"],
               "status": status, "reason": reason, "answer": answer, "cost_usd": fields["cost_usd"],
               "text": text, "vector": vec[0].tolist(), "plan": fields["plan"] or None}
        table = self.store.create(EPISODES, SCHEMAS[EPISODES](int(vec.shape[1])))
        data = pa.Table.from_pylist([row], schema=table.schema)
        res = upsert(table, data)
        self._after_write(EPISODES)
        result = WriteResult("episodic", [run_id], inserted=int(res.num_inserted_rows),
                             updated=int(res.num_updated_rows), embedded=1, sources=[f"run {run_id}"],
                             took_ms=_ms(t0))
        if emit:
            self._emit("memory_write", result.event())
        return result

    # ------------------------------------------------------------------ pending episodes

    def _pending_dir(self) -> Path | None:
        return None if self.data_dir is None else self.data_dir / PENDING_DIR

    def _save_pending(self, fields: dict[str, Any]) -> Path | None:
        folder = self._pending_dir()
        if folder is None:
            return None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{fields['run_id']}.json"
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"schema_version": PENDING_SCHEMA_VERSION, "uri": self.uri, **fields}),
                           encoding="utf-8")
            os.replace(tmp, path)
            return path
        except OSError:
            return None  # a read-only data dir: the background write alone

    def _drain_pending(self) -> None:
        """Wait for this process's writes to this memory, then write episodes other processes
        left pending (once per Memory)."""
        flush(uri=self.uri)
        if self._drained:
            return
        self._drained = True
        folder = self._pending_dir()
        if folder is None or not folder.is_dir():
            return
        for path in sorted(folder.glob("*.json")):
            try:
                fields = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(fields, dict):
                    raise ValueError("not a JSON object")
            except FileNotFoundError:
                continue  # another process wrote it meanwhile
            except (OSError, ValueError) as e:
                self._set_aside(path, e)
                continue
            if fields.pop("uri", self.uri) != self.uri or fields.pop("schema_version", None) != PENDING_SCHEMA_VERSION:
                continue
            try:
                self._write_episode({k: _utf8(v) for k, v in fields.items()})
            except (MemoryUnavailable, EmbedderMismatch):
                raise  # the store, not the episode: it stays pending for a later process
            except Exception as e:
                # This episode can never be written (a missing field, a value the store refuses):
                # left here it would fail every later command.
                self._set_aside(path, e)
                continue
            with contextlib.suppress(OSError):
                path.unlink()

    def _set_aside(self, path: Path, exc: Exception) -> None:
        """Move a pending episode that cannot be written to ``memory-pending/failed/``, with one
        warning (or delete it if it cannot be moved)."""
        aside = path.parent / PENDING_FAILED_DIR / path.name
        try:
            aside.parent.mkdir(exist_ok=True)
            os.replace(path, aside)
            where = f"moved to {aside}"
        except OSError:
            with contextlib.suppress(OSError):
                path.unlink()
            where = "deleted"
        if self.on_warning is not None:
            self.on_warning(f"the pending episode {path.name} could not be written to memory "
                            f"({type(exc).__name__}: {' '.join(str(exc).split())[:160]}); {where}")

    # ------------------------------------------------------------------ semantic

    def add_paths(self, paths: Sequence[str | Path], *, progress: Progress | None = None) -> WriteResult:
        """Ingest files and directories (workspace-confined) as chunks.

        Unchanged files are skipped, a changed file's chunks replace its old ones in one
        commit, identical chunks are stored once per file and embedded once, and files
        gone from a directory given here are forgotten. With a data dir (and
        ``memory.ingest_manifest``), the ingest manifest (:mod:`.manifest`) makes re-adding
        unchanged files a stat each, the store untouched.
        """
        t0 = _perf()
        if not paths:
            raise UsageError("give at least one path")
        chunking.check_paths(self.workspace, paths)  # bad input is refused before anything is written
        if self.data_dir is None or not self.config.ingest_manifest:
            return self._add_paths(paths, None, progress, t0)

        def waiting() -> None:
            if progress is not None:
                progress("waiting for another `agent memory add` of this workspace", 0, 1)

        with manifest_mod.locked(self.data_dir, self.uri, self.origin, on_wait=waiting):
            man = manifest_mod.Manifest.load(self.data_dir, self.uri, self.origin)
            return self._add_paths(paths, man, progress, t0)

    def _add_paths(self, paths: Sequence[str | Path], man: manifest_mod.Manifest | None,
                   progress: Progress | None, t0: float) -> WriteResult:
        started_ns = time.time_ns()  # before any file is looked at (racy timestamps: see .manifest)
        stats: dict[str, os.stat_result] = {}
        known = None if man is None else (lambda rel, st: man.known_hash(rel, st) is not None)
        files, skipped = chunking.resolve_sources(self.workspace, paths, self.data_dir,
                                                  max_file_bytes=self.max_file_bytes, stats=stats, known=known)
        result = WriteResult("semantic", skipped=skipped)
        dirs = [chunking.source_key(self.workspace, str(p)) for p in paths
                if (self.workspace / p).resolve().is_dir()]
        vouched: dict[str, str] = {}
        if man is not None:
            for _path, rel in files:
                h = man.known_hash(rel, stats[rel])
                if h is not None:
                    vouched[rel] = h
            # As the store-side check decides (ingest.stale_sources): a recorded file is gone when
            # it is no longer a file, not when it is only no longer ingested.
            present = {rel for _path, rel in files}
            gone = {rel for rel in man.under(dirs) - present
                    if not chunking.name_path(self.workspace, rel).is_file()}
            if (len(vouched) == len(files) and not gone and man.embedder == self.chunk_embedder.name
                    and man.fingerprint and man.fingerprint == self.store.fingerprint(CHUNKS)):
                # Nothing changed here, and nothing was committed to the chunks since this
                # workspace's last ingest: the store holds what that ingest left.
                result.unchanged = len(files)
                result.took_ms = _ms(t0)
                self._emit("memory_write", result.event())
                return result
        self._show_build(progress)
        self.check_embedder()
        existing = ingest.existing_chunks(self.store, [rel for _path, rel in files], self.origin)
        masked: dict[str, int] = {}
        planned = ingest.plan_files(files, _now_iso(), self.origin, progress=progress, stored=existing,
                                    known=vouched, masked=masked)
        todo: dict[str, list[dict[str, Any]]] = {}
        for rel, (fhash, rows) in planned.items():
            old = existing.get(rel, {})
            if rows is None:  # same file hash as stored: not even chunked again
                result.unchanged += 1
                continue
            if not old and not rows:
                result.unchanged += 1  # an empty file, never stored: nothing to do
                continue
            if old and set(old) == {r["id"] for r in rows} and all(v == fhash for v in old.values()):
                result.unchanged += 1
                continue
            todo[rel] = rows
            result.masked += masked.get(rel, 0)
        stale, stored = ingest.stale_sources(self.store, self.workspace, dirs, set(planned), self.origin)
        if todo or stale:
            total = sum(1 for rel, rows in todo.items() for r in rows if r["id"] not in existing.get(rel, {}))
            ingest.embed_and_write(self.store, ingest.write_groups(todo, stale), total, result,
                                   embed=self._embed_chunks,
                                   prepare=lambda dim: self._prepare_write(dim, [CHUNKS]),
                                   progress=progress, origin=self.origin)
            self._after_write(CHUNKS, progress)
        if man is not None:
            # What this workspace now has under the paths given is what the store holds for it.
            for rel in man.under(dirs) | set(stale):
                man.files.pop(rel, None)
            for rel in stored - set(stale) - set(planned):
                man.hold(rel)  # still stored, not read now (ignored, unreadable): its deletion must be seen
            for rel, (fhash, _rows) in planned.items():
                man.record(rel, stats[rel], fhash, started_ns)
            man.embedder = self.chunk_embedder.name
            man.fingerprint = self.store.fingerprint(CHUNKS) or ""
            man.save()
        result.sources = sorted(todo) + sorted(stale)
        result.took_ms = _ms(t0)
        self._emit("memory_write", result.event())
        return result

    def add_text(self, text: str, *, progress: Progress | None = None) -> WriteResult:
        """Remember a note (``agent memory add --text``); the same note twice is stored once."""
        t0 = _perf()
        if not text.strip():
            raise UsageError("the text is empty")
        raw, text = text, Redactor().text(text)
        self.check_embedder()
        rows = ingest.note_rows(text, _now_iso())
        result = WriteResult("semantic", sources=["text"])
        if text != raw:
            result.masked = sum(REDACTED in r["text"] for r in rows)
        table = self.store.open(CHUNKS)
        if table is not None:
            have = set(table.search().where(sql_in("id", [r["id"] for r in rows])).select(["id"])
                       .limit(None).to_arrow().column("id").to_pylist())
            result.unchanged = len(have)
            rows = [r for r in rows if r["id"] not in have]
        if rows:
            vecs = self._embed_chunks([ingest.chunk_embed_text(r["source"], r["kind"], r["text"]) for r in rows])
            for r, v in zip(rows, vecs, strict=True):
                r["vector"] = v.tolist()
            self._prepare_write(int(vecs.shape[1]), [CHUNKS])
            import pyarrow as pa

            table = self.store.open(CHUNKS)
            assert table is not None
            data = pa.Table.from_pylist(rows, schema=table.schema)
            res = upsert(table, data, update=False)
            result.inserted = int(res.num_inserted_rows)
            result.ids = [r["id"] for r in rows]
            result.embedded = len(rows)
            self._after_write(CHUNKS, progress)
        result.took_ms = _ms(t0)
        self._emit("memory_write", result.event())
        return result

    # ------------------------------------------------------------------ recall

    def recall(self, query: str, *, tiers: Sequence[Tier] = TIERS, k: int | None = None,
               min_score: float | None = None) -> RecallResult:
        """Search ``tiers`` concurrently; hits merged best first, duplicates removed.

        Per tier, k and the score threshold come from config (``episodic_k``,
        ``episodic_threshold``, ``semantic_k``, ``semantic_threshold``; working memory
        uses :data:`~agentcli.memory.recall.WORKING_K` / ``WORKING_THRESHOLD``).
        ``k`` overrides every tier's k and caps the merged list; ``min_score`` overrides
        every threshold.
        """
        check_text(query, "the memory query")
        t0 = _perf()
        wanted = tuple(t for t in TIERS if t in set(tiers))
        unknown = set(tiers) - set(TIERS)
        if unknown:
            raise UsageError(f"unknown memory tier(s): {', '.join(sorted(unknown))}")
        query = query.strip()
        if "episodic" in wanted:
            self._drain_pending()
        # Only tiers holding something are searched; with none, nothing loads at all
        # (a fresh workspace plans without paying for lancedb and the embedder).
        tables: dict[Tier, str] = {"episodic": EPISODES, "semantic": CHUNKS}
        early = self._embed_early(query, [t for t in wanted if t != "working" and self.store.may_have(tables[t])])
        live = [t for t in wanted if (len(self.working) > 0 if t == "working"
                                      else self.store.open(tables[t]) is not None)]
        if not query or not live:
            result = RecallResult(query, wanted, [], _ms(t0), {t: 0 for t in wanted})
            self.last_recall = result
            self._emit("memory_recall", result.event())
            return result
        if "episodic" in live or "semantic" in live:
            self.check_embedder()
        # Each tier's query vector from its own embedder (the same one computed once).
        qvecs: dict[int, Matrix] = {}
        tier_vec: dict[Tier, Matrix] = {}
        for tier in live:
            emb = self.chunk_embedder if tier == "semantic" else self.embedder
            if id(emb) not in qvecs:
                qvecs[id(emb)] = (early[id(emb)].result() if id(emb) in early else self._embed([query], emb))[0]
            tier_vec[tier] = qvecs[id(emb)]
        c = self.config
        plan: dict[Tier, tuple[int, float]] = {
            "working": (recall.WORKING_K, recall.WORKING_THRESHOLD),
            "episodic": (c.episodic_k, c.episodic_threshold),
            "semantic": (c.semantic_k, c.semantic_threshold),
        }
        per_tier: dict[Tier, list[MemoryHit]] = {t: [] for t in wanted}

        def args(tier: Tier) -> tuple[Tier, str, Matrix, int, float]:
            tk, thr = plan[tier]
            return (tier, query, tier_vec[tier], tk if k is None else k, thr if min_score is None else min_score)

        if len(live) == 1:  # no thread pool for one tier (a pool costs more than a small search)
            per_tier[live[0]] = self._search_tier(*args(live[0]))
        else:
            with ThreadPoolExecutor(max_workers=len(live), thread_name_prefix="recall") as pool:
                futures = {tier: pool.submit(self._search_tier, *args(tier)) for tier in live}
                for tier, fut in futures.items():
                    per_tier[tier] = fut.result()
        hits = recall.merge(per_tier, k)
        result = RecallResult(query, wanted, hits, _ms(t0), {t: len(h) for t, h in per_tier.items()})
        self.last_recall = result
        self._emit("memory_recall", result.event())
        return result

    def _embed_early(self, query: str, tiers: Sequence[Tier]) -> dict[int, Future[Matrix]]:
        """The query's vector for each of these tiers' embedders, computed in the background while
        the tables open: in a new process lancedb's import (~0.35 s) and the embedders' loading
        (MiniLM ~0.2-0.4 s) overlap instead of adding up. Keyed by ``id(embedder)``; a tier found
        empty just leaves its vector unused (on object storage, where a table's existence costs a
        round trip, both tiers' embedders are loaded whether or not both tables exist)."""
        out: dict[int, Future[Matrix]] = {}
        if not query:
            return out
        for tier in tiers:
            emb = self.chunk_embedder if tier == "semantic" else self.embedder
            if id(emb) not in out:
                out[id(emb)] = recall.background(self._embed, [query], emb)
        return out

    def _search_tier(self, tier: Tier, query: str, qvec: Matrix, k: int, threshold: float) -> list[MemoryHit]:
        if tier == "working":
            return self.working.search(query, qvec, self.embedder, k=k, threshold=threshold,
                                       fts_boost=recall.FTS_BOOST)
        if tier == "episodic":
            rows = recall.search_table(self.store, EPISODES, query, qvec, k=k, threshold=threshold,
                                       columns=recall.EPISODE_COLUMNS)
            return recall.episode_hits(rows)
        # Twice as many rows as wanted: identical chunks under other paths collapse into one.
        rows = recall.search_table(self.store, CHUNKS, query, qvec, k=2 * k, threshold=threshold,
                                   columns=recall.CHUNK_COLUMNS)
        return recall.chunk_hits(rows)[:k]

    def recall_for_planner(self, task: str) -> list[str]:
        """Short lines for the planner's prompt, best first, each naming its source::

            episode 20261124-013000-a1b2c3 (COMPLETE): fix the parser tests → fixed tokenizer
            src/parser.py:10-30: def parse(...

        Searches the episodic and semantic tiers (working memory holds only the task at
        planning time). Raises :class:`EmbedderMismatch` like every other recall; callers
        that would rather plan without memory catch :class:`~agentcli.errors.AgentError`.
        """
        try:
            result = self.recall(task, tiers=("episodic", "semantic"))
        except EmbedderMismatch:
            raise
        except Exception as e:
            self._unavailable(task, e)
            return []
        return [h.planner_line() for h in result.hits[:PLANNER_ITEMS]]

    def _unavailable(self, query: str, exc: Exception) -> None:
        """A run goes on without memory: a ``memory_recall`` event with the error, one warning."""
        err = exc if isinstance(exc, MemoryUnavailable) else MemoryUnavailable(
            f"memory at {self.uri} failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})")
        self._emit("memory_recall", {"query": query, "tiers": ["episodic", "semantic"], "hits": [],
                                     "per_tier": {}, "took_ms": 0.0, "error": err.one_line(),
                                     "unavailable": True})
        if not self._warned and self.on_warning is not None:
            self._warned = True
            self.on_warning(f"{err.one_line()}; going on without memory")

    def recall_plans(self, task: str, accept: Callable[[PastPlan], bool] | None = None, *, k: int | None = None,
                     min_score: float | None = None) -> list[PastPlan]:
        """The plans of past runs that completed, for tasks similar to ``task``: best first, at
        most ``k`` (``memory.past_plans``), each at least ``min_score``
        (``memory.past_plan_threshold``; ``(1 + cosine) / 2`` of the tasks' vectors).

        "What happened when I did X?", put to work: the planner shows a small model these as
        examples. Only COMPLETE runs recorded with their plan count (a failed or cut-short run
        is no example to follow); one plan per distinct task, the newest; only those ``accept``
        (the planner's say) takes. Emits a ``memory_recall`` event (tiers ``["episodic"]``,
        ``purpose: plans``) naming the plans returned.
        """
        try:
            return self._recall_plans(task, accept, k=k, min_score=min_score)
        except EmbedderMismatch:
            raise
        except Exception as e:
            self._unavailable(task, e)
            return []

    def _recall_plans(self, task: str, accept: Callable[[PastPlan], bool] | None, *, k: int | None,
                      min_score: float | None) -> list[PastPlan]:
        t0 = _perf()
        self._drain_pending()
        k = self.config.past_plans if k is None else k
        min_score = self.config.past_plan_threshold if min_score is None else min_score
        task = task.strip()
        table = self.store.open(EPISODES)
        out: list[PastPlan] = []
        if task and table is not None and k > 0 and "plan" in table.schema.names:
            self.check_embedder()
            qvec = self._embed([task])[0]
            q = (table.search(qvec, vector_column_name="vector").distance_type("cosine")
                 .where("status = 'COMPLETE' AND plan IS NOT NULL", prefilter=True)
                 .select(["id", "time", "task", "plan"]).limit(max(recall.MIN_CANDIDATES, 4 * k)))
            if self.store.has_vector_index(table):  # as every recall: exact cosines over the ANN's candidates
                q = q.refine_factor(REFINE_FACTOR)
            rows = q.to_list()
            seen: set[str] = set()
            scored = [(recall.cos_score(1.0 - float(r["_distance"])), r) for r in rows]
            scored.sort(key=lambda x: str(x[1].get("time") or ""), reverse=True)
            scored.sort(key=lambda x: -round(x[0], 6))  # stable: the newest first among equal scores
            for score, r in scored:
                key = " ".join(str(r["task"]).lower().split())
                if score < min_score or key in seen:
                    continue
                seen.add(key)
                past = PastPlan(run_id=r["id"], task=r["task"], plan=r["plan"], score=score,
                                time=str(r.get("time") or ""))
                if accept is not None and not accept(past):
                    continue
                out.append(past)
                if len(out) >= k:
                    break
        hits = [MemoryHit("episodic", p.run_id, p.score, p.task, f"run {p.run_id}") for p in out]
        result = RecallResult(task, ("episodic",), hits, _ms(t0), {"episodic": len(out)})
        self._emit("memory_recall", {**result.event(), "purpose": "plans"})
        return out

    # ------------------------------------------------------------------ list / forget / stats

    def list_items(self, tier: Tier | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        """Stored items, newest episodes first then chunks by source and line (no vectors)."""
        out: list[dict[str, Any]] = []
        if tier in (None, "episodic"):
            self._drain_pending()
        if tier in (None, "working"):
            out += [{"tier": "working", "id": it.id, "source": f"working:{it.kind}", "time": None,
                     "text": it.text} for it in self.working.items()]
        if tier in (None, "episodic") and (t := self.store.open(EPISODES)) is not None:
            rows = (t.search().select(["id", "time", "status", "task", "answer", "reason", "cost_usd"])
                    .limit(None).to_arrow().to_pylist())
            rows.sort(key=lambda r: r["time"] or "", reverse=True)
            out += [{"tier": "episodic", "id": r["id"], "source": f"run {r['id']}", "time": r["time"],
                     "status": r["status"], "cost_usd": r["cost_usd"],
                     "text": f"{r['task']} → {r['answer'] or r['reason']}"} for r in rows[:limit]]
        if tier in (None, "semantic") and (t := self.store.open(CHUNKS)) is not None:
            rows = (t.search().select(["id", "source", "kind", "start_line", "end_line", "added_at", "text"])
                    .limit(None).to_arrow().to_pylist())
            rows.sort(key=lambda r: (r["source"], r["start_line"]))
            out += [{"tier": "semantic", "id": r["id"], "source": recall.chunk_source(r), "time": r["added_at"],
                     "text": r["text"]} for r in rows[:limit]]
        return out

    def forget(self, item_id: str) -> int:
        """Delete the episode or chunk with this id; returns rows deleted (0 if none)."""
        check_text(item_id, "the memory id")
        deleted = 0
        pairs: tuple[tuple[str, Tier], ...] = ((EPISODES, "episodic"), (CHUNKS, "semantic"))
        for name, tier in pairs:
            table = self.store.open(name)
            if table is None:
                continue
            n = delete_where(table, f"id = {sql_str(item_id)}")
            if n:
                deleted += n
                self._after_write(name)
                self._emit("memory_write", WriteResult(tier, [item_id], deleted=n).event())
        return deleted

    def forget_source(self, path: str) -> int:
        """Delete every chunk of a file, or of every file under a directory (``text`` for notes)."""
        check_text(path, "the source path")
        table = self.store.open(CHUNKS)
        if table is None:
            return 0
        key = "text" if path == "text" else chunking.source_key(self.workspace, path)
        where = f"source = {sql_str(key)}"
        if key == ".":
            where = "kind = 'file'"
        elif key != "text":
            where += f" OR starts_with(source, {sql_str(key + '/')})"
        if key != "text":  # this workspace's files only: a shared memory holds other checkouts' too
            where = f"({where}) AND {ingest.origin_filter(self.origin)}"
        deleted = delete_where(table, where)
        self._after_write(CHUNKS)
        self._emit("memory_write", WriteResult("semantic", deleted=deleted, sources=[key]).event())
        return deleted

    def stats(self) -> MemoryStats:
        """Rows per tier, embedder and dimension, versions, indices and size on disk."""
        meta = self.store.meta()
        tables = {}
        for name in (EPISODES, CHUNKS):
            st = self.store.table_stats(name)
            if st is not None:
                tables[name] = st
        dim = meta.get("dim")
        cemb, cdim = self._stored_embedder(meta, CHUNKS) if CHUNKS in tables else (None, None)
        return MemoryStats(uri=self.uri, embedder=meta.get("embedder"), dim=int(dim) if dim else None,
                           configured_embedder=self.config.embedding_model, tables=tables,
                           size_on_disk=self.store.size_on_disk(), working_rows=len(self.working),
                           chunk_embedder=cemb, chunk_dim=int(cdim) if cdim else None,
                           configured_chunk_embedder=self.config.chunk_embedding_model)

    def check_connection(self) -> str:
        """Open the store and read its table list and row counts (``agent doctor``); raises
        :class:`MemoryUnavailable` (one line) when it cannot be reached."""
        if self.store.is_local:
            Path(self.uri.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        try:
            names = set(self.store.table_names())
            counts = {name: t.count_rows() for name in (EPISODES, CHUNKS)
                      if name in names and (t := self.store.open(name)) is not None}
        except MemoryUnavailable:
            raise
        except Exception as e:  # a check reports in one line, it does not crash
            raise MemoryUnavailable(f"memory at {self.uri} failed ({type(e).__name__}: "
                                    f"{' '.join(str(e).split())[:200]})") from None
        where = "object storage" if not self.store.is_local else "local directory"
        episodes, chunks = counts.get(EPISODES, 0), counts.get(CHUNKS, 0)
        return (f"{self.uri} ({where}) opens: {episodes} episode{'' if episodes == 1 else 's'}, "
                f"{chunks} chunk{'' if chunks == 1 else 's'}")

    def optimize(self) -> None:
        """Compact every table now and drop versions older than the cleanup age."""
        for name in (EPISODES, CHUNKS):
            table = self.store.open(name)
            if table is not None:
                self.store.maybe_optimize(table, name, force=True)

    # ------------------------------------------------------------------ reindex

    def reindex(self, *, progress: Progress | None = None) -> dict[str, int]:
        """Re-embed every episode and chunk with the embedder configured for its table; returns
        rows per table.

        Tables are rewritten whole (their vector size may change). Writes made by another
        process while a reindex runs may be lost: run it alone.
        """
        self._show_build(progress)
        counts = {name: self._reembed(name, progress=progress) for name in (EPISODES, CHUNKS)
                  if self.store.open(name) is not None}
        self._checked = False
        self._emit("memory_write", WriteResult("semantic", updated=sum(counts.values()),
                                               embedded=sum(counts.values()), sources=list(counts)).event())
        return counts

    def _reembed(self, name: str, *, progress: Progress | None = None, migration: str | None = None) -> int:
        """Rewrite one table with every row embedded by its configured embedder; returns rows."""
        import pyarrow as pa

        table = self.store.open(name)
        if table is None:
            return 0
        emb = self.embedder_for(name)
        cols = [f.name for f in table.schema if f.name != "vector"]
        rows = table.search().select(cols).limit(None).to_arrow().to_pylist()
        phase = f"re-embedding {name}"
        if progress is not None:
            progress(phase, 0, len(rows))
        for i in range(0, len(rows), ingest.EMBED_BATCH):
            batch = rows[i:i + ingest.EMBED_BATCH]
            texts = [(r["task"] or r["text"]) if name == EPISODES
                     else ingest.chunk_embed_text(r["source"], r["kind"], r["text"]) for r in batch]
            for r, v in zip(batch, self._embed(texts, emb), strict=True):
                r["vector"] = v.tolist()
            if progress is not None:
                progress(phase, min(i + len(batch), len(rows)), len(rows))
        dim = emb.dim or (len(rows[0]["vector"]) if rows else int(self._embed(["dimension probe"], emb).shape[1]))
        data = pa.Table.from_pylist(rows, schema=SCHEMAS[name](dim))
        table = self.store.overwrite(name, data)
        self.store.maybe_index(table, progress)
        self.store.maybe_optimize(table, name, force=True)
        keys = ("chunks_embedder", "chunks_dim") if name == CHUNKS else ("embedder", "dim")
        values = {keys[0]: emb.name, keys[1]: str(dim), "schema_version": SCHEMA_VERSION}
        if migration is not None:
            values[f"migration:{migration}"] = _now_iso()
            self._emit("memory_write", WriteResult("semantic", updated=len(rows), embedded=len(rows),
                                                   sources=[f"migration {migration}"]).event())
        self.store.set_meta(values)
        return len(rows)


def _utf8(value: Any) -> Any:
    """A value as the store can take it: a string with a file name's undecodable bytes escaped."""
    return chunking.escape_undecodable(value) if isinstance(value, str) else value


def _perf() -> float:
    return time.perf_counter()


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def open_memory(settings: Settings, *, working: WorkingMemory | None = None,
                on_event: EventSink | None = None, on_warning: Callable[[str], None] | None = None) -> Memory:
    """:meth:`Memory.from_settings`; cheap (nothing loads until first use)."""
    return Memory.from_settings(settings, working=working, on_event=on_event, on_warning=on_warning)


def record_episode(settings: Settings, *, run_id: str, task: str, plan_summary: str, status: str, reason: str,
                   answer: str, cost_usd: float | None, time: datetime | str | None = None,
                   on_event: EventSink | None = None, plan: str | None = None, wait: bool = True) -> WriteResult:
    """Record a run's episode in the configured memory (one call; ``wait`` as in :meth:`Memory.record_episode`)."""
    return open_memory(settings, on_event=on_event).record_episode(
        run_id=run_id, task=task, plan_summary=plan_summary, status=status, reason=reason, answer=answer,
        cost_usd=cost_usd, time=time, plan=plan, wait=wait)
