"""Typer sub-apps and commands. Each parses, builds from config, calls one core function, renders.

- `run`: ``agent run`` (plan, confirm, execute, review; progress and results); `plan`: ``agent plan``;
  `map`: ``agent map`` (the repository map the planner's request carries).
- `runs`: ``agent runs list | show | stats`` and ``agent replay``; `undo`: ``agent undo`` and
  ``agent runs diff``.
- `chat`: ``agent chat`` (an interactive session, a turn per line); `sessions`: ``agent sessions``.
- `tools`: ``agent tools list | show | call``; `memory`: ``agent memory ...``; `config`:
  ``agent config show | path``; `doctor`: ``agent doctor``; `trust`: ``agent trust`` (accept a
  changed project config, AGENTS.md or hook script).
- `common`: what every command shares (settings loaded on first use, consoles, error lines).
"""
