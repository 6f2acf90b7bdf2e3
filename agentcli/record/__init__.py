"""Run records: what happened, written once and read back.

- `events`: the append-only `events.jsonl` of a run, a payload model per event type, durability rules.
- `reader`: the one reader of run records (`RunRecord`: a run's events as typed data).
- `runs`: runs listed, summarised, their last plan (for `runs list/show` and resume).
- `checkpoints`: the workspace's checkpoints in a shadow git repository, and undo.
- `sessions`: a session's file (a chain of runs on one workspace); `ledger`: what a later turn's
  planner is told of the earlier turns, folded to its budget.
- `stats`: cost and usage across runs; `telemetry`: OpenTelemetry spans built from a run's events.
"""
