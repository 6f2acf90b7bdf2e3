"""The append-only event log: typed lines, redaction, torn tails, schema versions."""

from __future__ import annotations

import enum
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from pydantic import ValidationError

from agentcli.engine.fsm import State
from agentcli.record.events import Event, EventLog, IncompatibleRecording, read_events
from agentcli.redact import Redactor


def test_append_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-in-a-log-123")
    path = tmp_path / "r1" / "events.jsonl"
    log = EventLog(path, "r1")
    log.append("run_started", {"task": "t", "note": "sk-never-in-a-log-123"})
    log.append("tool_intent", {"tool": "write_file"}, step_id="s1", durable=True)
    log.sync()
    log.close()
    rec = read_events(path)
    assert [e.type for e in rec.events] == ["run_started", "tool_intent"]
    assert [e.seq for e in rec.events] == [1, 2]
    assert rec.events[1].step_id == "s1"
    assert all(e.schema_version == 1 and e.run_id == "r1" for e in rec.events)
    assert "sk-never-in-a-log-123" not in path.read_text()
    assert rec.warnings == []


def test_truncated_last_line_is_skipped_with_warning(tmp_path: Path) -> None:
    path = tmp_path / "r2" / "events.jsonl"
    log = EventLog(path, "r2")
    log.append("run_started", {"task": "t"})
    log.append("transition", {"from": "IDLE", "to": "PLANNING"})
    log.close()
    data = path.read_bytes()
    path.write_bytes(data[:-15])  # a crash in the middle of the last write
    rec = read_events(path)
    assert [e.type for e in rec.events] == ["run_started"]
    assert len(rec.warnings) == 1 and "truncated last line" in rec.warnings[0]
    # appending after the crash starts on a fresh line and keeps earlier events readable
    log = EventLog(path, "r2", start_seq=2)
    log.append("run_finished", {"status": "FAILED"})
    log.close()
    rec = read_events(path)
    assert [e.type for e in rec.events] == ["run_started", "run_finished"]


def test_incompatible_schema_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "r3" / "events.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps({"schema_version": 99, "seq": 1, "time": 0, "type": "run_started",
                                "run_id": "r3"}) + "\n")
    with pytest.raises(IncompatibleRecording, match="schema_version 99"):
        read_events(path)


class _Colour(enum.Enum):
    RED = "red"


class _Pair(NamedTuple):
    a: int
    b: int


# What the general path (the Event model, redacted, dumped in JSON mode) writes for each of these;
# most take the fast path, which must write the same JSON, or must step aside.
_DATA_CASES: list[dict[str, Any]] = [
    {},
    {"a": 1, "b": [1, 2.5, None, True, -0.0], "c": {"d": "é ✓ \n \"q\" \\ \u2028"}, "e": ""},
    {"nested": [{"api_key": "x", "ok": 1}], "other": {"deep": [[{"Authorization": "Bearer t"}]]}},
    {"password": "p", "tokens": 3},
    {"note": "the key sk-never-in-a-log-123 inside", "list": ["sk-never-in-a-log-123"]},
    {"t": (1, (2, {"x": "y"})), "inf": float("inf"), "nan": float("nan")},
    {"big": 2**70},
    {"when": datetime(2026, 1, 1, tzinfo=UTC), "path": Path("a/b"), "state": State.EXECUTING},
    {"enum": _Colour.RED, "uuid": uuid.UUID(int=7), "pair": _Pair(1, 2)},
    {"keys": {1: "one", None: "none"}},
    {"not_utf8": "\udcff"},
]


@pytest.mark.parametrize("data", _DATA_CASES)
def test_every_line_is_what_the_event_model_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   data: dict[str, Any]) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-in-a-log-123")
    path = tmp_path / "r" / "events.jsonl"
    log = EventLog(path, "r")
    seen: list[Event] = []
    log.listeners.append(seen.append)
    log.append("tool_call", data, step_id="s1")
    log.close()
    raw = path.read_bytes()
    assert b"sk-never-in-a-log-123" not in raw
    line = json.loads(raw)
    expected = Event(seq=1, time=line["time"], type="tool_call", run_id="r", step_id="s1",
                     data=Redactor()(data)).model_dump(mode="json")
    assert line == expected
    assert list(line) == list(Event.model_fields)  # field order, as the model dumps it
    assert raw.startswith(b'{"schema_version":1,"seq":1,"time":') and raw.endswith(b"}\n")
    [event] = seen
    assert event.model_dump(mode="json") == expected
    assert read_events(path).events == [Event.model_validate(expected)]


def test_invalid_events_are_still_refused(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "r" / "events.jsonl", "r")
    with pytest.raises(ValidationError):
        log.append("no_such_type", {})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        log.append("transition", {}, step_id=3)  # type: ignore[arg-type]
    log.close()
    assert (tmp_path / "r" / "events.jsonl").read_bytes() == b""


def test_lines_written_by_the_standard_library_encoder_still_read(tmp_path: Path) -> None:
    # Earlier versions wrote every line with json (non-ASCII as \u escapes).
    path = tmp_path / "r" / "events.jsonl"
    path.parent.mkdir()
    old = {"schema_version": 1, "seq": 1, "time": 1.5, "type": "run_started", "run_id": "r", "step_id": None,
           "data": {"task": "café"}}
    path.write_text(json.dumps(old, separators=(",", ":")) + "\n")
    log = EventLog(path, "r", start_seq=1)
    log.append("run_finished", {"answer": "café"})
    log.close()
    events = read_events(path).events
    assert [e.data for e in events] == [{"task": "café"}, {"answer": "café"}]
