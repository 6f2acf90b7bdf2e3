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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from agentcli.models.profile import ModelProfile

#: Who a model request is for: its model, limits and record entry follow from it.
Role = Literal["planner", "executor", "reviewer"]
#: How one request (one attempt) ended: ``retry`` is an error the client tries again.
CallOutcome = Literal["ok", "retry", "error", "invalid_output", "truncated"]


class ToolCall(BaseModel):
    """A tool call the model asked for. ``arguments`` is the decoded JSON, or the raw text if it was not JSON."""

    id: str = ""
    name: str
    arguments: dict[str, Any] | str = {}


class Usage(BaseModel):
    """Tokens one request used, as the provider counted them (else estimated).

    ``input_tokens`` is every input token; of those, ``cached_input_tokens`` were read from the
    provider's prompt cache (billed at its cache-read price) and ``cache_write_tokens`` were written
    to it (billed at its cache-write price, Anthropic's 125%). Both are 0 where the provider does not
    cache or does not say.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0

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
    """USD per token. ``cache_read`` and ``cache_write`` are the prices of input tokens read from or
    written to the provider's prompt cache; None where the provider publishes none, and then those
    tokens cost the full input price (never assumed cheaper than known)."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0, cache_write_tokens: int = 0) -> float:
        """The price of a request: ``cached_tokens`` and ``cache_write_tokens`` are parts of
        ``input_tokens`` billed at the cache prices."""
        cached = max(0, min(cached_tokens, input_tokens))
        written = max(0, min(cache_write_tokens, input_tokens - cached))
        plain = input_tokens - cached - written
        read_price = self.input if self.cache_read is None else self.cache_read
        write_price = self.input if self.cache_write is None else self.cache_write
        return plain * self.input + cached * read_price + written * write_price + output_tokens * self.output

    def of_usage(self, usage: Usage) -> float:
        """The price of what one request used."""
        return self.cost(usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.cache_write_tokens)

    def as_dict(self) -> dict[str, float]:
        """For records: the cache prices only when known."""
        d = {"input": self.input, "output": self.output}
        if self.cache_read is not None:
            d["cache_read"] = self.cache_read
        if self.cache_write is not None:
            d["cache_write"] = self.cache_write
        return d


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
    #: Told each piece of the answer's text as it is generated, when the model's profile says its
    #: backend streams and someone shows it (a terminal). Not sent and not hashed: how an answer
    #: arrives does not change it; a backend that cannot stream ignores it.
    on_text: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

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
    #: Of the input tokens, those read from the provider's prompt cache (None: not reported).
    cached_input_tokens: int | None = None
    #: Of the input tokens, those written to the provider's prompt cache (None: not reported).
    cache_write_tokens: int | None = None
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
    #: Of the estimated input, the prefix expected to be read from the provider's cache (shared
    #: with an earlier request of this run under the provider's prefix rule); priced at the cache
    #: price only when that price is known.
    cached_tokens_estimate: int = 0

    @property
    def max_cost(self) -> float | None:
        if self.price is None:
            return None
        return self.price.cost(self.input_tokens_estimate, self.max_output_tokens, self.cached_tokens_estimate)


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
    outcome: CallOutcome
    error_type: str | None = None
    error: str | None = None
    #: The model's price per token when the call was made (None: unknown).
    price: Price | None = None
    #: The model's profile when the call was made (``ModelProfile.as_dict()``): replay decides with it.
    profile: dict[str, Any] | None = None
    #: The request's prefix shared with an earlier request of the run, in tokens, under the
    #: automatic prefix-cache rule (:mod:`agentcli.models.cache`): what a provider could serve cached.
    cacheable_tokens: int = 0


@dataclass
class RunTotals:
    """Running totals of one client (one run)."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    unpriced_models: set[str] = field(default_factory=set)
    #: Input tokens the provider served from its cache, and wrote to it.
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    #: Input tokens a prefix cache could serve (shared with an earlier request).
    cacheable_tokens: int = 0
    #: What the cache saved against pricing every input token at the full rate.
    cache_saved_usd: float = 0.0

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
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cacheable_tokens": self.cacheable_tokens,
            "cache_saved_usd": round(self.cache_saved_usd, 8),
        }

