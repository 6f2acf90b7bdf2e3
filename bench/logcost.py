"""The cost of the run records: one LLM-call record (CallLog.write) and one EventLog.append."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentcli.models.calllog import CallLog
from agentcli.record.events import EventLog
from bench.context import Context
from bench.report import Row, SectionResult
from bench.stats import Summary

SECTION = "logging"

#: A typical record, as LLMClient._record writes it for one call.
CALL_RECORD: dict[str, Any] = {
    "event": "llm_call", "run_id": "20261124-013000-a1b2c3", "step_id": "s3", "call_id": "3f2a9c1d7e6b5a40",
    "role": "executor", "gen_ai.request.model": "openai/gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 1834, "gen_ai.usage.output_tokens": 212, "input_tokens_estimate": 1840,
    "cost_usd": 0.0004023, "latency_ms": 812.345, "attempt": 1, "outcome": "ok", "error_type": None,
    "error": None, "request_hash": "9b1f" * 16,
}

#: A typical tool_call event, as the executor appends it for one read_file step.
TOOL_EVENT: dict[str, Any] = {
    "tool": "read_file", "args": {"path": "src/inventory/store.py", "end_line": 40}, "attempt": 1,
    "result": {"tool": "read_file", "ok": True, "output": "def load(path):\n    ...\n" * 20, "error": None,
               "duration_ms": 0.412, "truncated": False},
}


def _per_call(fn: Callable[[], object], batch: int, reps: int) -> list[float]:
    for _ in range(min(batch, 200)):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        out.append((time.perf_counter() - t0) / batch * 1e6)
    return out


def run(ctx: Context) -> SectionResult:
    res = SectionResult(SECTION)
    batch, reps = (200, 3) if ctx.smoke else (5000, 9)
    root = Path(tempfile.mkdtemp(prefix="logcost-", dir=ctx.tmp))
    calls = CallLog(root / "llm_calls.jsonl")
    events = EventLog(root / "run" / "events.jsonl", "bench-run")
    small = {"from": "EXECUTING", "to": "WAITING_TOOL", "reason": "s1: read_file"}
    try:
        res.rows.append(Row(SECTION, "CallLog.write, one LLM-call record (~600 B line)",
                            Summary.of(_per_call(lambda: calls.write(CALL_RECORD), batch, reps), "µs")))
        res.rows.append(Row(SECTION, "EventLog.append, transition event (~150 B)",
                            Summary.of(_per_call(lambda: events.append("transition", small), batch, reps), "µs")))
        res.rows.append(Row(SECTION, "EventLog.append, tool_call event (~1 KB)",
                            Summary.of(_per_call(lambda: events.append("tool_call", TOOL_EVENT, step_id="s3"),
                                                 batch, reps), "µs")))

        def with_sync() -> None:
            events.append("step_finished", small, step_id="s3")
            events.sync()

        res.rows.append(Row(SECTION, "EventLog.append + background fsync request (step boundary)",
                            Summary.of(_per_call(with_sync, batch, reps), "µs")))
        durable_batch = 20 if ctx.smoke else 200
        res.rows.append(Row(SECTION, "EventLog.append durable=True (synchronous fsync, before side effects)",
                            Summary.of(_per_call(lambda: events.append("tool_intent", small, durable=True),
                                                 durable_batch, reps), "µs")))
    finally:
        events.close()
        calls.close()
    res.notes += [
        f"Per call, averaged over batches of {batch} calls (fsync'd appends: {durable_batch}), {reps} batches; "
        "files in a temp dir. Redaction is included (it runs on every record).",
    ]
    return res
