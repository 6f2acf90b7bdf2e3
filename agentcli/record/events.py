"""The append-only run log: one ``events.jsonl`` per run, the record that explains it.

Every run has a sortable id and a folder ``<data_dir>/runs/<run_id>/`` holding:

* ``events.jsonl``: typed events, one JSON object per line, each with
  ``schema_version``, a sequence number ``seq``, a ``time`` and a ``type``;
* ``llm_calls.jsonl``: the LLM client's per-request records (:mod:`agentcli.models.calllog`),
  which share ``run_id``, ``step_id`` and ``call_id`` with the ``llm_call`` events.

Durability, cheapest first:

* every event is written with one ``write`` call straight to the OS (no user-space
  buffer), so ``kill -9`` of the agent loses nothing already appended;
* at step boundaries the file is fsynced by a background thread (group commit,
  so a step does not wait ~150 us for the disk);
* before a side-effecting tool runs, its ``tool_intent`` is appended and fsynced
  synchronously: after a crash, a resume can see which side effects may have
  happened.

Reading tolerates a torn last line (a crash mid-write): it is skipped with a
warning and nothing else breaks. Secrets are redacted before anything is written.

Lines are compact JSON in the field order of :class:`Event`. Most are encoded by orjson
(non-ASCII text as UTF-8), the rest by the standard library (non-ASCII as ``\\u`` escapes):
both are plain JSON, read back the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict

from agentcli.errors import AgentError
from agentcli.redact import Redactor, is_secret_field, secret_values

EVENT_SCHEMA_VERSION = 1
EVENTS_NAME = "events.jsonl"

EventType = Literal[
    "run_started",
    "plan_created",
    "transition",
    "step_started",
    "llm_call",
    "tool_intent",
    "tool_call",
    "step_finished",
    "approval",
    "budget_check",
    "memory_recall",
    "memory_write",
    "review",
    "workspace_changes",
    "verify",
    "hook",
    "run_finished",
    "checkpoint",
    "undo",
]


class Event(BaseModel):
    """One line of ``events.jsonl``."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = EVENT_SCHEMA_VERSION
    seq: int
    time: float
    type: EventType
    run_id: str
    step_id: str | None = None
    data: dict[str, Any] = {}


_EVENT_TYPES: frozenset[str] = frozenset(get_args(EventType))

# The general path's encoder, built once: the same output as json.dumps(..., separators=(",", ":"),
# default=str).
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)

# The fast path's orjson options. orjson encodes dict, list, tuple, str, int, bool, None and float
# natively, as pydantic's JSON mode dumps them (inf and nan as null included); anything else (a
# subclass, a datetime, a dataclass, a model, a non-str key, an int past 64 bits, a string that is
# not valid UTF-8) reaches _not_plain or makes orjson raise, and the event takes the general path.
_FAST_OPTIONS = (orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME
                 | orjson.OPT_PASSTHROUGH_DATACLASS)


def _not_plain(value: Any) -> Any:
    raise TypeError(type(value).__name__)


# Keys already known not to name a credential: a set lookup instead of a regex match per key.
# Bounded, as tool outputs can bring any number of distinct keys.
_SAFE_KEYS: set[str] = set()
_SAFE_KEYS_MAX = 4096
_CONTAINERS = (dict, list, tuple)


def _has_secret_key(value: Any) -> bool:
    """Whether a dict anywhere in ``value`` has a key the redactor would drop. Only the containers
    orjson encodes natively are walked: anything else sends the event down the general path."""
    t = type(value)
    if t is dict:
        if not _SAFE_KEYS.issuperset(value):  # one C-level pass in the usual case: keys seen before
            for k in value:
                if k not in _SAFE_KEYS:
                    if type(k) is not str or is_secret_field(k):
                        return True
                    if len(_SAFE_KEYS) < _SAFE_KEYS_MAX:
                        _SAFE_KEYS.add(k)
        for v in value.values():
            if type(v) in _CONTAINERS and v and _has_secret_key(v):
                return True
    elif t is list or t is tuple:
        for v in value:
            if type(v) in _CONTAINERS and v and _has_secret_key(v):
                return True
    return False


def _encoded_secrets(values: list[str]) -> tuple[bytes, ...]:
    """The secret values as orjson writes them inside a JSON string. Escaping is per character, so
    the encoding of a string holding a secret holds this. A value orjson cannot encode (not valid
    UTF-8) is left out: a string holding it cannot be encoded either, so never takes the fast path."""
    out = []
    for v in values:
        with contextlib.suppress(orjson.JSONEncodeError):
            out.append(orjson.dumps(v)[1:-1])
    return tuple(out)


class IncompatibleRecording(AgentError):
    """A run recorded by a schema this version cannot read."""


#: At most one background fsync per this many seconds (a power loss may lose that window).
GROUP_COMMIT_SECONDS = 0.02


class _Fsyncer:
    """Background fsync of one file descriptor, on request (group commit).

    A request is a released lock (a binary semaphore), which the thread takes before each
    fsync: requests made while an fsync runs collapse into one more fsync after it. A plain
    lock release is a fraction of a threading.Event.set(), and this runs at every step.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending = threading.Lock()
        self._pending.acquire()  # held = nothing pending; released = an fsync is wanted
        self._closed = False
        self._closing = threading.Event()  # cuts the group-commit wait short: close() fsyncs itself
        self._thread = threading.Thread(target=self._loop, name="events-fsync", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self._pending.acquire()
            if self._closed:
                return
            try:
                os.fsync(self._fd)
            except OSError:
                return
            # Group commit: step boundaries that arrive within the window share the next fsync,
            # so fast steps do not keep a core busy flushing the journal (kill -9 needs no fsync).
            if self._closing.wait(GROUP_COMMIT_SECONDS):
                return

    def request(self) -> None:
        try:  # noqa: SIM105 (contextlib.suppress costs more, and this runs at every step)
            self._pending.release()
        except RuntimeError:
            pass  # already pending: the coming fsync covers this request too

    def close(self) -> None:
        self._closed = True
        self._closing.set()
        self.request()
        self._thread.join(timeout=5)


class EventLog:
    """Appends events to one run's ``events.jsonl``. Not shared between processes."""

    def __init__(self, path: Path, run_id: str, *, start_seq: int = 0) -> None:
        self.path = path
        self.run_id = run_id
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: each os.write lands whole at the end, even after a crash left a torn line.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._seq = start_seq
        self._lock = threading.Lock()
        self._redact = Redactor()
        # The secret values the redactor replaces (the same snapshot), as they appear in a fast line.
        self._encoded_secrets = _encoded_secrets(secret_values())
        self._fsyncer = _Fsyncer(self._fd)
        self._closed = False
        #: Called with every appended event, in order (telemetry builds spans from them).
        self.listeners: list[Callable[[Event], None]] = []
        # A torn tail from an earlier crash must not glue itself to our first line.
        if path.stat().st_size and not _ends_with_newline(path):
            os.write(self._fd, b"\n")

    @property
    def seq(self) -> int:
        return self._seq

    def append(self, type: EventType, data: dict[str, Any] | None = None, *, step_id: str | None = None,
               durable: bool = False) -> None:
        """Append one event. ``durable=True`` fsyncs before returning (use before side effects)."""
        data = data or {}
        event: Event | None = None
        with self._lock:
            self._seq += 1
            seq = self._seq
            now = time.time()
            line = None
            # Fast path, for the events the general path would write unchanged (no key the redactor
            # drops, no secret value, only plain JSON data): the line is encoded straight from the
            # arguments, with no model built and no JSON-mode dump. The checks stand in for the
            # model's validation; whatever they do not vouch for takes the general path.
            if type in _EVENT_TYPES and (step_id is None or step_id.__class__ is str) and data.__class__ is dict:
                try:
                    line = orjson.dumps({"schema_version": EVENT_SCHEMA_VERSION, "seq": seq, "time": now,
                                         "type": type, "run_id": self.run_id, "step_id": step_id, "data": data},
                                        default=_not_plain, option=_FAST_OPTIONS)
                except TypeError:  # orjson.JSONEncodeError included
                    pass
                else:
                    if _has_secret_key(data):
                        line = None
                    else:
                        for secret in self._encoded_secrets:
                            if secret in line:
                                line = None  # a secret value may be in there: redact
                                break
            if line is None:
                event = Event(seq=seq, time=now, type=type, run_id=self.run_id, step_id=step_id,
                              data=self._redact(data))
                line = (_ENCODER.encode(event.model_dump(mode="json")) + "\n").encode()
            os.write(self._fd, line)
            if durable:
                os.fsync(self._fd)
        if self.listeners:
            if event is None:  # a fast line: its data needed no redaction
                event = Event(seq=seq, time=now, type=type, run_id=self.run_id, step_id=step_id, data=data)
            for listener in self.listeners:
                listener(event)

    def sync(self, *, blocking: bool = False) -> None:
        """Make everything appended so far durable (in the background unless ``blocking``)."""
        if blocking:
            os.fsync(self._fd)
        else:
            self._fsyncer.request()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fsyncer.close()
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


@dataclass
class Recording:
    """A run's events as read back, with any warnings about damaged lines."""

    run_id: str
    events: list[Event]
    warnings: list[str] = field(default_factory=list)

    def of_type(self, *types: str) -> Iterator[Event]:
        return (e for e in self.events if e.type in types)

    def first(self, type: str) -> Event | None:
        return next(self.of_type(type), None)


def read_events(path: Path) -> Recording:
    """Read a run's events. A torn or corrupt line is skipped with a warning; a newer schema is an error."""
    run_id = path.parent.name
    events: list[Event] = []
    warnings: list[str] = []
    try:
        raw_lines = path.read_bytes().split(b"\n")
    except OSError as e:
        raise AgentError(f"cannot read {path}: {e.strerror}") from None
    last_index = len(raw_lines) - 1
    for i, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            where = "truncated last line" if i - 1 >= last_index - 1 else f"corrupt line {i}"
            warnings.append(f"{path}: {where} ignored")
            continue
        version = obj.get("schema_version") if isinstance(obj, dict) else None
        if version != EVENT_SCHEMA_VERSION:
            raise IncompatibleRecording(
                f"{path}: event schema_version {version!r} is not supported by this agentcli "
                f"(it reads version {EVENT_SCHEMA_VERSION})"
            )
        try:
            events.append(Event.model_validate(obj))
        except ValueError:
            warnings.append(f"{path}: invalid event on line {i} ignored")
    return Recording(run_id=run_id, events=events, warnings=warnings)
