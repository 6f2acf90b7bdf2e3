"""The one LLM client, and the only module that imports litellm.

Design: a narrow :class:`ModelBackend` interface (send one request, get one
response, tell a price) with three implementations: :class:`LiteLLMBackend` for
every real provider and for the embedded ``local/...`` model, and the fakes in
:mod:`agentcli.testing`. :class:`LLMClient` wraps any backend and owns
everything that must be the same for all of them, at one choke point:

* structured output: a JSON schema from a pydantic model, validation, and
  bounded re-asks carrying the validation errors back to the model;
* retries of transient errors with exponential backoff, jitter and Retry-After,
  then the configured fallback models in order;
* a pre-call ``guard`` (the budget checks it before anything is sent);
* one JSON log record per request (:mod:`agentcli.tracing`), running totals per
  run, and ``observers`` that receive the full request and response (the run's
  event log and replay use them).

litellm takes ~3 s to import, so it is imported lazily, on the first real call,
with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` set first (otherwise it fetches its
price map over the network at import).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from agentcli import tokens
from agentcli.config import Config
from agentcli.errors import (
    LLMError,
    LLMFatalError,
    LLMTransientError,
    ModelRequestsBlocked,
    StructuredOutputError,
)
from agentcli.tracing import CallLog

#: Tests set this to False (and AGENT_ALLOW_MODEL_REQUESTS=0 for subprocesses):
#: then any real provider request fails unless the test opts in.
ALLOW_MODEL_REQUESTS = True

Role = str  # "planner" | "executor" | "reviewer"


def requests_allowed() -> bool:
    env = os.environ.get("AGENT_ALLOW_MODEL_REQUESTS", "").strip().lower()
    if env in ("0", "false", "no"):
        return False
    if env in ("1", "true", "yes"):
        return True
    return ALLOW_MODEL_REQUESTS


# --------------------------------------------------------------------------- data


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
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    model: str | None = None


class ModelBackend(Protocol):
    """The narrow interface every model implementation provides."""

    async def request(self, req: ModelRequest) -> ModelResponse:
        """Send one request. Raise LLMTransientError / LLMFatalError on failure."""
        ...

    def price(self, model: str) -> Price | None:
        """Price per token, or None when unknown."""
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
    outcome: str  # ok | retry | error | invalid_output
    error_type: str | None = None
    error: str | None = None


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


# ------------------------------------------------------------------ litellm backend

_litellm_mod: Any = None


def litellm_module() -> Any:
    """Import litellm once, configured for offline, quiet use, with the local provider registered."""
    global _litellm_mod
    if _litellm_mod is None:
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        os.environ.setdefault("LITELLM_LOG", "ERROR")
        for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        import litellm

        litellm.suppress_debug_info = True
        litellm.drop_params = True
        litellm.telemetry = False
        from agentcli import local_model

        local_model.register(litellm)
        _litellm_mod = litellm
    return _litellm_mod


_TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}
_TRANSIENT_NAMES = ("Timeout", "APIConnectionError", "RateLimitError", "ServiceUnavailable", "InternalServer")


def _retry_after(exc: Exception) -> float | None:
    for holder in (getattr(exc, "response", None), exc):
        headers = getattr(holder, "headers", None)
        if headers is None:
            continue
        try:
            raw = headers.get("retry-after") or headers.get("Retry-After")
        except Exception:
            raw = None
        if raw:
            try:
                return max(0.0, float(raw))
            except ValueError:
                return None
    hdrs = getattr(exc, "litellm_response_headers", None)
    if hdrs is not None and hdrs.get("retry-after"):
        try:
            return max(0.0, float(hdrs.get("retry-after")))
        except ValueError:
            return None
    return None


def _first_line(msg: str, limit: int = 300) -> str:
    msg = re.sub(r"\s+", " ", msg).strip()
    # litellm prefixes messages with its exception class path; keep the useful tail.
    msg = re.sub(r"^litellm\.\w+: ", "", msg)
    return msg[:limit]


def classify_exception(exc: Exception, model: str) -> LLMError:
    """Map any provider exception onto our transient/fatal errors."""
    if isinstance(exc, LLMError):
        return exc
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    text = _first_line(str(exc))
    if text.startswith(f"{name}: "):
        text = text[len(name) + 2 :]
    if (isinstance(status, int) and status in _TRANSIENT_STATUS) or any(n in name for n in _TRANSIENT_NAMES):
        return LLMTransientError(f"{model}: {name} ({status}): {text}", retry_after=_retry_after(exc),
                                 status=status)
    if name == "APIError" and not isinstance(status, int):
        # A malformed or empty body from the server: worth another try.
        return LLMTransientError(f"{model}: {text}", status=status)
    if isinstance(status, int) and status >= 500:
        return LLMTransientError(f"{model}: {name} ({status}): {text}", status=status)
    return LLMFatalError(f"{model}: {name}: {text}", status=status if isinstance(status, int) else None)


class LiteLLMBackend:
    """Every real model, through litellm (the embedded local model included)."""

    async def request(self, req: ModelRequest) -> ModelResponse:
        if not requests_allowed():
            raise ModelRequestsBlocked(
                f"real model requests are disabled here (model {req.model}); "
                "tests opt in with the allow_model_requests fixture"
            )
        litellm = litellm_module()
        kwargs: dict[str, Any] = {
            "model": req.model,
            "messages": req.messages,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "timeout": req.timeout,
            # Retries are ours (Retry-After, logging); neither litellm nor the SDK under it may retry.
            "num_retries": 0,
            "max_retries": 0,
        }
        if req.seed is not None:
            kwargs["seed"] = req.seed
        if req.api_base:
            kwargs["api_base"] = req.api_base
        if req.response_format is not None:
            kwargs["response_format"] = req.response_format
        if req.tools:
            kwargs["tools"] = req.tools
        try:
            resp = await litellm.acompletion(**kwargs)
        except Exception as exc:
            raise classify_exception(exc, req.model) from exc
        try:
            choice = resp.choices[0]
            msg = choice.message
            calls = [
                ToolCall(id=tc.id or "", name=tc.function.name, arguments=_decode_args(tc.function.arguments))
                for tc in (getattr(msg, "tool_calls", None) or [])
            ]
            usage = getattr(resp, "usage", None)
            return ModelResponse(
                text=msg.content or "",
                tool_calls=calls,
                input_tokens=getattr(usage, "prompt_tokens", None),
                output_tokens=getattr(usage, "completion_tokens", None),
                model=getattr(resp, "model", None),
            )
        except (AttributeError, IndexError, TypeError) as exc:
            raise LLMTransientError(f"{req.model}: malformed response: {exc}") from exc

    def price(self, model: str) -> Price | None:
        litellm = litellm_module()
        try:
            info = litellm.get_model_info(model)
        except Exception:
            return None
        pin, pout = info.get("input_cost_per_token"), info.get("output_cost_per_token")
        if pin is None or pout is None:
            return None
        if not pin and not pout and not model.startswith("local/"):
            # An unpriced model often reports 0.0: that is unknown, not free.
            return None
        return Price(float(pin), float(pout))

    def supports_json_schema(self, model: str) -> bool:
        if model.startswith("local/"):
            return True
        try:
            return bool(litellm_module().supports_response_schema(model=model))
        except Exception:
            return False


class RoutingBackend:
    """The default backend: ``test/...`` names go to the in-package fakes, the rest to litellm."""

    def __init__(self) -> None:
        self._litellm = LiteLLMBackend()
        self._fakes: dict[str, ModelBackend] = {}

    def _pick(self, model: str) -> ModelBackend:
        if not model.startswith("test/"):
            return self._litellm
        if model not in self._fakes:
            from agentcli.testing import named_fake

            self._fakes[model] = named_fake(model)
        return self._fakes[model]

    async def request(self, req: ModelRequest) -> ModelResponse:
        return await self._pick(req.model).request(req)

    def price(self, model: str) -> Price | None:
        return self._pick(model).price(model)

    def supports_json_schema(self, model: str) -> bool:
        return model.startswith("test/") or self._litellm.supports_json_schema(model)


def _decode_args(raw: Any) -> dict[str, Any] | str:
    if isinstance(raw, dict):
        return raw
    try:
        val = json.loads(raw or "{}")
    except (TypeError, json.JSONDecodeError):
        return str(raw)
    return val if isinstance(val, dict) else str(raw)


# ---------------------------------------------------------------------- the client

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def extract_json(text: str) -> str:
    """The JSON object in a reply, without Markdown fences or chatter around it."""
    s = text.strip()
    m = _FENCE.match(s)
    if m:
        s = m.group(1).strip()
    if not s.startswith(("{", "[")):
        start, end = s.find("{"), s.rfind("}")
        if start != -1 and end > start:
            s = s[start : end + 1]
    return s


def format_validation_errors(err: ValidationError | json.JSONDecodeError) -> str:
    """Errors a model can act on: one line per problem, with its location."""
    if isinstance(err, json.JSONDecodeError):
        return f"- not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
    lines = []
    for e in err.errors()[:20]:
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        lines.append(f"- {loc}: {e['msg']}")
    return "\n".join(lines)


class LLMClient:
    """Makes model calls for one run: retries, structured output, guard, logging, totals."""

    def __init__(
        self,
        config: Config,
        *,
        backend: ModelBackend | None = None,
        call_log: CallLog | None = None,
        run_id: str | None = None,
        guard: Callable[[PreCall], None] | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.config = config
        self.backend: ModelBackend = backend or RoutingBackend()
        self.call_log = call_log
        self.run_id = run_id
        self.guard = guard
        self.observers: list[Callable[[CallRecord], None]] = []
        self.totals = RunTotals()
        self._sleep = sleep or asyncio.sleep

    # -- public API

    def complete(self, messages: Sequence[dict[str, Any]], **kwargs: Any) -> LLMResult:
        """Synchronous wrapper of :meth:`acomplete`."""
        return asyncio.run(self.acomplete(messages, **kwargs))

    async def acomplete(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        role: Role = "executor",
        model: str | None = None,
        response_model: type[BaseModel] | None = None,
        json_schema: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        step_id: str | None = None,
        max_tokens: int | None = None,
    ) -> LLMResult:
        """One logical call. With ``response_model``, the reply is parsed and validated into it
        (``result.parsed``), re-asking with the errors up to ``llm.max_reasks`` times.
        ``json_schema`` overrides the schema sent (e.g. a grammar-friendlier one)."""
        cfg = self.config.llm
        chain = [model or self.config.model_for(role)]  # type: ignore[arg-type]
        chain += [m for m in self.config.fallbacks if m not in chain]
        call_id = uuid.uuid4().hex[:16]
        msgs = [dict(m) for m in messages]
        response_format = None
        if response_model is not None or json_schema is not None:
            schema = json_schema or response_model.model_json_schema()  # type: ignore[union-attr]
            name = response_model.__name__ if response_model is not None else "response"
            response_format = {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
        attempts = 0
        latency = 0.0
        last_error: Exception | None = None
        for _reask in range(cfg.max_reasks + 1 if response_format else 1):
            resp, used_model, req, n, ms = await self._send_with_fallbacks(
                chain, msgs, response_format, tools, role, step_id, max_tokens, call_id, attempts
            )
            attempts += n
            latency += ms
            parsed: Any = None
            if response_format is not None:
                try:
                    raw = json.loads(extract_json(resp.text))
                    parsed = response_model.model_validate(raw) if response_model is not None else raw
                except (json.JSONDecodeError, ValidationError) as err:
                    last_error = err
                    self._observe_invalid(call_id, attempts, step_id, err)
                    msgs = [
                        *msgs,
                        {"role": "assistant", "content": resp.text},
                        {
                            "role": "user",
                            "content": "Your reply did not match the required JSON schema:\n"
                            + format_validation_errors(err)
                            + "\nReply again with only the corrected JSON object.",
                        },
                    ]
                    continue
            usage = self._usage(resp, req)
            return LLMResult(
                text=resp.text,
                parsed=parsed,
                tool_calls=resp.tool_calls,
                usage=usage,
                cost_usd=self._cost(used_model, usage),
                latency_ms=round(latency, 3),
                attempts=attempts,
                model=chain[0],
                response_model=resp.model or used_model,
                call_id=call_id,
                request_hash=req.hash(),
                input_tokens_estimate=self._estimate(req),
            )
        assert last_error is not None
        summary = format_validation_errors(last_error).replace("\n", "; ")  # type: ignore[arg-type]
        raise StructuredOutputError(
            f"{chain[0]}: no valid structured output after {cfg.max_reasks + 1} tries: {summary}"
        )

    def estimate_input_tokens(self, messages: Sequence[dict[str, Any]], model: str) -> int:
        return tokens.count_messages(messages, model)

    def price(self, model: str) -> Price | None:
        """The model's price per token, or None when unknown."""
        return self._price(model)

    # -- internals

    def _request(
        self,
        model: str,
        msgs: list[dict[str, Any]],
        response_format: dict[str, Any] | None,
        tools: list[dict[str, Any]] | None,
        max_tokens: int | None,
        is_fallback: bool,
    ) -> ModelRequest:
        cfg = self.config.llm
        rf = response_format
        if rf is not None and not _supports_schema(self.backend, model):
            # Providers without JSON-schema support get JSON mode plus the schema in the prompt.
            schema = json.dumps(rf["json_schema"]["schema"])
            msgs = [*msgs, {"role": "system", "content": f"Reply with one JSON object matching: {schema}"}]
            rf = {"type": "json_object"}
        api_base = None
        if self.config.api_base and not is_fallback and not model.startswith("local/"):
            api_base = self.config.api_base
        return ModelRequest(
            model=model,
            messages=msgs,
            max_tokens=max_tokens or cfg.max_output_tokens,
            temperature=cfg.temperature,
            seed=cfg.seed,
            timeout=cfg.timeout_seconds,
            response_format=rf,
            tools=tools,
            api_base=api_base,
        )

    def _estimate(self, req: ModelRequest) -> int:
        extra = json.dumps(req.response_format) if req.response_format else ""
        return tokens.count_messages(req.messages, req.model, tools=req.tools, extra=extra)

    async def _send_with_fallbacks(
        self,
        chain: list[str],
        msgs: list[dict[str, Any]],
        response_format: dict[str, Any] | None,
        tools: list[dict[str, Any]] | None,
        role: Role,
        step_id: str | None,
        max_tokens: int | None,
        call_id: str,
        attempts_before: int,
    ) -> tuple[ModelResponse, str, ModelRequest, int, float]:
        cfg = self.config.llm
        attempts = 0
        latency = 0.0
        errors: list[LLMError] = []
        for idx, model in enumerate(chain):
            req = self._request(model, msgs, response_format, tools, max_tokens, idx > 0)
            estimate = self._estimate(req)
            price = self._price(model)  # also warms the provider import before latency is timed
            for retry in range(cfg.max_retries + 1):
                if self.guard is not None:
                    self.guard(PreCall(model, estimate, req.max_tokens, price, role, step_id))
                attempts += 1
                t0 = time.perf_counter()
                try:
                    resp = await self.backend.request(req)
                except LLMError as exc:
                    ms = (time.perf_counter() - t0) * 1000
                    latency += ms
                    exc = classify_exception(exc, model)
                    transient = isinstance(exc, LLMTransientError) and retry < cfg.max_retries
                    self._record(call_id, attempts_before + attempts, role, step_id, req, None, estimate, ms,
                                 "retry" if transient else "error", exc)
                    if isinstance(exc, ModelRequestsBlocked):
                        raise
                    if transient:
                        await self._sleep(self._backoff(retry, exc.retry_after))
                        continue
                    errors.append(exc)
                    break
                ms = (time.perf_counter() - t0) * 1000
                latency += ms
                self._record(call_id, attempts_before + attempts, role, step_id, req, resp, estimate, ms,
                             "ok", None)
                return resp, model, req, attempts, latency
        last = errors[-1]
        tried = f" (after {attempts} attempts)" if attempts > 1 else ""
        more = f"; fallbacks tried: {', '.join(chain[1:])}" if len(chain) > 1 else ""
        # Our own class, not type(last): a provider's subclass may not take these arguments.
        cls = LLMTransientError if isinstance(last, LLMTransientError) else LLMFatalError
        raise cls(f"{last.one_line()}{tried}{more}", retry_after=last.retry_after, status=last.status) from last

    def _backoff(self, retry: int, retry_after: float | None) -> float:
        cfg = self.config.llm
        delay = cfg.backoff_base_seconds * (2**retry)
        delay = delay * (0.5 + random.random() / 2)  # jitter: spread synchronized clients apart
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, cfg.backoff_max_seconds)

    def _price(self, model: str) -> Price | None:
        try:
            return self.backend.price(model)
        except Exception:
            return None

    def _usage(self, resp: ModelResponse, req: ModelRequest) -> Usage:
        return Usage(
            input_tokens=resp.input_tokens if resp.input_tokens is not None else self._estimate(req),
            output_tokens=resp.output_tokens
            if resp.output_tokens is not None
            else tokens.count_text(resp.text, req.model),
        )

    def _cost(self, model: str, usage: Usage) -> float | None:
        price = self._price(model)
        return None if price is None else price.cost(usage.input_tokens, usage.output_tokens)

    def _observe_invalid(self, call_id: str, attempt: int, step_id: str | None, err: Exception) -> None:
        if self.call_log is not None:
            self.call_log.write(
                {
                    "event": "llm_output_invalid",
                    "run_id": self.run_id,
                    "step_id": step_id,
                    "call_id": call_id,
                    "attempt": attempt,
                    "outcome": "invalid_output",
                    "error_type": "invalid_output",
                    "error": str(err)[:500],
                }
            )

    def _record(
        self,
        call_id: str,
        attempt: int,
        role: Role,
        step_id: str | None,
        req: ModelRequest,
        resp: ModelResponse | None,
        estimate: int,
        latency_ms: float,
        outcome: str,
        exc: LLMError | None,
    ) -> None:
        usage = self._usage(resp, req) if resp is not None else Usage()
        cost = self._cost(req.model, usage) if resp is not None else None
        self._account(req.model, usage, cost, answered=resp is not None)
        record: dict[str, Any] = {
            "event": "llm_call",
            "run_id": self.run_id,
            "step_id": step_id,
            "call_id": call_id,
            "role": role,
            "gen_ai.request.model": req.model,
            "gen_ai.response.model": resp.model if resp is not None else None,
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "input_tokens_estimate": estimate,
            "cost_usd": cost,
            "latency_ms": round(latency_ms, 3),
            "attempt": attempt,
            "outcome": outcome,
            "error_type": exc.error_type if exc is not None else None,
            "error": exc.one_line() if exc is not None else None,
            "request_hash": req.hash(),
        }
        if resp is not None and cost is None:
            record["warning"] = f"price unknown for {req.model}; cost not counted"
        if self.call_log is not None:
            self.call_log.write(record)
        if self.observers:
            rec = CallRecord(call_id, attempt, role, step_id, req, record["request_hash"], resp, usage, cost,
                             latency_ms, outcome, record["error_type"], record["error"])
            for obs in self.observers:
                obs(rec)

    def _account(self, model: str, usage: Usage, cost: float | None, *, answered: bool) -> None:
        self.totals.calls += 1
        self.totals.input_tokens += usage.input_tokens
        self.totals.output_tokens += usage.output_tokens
        if answered:
            if cost is None:
                self.totals.unpriced_calls += 1
                self.totals.unpriced_models.add(model)
            else:
                self.totals.cost_usd += cost

    def account_recorded(self, rec: CallRecord) -> None:
        """Count a call made earlier (a replay serving a recorded plan) as if made now: totals and
        observers see it, nothing is sent."""
        self._account(rec.request.model, rec.usage, rec.cost_usd, answered=rec.response is not None)
        for obs in self.observers:
            obs(rec)


def _supports_schema(backend: ModelBackend, model: str) -> bool:
    fn = getattr(backend, "supports_json_schema", None)
    return True if fn is None else bool(fn(model))


# ------------------------------------------------------------------ embeddings


def embed_texts(model: str, texts: list[str], api_base: str | None = None, *,
                timeout: float = 120.0) -> list[list[float]]:
    """Embed ``texts`` with a litellm embedding model (``openai/text-embedding-3-small``, ...).

    One request for the whole batch (callers batch); vectors come back in input order.
    Raises :class:`ModelRequestsBlocked` under tests without opt-in, and
    LLMTransientError / LLMFatalError (classified like completions) on failure.
    """
    if not requests_allowed():
        raise ModelRequestsBlocked(
            f"real model requests are disabled here (embedding model {model}); "
            "tests opt in with the allow_model_requests fixture"
        )
    if not texts:
        return []
    litellm = litellm_module()
    kwargs: dict[str, Any] = {"model": model, "input": texts, "timeout": timeout, "num_retries": 0}
    if api_base:
        kwargs["api_base"] = api_base
    try:
        resp = litellm.embedding(**kwargs)
    except Exception as exc:
        raise classify_exception(exc, model) from exc
    try:
        items = sorted(resp.data, key=lambda d: d["index"] if isinstance(d, dict) else d.index)
        vectors = [list(map(float, d["embedding"] if isinstance(d, dict) else d.embedding)) for d in items]
    except (AttributeError, KeyError, TypeError) as exc:
        raise LLMTransientError(f"{model}: malformed embedding response: {exc}") from exc
    if len(vectors) != len(texts):
        raise LLMTransientError(f"{model}: {len(vectors)} embeddings for {len(texts)} texts")
    return vectors
