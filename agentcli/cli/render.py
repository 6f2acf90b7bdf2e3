"""Rendering plans for people (rich). Pure functions of a plan: no I/O beyond the console given."""

from __future__ import annotations

import json
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from agentcli.cli.tables import QuickTable
from agentcli.planning.plan import Plan, Step

ARGS_SUMMARY_CHARS = 60


def format_cost(cost: float | None) -> str:
    """``$0.000123``; ``unknown`` for an unknown price (never a misleading $0)."""
    if cost is None:
        return "unknown"
    return f"${cost:.6f}" if cost < 0.01 else f"${cost:.4f}"


def _short(text: str, limit: int = ARGS_SUMMARY_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)


def args_summary(step: Step, limit: int = ARGS_SUMMARY_CHARS) -> str:
    """``key=value`` pairs of a tool step (or the prompt of an llm step), on one short line."""
    if step.kind == "llm":
        return _short(step.prompt or "", limit)
    return _short(" ".join(f"{k}={_value(v)}" for k, v in step.args.items()), limit)


def step_cost(step: Step) -> str:
    """A step's estimate as shown: ``-`` for a tool step (it calls no model)."""
    return "-" if step.kind == "tool" else format_cost(step.estimated_cost_usd)


def plan_header(plan: Plan) -> Text:
    """Task, model, plan id, short hash and the total estimate."""
    text = Text()
    rows = [
        ("Task", plan.task),
        ("Model", plan.model),
        ("Plan", f"{plan.id}  hash {plan.hash[:12]}"),
        ("Estimate", f"{format_cost(plan.estimated_cost_usd)} ({plan.estimated_tokens} tokens, "
                     f"{len(plan.steps)} step{'s' if len(plan.steps) != 1 else ''})"),
    ]
    for i, (label, value) in enumerate(rows):
        text.append(f"{label + ':':<10}", style="bold")
        text.append(value)
        if i < len(rows) - 1:
            text.append("\n")
    return text


def plan_table(plan: Plan, width: int | None = None) -> Table:
    """One row per step: #, step, tool or llm, args summary, depends on, approval, estimate.

    ``width`` (the console's) keeps the table legible in 80 columns: short columns keep
    their full width, the title wraps, and the args summary is cut to what is left.
    """
    table = Table(show_header=True, header_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, collapse_padding=True)
    # An llm step's answer shape, when it is not text: "llm:edits", "llm:json".
    tools = [step.tool or ("llm" if step.answer == "text" else f"llm:{step.answer}") for step in plan.steps]
    costs = [step_cost(step) for step in plan.steps]
    deps = [", ".join(step.depends_on) or "-" for step in plan.steps]
    deps = [d if len(d) <= 12 else d[:11] + "…" for d in deps]
    columns = [("#", [step.id for step in plan.steps]), ("tool", tools), ("depends on", deps),
               ("approval", []), ("estimate", costs)]
    fixed = {name: max([len(name), *(len(c) for c in cells)]) for name, cells in columns}
    longest_title = max([4, *(len(step.title) for step in plan.steps)])
    title_width, args_width = min(longest_title, 40), ARGS_SUMMARY_CHARS
    if width is not None:
        # Two characters between columns (7 columns); the title gets up to half of the rest.
        room = width - sum(fixed.values()) - 2 * 6
        title_width = min(longest_title, max(14, room // 2))
        args_width = max(10, min(ARGS_SUMMARY_CHARS, room - title_width))
    table.add_column("#", no_wrap=True, min_width=fixed["#"])
    table.add_column("step", min_width=min(title_width, 14), max_width=title_width)
    table.add_column("tool", no_wrap=True, min_width=fixed["tool"])
    table.add_column("args", no_wrap=True, overflow="ellipsis", max_width=args_width)
    table.add_column("depends on", no_wrap=True, min_width=fixed["depends on"])
    table.add_column("approval", no_wrap=True, min_width=fixed["approval"])
    table.add_column("estimate", no_wrap=True, justify="right", min_width=fixed["estimate"])
    for i, step in enumerate(plan.steps):
        table.add_row(
            step.id,
            escape(step.title),
            escape(tools[i]),
            escape(_short(args_summary(step, limit=10_000), args_width)),
            deps[i],
            "yes" if step.requires_approval else "no",
            costs[i],
        )
    return table


def render_plan(plan: Plan, console: Console) -> None:
    """Print the header and the table of a plan."""
    console.print(Group(plan_header(plan), Text(""), QuickTable(plan_table(plan, console.width))), soft_wrap=False,
                  highlight=False)
