"""The append-only run log: one ``events.jsonl`` per run, the record that explains it.

Every run has a sortable id and a folder ``<data_dir>/runs/<run_id>/`` holding:

* ``events.jsonl``: typed events, one JSON object per line, each with
  ``schema_version``, a sequence number ``seq``, a ``time`` and a ``type``;
* ``llm_calls.jsonl``: the LLM client's per-request records (:mod:`agentcli.tracing`),
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
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from agentcli.errors import AgentError
from agentcli.redact import Redactor

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
    "run_finished",
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


class IncompatibleRecording(AgentError):
    """A run recorded by a schema this version cannot read."""


class _Fsyncer:
    """Background fsync of one file descriptor, on request (group commit)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._wanted = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="events-fsync", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._closed:
                return
            try:
                os.fsync(self._fd)
            except OSError:
                return

    def request(self) -> None:
        self._wanted.set()

    def close(self) -> None:
        self._closed = True
        self._wanted.set()
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
               durable: bool = False) -> Event:
        """Append one event. ``durable=True`` fsyncs before returning (use before side effects)."""
        with self._lock:
            self._seq += 1
            event = Event(seq=self._seq, time=time.time(), type=type, run_id=self.run_id, step_id=step_id,
                          data=self._redact(data or {}))
            line = json.dumps(event.model_dump(mode="json"), separators=(",", ":"), default=str) + "\n"
            os.write(self._fd, line.encode())
            if durable:
                os.fsync(self._fd)
        for listener in self.listeners:
            listener(event)
        return event

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
