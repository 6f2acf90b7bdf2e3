"""The values that pass between the LLM client, its backends and their users, and the backend interface.

:class:`ModelBackend` is the narrow interface every model implementation provides (send one
request, get one response, tell a price and a profile): :class:`agentcli.models.litellm.LiteLLMBackend` and
:class:`agentcli.models.routing.RoutingBackend` for real models, the fakes in :mod:`agentcli.models.fakes`.
:class:`agentcli.models.client.LLMClient` wraps any of them. The budget, replay and the
benchmarks use these types too; nothing here imports litellm.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from agentcli.models.profile import ModelProfile

#: Who makes a model call: a role has its own model (``[roles]``) and output limits.
Role = Literal["planner", "executor", "reviewer"]


class ToolCall(BaseModel):
    """A tool call the model asked for. ``arguments`` is the decoded JSON, or the raw text if it was not JSON."""

    id: str = ""
    name: str
    arguments: dict[str, Any] | str = {}


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class LLMResult(BaseModel):
    """The outcome of one logical call (all its attempts and re-asks)."""

    text: str
    parsed: Any = None
    tool_calls: list[ToolCall] = []
    usage: Usage = Usage()
    cost_usd: float | None = None
    latency_ms: float = 0.0
    attempts: int = 1
    model: str
    response_model: str | None = None
    call_id: str
    request_hash: str
    input_tokens_estimate: int = 0
    finish_reason: str | None = None
    """Why the provider stopped generating the answer returned: ``stop``, ``tool_calls``, ... (never
    ``length``: a cut answer is not returned as a result), or None when the provider does not say."""
    max_tokens: int = 0
    """The output limit the answer was generated under."""


@dataclass(frozen=True)
class Price:
    """USD per token."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens * self.input + output_tokens * self.output


@dataclass
class ModelRequest:
    """One request to a backend, exactly as sent."""

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int
    temperature: float
    seed: int | None = None
    timeout: float = 120.0
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    api_base: str | None = None
    #: The plan step the request is made for (None: planner, reviewer). Not sent and not hashed:
    #: it travels with the request so a backend serving recorded answers (a replay, a fork) knows
    #: where the run is.
    step_id: str | None = None

    def generation_options(self) -> dict[str, Any]:
        """What shapes generation, as a backend passes it on: the limits and decoding always, the
        seed, the response format and the tools when set."""
        opts: dict[str, Any] = {"max_tokens": self.max_tokens, "temperature": self.temperature}
        if self.seed is not None:
            opts["seed"] = self.seed
        if self.response_format is not None:
            opts["response_format"] = self.response_format
        if self.tools:
            opts["tools"] = self.tools
        return opts

    def hash(self) -> str:
        """Stable hash of what determines the answer (replay looks responses up by it)."""
        key = {
            "model": self.model,
            "messages": self.messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
            "response_format": self.response_format,
            "tools": self.tools,
        }
        blob = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class ModelResponse:
    """One answer of a backend. ``finish_reason`` is the provider's own (``stop``, ``length`` when
    the output limit cut the answer, ``tool_calls``, ``content_filter``), None when it gives none."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    model: str | None = None
    #: Why generation stopped, as the provider said it: ``stop``, ``length`` (cut by the output
    #: limit), ``tool_calls``, ``content_filter``...; None when the provider did not say.
    finish_reason: str | None = None

    @property
    def truncated(self) -> bool:
        """Whether the output limit cut this answer."""
        return self.finish_reason == "length"


class ModelBackend(Protocol):
    """The narrow interface every model implementation provides."""

    async def request(self, req: ModelRequest) -> ModelResponse:
        """Send one request. Raise LLMTransientError / LLMFatalError on failure."""
        ...

    def price(self, model: str) -> Price | None:
        """Price per token, or None when unknown."""
        ...

    def profile(self, model: str) -> ModelProfile:
        """What the model can do (see :mod:`agentcli.models.profile`)."""
        ...


@dataclass(frozen=True)
class PreCall:
    """What the guard sees before a request is sent."""

    model: str
    input_tokens_estimate: int
    max_output_tokens: int
    price: Price | None
    role: Role
    step_id: str | None

    @property
    def max_cost(self) -> float | None:
        if self.price is None:
            return None
        return self.price.cost(self.input_tokens_estimate, self.max_output_tokens)


@dataclass(frozen=True)
class CallRecord:
    """Handed to observers after every request: everything needed to replay it."""

    call_id: str
    attempt: int
    role: Role
    step_id: str | None
    request: ModelRequest
    request_hash: str
    response: ModelResponse | None
    usage: Usage
    cost_usd: float | None
    latency_ms: float
    outcome: str  # ok | retry | error | invalid_output | truncated
    error_type: str | None = None
    error: str | None = None
    #: The model's price per token when the call was made (None: unknown).
    price: Price | None = None
    #: The model's profile when the call was made (``ModelProfile.as_dict()``): replay decides with it.
    profile: dict[str, Any] | None = None


@dataclass
class RunTotals:
    """Running totals of one client (one run)."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    unpriced_models: set[str] = field(default_factory=set)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 8),
            "unpriced_calls": self.unpriced_calls,
        }

