"""The command line: parse, build dependencies from config, call one core function, render.

- `first`: the entry point; the first status line of `agent run`, before the imports.
- `app`: the Typer app, global options, the one place errors become a line and an exit code.
- `commands/`: one module per command group; `render`: plans for people; `tables`: tables that fit
  the terminal; `prompts`: the one function that asks a person anything; `doctor`: health checks;
  `live`: the status line while a run works, and Ctrl-C that stops it at once; `steer`: a plan
  revised for the user's words shown as a diff, steering lines read from stdin (`--output jsonl`),
  and the keys typed while a chat turn runs.
"""
