"""Planner strategies: what a planner model is asked, re-asked and told on failure.

Two implementations of one small interface, chosen by the planner model's profile
(:attr:`~agentcli.models.profile.ModelProfile.planner_style`), never by its name:

- :class:`HostedPlanner`: the full prompt (tool catalogue, workspace summary, repository map,
  recalled memory, how steps run) and the compact hosted draft schema (one shared step definition).
- :class:`SmallModelPlanner`: the planner tuned for a small local model, with its *levers*
  (measured on the task suite, see :mod:`agentcli.planning.local`) given to the constructor and
  resolved once. With no levers it sends the grammar-oriented draft schema and the full prompt.

:func:`planner_for` picks one. The levers default to
:data:`~agentcli.planning.local.DEFAULT_LEVERS`; the task-suite benchmark measures other sets by
passing them explicitly (:func:`use_levers` for a whole process, from ``bench/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agentcli.config import Config
from agentcli.models import tokens
from agentcli.models.profile import ModelProfile
from agentcli.planning.local import DEFAULT_LEVERS, local_request, wants_writes
from agentcli.planning.plan import PlanIssue
from agentcli.planning.prompt import (
    build_messages,
    draft_schema,
    hosted_draft_schema,
    ledger_section,
    recall_snippets,
    workspace_summary,
)
from agentcli.planning.repomap import repo_map
from agentcli.planning.testenv import ShellView
from agentcli.tools import Tool

__all__ = [
    "HostedPlanner",
    "PlanRequest",
    "PlannerMap",
    "PlannerStrategy",
    "ReviewRule",
    "SmallModelPlanner",
    "change_only",
    "grounded_answers",
    "planner_for",
    "planner_map",
    "review_rule",
    "use_levers",
]


@dataclass(frozen=True)
class PlanRequest:
    """What a planner strategy plans from."""

    task: str
    tools: list[Tool]
    config: Config
    workspace: Path
    data_dir: Path
    #: ``recall(task)``: remembered snippets for the prompt (asked only by strategies that show them).
    recall: Any = None
    context: str | None = None
    #: ``past_plans(task)``: past runs' plans for similar tasks (a small model's examples).
    past_plans: Any = None
    #: The output limit of an ``llm`` step (the executor's), which a hosted planner is told.
    step_output_tokens: int = 1024
    #: The id number of the first step to write (a re-plan's steps follow the kept ones).
    first_step: int = 1
    #: Read-only tool calls the planner may make before it replies with the plan (0: none).
    survey_calls: int = 0
    #: The names of the tools the survey may call (sent with the request as callable tools).
    survey_tools: frozenset[str] = frozenset()
    #: A session's ledger of its earlier turns ("" outside a session), a section of its own.
    ledger: str = ""
    #: What the request shows of the workspace (``summary``, ``map``), shared by a run's plans: a
    #: strategy fills it when empty and reuses it when full, so a re-plan shows the workspace as the
    #: run's first plan did (its context says what changed since) and keeps that plan's request
    #: prefix byte-identical for a provider's prompt cache. None: built afresh.
    view: dict[str, str] | None = None


class PlannerStrategy(Protocol):
    """The request for a task, the re-ask after an invalid draft, the hint when planning fails."""

    #: Whether reference paths into declared tool outputs are checked (and re-asked) at planning.
    check_outputs: bool

    #: Whether a re-plan's steps are numbered after the kept ones (and may reference them); if
    #: not, the model writes s1, s2, ... and the merge renumbers them.
    continues_numbering: bool

    #: Whether the model may call read-only tools to look at the workspace before it plans.
    surveys: bool

    #: Which message project instructions are added to (0: the system message, -1: the last).
    instructions_at: int

    def request(self, req: PlanRequest) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The draft schema and the messages of the first planning call."""
        ...

    def reask(self, issues: list[PlanIssue]) -> str:
        """What the model is told after an invalid draft."""
        ...

    def failure_hint(self, model: str) -> str:
        """Appended to the error when no valid plan comes out ("" for none)."""
        ...


def _full_request(req: PlanRequest, schema: dict[str, Any], tools: list[Tool], *,
                  hosted: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    view = req.view if req.view is not None else {}
    recalled = recall_snippets(req.recall, req.task)
    if "summary" not in view:
        view["summary"] = workspace_summary(req.workspace, req.data_dir,
                                            shell=ShellView.from_config(req.config, req.workspace, req.data_dir))
    if hosted and "map" not in view:
        view["map"] = repo_map(req.workspace, req.data_dir, req.task, max_tokens=req.config.planner.context_tokens,
                               memories=recalled, model=req.config.model_for("planner"))
    summary, rmap = view["summary"], view.get("map", "") if hosted else ""
    return schema, build_messages(req.task, tools, req.config, summary, recalled, req.context, hosted=hosted,
                                  step_output_tokens=req.step_output_tokens, repo_map=rmap,
                                  survey_calls=req.survey_calls if hosted else 0, ledger=req.ledger,
                                  investigate=hosted and offers_investigate(req.config),
                                  survey_tools=req.survey_tools if hosted else frozenset())


def offers_investigate(config: Config) -> bool:
    """Whether a hosted planner may plan investigate steps: ``[investigate] enabled`` and reads not denied."""
    return config.investigate.enabled and config.approval.read != "deny"


class HostedPlanner:
    """A capable model: the full prompt (with answer shapes, edits, the tools' output shapes and the
    output limit of an llm step), the compact hosted draft schema (~4x fewer schema tokens at
    20 steps than the grammar-oriented one), every problem of an invalid draft listed, reference
    paths checked against the tools' declared outputs; the repository map
    (:mod:`agentcli.planning.repomap`) and the rules of execution; a re-plan's steps numbered after
    the kept ones."""

    check_outputs = True
    continues_numbering = True
    surveys = True
    #: Project instructions go into the system message, with the rest of the stable prefix.
    instructions_at = 0

    def request(self, req: PlanRequest) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        schema = hosted_draft_schema(req.tools, req.config.budget.max_steps, investigate=offers_investigate(req.config))
        return _full_request(req, schema, req.tools, hosted=True)

    def reask(self, issues: list[PlanIssue]) -> str:
        listed = "\n".join(f"- {i}" for i in issues[:15])
        return (f"Your plan is not valid:\n{listed}\n"
                'Fix these problems and reply with the whole corrected plan: {"steps": {"s1": ...}}.')

    def failure_hint(self, model: str) -> str:
        return ""


class SmallModelPlanner:
    """A small local model (SmolLM2-135M class): the compact, example-led, grammar-narrowed request
    its levers make, the first three problems of an invalid draft, and a hint to use a stronger model."""

    #: Its requests stay as measured: a new check would change its re-asks.
    check_outputs = False
    continues_numbering = False
    instructions_at = -1
    surveys = False

    def __init__(self, levers: frozenset[str] = DEFAULT_LEVERS) -> None:
        self.levers = frozenset(levers)

    def request(self, req: PlanRequest) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        # Not offered tools that consume what only a hosted planner's steps make (apply_edits).
        tools = [t for t in req.tools if t.small_planner]
        if self.levers:
            # The compact request has one free-text slot: the ledger goes before any re-plan context.
            context = "\n\n".join(x for x in (ledger_section(req.ledger) if req.ledger else "", req.context) if x)
            schema, messages = local_request(req.task, tools, req.config, self.levers, context or None,
                                             req.workspace, req.data_dir, req.past_plans)
            if schema is not None and messages is not None:
                return schema, messages
        # The grammar-oriented schema (per-slot dependency enums) suits grammar-constrained decoding.
        return _full_request(req, draft_schema(tools, req.config.budget.max_steps), tools)

    def reask(self, issues: list[PlanIssue]) -> str:
        if not self.levers:
            return HostedPlanner().reask(issues)
        listed = "\n".join(f"- {i}" for i in issues[:3])
        return f"That plan has errors:\n{listed}\nWrite the plan again with these fixed. JSON only."

    def failure_hint(self, model: str) -> str:
        return f"{model} is a small offline model: try a stronger one, e.g. --model openai/gpt-4o-mini"

    @property
    def grounded_answers(self) -> bool:
        """Whether the final answer is built from the steps' outputs (the ``answer`` lever)."""
        return "answer" in self.levers


_levers: frozenset[str] = DEFAULT_LEVERS


def use_levers(levers: frozenset[str]) -> None:
    """Set the levers every :class:`SmallModelPlanner` made by :func:`planner_for` gets, for this process.

    For the task-suite benchmark, which measures lever sets against each other; a normal run uses
    :data:`~agentcli.planning.local.DEFAULT_LEVERS`.
    """
    global _levers
    _levers = frozenset(levers)


def planner_for(profile: ModelProfile, *, levers: frozenset[str] | None = None) -> HostedPlanner | SmallModelPlanner:
    """The strategy for a planner model with this profile."""
    if profile.planner_style == "small":
        return SmallModelPlanner(_levers if levers is None else levers)
    return HostedPlanner()


def grounded_answers(profile: ModelProfile) -> bool:
    """Whether a run whose reviewer model has this profile builds its answer from the step outputs."""
    if not profile.grounded_answers:
        return False
    strategy = planner_for(profile)
    return isinstance(strategy, SmallModelPlanner) and strategy.grounded_answers


@dataclass(frozen=True)
class ReviewRule:
    """How a run's end is judged, decided here for the run's reviewer model and task, so that the
    engine reads a value instead of a planner's levers or word lists."""

    #: The answer is built from the step outputs, without a review call, when every step succeeded.
    grounded_answers: bool = False
    #: The task asks for a change: with grounded answers, a run that changed nothing is re-planned.
    change_expected: bool = False
    #: The task asks for a change and for no answer (no question, nothing to explain, list or
    #: report): a run whose steps and verify command decide it needs no reviewer's answer.
    change_only: bool = False


#: Words that ask for an answer besides a change ("fix the parser and explain why"): such a task is
#: reviewed, whatever its steps did.
_ANSWER_WORDS = frozenset(["explain", "why", "tell", "report", "describe", "summarise", "summarize", "list", "show",
                           "what", "which", "how", "where", "who", "answer", "say", "check", "find", "investigate"])


def change_only(task: str) -> bool:
    """Whether ``task`` asks for a change (:func:`~agentcli.planning.local.wants_writes`) and for no
    answer: no question mark and none of :data:`_ANSWER_WORDS`."""
    words = {w.strip(".,;:!?()'\"`").lower() for w in task.split()}
    return wants_writes(task) and "?" not in task and not (words & _ANSWER_WORDS)


def review_rule(profile: ModelProfile, task: str) -> ReviewRule:
    """The :class:`ReviewRule` of a run whose reviewer model has ``profile``."""
    grounded = grounded_answers(profile)
    return ReviewRule(grounded_answers=grounded, change_expected=grounded and wants_writes(task),
                      change_only=change_only(task))


@dataclass(frozen=True)
class PlannerMap:
    """The repository map a planner's request carries for a task (what ``agent map`` shows)."""

    text: str
    #: Its size, counted with the planner model's tokenizer, and the budget it was built for.
    tokens: int
    budget: int
    model: str
    #: Whether the planner model gets it: a small local planner's request carries no map.
    planner_gets_it: bool


def planner_map(workspace: Path, data_dir: Path, config: Config, task: str, *, profile: ModelProfile,
                recall: Any = None, max_tokens: int | None = None) -> PlannerMap:
    """The map :class:`HostedPlanner` puts in its request for ``task`` (built the same way: the
    recalled memory's words count), within ``max_tokens`` (default ``planner.context_tokens``)."""
    model = config.model_for("planner")
    budget = config.planner.context_tokens if max_tokens is None else max_tokens
    text = repo_map(workspace, data_dir, task, max_tokens=budget, memories=recall_snippets(recall, task), model=model)
    return PlannerMap(text, tokens.count_text(text, model) if text else 0, budget, model,
                      isinstance(planner_for(profile), HostedPlanner))

