"""Plans as typed data: steps, references between them, validation, approval and the plan hash.

A :class:`Plan` is what ``agent plan`` writes and ``agent run --plan`` executes. Its
``hash`` covers everything execution depends on (see :meth:`Plan.hash_payload`), so an
edited plan file is noticed, re-validated and re-hashed before it runs.

References: a step's args (or an ``llm`` step's prompt) may use an earlier step's output
as ``{{s1.output}}`` or a path into a JSON output: ``{{s2.output.files[0]}}``,
``{{s2.output.matches[1].path}}``. They are resolved at execution time by
:func:`resolve_references`; a referenced step must be listed in ``depends_on``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentcli.config import ApprovalConfig, RiskClass
from agentcli.errors import AgentError
from agentcli.tools import ToolError, ToolRegistry

#: Version of the persisted plan format; bump on an incompatible change.
PLAN_SCHEMA_VERSION = "1"

STEP_ID_RE = re.compile(r"^s[1-9][0-9]*$")
#: The shapes an ``llm`` step's answer may take (see :attr:`Step.answer`).
AnswerShape = Literal["text", "json", "edits"]
#: What a step is: a tool call, a model request, or a bounded read-only investigation (a model
#: with read tools and read-only commands, answering with :class:`Findings`).
StepKind = Literal["tool", "llm", "investigate"]
#: Where a plan's steps came from: the planner model, or a review's commands (a re-plan that only runs
#: the checks the reviewer gave, see :func:`agentcli.planning.planner.make_plan`).
PlanSource = Literal["planner", "review"]
#: Where a step is in a run: waiting, running, or how it ended (the last four are final).
StepStatus = Literal["pending", "running", "ok", "failed", "denied", "skipped"]
# One reference: {{sN.output}} followed by any number of .key or [index] accessors.
_REF_BODY = r"(s[1-9][0-9]*)\.output((?:\.[A-Za-z_][A-Za-z0-9_-]*|\[[0-9]+\])*)"
REFERENCE_RE = re.compile(r"\{\{\s*" + _REF_BODY + r"\s*\}\}")
_EXACT_REF_RE = re.compile(r"^\s*\{\{\s*" + _REF_BODY + r"\s*\}\}\s*$")
# Anything that looks like a reference attempt, to report malformed ones instead of passing them on.
_ANY_BRACES_RE = re.compile(r"\{\{(.*?)\}\}")
#: What inside ``{{...}}`` shows it was meant as a reference (a step id, "step", "output"); other
#: double braces are text: a regex (``r"({{|}}|...)"``), a format string, a template.
_REFERENCE_LIKE_RE = re.compile(r"^\s*(s\d|step\b|steps\b|[\w-]*\.?output\b)", re.IGNORECASE)
_ACCESSOR_RE = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[([0-9]+)\]")


class ReferenceResolutionError(AgentError):
    """A ``{{sN.output...}}`` reference that cannot be resolved against the results so far."""


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class Reference:
    """One parsed reference: the step it points at and the accessor path into its output."""

    text: str
    step_id: str
    path: tuple[str | int, ...]


def _parse_path(raw: str) -> tuple[str | int, ...]:
    return tuple(key if key else int(idx) for key, idx in _ACCESSOR_RE.findall(raw))


def _strings(value: Any) -> Iterator[str]:
    """Every string in a (nested) value, in order."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def find_references(value: Any) -> list[Reference]:
    """Every well-formed reference in a (nested) value, in order of appearance."""
    return [Reference(m.group(0), m.group(1), _parse_path(m.group(2)))
            for text in _strings(value) for m in REFERENCE_RE.finditer(text)]


def malformed_references(value: Any) -> list[str]:
    """``{{...}}`` snippets that look like references (a step id, "step", "output" first) but do
    not parse as one; other double braces are the text they are (code written by a plan)."""
    return [m.group(0) for text in _strings(value) for m in _ANY_BRACES_RE.finditer(text)
            if _REFERENCE_LIKE_RE.match(m.group(1)) and not REFERENCE_RE.fullmatch(m.group(0))]


def _follow(ref: Reference, results: dict[str, Any]) -> Any:
    if ref.step_id not in results:
        raise ReferenceResolutionError(f"{ref.text}: step {ref.step_id} has no result")
    cur = results[ref.step_id]
    where = f"{ref.step_id}.output"
    for part in ref.path:
        if isinstance(cur, str):
            # Some tools (MCP servers, shell) return JSON as text: let paths reach into it.
            try:
                cur = json.loads(cur)
            except json.JSONDecodeError:
                raise ReferenceResolutionError(f"{ref.text}: {where} is text, not JSON") from None
        if isinstance(part, int):
            if not isinstance(cur, list):
                raise ReferenceResolutionError(f"{ref.text}: {where} is not a list")
            if part >= len(cur):
                raise ReferenceResolutionError(f"{ref.text}: {where} has {len(cur)} items, no [{part}]")
            cur = cur[part]
            where += f"[{part}]"
        else:
            if not isinstance(cur, dict):
                raise ReferenceResolutionError(f"{ref.text}: {where} is not an object")
            if part not in cur:
                keys = ", ".join(sorted(map(str, cur))[:10]) or "none"
                raise ReferenceResolutionError(f"{ref.text}: {where} has no key '{part}' (keys: {keys})")
            cur = cur[part]
            where += f".{part}"
    return cur


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def prompt_text(value: Any) -> str:
    """A step output as text for a model to read: a string as it is; an object with a text field
    (a command's ``output``, a file's content) as ``key: value`` lines with that text unescaped
    below its key, so an exact line can be copied from it; anything else as indented JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and any(isinstance(v, str) and "\n" in v for v in value.values()) \
            and all(isinstance(v, str | int | float | bool) or v is None for v in value.values()):
        lines = []
        for key, v in value.items():
            if isinstance(v, str) and "\n" in v:
                lines.append(f"{key}:\n{v}" if v.endswith("\n") else f"{key}:\n{v}\n")
            else:
                lines.append(f"{key}: {v if isinstance(v, str) else json.dumps(v)}\n")
        return "".join(lines)
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def resolve_references(value: Any, results: dict[str, Any], *, as_text: Callable[[Any], str] = _as_text) -> Any:
    """Replace references in ``value`` (recursively through dicts and lists) by step outputs.

    ``results`` maps a step id to that step's output. A string that is exactly one
    reference becomes the referenced value itself, of any type; references embedded in
    a longer string are substituted as text by ``as_text`` (by default strings as is, anything
    else as compact JSON, for tool arguments; an ``llm`` step's prompt uses :func:`prompt_text`).
    Raises :class:`ReferenceResolutionError` for a missing step or a path that does not exist.
    """
    if isinstance(value, str):
        exact = _EXACT_REF_RE.match(value)
        if exact:
            return _follow(Reference(value.strip(), exact.group(1), _parse_path(exact.group(2))), results)
        return REFERENCE_RE.sub(
            lambda m: as_text(_follow(Reference(m.group(0), m.group(1), _parse_path(m.group(2))), results)),
            value,
        )
    if isinstance(value, dict):
        return {k: resolve_references(v, results, as_text=as_text) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v, results, as_text=as_text) for v in value]
    return value


def schema_path_problem(schema: dict[str, Any] | None, path: tuple[str | int, ...]) -> str | None:
    """Why ``path`` (a reference's accessors) does not exist in values of JSON Schema ``schema``,
    or None when it may; an undeclared (None) or open schema accepts any path."""
    if schema is None:
        return None
    defs = schema.get("$defs", {})
    node: Any = schema
    where = "output"
    for part in path:
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
        if not isinstance(node, dict) or not node.get("type"):
            return None  # any value: nothing to check against
        if isinstance(part, int):
            if node["type"] != "array":
                return f"{where} is {node['type']}, not a list"
            node = node.get("items", {})
            where += f"[{part}]"
        else:
            if node["type"] != "object":
                return f"{where} is {node['type'] if node['type'] != 'array' else 'a list'}, not an object"
            props = node.get("properties") or {}
            if part not in props:
                if props:
                    return f"{where} has no key '{part}' (keys: {', '.join(props)})"
                return None
            node = props[part]
            where += f".{part}"
    return None


# --------------------------------------------------------------------------- models


class RetryPolicy(BaseModel):
    """How a failing step is retried by the executor."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(1, ge=1, le=10, description="Attempts in all, the first included.")
    backoff_seconds: float = Field(
        1.0, ge=0, le=300, description="Wait before the 2nd attempt; doubles after each one."
    )


def default_retry(kind: StepKind, risk: str | None) -> RetryPolicy:
    """Reads and model calls are safe to repeat; writes and commands are not retried blindly."""
    if kind == "investigate":  # a loop of its own, bounded by its own limits: not run twice
        return RetryPolicy(max_attempts=1, backoff_seconds=0.0)
    if kind == "llm" or risk == "read":
        return RetryPolicy(max_attempts=2, backoff_seconds=1.0)
    return RetryPolicy(max_attempts=1, backoff_seconds=0.0)


class CommandRun(BaseModel):
    """A command an investigation ran (read-only), and how it ended."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(..., description="The shell command.")
    exit_code: int | None = Field(..., description="Its exit code; None when it did not finish (a timeout, "
                                  "a refusal).")


class Findings(BaseModel):
    """The output of an ``investigate`` step: what it established, on what evidence, by which commands."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(1, description="Version of this record's format.")
    established: str = Field(..., description="What the investigation established, in a few sentences "
                             "(or that it could not, and why).")
    evidence: list[str] = Field(default_factory=list, description="The lines it rests on: `path:line: text` "
                                "of files read, lines of a command's output.")
    commands: list[CommandRun] = Field(default_factory=list, description="The commands run, in order, with "
                                       "their exit codes.")
    calls: int = Field(0, ge=0, description="Tool calls made.")
    stopped: Literal["answered", "calls", "tokens", "seconds"] = Field(
        "answered", description="Why it ended: the model answered, or a limit of [investigate] was reached "
        "(`calls`: it was then asked to answer with what it had).")


class Step(BaseModel):
    """One step of a plan: a tool call, or a prompt for the executor's model."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(..., pattern=STEP_ID_RE.pattern, description="Step id, s1, s2, ... in plan order.")
    title: str = Field(..., min_length=1, max_length=200, description="What the step does, for people.")
    kind: StepKind = Field(
        ..., description="`tool`: call `tool` with `args`. `llm`: send `prompt` to the executor's model, "
        "for work whose content depends on earlier results (writing code, summarising findings). "
        "`investigate`: the executor's model answers `prompt` (a question) with read tools and read-only "
        "commands, within `[investigate]`'s limits; its output is the findings."
    )
    tool: str | None = Field(None, description="Tool name (kind `tool` only).")
    args: dict[str, Any] = Field(
        default_factory=dict, description="Tool arguments; strings may hold {{sN.output...}} references."
    )
    prompt: str | None = Field(None, description="The prompt (kind `llm`) or the question (kind `investigate`); "
                               "may hold references.")
    answer: AnswerShape = Field(
        "text", description="The shape of an `llm` step's answer: `text` (its output is the text), `json` "
        "(a JSON value, matching `answer_schema` when given) or `edits` (a list of {path, search, replace} "
        "for apply_edits). `json` and `edits` are sent as the request's response_format and validated."
    )
    answer_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema of a `json` answer (an object schema); None: any JSON object."
    )
    depends_on: list[str] = Field(
        default_factory=list, description="Ids of the steps that must finish first; every referenced step."
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="Retries of a failing step.")
    expect_exit_codes: list[int] | None = Field(
        None, max_length=16, description="Exit codes that count as success for a tool that runs a command "
        "(run_shell); None means only 0. Any other exit code fails the step, with the output's tail.")
    risk: RiskClass | None = Field(None, description="The tool's risk class (None for `llm` steps; `read` for "
                                   "`investigate` steps).")
    requires_approval: bool = Field(
        False, description="Ask before running: the planner's flag OR the approval policy of the risk class."
    )
    tool_schema_version: str | None = Field(
        None, description="The tool's schema version when planned; a change invalidates the plan hash."
    )
    estimated_input_tokens: int = Field(
        0, ge=0, description="Tokens the step sends to a model (0 for tool steps)."
    )
    estimated_output_tokens: int = Field(0, ge=0, description="Tokens the step is expected to generate.")
    estimated_cost_usd: float | None = Field(
        0.0, description="Expected model spend in USD; None when the model's price is unknown."
    )

    @model_validator(mode="after")
    def _kind_fields(self) -> Step:
        if self.kind == "tool" and (not self.tool or self.prompt is not None):
            raise ValueError("a tool step needs `tool` (and no `prompt`)")
        if self.kind == "llm" and (not self.prompt or self.tool is not None or self.args):
            raise ValueError("an llm step needs `prompt` (and no `tool` or `args`)")
        if self.kind == "investigate" and (not self.prompt or self.tool is not None or self.args):
            raise ValueError("an investigate step needs `prompt`, its question (and no `tool` or `args`)")
        if self.kind != "llm" and self.answer != "text":
            raise ValueError("`answer` is for llm steps only")
        if self.answer_schema is not None and self.answer != "json":
            raise ValueError('`answer_schema` needs "answer": "json"')
        return self

    def references(self) -> list[Reference]:
        """The references in this step's args or prompt."""
        return find_references(self.args if self.kind == "tool" else self.prompt)


class Plan(BaseModel):
    """A validated plan, as saved to ``<data_dir>/plans/<id>.json``."""

    model_config = ConfigDict(extra="forbid")

    schema_version: str = Field(PLAN_SCHEMA_VERSION, description="Version of this record's format.")
    id: str = Field(..., min_length=1, description="Plan id (also the id of the planning run's logs).")
    task: str = Field(..., description="The task as the user gave it.")
    created_at: datetime = Field(..., description="When the plan was made (UTC).")
    model: str = Field(..., description="The executor model that runs the `llm` steps.")
    planner_model: str = Field("", description="The model that wrote the plan (informational).")
    steps: list[Step] = Field(..., description="The steps, in plan order.")
    estimated_tokens: int = Field(0, ge=0, description="Sum of the steps' estimated tokens.")
    estimated_cost_usd: float | None = Field(
        0.0, description="Sum of the steps' estimated cost; None when any part is unknown."
    )
    planning_cost_usd: float | None = Field(
        None, description="What making the plan cost; None when the planner's price is unknown."
    )
    hash: str = Field("", description="sha256 of the canonical JSON of hash_payload().")
    #: Not in the plan's file or hash (it changes nothing that runs): the plan's ``plan_created``
    #: event says it, and a replay serves it from there.
    source: PlanSource = Field("planner", exclude=True, description="Where the steps came from: the planner "
                               "model, or a review's check commands.")

    def hash_payload(self) -> dict[str, Any]:
        """What execution depends on: the task, the executor model and the steps (ids, titles,
        tools, args, prompts, dependencies, retries, risk, approval, tool schema versions).
        The plan's id and time, the planner model and the estimates are left out: they do
        not change what runs."""
        keep = {"id", "title", "kind", "tool", "args", "prompt", "depends_on", "retry", "risk",
                "requires_approval", "tool_schema_version"}
        steps = []
        for s in self.steps:
            item = s.model_dump(mode="json", include=keep)
            # Added later, so only when set: a plan without them keeps the hash it always had.
            if s.answer != "text":
                item["answer"] = s.answer
            if s.answer_schema is not None:
                item["answer_schema"] = s.answer_schema
            if s.expect_exit_codes is not None:
                item["expect_exit_codes"] = list(s.expect_exit_codes)
            steps.append(item)
        return {
            "schema_version": self.schema_version,
            "task": self.task,
            "model": self.model,
            "steps": steps,
        }

    def compute_hash(self) -> str:
        """The hash this plan should carry."""
        return compute_hash(self.hash_payload())

    def verify_hash(self) -> bool:
        """Whether ``hash`` matches the content (False for an edited file)."""
        return bool(self.hash) and self.hash == self.compute_hash()

    def rehash(self) -> Plan:
        """Set ``hash`` from the content; returns self."""
        self.hash = self.compute_hash()
        return self

    def step(self, step_id: str) -> Step | None:
        """The step with this id, if any."""
        return next((s for s in self.steps if s.id == step_id), None)

    def to_json(self) -> str:
        """The plan as saved: indented JSON."""
        return self.model_dump_json(indent=2) + "\n"


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the same data always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def compute_hash(payload: Any) -> str:
    """sha256 (hex) of the canonical JSON of ``payload``."""
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- approval


def policy_requires_approval(risk: str | None, policy: ApprovalConfig) -> bool:
    """Whether the policy alone requires approval: ``ask`` or ``deny`` for the risk class.
    ``llm`` steps (no risk) only produce text, so the policy never asks for them."""
    if risk is None:
        return False
    return getattr(policy, risk, "ask") != "auto"


def derive_approval(risk: str | None, policy: ApprovalConfig, requested: bool) -> bool:
    """The final flag: what the planner (or an editor) asked for OR what the policy requires.
    A flag can raise the requirement, never lower it."""
    return bool(requested) or policy_requires_approval(risk, policy)


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class PlanIssue:
    """One problem with a plan, worded so that a small model can fix it."""

    where: str  # "plan", "s2", "s2.args.path", ...
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _holds_reference(args: Any, loc: list[Any]) -> bool:
    # Walk the error location into the args; pydantic may insert union tags that are not
    # keys of the data, so a component that does not match is skipped, not fatal.
    cur = args
    for part in loc:
        if isinstance(cur, str):
            break
        in_dict = isinstance(cur, dict) and part in cur
        in_list = isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        if in_dict or in_list:
            cur = cur[part]
    return isinstance(cur, str) and bool(REFERENCE_RE.search(cur))


def find_cycle(deps: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a path (``[s1, s2, s1]``), or None. Unknown ids are ignored.

    Iterative depth-first search: a plan file may chain thousands of steps, and a recursive
    walk would end in a RecursionError long before any budget said no."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in deps:
        if root in state:
            continue
        path: list[str] = [root]
        state[root] = 1
        todo: list[Iterator[str]] = [iter(deps.get(root, []))]
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                todo.pop()
                state[path.pop()] = 2
                continue
            if nxt not in deps:
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                todo.append(iter(deps.get(nxt, [])))
    return None


def _check_args(step: Step, tools: ToolRegistry) -> list[PlanIssue]:
    assert step.tool is not None
    tool = tools.get(step.tool)
    if tool is None:
        import difflib

        close = difflib.get_close_matches(step.tool, tools.names(), n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return [PlanIssue(f"{step.id}.tool", f"unknown tool '{step.tool}'; {hint}"
                          f"use one of: {', '.join(tools.names())}")]
    if not tool.planned:
        return [PlanIssue(f"{step.id}.tool", f"{step.tool} is only for investigate steps; plan an investigate "
                                             "step, or run_shell for a command")]
    checked = tools.validate(step.tool, step.args)
    if not isinstance(checked, ToolError):
        return []
    if not checked.details:
        return [PlanIssue(f"{step.id}.args", checked.message)]
    issues: list[PlanIssue] = []
    for d in checked.details:
        loc = list(d.get("loc") or [])
        if _holds_reference(step.args, loc):
            continue  # a reference stands in for a value only known at execution time
        where = ".".join([f"{step.id}.args", *(str(p) for p in loc)])
        msg = str(d.get("msg", "invalid"))
        if d.get("type") == "extra_forbidden":
            allowed = ", ".join(tool.args_model.model_fields) or "none"
            msg = f"unknown argument; {step.tool} takes: {allowed}"
        elif d.get("type") == "missing":
            msg = "required argument is missing"
        issues.append(PlanIssue(where, msg))
    return issues


def output_schema_of(step: Step, tools: ToolRegistry) -> dict[str, Any] | None:
    """The JSON Schema of a step's output, where it is declared: a tool's ``returns``, an
    ``edits`` answer (a list of edits), a ``json`` answer's schema; None when anything goes."""
    if step.kind == "tool":
        tool = tools.get(step.tool or "")
        return tool.output_schema() if tool is not None else None
    if step.kind == "investigate":
        return Findings.model_json_schema()
    if step.answer == "edits":
        from pydantic import TypeAdapter

        from agentcli.tools.edits import Edit

        schema: dict[str, Any] = TypeAdapter(list[Edit]).json_schema()
        return schema
    if step.answer == "json":
        return step.answer_schema
    return {"type": "string"}


def _output_issues(step: Step, by_id: dict[str, Step], tools: ToolRegistry) -> list[PlanIssue]:
    issues = []
    for ref in step.references():
        target = by_id.get(ref.step_id)
        if target is None or not ref.path or (target.kind == "llm" and target.answer == "text"):
            continue  # a text answer may hold JSON: its paths are only known when it runs
        problem = schema_path_problem(output_schema_of(target, tools), ref.path)
        if problem:
            what = (target.tool if target.kind == "tool" else f"the findings of {target.id}"
                    if target.kind == "investigate" else f"the {target.answer} answer of {target.id}")
            shape = ""
            if target.kind == "tool" and (tool := tools.get(target.tool or "")) is not None:
                shape = f"; {target.tool} returns {tool.output_shape()}"
            issues.append(PlanIssue(step.id, f"{ref.text}: {ref.step_id}.{problem} ({what}){shape}"))
    return issues


def validate_steps(steps: list[Step], tools: ToolRegistry, *, max_steps: int,
                   check_outputs: bool = False, kept: frozenset[str] = frozenset()) -> list[PlanIssue]:
    """Every problem with these steps: step count, tools, args against the tool schemas
    (fields holding references are not type-checked), references and dependencies, cycles;
    with ``check_outputs``, also reference paths into outputs whose shape is declared
    (``{{s1.output[0].file}}`` of a search_code step). ``kept``: ids of an earlier plan's
    completed steps (a re-plan), which the steps may depend on and reference as if theirs."""
    issues: list[PlanIssue] = []
    if not steps:
        return [PlanIssue("plan", "the plan has no steps; add at least one")]
    if len(steps) > max_steps:
        # Bounded before anything else: every other check is at least linear in the steps.
        return [PlanIssue("plan", f"{len(steps)} steps, but at most {max_steps} are allowed "
                                  "(budget.max_steps); merge or drop steps")]
    ids = [s.id for s in steps]
    for clash in sorted(kept & set(ids)):
        issues.append(PlanIssue(clash, f"{clash} is a kept step of the previous plan; number the new "
                                       "steps after the kept ones"))
    known = set(ids) | kept
    ids = [*sorted(kept, key=lambda x: int(x[1:])), *ids]
    counts = Counter(ids)
    for dup in sorted(i for i, n in counts.items() if n > 1):
        issues.append(PlanIssue(dup, "duplicate step id"))
    for step in steps:
        if step.kind == "tool":
            issues.extend(_check_args(step, tools))
        for dep in step.depends_on:
            if dep == step.id:
                issues.append(PlanIssue(f"{step.id}.depends_on", "a step cannot depend on itself"))
            elif dep not in known:
                issues.append(PlanIssue(f"{step.id}.depends_on",
                                        f"'{dep}' is not a step; existing steps: {', '.join(ids)}"))
        body = step.args if step.kind == "tool" else step.prompt
        for bad in malformed_references(body):
            issues.append(PlanIssue(step.id, f"malformed reference {bad}; write {{{{sN.output}}}} "
                                             "or a path like {{sN.output.key[0]}}"))
        for ref in step.references():
            if ref.step_id not in known:
                issues.append(PlanIssue(step.id, f"{ref.text} refers to {ref.step_id}, which does not exist"))
            elif ref.step_id == step.id:
                issues.append(PlanIssue(step.id, f"{ref.text} refers to the step itself"))
            elif ref.step_id not in step.depends_on:
                issues.append(PlanIssue(step.id, f"{ref.text} refers to {ref.step_id}, which is not in "
                                                 f"depends_on; add \"{ref.step_id}\" to depends_on"))
    if check_outputs and not issues:
        by_id = {s.id: s for s in steps}
        for step in steps:
            issues.extend(_output_issues(step, by_id, tools))
    cycle = find_cycle({s.id: [d for d in s.depends_on if d != s.id] for s in steps})
    if cycle:
        issues.append(PlanIssue("plan", f"dependency cycle {' -> '.join(cycle)}; a step may only "
                                        "depend on earlier steps"))
    return issues


# --------------------------------------------------------------------------- llm steps

_EXECUTOR_SYSTEM = (
    "You carry out one step of a plan for this task: {task}\n"
    "Do exactly what the step asks, using the material it gives. Reply with the result only."
)
_ANSWER_NOTES = {
    "text": "",
    "json": "\nReply with one JSON value as the required schema says, nothing else.",
    "edits": (
        '\nReply with JSON: {"edits": [{"path": ..., "search": ..., "replace": ...}]}. Each edit replaces '
        "the search text of an existing file by the replace text. Copy every search text exactly from the "
        "file as given (indentation included), with enough lines around it to occur exactly once; edits "
        "to one file apply in order. Only what changes needs an edit; if nothing needs to change, "
        'reply {"edits": []}.'
    ),
}


def llm_step_messages(task: str, prompt: str, instructions: str = "", answer: str = "text",
                      reminder: str = "") -> list[dict[str, Any]]:
    """The messages an ``llm`` step sends to the executor model (``prompt`` with references
    already resolved; the project's instructions, if any, in the system message; ``answer`` the
    step's answer shape, whose format is described there; ``reminder`` the plan's progress,
    before the prompt in the user message: after the stable system message). The planner counts
    these tokens for its estimate."""
    system = _EXECUTOR_SYSTEM.format(task=task) + _ANSWER_NOTES.get(answer, "")
    if instructions:
        system += "\n\nProject instructions (follow them):\n" + instructions
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"{reminder}\n\n{prompt}" if reminder else prompt},
    ]
