"""A hash of every prompt template and schema a run's model requests are built from.

``run_started`` records them (:func:`prompt_hashes`), so a record says which prompts made it. A
model request's hash covers its whole text, so a record made with other prompts cannot be
replayed: :func:`changed_prompts` names the ones that differ, and the replay says so in one line
instead of "LLM request ... is not in the recording".

Each entry is the text (or the JSON Schema) as the code builds it, with fixed stand-ins where a
template takes arguments (the reviewer's message and a re-plan's steps are built for a fixed one-step
run, their layout being code); a tool's own schema is recorded per step (``tool_schema_version``), so
the draft schemas here are built with no tools.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from agentcli.engine import answer, executor, investigate, reviewer
from agentcli.planning import examples, local, plan, prompt
from agentcli.tools.edits import Edit

__all__ = ["changed_prompts", "prompt_hashes"]

# name -> how to build it. Names are stable: a record compares by them.
_SOURCES: dict[str, Callable[[], Any]] = {
    "planner.system": lambda: prompt._SYSTEM,
    "planner.hosted_system": lambda: prompt.hosted_system(1000) + prompt._HOSTED_RULES,
    "planner.survey_rule": lambda: prompt.survey_rule(3),
    "planner.draft_schema": lambda: prompt.draft_schema([], 8),
    "planner.hosted_draft_schema": lambda: prompt.hosted_draft_schema([], 8, investigate=True),
    "planner.investigate_rule": lambda: prompt.INVESTIGATE_RULE,
    "planner.local_system": lambda: local._LOCAL_SYSTEM,
    "planner.local_examples": lambda: [ex.draft_json() for ex in examples.EXAMPLES],
    "step.system": lambda: [plan._EXECUTOR_SYSTEM, plan._ANSWER_NOTES],
    "step.edits_schema": lambda: TypeAdapter(list[Edit]).json_schema(),
    "executor.fix_args": lambda: executor._FIX_ARGS_PROMPT,
    "step.plan_reminder": lambda: executor.PLAN_REMINDER,
    "investigate.system": lambda: [investigate._SYSTEM, investigate._LAST_CALL,
                                   investigate.FindingsAnswer.model_json_schema()],
    "reviewer.system": lambda: reviewer._SYSTEM + reviewer.verify_note("{command}"),
    "reviewer.schema": lambda: reviewer.REVIEW_SCHEMA,
    "reviewer.prompt": lambda: _review_sample(),
    "planner.replan_steps": lambda: reviewer.replan_steps(_sample_run()[1]),
    "answer.system": lambda: answer._SYSTEM,
}


def _sample_run() -> tuple[plan.Plan, dict[str, executor.StepRun]]:
    step = plan.Step(id="s1", title="{title}", kind="tool", tool="{tool}", args={"path": "{path}"})
    p = plan.Plan(id="{plan}", task="{task}", created_at=datetime(2000, 1, 1, tzinfo=UTC), model="{model}",
                  steps=[step])
    run = executor.StepRun(step)
    run.status, run.output, run.attempts = "ok", "{output}", 1
    return p, {"s1": run}


def _review_sample() -> str:
    # The reviewer's user message for a fixed one-step run: its layout (the digest) is code, not a
    # template, and a change of it changes every review request.
    # A read, an llm step's edits from it and their apply: the notes that stand for outputs that went
    # into the change are part of the layout too.
    p, runs = _sample_run()
    steps = [plan.Step(id="s2", title="{title}", kind="llm", prompt="{prompt} {{s1.output}}"),
             plan.Step(id="s3", title="{title}", kind="tool", tool="apply_edits", risk="write",
                       args={"edits": "{{s2.output}}"})]
    runs["s1"].step = runs["s1"].step.model_copy(update={"risk": "read"})
    for step, output in zip(steps, ("{edits}", "{applied}"), strict=True):
        runs[step.id] = executor.StepRun(step, status="ok", output=output, attempts=1)
    return reviewer.review_prompt("{task}", p, runs, "{changes}")


def _digest(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@functools.cache
def _hashes() -> tuple[tuple[str, str], ...]:
    return tuple((name, _digest(build())) for name, build in _SOURCES.items())


def prompt_hashes() -> dict[str, str]:
    """Prompt or schema name -> short sha256 of it, as this agentcli builds it (computed once)."""
    return dict(_hashes())


def changed_prompts(recorded: Mapping[str, str]) -> list[str]:
    """The names whose hash differs from ``recorded`` (a record's ``run_started.prompts``), sorted;
    a name only one side has counts as changed. Empty when ``recorded`` is empty (a record made
    before prompts were recorded: nothing to compare)."""
    if not recorded:
        return []
    now = prompt_hashes()
    return sorted(n for n in set(now) | set(recorded) if now.get(n) != recorded.get(n))
