"""Before a run exists: can its models be called as configured, and does its task fit them?

:func:`preflight` finds, without a model request, what would otherwise fail a run's first call:
a missing key, a server that refuses connections, a model name nobody knows (with the names that
resemble it), an unknown local model, a task longer than the planner model's context. It raises
the error (exit 2, nothing recorded) and returns the warnings of what works but the user should
know (a model whose price is unknown, counted at $0). `agent doctor` asks the same questions
(:func:`model_readiness`).
"""

from __future__ import annotations

from agentcli.errors import UsageError
from agentcli.models import tokens
from agentcli.models.client import LLMClient

__all__ = ["model_readiness", "preflight", "unknown_price_warning"]

ROLES = ("planner", "executor", "reviewer")


def _api_base(client: LLMClient, model: str) -> str | None:
    return client.config.api_base or None if client.profile(model).uses_api_base else None


def model_readiness(client: LLMClient, model: str) -> str | None:
    """Raise :class:`~agentcli.errors.ModelSetupError` when ``model`` cannot be called as configured;
    else the one-line warning about it, if any (its price is unknown)."""
    check = getattr(client.backend, "check", None)
    if check is not None:
        check(model, api_base=_api_base(client, model), declared=model in client.config.models)
    return unknown_price_warning(client, model)


def unknown_price_warning(client: LLMClient, model: str) -> str | None:
    """The warning for a model whose price nobody knows (None when priced, free or configured)."""
    if client.price(model) is not None:
        return None
    if not client.config.budget.allow_unknown_price:
        return (f"the price of {model} is unknown and budget.allow_unknown_price is false: its calls will "
                "be refused")
    return (f"the price of {model} is unknown: its calls count as $0 against the cost budget (set "
            f'input_cost_per_mtok / output_cost_per_mtok in [models."{model}"] to count them)')


def preflight(client: LLMClient, task: str | None = None) -> list[str]:
    """Check every role's model (and that ``task`` fits the planner's context) before a run is
    recorded; raise what would fail it, return the warnings (one line each, each model once)."""
    config = client.config
    if task is not None and not task.strip():
        raise UsageError("the task is empty")
    warnings: list[str] = []
    planner = config.model_for("planner")
    # The task's tokens are counted first: the tokenizer is loaded before the price map is read, so
    # that the map's parse reuses the memory its load freed (a hosted run's peak is lower by ~5 MiB).
    n = tokens.count_text(task, planner) if task is not None else 0
    for model in dict.fromkeys(config.model_for(r) for r in ROLES):  # type: ignore[arg-type]
        warning = model_readiness(client, model)
        if warning:
            warnings.append(warning)
    if task is not None:
        context = client.profile(planner).context_tokens
        if context:
            # Room for the plan's answer: its limit, or a quarter of a small window (the client
            # shrinks the limit to what the window leaves).
            room = context - min(client.output_limit("planner", planner), context // 4)
            if n > room:
                raise UsageError(f"the task is {n} tokens; {planner} reads at most {context}, of which "
                                 f"{room} are left for it beside the plan's answer: shorten the task, or put the "
                                 "detail in a file and name it")
    return warnings
