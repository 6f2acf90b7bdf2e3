"""Planning: a task becomes a typed, validated, hashed plan before any tool runs.

- `plan`: the plan model (steps, `{{sN.output}}` references, validation, approval derivation, the hash).
- `planner`: one structured call per plan, re-asks with precise problems, the survey, estimates, plan files.
- `strategy`: what a planner model is asked, re-asked and told on failure (hosted or small, by profile).
- `prompt`: what any planner is shown (draft schema, tool catalogue, workspace summary, memory).
- `testenv`: the workspace summary's test-environment note (what breaks the project's own test
  command on this machine, and what works instead).
- `repomap`: the repository map a hosted planner is shown; `instructions`: project instructions
  (``AGENTS.md``) for planner and step prompts.
- `diff`: how one plan differs from the next (steps added, removed, changed), for people.
- `local`: the small-model planner and its measured levers; `examples`: bundled task -> plan examples.
- `strategy`: hosted and small-model planner strategies, chosen by the model's profile; `planner_map`.
- `repomap`: the hosted planner's repository map (tree, ranked outlines, the persisted cache);
  `outline`: tree-sitter outlines of source files and the imports of their heads.
"""
