"""The planner: one structured-output model call turns a task into a validated :class:`Plan`.

The model writes a *draft*::

    {"steps": {"s1": {"call": {"tool": "list_files", "args": {"pattern": "**/*.py"}},
                      "depends_on": [], "title": "Find the Python files"},
               "s2": {"prompt": "Summarise: {{s1.output}}", "depends_on": ["s1"], "title": "..."}}}

Step ids are fixed by the schema, not chosen by the model: the steps object has the keys
``s1, s2, ...`` in order (``s1`` required), and step ``sk``'s ``depends_on`` is an enum of
``s1..s(k-1)``. So under a grammar (the embedded local model) a self-, forward- or dangling
dependency cannot be written at all, and the model sees each id written right before the
step it names, which makes ``{{sk.output}}`` references easy to get right. (A plain list
would let step 1 depend on itself: array items all share one schema, and a 135M model
does write ``"depends_on": ["s1"]`` there, again after every re-ask.)

That is the schema the embedded local model decodes under (:func:`draft_schema`). A hosted
model gets :func:`~agentcli.planning.prompt.hosted_draft_schema`: the same draft shape with one
shared step definition and ``depends_on`` as a list of ids (a quarter of the tokens), its
dependencies checked here instead.

The schema is otherwise built for grammar-constrained decoding too: one ``anyOf`` branch
per tool with the tool name as a ``const`` and the args typed by the tool's own schema,
every string and array bounded, the call first so that branches part at the first key.
Shared parts live in ``$defs``, so the schema grows with tools + steps.

The client checks that the reply is JSON; the shape and the meaning (known tools, valid
args, dependencies, references, cycles, step count, budgets) are checked here, and the
model is re-asked with a list of precise problems up to ``llm.max_reasks`` times.
"""

from __future__ import annotations

import difflib
import json
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentcli.config import Config, Settings
from agentcli.errors import OutputTruncated, PlanningError, StructuredOutputError, UsageError, WorkspaceError
from agentcli.ids import new_run_id
from agentcli.models import tokens
from agentcli.models.client import LLMClient, LLMResult
from agentcli.models.types import Price
from agentcli.planning.instructions import ProjectInstructions, with_instructions
from agentcli.planning.plan import (
    PLAN_SCHEMA_VERSION,
    STEP_ID_RE,
    Plan,
    PlanIssue,
    PlanSource,
    Step,
    StepKind,
    default_retry,
    derive_approval,
    llm_step_messages,
    validate_steps,
)
from agentcli.planning.prompt import (
    PastPlans,
    Recall,
    callable_tool_spec,
)
from agentcli.planning.strategy import PlannerStrategy, PlanRequest, planner_for
from agentcli.redact import Redactor, redact_text
from agentcli.tools import Tool, ToolRegistry
from agentcli.untrusted import read_json_file

#: Input tokens assumed per ``{{sN.output}}`` reference in a prompt: outputs are unknown at plan time.
REFERENCE_TOKENS = 256


# --------------------------------------------------------------------------- the draft


class DraftCall(BaseModel):
    """The tool call of a draft step."""

    model_config = ConfigDict(extra="ignore")

    tool: str
    args: dict[str, Any] | None = None


class DraftStep(BaseModel):
    """One step as the model writes it. Parsed leniently (a flat ``tool``/``args`` is accepted
    as well as ``call``, for providers that ignore the schema); meaning is checked afterwards."""

    model_config = ConfigDict(extra="ignore")

    call: DraftCall | None = None
    tool: str | None = None
    args: dict[str, Any] | None = None
    prompt: str | None = None
    #: An investigate step's question (the step's ``prompt``).
    investigate: str | None = None
    answer: str | None = None
    answer_schema: dict[str, Any] | None = None
    depends_on: list[str | int] = Field(default_factory=list)
    title: str = ""
    requires_approval: bool = False
    expect_exit_codes: list[int] | None = None


class DraftPlan(BaseModel):
    """The planner model's reply: steps keyed by id in order (a plain list is accepted too)."""

    model_config = ConfigDict(extra="ignore")

    steps: dict[str, DraftStep] | list[DraftStep]


# --------------------------------------------------------------------------- interpretation


def _dep_id(dep: str | int) -> str:
    # Lenient on form: 1, "1" and "S1" all mean s1 (providers without grammars write them).
    text = str(dep).strip().lower()
    return f"s{text}" if text.isdigit() else text


def _shape_issues(err: ValidationError) -> list[PlanIssue]:
    out = []
    for e in err.errors()[:10]:
        loc = [p for p in e["loc"] if p not in ("dict[str,DraftStep]", "list[DraftStep]")]
        if len(loc) >= 2 and loc[0] == "steps":
            head = f"s{loc[1] + 1}" if isinstance(loc[1], int) else str(loc[1])
            where = ".".join([head, *(str(p) for p in loc[2:])])
        else:
            where = ".".join(str(p) for p in loc) or "reply"
        out.append(PlanIssue(where, e["msg"]))
    return out


def _draft_items(draft: DraftPlan, first: int = 1) -> tuple[list[tuple[str, DraftStep]], list[PlanIssue]]:
    if isinstance(draft.steps, list):
        return [(f"s{i}", d) for i, d in enumerate(draft.steps, first)], []
    items: list[tuple[str, DraftStep]] = []
    issues: list[PlanIssue] = []
    for key, d in draft.steps.items():
        sid = _dep_id(key)
        if not STEP_ID_RE.match(sid):
            issues.append(PlanIssue(key, "step names are s1, s2, s3, ... in order"))
        elif sid in (i for i, _ in items):
            issues.append(PlanIssue(key, f"step {sid} is given twice"))
        else:
            items.append((sid, d))
    return items, issues


def _numbering_issues(ids: list[str], first: int) -> list[PlanIssue]:
    """A problem when the steps are not s<first>, s<first+1>, ... in order."""
    want = [f"s{k}" for k in range(first, first + len(ids))]
    if ids == want:
        return []
    where = next((got for got, w in zip(ids, want, strict=True) if got != w), ids[0] if ids else "steps")
    return [PlanIssue(where, f"number the steps {', '.join(want[:3])}{', ...' if len(want) > 3 else ''} in order"
                             + (f" (s1-s{first - 1} are the previous plan's)" if first > 1 else ""))]


def _draft_step(sid: str, d: DraftStep, registry: ToolRegistry, config: Config) -> Step | list[PlanIssue]:
    tool_name = d.call.tool if d.call is not None else d.tool
    args = (d.call.args if d.call is not None else d.args) or {}
    if tool_name == "llm":  # some models name the llm step as if it were a tool
        tool_name = None
    if d.investigate is not None:
        if tool_name is not None or d.prompt is not None:
            return [PlanIssue(sid, 'give one of "call", "prompt" or "investigate", not two')]
        return _investigate_step(sid, d, config)
    if (tool_name is None) == (d.prompt is None):
        return [PlanIssue(sid, 'give either "call" (a tool and its args) or "prompt", not both')]
    tool = registry.get(tool_name) if tool_name else None
    risk = tool.risk if tool is not None else None
    kind: StepKind = "llm" if tool_name is None else "tool"
    try:
        return Step(
            id=sid,
            title=(d.title.strip() or tool_name or "llm step")[:200],
            kind=kind,
            tool=tool.name if tool is not None else tool_name,
            args=args if kind == "tool" else {},
            prompt=d.prompt,
            answer=d.answer or "text",
            answer_schema=d.answer_schema,
            depends_on=list(dict.fromkeys(_dep_id(x) for x in d.depends_on)),
            retry=default_retry(kind, risk),
            risk=risk,
            requires_approval=derive_approval(risk, config.approval, d.requires_approval),
            tool_schema_version=tool.schema_version if tool is not None else None,
            expect_exit_codes=(list(dict.fromkeys(d.expect_exit_codes))
                               if d.expect_exit_codes and kind == "tool" else None),
        )
    except ValidationError as e:
        return [PlanIssue(sid, x["msg"]) for x in e.errors()[:3]]


def _investigate_step(sid: str, d: DraftStep, config: Config) -> Step | list[PlanIssue]:
    """An investigate step: read-only, so it asks as reads do (``approval.read``)."""
    try:
        return Step(id=sid, title=(d.title.strip() or "investigate")[:200], kind="investigate",
                    prompt=d.investigate, depends_on=list(dict.fromkeys(_dep_id(x) for x in d.depends_on)),
                    retry=default_retry("investigate", "read"), risk="read",
                    requires_approval=derive_approval("read", config.approval, d.requires_approval))
    except ValidationError as e:
        return [PlanIssue(sid, x["msg"]) for x in e.errors()[:3]]


def interpret_draft(raw: Any, registry: ToolRegistry, config: Config, *,
                    check_outputs: bool = False,
                    kept: frozenset[str] = frozenset(),
                    numbered_from: int | None = None) -> tuple[list[Step], list[PlanIssue]]:
    """Steps from the model's reply, with ids, approval and retry policies, and every problem
    (``check_outputs``: reference paths into declared outputs too, see :func:`validate_steps`;
    ``kept``: a re-plan's kept step ids; ``numbered_from``: the steps must be numbered s<N>,
    s<N+1>, ... in order from it, which a hosted draft schema leaves open)."""
    try:
        draft = DraftPlan.model_validate(raw)
    except ValidationError as e:
        return [], _shape_issues(e)
    items, issues = _draft_items(draft, 1 + max((int(k[1:]) for k in kept), default=0))
    if numbered_from is not None and not issues:
        issues = _numbering_issues([sid for sid, _ in items], numbered_from)
    steps: list[Step] = []
    for sid, d in items:
        made = _draft_step(sid, d, registry, config)
        if isinstance(made, Step):
            steps.append(made)
        else:
            issues.extend(made)
    if not issues:
        issues = validate_steps(steps, registry, max_steps=config.budget.max_steps, check_outputs=check_outputs,
                                kept=kept)
    return steps, issues


# --------------------------------------------------------------------------- estimates


def estimate_steps(steps: list[Step], *, task: str, model: str, price: Price | None,
                   output_tokens: int, instructions: str = "", investigate_tokens: int = 0
                   ) -> tuple[int, float | None]:
    """Fill each step's estimate and return the totals (tokens, USD or None when unknown).

    An ``llm`` step sends :func:`~agentcli.planning.plan.llm_step_messages` (counted with tiktoken),
    plus ``REFERENCE_TOKENS`` per referenced output, and may generate ``output_tokens``: the output
    limit the step is sent with (:meth:`~agentcli.models.client.LLMClient.output_limit`), the
    most the budget has to pay for, so a step that writes a module is not under-priced. Tool steps
    call no model: zero tokens, zero cost. An ``investigate`` step is estimated at its token limit
    (``investigate_tokens``, ``[investigate] max_tokens``), as input: the most it may use.
    """
    total_tokens = 0
    total_cost: float | None = 0.0
    out_tokens = output_tokens
    for step in steps:
        if step.kind == "investigate":
            step.estimated_input_tokens, step.estimated_output_tokens = investigate_tokens, 0
            step.estimated_cost_usd = None if price is None else price.cost(investigate_tokens, 0)
            total_tokens += investigate_tokens
            total_cost = None if total_cost is None or step.estimated_cost_usd is None \
                else total_cost + step.estimated_cost_usd
            continue
        if step.kind != "llm":
            step.estimated_input_tokens = step.estimated_output_tokens = 0
            step.estimated_cost_usd = 0.0
            continue
        n_in = tokens.count_messages(llm_step_messages(task, step.prompt or "", instructions, step.answer), model)
        n_in += REFERENCE_TOKENS * len(step.references())
        step.estimated_input_tokens, step.estimated_output_tokens = n_in, out_tokens
        step.estimated_cost_usd = None if price is None else price.cost(n_in, out_tokens)
        total_tokens += n_in + out_tokens
        total_cost = None if total_cost is None or step.estimated_cost_usd is None \
            else total_cost + step.estimated_cost_usd
    return total_tokens, total_cost


def _price_of(client: LLMClient, model: str) -> Price | None:
    try:
        return client.price(model)
    except Exception:  # an unknown price is shown as unknown, not an error
        return None


def _budget_issues(tokens_total: int, cost: float | None, config: Config) -> list[PlanIssue]:
    b = config.budget
    out = []
    if tokens_total > b.max_tokens:
        out.append(PlanIssue("plan", f"the llm steps need about {tokens_total} tokens, over the budget of "
                                     f"{b.max_tokens}; use fewer or shorter llm steps"))
    if cost is not None and cost > b.max_cost_usd:
        out.append(PlanIssue("plan", f"the llm steps cost about ${cost:.4f}, over the budget of "
                                     f"${b.max_cost_usd:g}; use fewer llm steps"))
    return out


# --------------------------------------------------------------------------- make_plan


@dataclass(frozen=True)
class Replan:
    """What a re-plan adds to a planner request: the context (why, what happened, what is
    left), given the number of the first step the planner is to write; the first id after
    the kept steps; the kept steps' ids; and the commands a review gave to check the work
    (``()``: none), which make the new steps when they are valid (see :func:`check_steps`)."""

    context: Callable[[int], str]
    first_step: int
    kept: frozenset[str]
    commands: tuple[str, ...] = ()


#: The tool a review's check commands run with.
CHECK_TOOL = "run_shell"


def check_steps(commands: tuple[str, ...], first: int, registry: ToolRegistry, config: Config,
                kept: frozenset[str] = frozenset()) -> tuple[list[Step], list[PlanIssue]]:
    """A review's check commands as steps: one ``run_shell`` step a command, numbered from
    ``s<first>``, each depending on the one before and titled with its command, read as a draft
    the planner could have written (so approval comes from the config alone, and tools, arguments
    and the step limit are checked as any plan's are); with every problem."""
    draft = {"steps": {f"s{first + i}": {
        "call": {"tool": CHECK_TOOL, "args": {"command": command}},
        "depends_on": [f"s{first + i - 1}"] if i else [],
        "title": command if len(command) <= 200 else command[:199] + "\u2026",
    } for i, command in enumerate(commands)}}
    return interpret_draft(draft, registry, config, kept=kept, numbered_from=first)


#: Per client (one run's), per task: what its first plan showed of the workspace (PlanRequest.view).
_views: weakref.WeakKeyDictionary[LLMClient, dict[str, dict[str, str]]] = weakref.WeakKeyDictionary()


def _run_view(client: LLMClient, task: str, replan: bool) -> dict[str, str]:
    """The workspace view a plan of ``task`` shows: a first plan's is new (and kept), a re-plan's
    the one its run's first plan showed (new if there is none, e.g. a resumed run)."""
    views = _views.setdefault(client, {})
    if not replan or task not in views:
        views[task] = {}
    return views[task]


def _add_cost(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


async def make_plan(
    task: str,
    *,
    settings: Settings,
    registry: ToolRegistry,
    client: LLMClient,
    recall: Recall | None = None,
    past_plans: PastPlans | None = None,
    plan_id: str | None = None,
    now: datetime | None = None,
    save: bool = True,
    context: str | None = None,
    replan: Replan | None = None,
    instructions: ProjectInstructions | None = None,
    strategy: PlannerStrategy | None = None,
    ledger: str = "",
) -> Plan:
    """Plan ``task``: ask the planner model (re-asking with the problems up to
    ``llm.max_reasks`` times), validate, estimate, hash, and save it to
    ``<data_dir>/plans/<id>.json`` (unless ``save`` is False).

    ``recall(task)`` returns remembered snippets to include in the prompt; ``past_plans(task)``
    past runs' plans for similar tasks (a local planner's examples). ``plan_id`` and
    ``now`` default to a fresh run id and the current UTC time (tests fix them). ``context``
    (e.g. why a previous plan failed and what it achieved, when re-planning) is added to the prompt,
    and so are the project's ``instructions`` (AGENTS.md); without them the request is unchanged;
    ``replan`` does that for a re-plan and, for a hosted planner, numbers the new steps after the
    kept ones so that they can reference their outputs.
    ``strategy`` defaults to the one the planner model's profile calls for (:func:`planner_for`).
    ``ledger`` is a session's typed ledger of its earlier turns (:mod:`agentcli.record.ledger`),
    put in its own section of the request, after the stable prefix and before the task.
    A re-plan with a review's check commands (``replan.commands``) asks no model: the new steps are
    those commands (:func:`check_steps`), the plan's ``source`` is ``"review"``; when they are not
    usable, the planner model re-plans as without them.
    Raises :class:`PlanningError` when no valid plan comes out.
    """

    config = settings.config
    # A secret pasted into the task never reaches the model, the plan file or memory.
    task = redact_text(task.strip())
    if not task:
        raise UsageError("the task is empty")
    tools = [t for t in registry.tools() if t.planned]
    planner_model = config.model_for("planner")
    executor = config.model_for("executor")
    if replan is not None and replan.commands:
        # The review gave the check to run: its commands are the new steps, no model is asked.
        # Unusable (a tool refused, the step limit): the planner re-plans as without them.
        steps, issues = check_steps(replan.commands, replan.first_step, registry, config, replan.kept)
        if not issues:
            total_tokens, total_cost = estimate_steps(
                steps, task=task, model=executor, price=_price_of(client, executor), output_tokens=0)
            issues = _budget_issues(total_tokens, total_cost, config)
        if not issues:
            return _made(steps, task=task, plan_id=plan_id, now=now, executor=executor, planner_model=planner_model,
                         tokens=total_tokens, cost=total_cost, planning_cost=0.0, source="review",
                         save=save, data_dir=settings.data_dir)
    strategy = strategy or planner_for(client.profile(planner_model))
    # A small local model always writes s1, s2, ... (its grammar); its steps are renumbered after
    # the kept ones when merged. A hosted model numbers them after the kept ones itself.
    continues = replan is not None and strategy.continues_numbering
    first_step, kept = (replan.first_step, replan.kept) if replan is not None and continues else (1, frozenset())
    if replan is not None:
        context = replan.context(first_step)
    survey = survey_tools(registry, config) if strategy.surveys else []
    survey_calls = config.planner.survey_calls if survey else 0
    schema, base = strategy.request(PlanRequest(task, tools, config, settings.workspace, settings.data_dir,
                                                recall, context, past_plans,
                                                step_output_tokens=client.output_limit("executor"),
                                                first_step=first_step, survey_calls=survey_calls,
                                                survey_tools=frozenset(t.name for t in survey),
                                                ledger=ledger,
                                                view=_run_view(client, task, replan is not None)))
    base = with_instructions(base, instructions, client.profile(planner_model).context_tokens,
                             into=strategy.instructions_at)
    price = _price_of(client, executor)
    planning_cost: float | None = 0.0
    messages = base
    tries = config.llm.max_reasks + 1
    for attempt in range(tries):
        try:
            if attempt == 0 and survey_calls:
                # The planner looks first; what it read stays in the base of any re-ask.
                base, result, looked = await _survey(base, schema, survey, survey_calls, registry, client)
                planning_cost = _add_cost(planning_cost, looked)
                messages = base
            else:
                # A re-ask after a survey sends the survey's tools again, asking for no call: the same
                # request prefix as the calls before it (a provider's prompt cache).
                result = await client.acomplete(messages, role="planner", json_schema=schema,
                                                tools=_survey_specs(survey) if survey_calls else None,
                                                tool_choice="none" if survey_calls else None)
        except OutputTruncated as e:
            raise PlanningError(f"the plan was cut at the planner's output limit and not used: {e.one_line()}"
                                ) from None
        except StructuredOutputError as e:
            hint = strategy.failure_hint(planner_model)
            raise PlanningError(f"the planner did not reply with JSON: {e.one_line()}"
                                + (f" ({hint})" if hint else "")) from None
        planning_cost = _add_cost(planning_cost, result.cost_usd)
        steps, issues = interpret_draft(result.parsed, registry, config, check_outputs=strategy.check_outputs,
                                        kept=kept, numbered_from=first_step if strategy.continues_numbering else None)
        total_tokens, total_cost = 0, None
        if not issues:
            total_tokens, total_cost = estimate_steps(
                steps, task=task, model=executor, price=price, output_tokens=client.output_limit("executor", executor),
                instructions=instructions.text if instructions is not None else "",
                investigate_tokens=config.investigate.max_tokens)
            issues = _budget_issues(total_tokens, total_cost, config)
        if not issues:
            break
        messages = [*base, {"role": "assistant", "content": result.text},
                    {"role": "user", "content": strategy.reask(issues)}]
    else:
        listed = "; ".join(str(i) for i in issues[:6])
        more = f" (+{len(issues) - 6} more)" if len(issues) > 6 else ""
        hint = strategy.failure_hint(planner_model)
        raise PlanningError(f"no valid plan after {tries} tries: {listed}{more}" + (f"; {hint}" if hint else ""))
    return _made(steps, task=task, plan_id=plan_id, now=now, executor=executor, planner_model=planner_model,
                 tokens=total_tokens, cost=total_cost, planning_cost=planning_cost, source="planner",
                 save=save, data_dir=settings.data_dir)


def _made(steps: list[Step], *, task: str, plan_id: str | None, now: datetime | None, executor: str,
          planner_model: str, tokens: int, cost: float | None, planning_cost: float | None,
          source: PlanSource, save: bool, data_dir: Path) -> Plan:
    """The plan of valid, estimated steps: secrets masked, hashed, saved (unless ``save`` is False)."""
    plan = Plan(
        schema_version=PLAN_SCHEMA_VERSION,
        id=plan_id or new_run_id(),
        task=task,
        created_at=now or datetime.now(UTC).replace(microsecond=0),
        model=executor,
        planner_model=planner_model,
        steps=_redacted_steps(steps),
        estimated_tokens=tokens,
        estimated_cost_usd=cost,
        planning_cost_usd=planning_cost,
        source=source,
    ).rehash()
    if save:
        save_plan(plan, plan_path(data_dir, plan.id))
    return plan


#: At most this many characters of one survey call's output go back to the planner.
SURVEY_OUTPUT_CHARS = 16_000


#: The tools a planner may look with: enough to see files and find things; each offered tool's
#: schema is sent with every survey request, so the set is kept small.
SURVEY_TOOLS = ("list_files", "read_file", "search_code", "git_history")


def survey_tools(registry: ToolRegistry, config: Config) -> list[Tool]:
    """The tools a planner may call before it plans: :data:`SURVEY_TOOLS` where they only read and
    run without asking (never a tool whose call could add a risk)."""
    if config.approval.read != "auto":
        return []
    found = [registry.get(n) for n in SURVEY_TOOLS]
    return [t for t in found if t is not None and t.risk == "read" and t.call_risks is None]


def _survey_specs(survey: list[Tool]) -> list[dict[str, Any]]:
    return [callable_tool_spec(t) for t in survey]


def _shown(output: Any) -> str:
    text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False, indent=1, default=str)
    if len(text) <= SURVEY_OUTPUT_CHARS:
        return text
    return text[:SURVEY_OUTPUT_CHARS] + f"\n[... {len(text) - SURVEY_OUTPUT_CHARS} more characters not shown]"


async def _survey(messages: list[dict[str, Any]], schema: dict[str, Any], survey: list[Tool], calls: int,
                  registry: ToolRegistry, client: LLMClient
                  ) -> tuple[list[dict[str, Any]], LLMResult, float | None]:
    """Let the planner look before it plans: its read-only tool calls are validated and run (at most
    ``calls`` in all, each result bounded) until it replies without one, or the calls are used up and
    it is asked for the plan with no tools. Returns the conversation so far (the base of any re-ask),
    the reply that holds the first draft, and what the calls before that reply cost."""
    specs = _survey_specs(survey)
    offered = {t.name for t in survey}
    left = calls
    cost: float | None = 0.0
    while True:
        # The tools are offered in every request (its prefix stays the same), called while calls are left.
        result = await client.acomplete(messages, role="planner", json_schema=schema, tools=specs,
                                        tool_choice=None if left > 0 else "none")
        if not result.tool_calls or left <= 0:
            return messages, result, cost
        cost = _add_cost(cost, result.cost_usd)
        asked = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                 for c in result.tool_calls]
        replies = []
        for c in result.tool_calls:
            tool = registry.get(c.name)
            if left <= 0:
                content = json.dumps({"error": "no survey calls left: reply with the plan"})
            elif tool is None or tool.name not in offered:
                content = json.dumps({"error": f"{c.name} is not a read-only tool you may call now"})
            else:
                left -= 1
                res = await registry.call(tool.name, c.arguments)
                content = _shown(res.output) if res.ok else json.dumps(
                    {"error": res.error.model_dump(mode="json") if res.error else "failed"}, ensure_ascii=False)
            replies.append({"role": "tool", "tool_call_id": c.id, "content": redact_text(content)})
        messages = [*messages, {"role": "assistant", "content": result.text or None, "tool_calls": asked}, *replies]


def _redacted_steps(steps: list[Step]) -> list[Step]:
    """The steps with any known secret value masked (before the plan is hashed and saved)."""
    redact = Redactor()
    dumped = [s.model_dump(mode="json") for s in steps]
    masked = redact(dumped)
    return steps if masked == dumped else [Step.model_validate(d) for d in masked]


# --------------------------------------------------------------------------- files


def plan_path(data_dir: Path, plan_id: str) -> Path:
    """Where a plan is kept: ``<data_dir>/plans/<plan_id>.json``."""
    return data_dir / "plans" / f"{plan_id}.json"


def save_plan(plan: Plan, path: Path) -> Path:
    """Write the plan as JSON (atomically: a reader never sees half a file)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(plan.to_json(), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        raise WorkspaceError(f"cannot write plan to {path}: {e.strerror}") from None
    return path


#: A plan file with more steps is refused unread (no budget runs that many).
MAX_PLAN_FILE_STEPS = 10_000


def read_plan_file(path: Path) -> Plan:
    """A plan file read and checked as data (UTF-8, bounded JSON, schema version, the plan model),
    not yet against the tools: commands call this before anything is written for the run."""
    raw = read_json_file(path, f"plan file {path}")
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    steps = raw.get("steps") if isinstance(raw, dict) else None
    if isinstance(steps, list) and len(steps) > MAX_PLAN_FILE_STEPS:
        # Before anything looks at the steps: validating them is linear, some checks more.
        raise PlanningError(f"plan file {path} has {len(steps)} steps; at most {MAX_PLAN_FILE_STEPS} "
                            "are read (and budget.max_steps are run)")
    if version != PLAN_SCHEMA_VERSION:
        raise PlanningError(f"plan file {path}: schema_version {version!r} is not supported "
                            f"(this version reads {PLAN_SCHEMA_VERSION!r})")
    try:
        return Plan.model_validate(raw)
    except ValidationError as e:
        errs = "; ".join(f"{'.'.join(str(p) for p in x['loc'])}: {x['msg']}" for x in e.errors()[:5])
        raise PlanningError(f"plan file {path} is not a valid plan: {errs}") from None


def _payload_text(plan: Plan) -> list[str]:
    return json.dumps(plan.hash_payload(), indent=2, sort_keys=True, ensure_ascii=False).splitlines(True)


def load_plan(
    path: Path, registry: ToolRegistry, config: Config, *, data_dir: Path | None = None,
    client: LLMClient | None = None,
) -> tuple[Plan, bool, str]:
    """Load a plan file for execution: ``(plan, changed, diff)``.

    The plan is always re-validated against the current tools and config (a tool that is
    gone or whose args no longer validate is a :class:`PlanningError`); tool schema
    versions, risks and approval flags are refreshed (approval never lowered), and the
    plan is re-hashed. ``changed`` is True when the file was edited (its hash does not
    match) or the refresh changed anything. ``diff`` is a unified diff of the canonical
    JSON against the plan as originally saved in ``<data_dir>/plans/`` (``data_dir``
    defaults to the registry's), or against the file itself when only the refresh changed
    it. With ``client``, the estimates are recomputed too.
    """
    plan = read_plan_file(path)
    intact = plan.verify_hash()
    before = plan  # _refresh changes a copy
    if not intact:
        saved = plan_path(data_dir or registry.ctx.data_dir, plan.id)
        original = None
        if saved.is_file() and saved.resolve() != path.resolve():
            try:
                original = read_plan_file(saved)
            except PlanningError:
                original = None
        if original is None or not original.verify_hash():
            return _refresh(plan, path, registry, config, client), True, (
                f"(the plan file was edited; the original is not in {saved.parent}, so no diff)\n")
        before = original
    after = _refresh(plan, path, registry, config, client)
    changed = not intact or after.hash != before.hash
    diff = "".join(difflib.unified_diff(_payload_text(before), _payload_text(after),
                                        f"{plan.id} (as planned)", str(path))) if changed else ""
    return after, changed, diff


def _refresh(plan: Plan, path: Path, registry: ToolRegistry, config: Config,
             client: LLMClient | None) -> Plan:
    issues = validate_steps(plan.steps, registry, max_steps=config.budget.max_steps)
    if issues:
        listed = "; ".join(str(i) for i in issues[:6])
        raise PlanningError(f"plan file {path} is not valid: {listed}")
    # A copy of the plan and of each step, whose fields below are set anew (a deep copy of a long
    # plan cost more than running it: ~0.2 ms a step).
    plan = plan.model_copy(update={"steps": [s.model_copy() for s in plan.steps]})
    for step in plan.steps:
        tool = registry.get(step.tool) if step.tool else None
        if tool is not None:
            step.risk = tool.risk
            step.tool_schema_version = tool.schema_version
        elif step.kind == "investigate":
            step.risk = "read"
        step.requires_approval = derive_approval(step.risk, config.approval, step.requires_approval)
    if client is not None:
        plan.estimated_tokens, plan.estimated_cost_usd = estimate_steps(
            plan.steps, task=plan.task, model=plan.model, price=_price_of(client, plan.model),
            output_tokens=client.output_limit("executor", plan.model), investigate_tokens=config.investigate.max_tokens)
    return plan.rehash()
