"""The ingest manifest: what this machine last ingested, so an unchanged re-add is a stat per file.

One JSON file per (memory, origin) under ``<data_dir>/memory-manifest/``: for every file this
workspace ingested, ``(size, mtime_ns, file hash)`` as it was when read, plus the chunk
embedder's name and a fingerprint of the chunks table taken after the last write
(:meth:`~agentcli.memory.store.Store.fingerprint`).

The store stays the truth; the manifest only says when asking it can be skipped:

* every file to ingest has the recorded size and mtime, none recorded under the directories
  given is gone, the embedder is the configured one, and the chunks table's fingerprint is the
  recorded one (no commit since ours: not another process's, not another machine's on a shared
  memory, not a ``forget``): then the store holds exactly what the last ingest left, which was
  these files. Nothing is read, nothing written, and for a local store LanceDB is not even
  imported (a remote one is opened once, for its version);
* anything else: the store is asked as without a manifest (each file's stored hash), and the
  manifest only spares reading the files whose stat matches (their hash is known).

So it never makes an ingest forget or skip rows it would not without it; on a shared memory a
manifest is per machine (it lives in the data dir) and any other machine's write changes the
fingerprint. A missing, unreadable, corrupt or other-schema manifest is an empty one and is
rewritten after the next ingest; it is written atomically, and concurrent ingests of one data
dir into one memory take turns (a lock file), so one never records a state the other changed.

Racy timestamps (as git's index has them): a file modified again within the file system's
timestamp granularity of being read could keep its size and mtime. A file whose mtime is less
than :data:`RACY_NS` older than the start of the ingest that read it is listed but not vouched for: the next
ingest reads it again (and vouches for it then, if it has stayed as it was).

The manifest lists every file the store holds for this workspace under the directories ingested
(including files stored but no longer ingested, e.g. ignored since): the unchanged path decides
"nothing was deleted" from that list, so a file it did not list could never be forgotten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_DIR = "memory-manifest"
#: 2: racy entries are not vouched for by their own ingest's start (1 trusted them by the
#: manifest's write time), and stored files not read are listed. 3: file hashes are of the text
#: with its secrets masked, as stored (an older manifest vouches for files whose chunks were
#: stored in clear: the first ingest after it reads every file, and re-stores those masked).
SCHEMA_VERSION = 3
#: Files modified this close to (or after) the start of the ingest that read them are not vouched for.
RACY_NS = 2_000_000_000
#: The size or mtime of an entry listed but never vouched for (no stat has it).
UNVOUCHED = -1

#: ``(size, mtime_ns, file hash)`` of one ingested file.
Entry = tuple[int, int, str]


def manifest_path(data_dir: Path, uri: str, origin: str) -> Path:
    key = hashlib.sha256(f"{uri}\0{origin}".encode()).hexdigest()[:20]
    return data_dir / MANIFEST_DIR / f"{key}.json"


def stat_key(st: os.stat_result) -> tuple[int, int]:
    return int(st.st_size), int(st.st_mtime_ns)


@dataclass
class Manifest:
    """The manifest of one memory and origin (see the module); ``state`` says how it was found:
    ``ok``, ``missing``, ``corrupt`` or ``outdated`` (another schema, memory or origin)."""

    path: Path
    uri: str
    origin: str
    embedder: str = ""
    fingerprint: str = ""
    files: dict[str, Entry] = field(default_factory=dict)
    state: str = "missing"

    @classmethod
    def load(cls, data_dir: Path, uri: str, origin: str) -> Manifest:
        path = manifest_path(data_dir, uri, origin)
        empty = cls(path, uri, origin)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return empty
        except (OSError, ValueError):
            empty.state = "corrupt"
            return empty
        try:
            if not isinstance(raw, dict):
                raise TypeError("not an object")
            if (raw.get("schema_version") != SCHEMA_VERSION or raw.get("uri") != uri
                    or raw.get("origin") != origin):
                empty.state = "outdated"
                return empty
            files: dict[str, Entry] = {}
            for rel, value in raw["files"].items():
                size, mtime, fhash = value
                if not (isinstance(rel, str) and type(size) is int and type(mtime) is int
                        and isinstance(fhash, str)):
                    raise TypeError(rel)
                files[rel] = (size, mtime, fhash)
            embedder, fingerprint = raw["embedder"], raw["fingerprint"]
            if not (isinstance(embedder, str) and isinstance(fingerprint, str)):
                raise TypeError("header")
        except (KeyError, TypeError, ValueError, AttributeError):
            empty.state = "corrupt"
            return empty
        return cls(path, uri, origin, embedder, fingerprint, files, "ok")

    def known_hash(self, rel: str, st: os.stat_result) -> str | None:
        """The file's hash if its size and mtime are as recorded, else None."""
        entry = self.files.get(rel)
        if entry is None or (entry[0], entry[1]) != stat_key(st):
            return None
        return entry[2]

    def under(self, dirs: list[str]) -> set[str]:
        """Recorded files under these workspace-relative directories (``.``: all)."""
        if "." in dirs:
            return set(self.files)
        prefixes = tuple(d.rstrip("/") + "/" for d in dirs)
        return {rel for rel in self.files if rel.startswith(prefixes)}

    def record(self, rel: str, st: os.stat_result, fhash: str, started_ns: int) -> None:
        """Vouch for a file read (after ``st`` was taken) by an ingest that started at ``started_ns``,
        unless it was modified too recently to be sure of (see the module)."""
        size, mtime = stat_key(st)
        self.files[rel] = (size, mtime if mtime < started_ns - RACY_NS else UNVOUCHED, fhash)

    def hold(self, rel: str) -> None:
        """Keep a file the store holds for this workspace but this ingest did not read: never
        vouched for, but listed, so that its deletion sends the next ingest to the store."""
        self.files.setdefault(rel, (UNVOUCHED, UNVOUCHED, ""))

    def save(self) -> None:
        """Write it atomically; a read-only data dir goes without (every ingest asks the store)."""
        body = {"schema_version": SCHEMA_VERSION, "uri": self.uri, "origin": self.origin,
                "embedder": self.embedder, "fingerprint": self.fingerprint,
                "files": {rel: list(e) for rel, e in sorted(self.files.items())}}
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(body, separators=(",", ":")), encoding="utf-8")
            os.replace(tmp, self.path)

    def forget(self) -> None:
        """Drop the file (the store changed in a way this ingest did not record, e.g. it failed)."""
        with contextlib.suppress(OSError):
            self.path.unlink()


@contextlib.contextmanager
def locked(data_dir: Path, uri: str, origin: str, on_wait: object = None) -> Iterator[None]:
    """Ingests of one data dir into one memory take turns (an advisory lock beside the
    manifest); ``on_wait()`` is called once if another holds it. Without a writable data dir
    (or on a platform without ``fcntl``) there is no lock: the fingerprint check still holds."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    path = manifest_path(data_dir, uri, origin).with_suffix(".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = path.open("a+b")
    except OSError:
        yield
        return
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if callable(on_wait):
                on_wait()
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
