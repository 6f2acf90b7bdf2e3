"""Hard budgets on a run: steps, cost, tokens, wall time and replans.

Limits are a value (:class:`agentcli.config.BudgetConfig`); :class:`Budget` holds
what a run has used and has one ``check_*`` method per kind of spending. The
important one is :meth:`Budget.check_llm_call`, installed as the LLM client's
guard: it runs *before* a request is sent, with the tiktoken estimate of the
input plus the call's maximum output, priced at the model's rate, so a call that
could cross a budget is never made. Exceeding a budget raises
:class:`agentcli.errors.BudgetExceeded`, which the executor turns into the
FAILED state with reason ``budget_exceeded:<which>``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentcli.config import BudgetConfig
from agentcli.errors import BudgetExceeded
from agentcli.models.types import CallRecord, PreCall, Price


@dataclass  # not frozen: built for every step, and a frozen dataclass costs ~4x to build
class BudgetCheck:
    """One check, as recorded in the run's events (nothing changes one after)."""

    kind: str  # llm_call | step | replan | time
    ok: bool
    which: str | None
    detail: dict[str, Any]


class Budget:
    """What a run has used against its limits."""

    def __init__(self, limits: BudgetConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self.started = clock()
        self.steps = 0
        self.cost_usd = 0.0
        self.tokens = 0
        self.replans = 0
        self.listeners: list[Callable[[BudgetCheck], None]] = []

    # -- accounting

    def resume(self, *, cost_usd: float, tokens: int, steps: int, replans: int) -> None:
        """Start from what an interrupted run had already used (``agent run --resume``)."""
        self.cost_usd, self.tokens, self.steps, self.replans = cost_usd, tokens, steps, replans

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started

    def remaining_seconds(self) -> float:
        return max(0.0, self.limits.max_seconds - self.elapsed)

    def observe(self, rec: CallRecord) -> None:
        """LLM-client observer: count what each request really used."""
        self.tokens += rec.usage.input_tokens + rec.usage.output_tokens
        if rec.cost_usd is not None:
            self.cost_usd += rec.cost_usd

    def output_headroom(self, model: str, input_tokens: int, price: Price | None, cached_tokens: int = 0) -> int | None:
        """The most output tokens a call with ``input_tokens`` of input (``cached_tokens`` of them
        expected from the provider's cache) can generate without crossing the token or cost budget
        (the client sizes its output limit within it; None: no limit)."""
        lim = self.limits
        room = lim.max_tokens - self.tokens - input_tokens
        if price is not None and price.output > 0:
            money = lim.max_cost_usd - self.cost_usd - price.cost(input_tokens, 0, cached_tokens)
            room = min(room, int(money / price.output))
        return max(room, 1)

    def snapshot(self) -> dict[str, Any]:
        lim = self.limits
        return {
            "steps": self.steps, "max_steps": lim.max_steps,
            "cost_usd": round(self.cost_usd, 8), "max_cost_usd": lim.max_cost_usd,
            "tokens": self.tokens, "max_tokens": lim.max_tokens,
            "seconds": round(self.elapsed, 3), "max_seconds": lim.max_seconds,
            "replans": self.replans, "max_replans": lim.max_replans,
        }

    # -- checks

    def _emit(self, kind: str, which: str | None, **detail: Any) -> None:
        check = BudgetCheck(kind, which is None, which, detail)
        for listener in self.listeners:
            listener(check)

    def _fail(self, kind: str, which: str, message: str, **detail: Any) -> None:
        self._emit(kind, which, message=message, **detail)
        raise BudgetExceeded(which, message)

    def check_time(self, kind: str = "time") -> None:
        if self.elapsed > self.limits.max_seconds:
            self._fail(kind, "seconds", f"wall-time budget of {self.limits.max_seconds:g}s used up "
                                         f"({self.elapsed:.1f}s)")

    def check_llm_call(self, pre: PreCall) -> None:
        """Refuse a call that could cross the token, cost or time budget."""
        lim = self.limits
        self.check_time("llm_call")
        worst_tokens = pre.input_tokens_estimate + pre.max_output_tokens
        # The price the check used, recorded so a replay checks with the same one (a refused call
        # leaves no llm_call event to take it from).
        price = None if pre.price is None else pre.price.as_dict()
        if self.tokens + worst_tokens > lim.max_tokens:
            self._fail("llm_call", "tokens",
                       f"a {pre.model} call of up to {worst_tokens} tokens would cross the token budget "
                       f"({self.tokens} of {lim.max_tokens} used)",
                       model=pre.model, step_id=pre.step_id, estimate_tokens=worst_tokens, price=price)
        max_cost = pre.max_cost
        if max_cost is None:
            if not lim.allow_unknown_price:
                self._fail("llm_call", "cost",
                           f"the price of {pre.model} is unknown, so the cost budget cannot be enforced "
                           "(set budget.allow_unknown_price = true to allow it)",
                           model=pre.model, step_id=pre.step_id, price=price)
        elif self.cost_usd + max_cost > lim.max_cost_usd:
            self._fail("llm_call", "cost",
                       f"a {pre.model} call costing up to ${max_cost:.6f} would cross the cost budget "
                       f"(${self.cost_usd:.6f} of ${lim.max_cost_usd:g} used)",
                       model=pre.model, step_id=pre.step_id, estimate_cost_usd=max_cost, price=price)
        self._emit("llm_call", None, model=pre.model, step_id=pre.step_id, estimate_tokens=worst_tokens,
                   estimate_cost_usd=max_cost, price=price)

    def check_step(self, step_id: str) -> None:
        """Count one more step; refuse it past max_steps."""
        self.check_time("step")
        if self.steps + 1 > self.limits.max_steps:
            self._fail("step", "steps", f"step budget of {self.limits.max_steps} used up", step_id=step_id)
        self.steps += 1
        self._emit("step", None, step_id=step_id, steps=self.steps)

    def check_replan(self) -> None:
        if self.replans + 1 > self.limits.max_replans:
            self._fail("replan", "replans", f"replan budget of {self.limits.max_replans} used up")
        self.replans += 1
        self._emit("replan", None, replans=self.replans)
