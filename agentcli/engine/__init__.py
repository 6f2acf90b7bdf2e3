"""The engine: one run, start to finish, through an explicit state machine.

- `fsm`: the states and the fixed transition table (pure data).
- `executor`: ready steps run concurrently; references, argument validation, approvals, retries.
- `reviewer`: the verdict after execution (complete, continue, replan).
- `runner`: drives the machine: planning, execution, review, re-planning, resume, the episode.
- `budget`: hard limits on steps, cost, tokens and time; `approval`: policy per risk class.
- `session`: builds a run's dependencies from config; `replay`: deterministic replay and forks.
"""
