"""Rendering plans for people (rich). Pure functions of a plan: no I/O beyond the console given."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.text import Text

from agentcli.cli.tables import Col, fitted_table, format_cost, quick_fitted_table
from agentcli.planning.plan import Plan, Step

ARGS_SUMMARY_CHARS = 60


def _short(text: str, limit: int = ARGS_SUMMARY_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value(v: Any) -> str:
    # A string with line breaks or tabs is shown quoted (JSON), so what it holds stays exact on one line.
    if isinstance(v, str) and not any(c in v for c in "\n\r\t"):
        return v
    return json.dumps(v, ensure_ascii=False, default=str)


def args_summary(step: Step, limit: int = ARGS_SUMMARY_CHARS) -> str:
    """``key=value`` pairs of a tool step (or the prompt of an llm step), on one short line."""
    if step.kind != "tool":
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


def _plan_rows(plan: Plan) -> tuple[list[Col], list[list[str]]]:
    """The plan table's columns and one row of cells per step."""
    # An llm step's answer shape, when it is not text: "llm:edits", "llm:json".
    tools = [step.tool or ("investigate" if step.kind == "investigate" else "llm" if step.answer == "text"
                           else f"llm:{step.answer}") for step in plan.steps]
    rows = [[step.id, step.title, tools[i], args_summary(step, limit=10_000), ", ".join(step.depends_on) or "-",
             "yes" if step.requires_approval else "no", step_cost(step)] for i, step in enumerate(plan.steps)]
    cols = [Col("#"), Col("step", flex=True, min_width=14), Col("tool"), Col("args", detail=True),
            Col("depends on", flex=True, min_width=10), Col("approval"), Col("estimate", justify="right")]
    return cols, rows


def plan_table(plan: Plan, width: int | None = None) -> RenderableType:
    """One row per step: #, step, tool or llm, args, depends on, approval, estimate.

    Fitted to ``width`` (the console's; 120 without one) by :func:`~agentcli.cli.tables.fitted_table`:
    the title is cut first; a step's arguments are never cut, what a write will do being what the
    plan is confirmed on: when the row cannot hold them they are shown whole on a line under it.
    """
    cols, rows = _plan_rows(plan)
    return fitted_table(cols, rows, width or 120)


def render_plan(plan: Plan, console: Console) -> None:
    """Print the header and the table of a plan."""
    # As plan_table prints, without building rich's table of a long plan (a row per step).
    cols, rows = _plan_rows(plan)
    console.print(Group(plan_header(plan), Text(""), quick_fitted_table(cols, rows, console.width or 120)),
                  soft_wrap=False, highlight=False)
