"""The engine: one run, start to finish, through an explicit state machine.

- `fsm`: the states and the fixed transition table (pure data).
- `runner`: drives the machine: planning, execution, review, re-planning, verifying, resume, the episode.
- `executor`: ready steps run concurrently; references, argument validation, approvals, retries.
- `reviewer`: the verdict after execution (complete, continue, replan, stop); `answer`: the final
  answer shaped to ``--output-schema``.
- `verify`: which command verifies a run's changes; `workspace`: what a run changed, from its checkpoints.
- `budget`: hard limits on steps, cost, tokens and time; `approval`: policy per risk class.
- `hooks`: the user's commands at fixed points of a run (``[[hooks]]``).
- `session`: builds a run's dependencies from config; `replay`: deterministic replay and forks.
- `prompts`: the hash of every prompt template and schema, recorded with each run.
"""
