"""LanceDB plumbing: the tables, their schemas, indices, upkeep and the embedder check.

Three tables live at ``memory.uri`` (a local directory by default; any LanceDB URI
such as ``s3://bucket/prefix`` is passed through unchanged):

``episodes``  one row per run (id = run id)
``chunks``    one row per knowledge chunk (id = hash of source and content)
``meta``      key/value rows: the embedder's name and dimension, the schema version

Schema changes are append-only named migrations (:data:`MIGRATIONS`), applied when a
table is opened: a memory written by an older agentcli keeps working, its rows intact.

lancedb costs ~1 s to import (~0.35 s with its REST client postponed by
:mod:`.lazy_lance`), so it is imported here, on first use, never at module import
(``agent --help`` must stay fast).

Concurrency: every connection reads with ``read_consistency_interval=0``, so each
operation sees the latest committed version (other processes' writes included) and
never a version that compaction may have cleaned up. Lance commits are optimistic
and retried on conflict, so two processes writing at once lose nothing.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from agentcli.errors import AgentError, ExitCode, WorkspaceError
from agentcli.memory.types import Progress, TableStats

EPISODES = "episodes"
CHUNKS = "chunks"
META = "meta"
SCHEMA_VERSION = "3"
T = TypeVar("T")

#: Below this many rows a flat (exact) scan is fast enough (~12 ms for the vector search at
#: 10k rows on 2 cores, growing with the rows); from it on an IVF_HNSW_SQ index is built (5 s at
#: 10k rows, ~60 s at 100k on 2 busy cores) and the search takes 4-6 ms at 10k or
#: 100k rows, recall@10 vs exact 0.98, 0.99 with the refine step below (bench/RESULTS.md).
ANN_MIN_ROWS = 10_000
#: With an index, candidates are re-ranked on exact vectors: scores stay exact cosines.
REFINE_FACTOR = 4
#: The HNSW graphs' build effort (lance's default is 300): at 100k rows, 100 built in half the time
#: (58 s against 101-129 s on 2 busy cores) with the same recall@10 after the exact re-rank (0.990;
#: 0.971 against 0.976 without it). Fewer links per node (m 12, not 20) lost recall (0.985).
HNSW_EF_CONSTRUCTION = 100
#: Rows an index may leave unindexed before compaction folds them in. Rows written after an index
#: was built are searched flat beside it: a full-text index made on the empty table and 3,159
#: chunks added after it cost ~50 ms of every recall, against ~5 ms once they were indexed.
MAX_UNINDEXED_ROWS = 1_000
#: Compaction runs once this many small fragments (one per write, roughly) pile up, or
#: this many versions exist, and at most every OPTIMIZE_MIN_INTERVAL per process.
OPTIMIZE_SMALL_FRAGMENTS = 8
OPTIMIZE_MAX_VERSIONS = 64
OPTIMIZE_MIN_INTERVAL = 30.0
#: Versions older than this are removed by compaction. Readers always read the latest
#: version (see the module docstring), so this only has to outlast a write in flight.
CLEANUP_OLDER_THAN = timedelta(minutes=10)


class EmbedderMismatch(AgentError):
    """The memory was built with another embedder than the configured one."""

    exit_code = ExitCode.USAGE


class MemoryUnavailable(AgentError):
    """The store at ``memory.uri`` cannot be reached (object storage down, no credentials,
    no such bucket). A run goes on without memory; ``agent memory ...`` fails with exit 1."""

    exit_code = ExitCode.FAILED


#: Object-store options set for remote URIs unless ``memory.storage_options`` says otherwise:
#: an unreachable store fails in seconds, not after the object store's default 3 minutes
#: of retries (a run waits for its recall).
REMOTE_DEFAULTS = {"connect_timeout": "3s", "timeout": "30s", "client_max_retries": "2",
                   "client_retry_timeout": "10"}
#: Keys that hold secrets: refused in ``memory.storage_options`` (they belong in the AWS_*
#: environment variables or the AWS credentials chain, never in a config file).
SECRET_OPTION_KEYS = ("secret", "token", "password", "access_key", "credential", "sas", "account_key")


def check_storage_options(options: dict[str, str]) -> dict[str, str]:
    """``memory.storage_options`` lower-cased, refusing secrets (see :data:`SECRET_OPTION_KEYS`)."""
    from agentcli.errors import ConfigError

    out = {}
    for key, value in options.items():
        k = key.strip().lower()
        if any(word in k for word in SECRET_OPTION_KEYS):
            raise ConfigError(f"memory.storage_options.{key} looks like a credential: set it in the "
                              "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), "
                              "not in a config file")
        out[k] = str(value)
    return out


def unavailable(uri: str, exc: BaseException) -> MemoryUnavailable:
    """A one-line :class:`MemoryUnavailable` from a lancedb/object-store error."""
    text = " ".join(str(exc).split())
    # The object store's errors are long Rust debug dumps; their first clause says what failed.
    for marker in ("RetryError", "Failed to connect", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                   "AccessDenied", "Connection refused", "dns error", "timed out"):
        if marker in text:
            text = marker if marker != "RetryError" else "no answer after retries"
            break
    return MemoryUnavailable(f"memory at {uri} is unreachable ({type(exc).__name__}: {text[:160]})")


#: Our own retries of a write that lost a commit race (lance retries a few times itself).
COMMIT_RETRIES = 6


def is_commit_conflict(exc: BaseException) -> bool:
    """Lance's "Retryable commit conflict ... preempted by concurrent transaction", and its
    "Incompatible transaction: ... incompatible with concurrent transaction" (two processes creating
    the same table on object storage, where the second create lands as an Overwrite): both are
    resolved by doing the write again on the latest version."""
    text = str(exc)
    return ("commit conflict" in text.lower() or "preempted by concurrent transaction" in text
            or "incompatible with concurrent transaction" in text)


def retry_conflicts(fn: Callable[[], T]) -> T:
    """Run a write, retrying when a concurrent commit (another process's write or
    compaction) preempted it. Every write here is idempotent, so a retry is safe."""
    for attempt in range(COMMIT_RETRIES):
        try:
            return fn()
        except (RuntimeError, OSError, ValueError) as exc:
            if not is_commit_conflict(exc) or attempt == COMMIT_RETRIES - 1:
                raise
            time.sleep(random.uniform(0.02, 0.1) * (2 ** attempt))
    raise AssertionError("unreachable")


def upsert(table: Any, data: Any, *, key: str = "id", update: bool = True,
           delete_missing_where: str | None = None) -> Any:
    """merge_insert on ``key`` (retried on commit conflicts): insert new rows, update matched
    ones if ``update``, and delete rows matching ``delete_missing_where`` that are not in ``data``."""
    def run() -> Any:
        m = table.merge_insert(key)
        if update:
            m = m.when_matched_update_all()
        m = m.when_not_matched_insert_all()
        if delete_missing_where is not None:
            m = m.when_not_matched_by_source_delete(delete_missing_where)
        return m.execute(data)

    return retry_conflicts(run)


def delete_where(table: Any, where: str) -> int:
    """Delete rows matching ``where`` (retried on commit conflicts); returns how many. Nothing
    matching writes nothing (a delete of no rows would still commit a new table version)."""
    if not table.count_rows(where):
        return 0
    return int(retry_conflicts(lambda: table.delete(where)).num_deleted_rows)


def sql_str(value: str) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def sql_in(column: str, values: Iterable[str]) -> str:
    vals = list(values)
    return f"{column} IN ({', '.join(sql_str(v) for v in vals)})" if vals else "false"


def _lancedb() -> Any:
    # The Rust core prints a WARN line on create_table(mode="overwrite") unless told otherwise.
    os.environ.setdefault("LANCEDB_LOG", "error")
    from agentcli.memory import lazy_lance

    # Its REST namespace client (~0.5 s of the import) waits until something uses it.
    lazy_lance.install()
    with lazy_lance.deferred_model_builds():
        import lancedb

    return lancedb


def episodes_schema(dim: int) -> Any:
    import pyarrow as pa

    return pa.schema([
        pa.field("id", pa.string(), nullable=False),
        pa.field("time", pa.string()),
        pa.field("task", pa.string()),
        pa.field("plan_summary", pa.string()),
        pa.field("status", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("answer", pa.string()),
        pa.field("cost_usd", pa.float64()),
        pa.field("text", pa.string()),
        pa.field("vector", pa.list_(pa.float32(), dim)),
        # Schema 2: the run's final plan as JSON (agentcli.engine.runner.episode_plan), so that a later
        # task like this one can be shown how it was done; null for runs recorded before.
        pa.field("plan", pa.string()),
    ])


def chunks_schema(dim: int) -> Any:
    import pyarrow as pa

    return pa.schema([
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("start_line", pa.int32()),
        pa.field("end_line", pa.int32()),
        pa.field("text", pa.string()),
        pa.field("content_hash", pa.string()),
        pa.field("file_hash", pa.string()),
        pa.field("added_at", pa.string()),
        pa.field("vector", pa.list_(pa.float32(), dim)),
        # Schema 3: the checkout a file chunk comes from (agentcli.memory.ingest.workspace_origin), so
        # workspaces sharing one memory keep their files apart; null for notes and older rows.
        pa.field("origin", pa.string()),
    ])


def meta_schema() -> Any:
    import pyarrow as pa

    return pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.string())])


SCHEMAS = {EPISODES: episodes_schema, CHUNKS: chunks_schema}


def _episodes_add_plan(table: Any) -> None:
    table.add_columns({"plan": "CAST(NULL AS STRING)"})


def _chunks_add_origin(table: Any) -> None:
    table.add_columns({"origin": "CAST(NULL AS STRING)"})


#: Append-only: ``(table, name, column it adds, migration)``. A migration runs when its table is
#: opened without its column; never edit or reorder one that has shipped, add a new one.
MIGRATIONS: tuple[tuple[str, str, str, Callable[[Any], None]], ...] = (
    (EPISODES, "episodes_add_plan", "plan", _episodes_add_plan),
    (CHUNKS, "chunks_add_origin", "origin", _chunks_add_origin),
)


def migrate(name: str, table: Any) -> list[str]:
    """Apply the migrations ``table`` lacks; returns their names. A concurrent process doing the
    same first is fine (its column is there on the re-check); a read-only store is left as it is
    (readers then do without the new columns)."""
    done = []
    for table_name, migration, column, fn in MIGRATIONS:
        if table_name != name or column in table.schema.names:
            continue
        try:
            retry_conflicts(functools.partial(fn, table))
        except Exception:
            with contextlib.suppress(Exception):
                table.checkout_latest()
            if column not in table.schema.names:
                continue
        done.append(migration)
    return done


class Store:
    """One LanceDB database: connection, tables, indices and upkeep. Thread-safe."""

    def __init__(self, uri: str, storage_options: dict[str, str] | None = None) -> None:
        self.uri = uri
        self.storage_options = check_storage_options(storage_options or {})
        self._db: Any = None
        self._tables: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._last_optimize: dict[str, float] = {}

    @property
    def is_local(self) -> bool:
        return "://" not in self.uri or self.uri.startswith("file://")

    @property
    def db(self) -> Any:
        with self._lock:
            if self._db is None:
                if self.is_local:
                    path = Path(self.uri.removeprefix("file://"))
                    try:
                        path.mkdir(parents=True, exist_ok=True)
                    except OSError as e:
                        raise WorkspaceError(f"cannot create the memory directory {path}: {e.strerror}") from None
                options = None if self.is_local else {**REMOTE_DEFAULTS, **self.storage_options}
                try:
                    self._db = _lancedb().connect(self.uri, read_consistency_interval=timedelta(0),
                                                  storage_options=options)
                except (OSError, RuntimeError, ValueError) as e:
                    raise unavailable(self.uri, e) from None
            return self._db

    # ------------------------------------------------------------------ tables

    def exists(self) -> bool:
        """False for a local directory that was never written (remote URIs: assumed to exist)."""
        return not self.is_local or Path(self.uri.removeprefix("file://")).is_dir()

    def may_have(self, name: str) -> bool:
        """False only when table ``name`` surely does not exist (a local store without its
        directory); answered without importing lancedb or a round trip."""
        if name in self._tables:
            return True
        if not self.is_local:
            return True
        return (Path(self.uri.removeprefix("file://")) / f"{name}.lance").is_dir()

    def table_names(self) -> list[str]:
        """The tables at the URI (a round trip to object storage for a remote one)."""
        try:
            return list(self.db.list_tables().tables)
        except (OSError, RuntimeError, ValueError) as e:
            if self.is_local:
                raise
            raise unavailable(self.uri, e) from None

    def open(self, name: str) -> Any | None:
        """The table, or None if it does not exist yet."""
        with self._lock:
            if name in self._tables:
                return self._tables[name]
            if self._db is None and not self.exists():
                return None  # nothing stored yet: no need to import lancedb (~1.3 s) to know
            try:
                table = self.db.open_table(name)
            except ValueError as e:  # "Table 'x' was not found", or the store is unreachable
                if self.is_local or "was not found" in str(e):
                    return None
                raise unavailable(self.uri, e) from None
            except (OSError, RuntimeError) as e:
                if self.is_local:
                    raise
                raise unavailable(self.uri, e) from None
            migrate(name, table)
            self._tables[name] = table
            return table

    def create(self, name: str, schema: Any) -> Any:
        """Open ``name``, creating it (and its full-text index) if needed. Safe against a
        concurrent creator: ``exist_ok`` makes the loser open the winner's table."""
        with self._lock:
            table = self.open(name)
            if table is None:
                table = self.db.create_table(name, schema=schema, exist_ok=True)
                self._tables[name] = table
            if name != META:
                self.ensure_fts(table)
            return table

    def drop(self, name: str) -> None:
        with self._lock:
            self._tables.pop(name, None)
            with contextlib.suppress(ValueError, FileNotFoundError):
                self.db.drop_table(name)

    def overwrite(self, name: str, data: Any) -> Any:
        """Replace a table's contents and schema (reindex), then rebuild its indices."""
        with self._lock:
            table = self.db.create_table(name, data, mode="overwrite")
            self._tables[name] = table
            self.ensure_fts(table)
            return table

    def ensure_fts(self, table: Any) -> None:
        """A native full-text index on ``text`` (BM25). Rows written after it was built are
        still searched (flat), and compaction folds them into the index."""
        if any(i.index_type == "FTS" for i in table.list_indices()):
            return
        from lancedb.index import FTS

        # A concurrent process may build it first, or the store may be read-only: then
        # search falls back to vectors alone (see recall), which may miss a name, not err.
        with contextlib.suppress(Exception):
            table.create_index("text", config=FTS(), replace=True)

    def has_vector_index(self, table: Any) -> bool:
        return any(i.index_type != "FTS" and "vector" in i.columns for i in table.list_indices())

    def maybe_index(self, table: Any, progress: Progress | None = None) -> bool:
        """Build the ANN index once the table is past :data:`ANN_MIN_ROWS`."""
        if self.has_vector_index(table) or table.count_rows() < ANN_MIN_ROWS:
            return False
        from lancedb.index import IvfHnswSq

        if progress is not None:
            progress("indexing", 0, 1)
        config = IvfHnswSq(distance_type="cosine", ef_construction=HNSW_EF_CONSTRUCTION)
        retry_conflicts(lambda: table.create_index("vector", config=config, replace=True))
        if progress is not None:
            progress("indexing", 1, 1)
        return True

    def unindexed_rows(self, table: Any) -> int:
        """The most rows any index of ``table`` does not cover yet (searched flat until compaction)."""
        worst = 0
        for index in table.list_indices():
            with contextlib.suppress(Exception):  # an index dropped or replaced meanwhile
                stats = table.index_stats(index.name)
                if stats is not None and stats.num_unindexed_rows:
                    worst = max(worst, int(stats.num_unindexed_rows))
        return worst

    def maybe_optimize(self, table: Any, name: str, *, force: bool = False) -> bool:
        """Compact small fragments, fold new rows into the indices and drop old versions,
        when enough has piled up (see the constants: small fragments, versions, or rows the
        indices do not cover), at most every OPTIMIZE_MIN_INTERVAL."""
        now = time.monotonic()
        if not force and now - self._last_optimize.get(name, -1e9) < OPTIMIZE_MIN_INTERVAL:
            return False
        if not force:
            small = int(table.stats()["fragment_stats"]["num_small_fragments"])
            if (small < OPTIMIZE_SMALL_FRAGMENTS and len(table.list_versions()) < OPTIMIZE_MAX_VERSIONS
                    and self.unindexed_rows(table) < MAX_UNINDEXED_ROWS):
                return False
        self._last_optimize[name] = now
        try:
            table.optimize(cleanup_older_than=CLEANUP_OLDER_THAN)
        except (RuntimeError, OSError, ValueError) as exc:
            # Another process compacted (or wrote) first: the upkeep is done or will be next
            # time; the data written before this call is committed either way.
            if not is_commit_conflict(exc):
                raise
            return False
        return True

    def fingerprint(self, name: str) -> str | None:
        """A token that changes with every commit to table ``name`` (the ingest manifest's check
        that nothing wrote since; None: no table, or it cannot tell).

        Local: Lance commits each version as a new file in ``<name>.lance/_versions`` (and
        compaction's cleanup removes old ones), so the listing's names, sizes and mtimes change
        with any commit by any process; read without importing lancedb (~1.3 s). Remote: the
        table is opened (one round trip) for its version and row count."""
        if self.is_local:
            folder = Path(self.uri.removeprefix("file://")) / f"{name}.lance" / "_versions"
            try:
                with os.scandir(folder) as it:
                    entries = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in it)
            except OSError:
                return None
            if not any(n.endswith(".manifest") for n, _s, _m in entries):
                return None
            import hashlib

            return "local:" + hashlib.sha256(repr(entries).encode()).hexdigest()[:32]
        table = self.open(name)
        if table is None:
            return None
        try:  # read_consistency_interval=0: the latest version
            return f"remote:v{int(table.version)}:n{int(table.count_rows())}"
        except (OSError, RuntimeError, ValueError) as e:
            raise unavailable(self.uri, e) from None

    # ------------------------------------------------------------------ meta

    def meta(self) -> dict[str, str]:
        table = self.open(META)
        if table is None:
            return {}
        rows = table.search().select(["key", "value"]).limit(None).to_arrow().to_pylist()
        return {r["key"]: r["value"] for r in rows}

    def set_meta(self, values: dict[str, str]) -> None:
        import pyarrow as pa

        table = self.create(META, meta_schema())
        data = pa.Table.from_pylist([{"key": k, "value": v} for k, v in values.items()], schema=meta_schema())
        upsert(table, data, key="key")

    # ------------------------------------------------------------------ stats

    def table_stats(self, name: str) -> TableStats | None:
        table = self.open(name)
        if table is None:
            return None
        stats = table.stats()
        return TableStats(
            rows=table.count_rows(),
            version=int(table.version),
            versions=len(table.list_versions()),
            size_bytes=int(stats["total_bytes"]),
            fragments=int(stats["fragment_stats"]["num_fragments"]),
            indices=sorted(f"{i.name} ({i.index_type})" for i in table.list_indices()),
        )

    def size_on_disk(self) -> int | None:
        """Bytes under the database directory (all versions and indices); None if remote."""
        if not self.is_local:
            return None
        root = Path(self.uri.removeprefix("file://"))
        total = 0
        if not root.is_dir():
            return 0
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                with contextlib.suppress(OSError):  # a file compacted away meanwhile
                    total += os.path.getsize(os.path.join(dirpath, f))
        return total
