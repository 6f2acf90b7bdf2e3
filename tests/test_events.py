"""The append-only event log: typed lines, redaction, torn tails, schema versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentcli.events import EventLog, IncompatibleRecording, read_events


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
