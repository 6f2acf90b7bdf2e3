"""The engine: one run, start to finish, through an explicit state machine.

- `fsm`: the states and the fixed transition table (pure data).
- `state`: `RunState` (plan, step records, machine, answer, changes), owned by the run's loop, and
  `Next`, what a phase decides.
- `runner`: the loop: its phases (planning, executing, reviewing, verifying, re-planning) each return
  a `Next` and only the loop moves the machine; resume, the episode, the outcome.
- `executor`: the one step pipeline (references, argument validation and correction, approval, the
  pre_tool hook, checkpoints, intent, the call with retries, post_tool) and the concurrent
  scheduler of ready steps; the verify command is a step through the same pipeline; the plan
  reminder of model steps.
- `investigate`: investigate steps, a bounded read-only tool-using loop inside one step (read tools,
  git history, commands with the workspace read-only), with typed findings; also run before a re-plan.
- `reviewer`: the verdict after execution (complete, continue, replan, stop) and the check of a
  "complete" verdict against the record (`answer_is_grounded`); whether the facts decide a run
  without a review (`decided_by_facts`, `[review] mode = "auto"`); the step digest, shown as tagged
  text in a review and in a re-plan's context (`replan_steps`); in a review, an output that went into
  the change it shows is a note of its size and where it went (`consumed_notes`).
- `verify`: which command verifies a run; `workspace`: the run's changes from its checkpoints.
- `budget`: hard limits on steps, cost, tokens and time; `approval`: policy per risk class.
- `hooks`: the user's `[[hooks]]` commands, recorded as `hook` events.
- `steering`: the user's words during a run: feedback at the plan's confirmation and at a step's
  approval, and steering messages taken at step boundaries (`SteeringQueue`, the `Steering` port).
- `answer`: `--output-schema`, the final answer as JSON valid against a schema.
- `session`: the composition root, where every outside input is a port (model backend, tools,
  approver, hook results, workspace probe, planner, confirmation, uncertain-step decisions).
- `replay`: the recorded implementation of each port (deterministic replay and forks) and the
  comparison of two records.
- `prompts`: the hash of every prompt template and schema, recorded with each run.
- `turns`: a session's turns replayed, and each turn's ledger built again byte for byte.
"""
