"""The reviewer: after the steps (or when one fails for good), judge how the run goes on.

One structured call to the reviewer model, which sees the task, the plan and
every step's outcome, and answers one of three verdicts:

* ``complete``, with the final answer for the user;
* ``continue``: accept the failed steps as failed and run what can still run;
* ``replan``, with a reason the planner gets.
"""

from __future__ import annotations

import json
from itertools import chain
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field

from agentcli.engine.executor import StepRun, summarize_output
from agentcli.models.client import LLMClient
from agentcli.planning.plan import Plan


class Review(BaseModel):
    """The reviewer's verdict."""

    outcome: Literal["complete", "continue", "replan"] = Field(
        ..., description="complete: the task is done; continue: go on without the failed steps; "
        "replan: a new plan is needed."
    )
    answer: str = Field("", max_length=4000, description="The final answer for the user (for complete).")
    reason: str = Field("", max_length=500, description="Why (for continue and replan).")


_SYSTEM = (
    "You review the results of a plan that was executed for a developer task. Decide:\n"
    '- "complete" when the results answer or accomplish the task; put the final answer for the user in '
    '"answer", based only on the results;\n'
    '- "continue" when some steps failed but the rest can still accomplish the task;\n'
    '- "replan" when the task cannot be accomplished with this plan; say why in "reason".\n'
    "Reply with one JSON object."
)


# json.dumps(args, default=str), with one encoder instead of one per call (same output).
_ARGS_JSON = json.JSONEncoder(default=str)


def step_digest(runs: dict[str, StepRun], limit: int = 1500) -> list[dict[str, Any]]:
    """What the reviewer (and a replanner) sees of each step."""
    out = []
    args_json = _ARGS_JSON.encode
    for run in runs.values():
        s = run.step
        item: dict[str, Any] = {"id": s.id, "title": s.title, "status": run.status}
        item["action"] = f"{s.tool}({args_json(s.args)[:300]})" if s.kind == "tool" else "llm"
        if run.status == "ok":
            item["output"] = summarize_output(run.output, limit)
        elif run.error:
            item["error"] = str(run.error.get("message", run.error))[:500]
        out.append(item)
    return out


def fallback_answer(runs: dict[str, StepRun]) -> str:
    """The last successful step's output: the answer when the reviewer gives none."""
    for run in reversed(list(runs.values())):
        if run.status == "ok" and run.output not in (None, ""):
            return summarize_output(run.output, 4000)
    return ""


def _render(output: Any, limit: int) -> str:
    # Lists of paths and search matches are shown one per line, with a count, so the answer
    # to "how many ..." is in it; anything else as summarize_output renders it.
    if isinstance(output, list) and output and all(isinstance(x, str) for x in output):
        lines = [f"{len(output)} file{'s' if len(output) != 1 else ''}:", *output]
        return summarize_output("\n".join(lines), limit)
    if isinstance(output, list) and not output:
        return "nothing found"
    if isinstance(output, list) and all(isinstance(x, dict) and "file" in x for x in output):
        if not output:
            return "no matches"
        lines = [f"{len(output)} match{'es' if len(output) != 1 else ''}:"]
        lines += [f"{x.get('file')}:{x.get('line')}: {x.get('snippet', '')}" for x in output]
        return summarize_output("\n".join(lines), limit)
    if isinstance(output, list) and not output:
        return "nothing found"
    if isinstance(output, dict) and set(output) >= {"exit_code", "output"}:
        return summarize_output(f"exit code {output['exit_code']}\n{output['output']}", limit)
    return summarize_output(output, limit)


def grounded_answer(runs: dict[str, StepRun], limit: int = 4000) -> str:
    """The answer built from the tool outputs themselves (no model): each successful tool
    step's output (the last ones first to go when over ``limit``), then the last llm step's
    reply if there is one. For small models, whose free-text reviews are unreliable."""
    parts: list[str] = []
    ok = [r for r in runs.values() if r.status == "ok"]
    for run in ok:
        s = run.step
        if s.kind != "tool":
            continue
        text = _render(run.output, limit)
        if s.tool in ("write_file", "edit_file"):
            text = f"{s.tool} {s.args.get('path', '')}: done" + (f" ({text})" if text and text != "null" else "")
        parts.append(text if len(ok) == 1 else f"[{s.id} {s.tool}]\n{text}")
    last = ok[-1] if ok else None
    if last is not None and last.step.kind == "llm" and last.output not in (None, ""):
        parts.append(summarize_output(last.output, limit))
    return "\n".join(parts)[:limit] if parts else fallback_answer(runs)


# The reviewer's prompt is ``json.dumps(digest, indent=1, ensure_ascii=False)`` and must stay
# exactly that: replay finds recorded responses by the request's hash. json.dumps with an indent
# runs the pure-Python encoder (~4 µs a step); orjson writes the steps with an indent of 2, and
# one replace moves the fields from 4 spaces to 3. Only for the digest's shape, step objects of
# strings: orjson escapes strings as json.dumps(ensure_ascii=False) does (checked in
# tests/test_reviewer_digest.py) but writes numbers its own way.


def _digest_json(task: Any, plan_id: Any, steps: list[dict[str, Any]]) -> str:
    """``json.dumps({"task": task, "plan_id": plan_id, "steps": steps}, indent=1,
    ensure_ascii=False)``, byte for byte, faster."""
    if (type(task) is str and type(plan_id) is str and set(map(type, steps)) <= {dict}
            and set(map(type, chain.from_iterable(map(dict.values, steps)))) <= {str}):
        try:
            head = b'{\n "task": %b,\n "plan_id": %b,\n "steps": ' % (orjson.dumps(task), orjson.dumps(plan_id))
            body = orjson.dumps(steps, option=orjson.OPT_INDENT_2)
        except orjson.JSONEncodeError:
            pass  # not valid UTF-8 (a lone surrogate), or a key that is not a string
        else:
            if steps:  # [\n  {\n    "id": ...\n  }\n] -> [\n  {\n   "id": ...\n  }\n ]
                body = body[:-2].replace(b"\n    ", b"\n   ") + b"\n ]"
            return (head + body + b"\n}").decode()
    return json.dumps({"task": task, "plan_id": plan_id, "steps": steps}, indent=1, ensure_ascii=False)


async def review(client: LLMClient, task: str, plan: Plan, runs: dict[str, StepRun]) -> Review:
    """Ask the reviewer model for its verdict."""
    user = _digest_json(task, plan.id, step_digest(runs))
    result = await client.acomplete(
        [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}],
        role="reviewer", response_model=Review,
    )
    verdict: Review = result.parsed
    return verdict
