"""Run records: what happened, written once and read back.

- `events`: the append-only `events.jsonl` of a run, its durability rules and tolerant reader.
- `runs`: runs listed, summarised, their last plan (for `runs list/show` and resume).
- `stats`: cost and usage across runs; `telemetry`: OpenTelemetry spans built from a run's events.
"""
