"""The one LLM client: :class:`LLMClient`, provider-independent.

It wraps any :class:`~agentcli.models.types.ModelBackend` (by default
:class:`agentcli.models.routing.RoutingBackend`) and owns everything that must be the same for all of
them, at one choke point:

* structured output: a JSON schema from a pydantic model, validation, and
  bounded re-asks carrying the validation errors back to the model;
* retries of transient errors with exponential backoff, jitter and Retry-After,
  then the configured fallback models in order;
* a pre-call ``guard`` (the budget checks it before anything is sent);
* the output limit of each call, sized per role and per model (:meth:`LLMClient.output_limit`), and
  never acting on a cut answer: a reply the limit cut (``finish_reason: length``) is asked for
  once more with the largest limit the model and the budget allow, and fails as
  :class:`~agentcli.errors.OutputTruncated` when that is cut too;
* one JSON log record per request (:mod:`agentcli.models.calllog`), running totals per
  run, and ``observers`` that receive the full request and response (the run's
  event log and replay use them); ``on_send`` hears of each request as it is sent (a live
  display's "waiting for the model"), and ``on_text`` the answer's text as it arrives, from a
  backend that streams it (only when someone listens and the model's profile says it streams;
  what is recorded is the whole answer, as without streaming).

Loading this module never loads litellm: only :mod:`agentcli.models.litellm` touches it, lazily, on the
first real call.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError

from agentcli.config import Config
from agentcli.errors import (
    LLMError,
    LLMFatalError,
    LLMTransientError,
    ModelRequestsBlocked,
    ModelSetupError,
    OutputTruncated,
    StructuredOutputError,
)
from agentcli.models import tokens
from agentcli.models.cache import PrefixCache, RequestText, cache_marks, request_text
from agentcli.models.calllog import CallLog
from agentcli.models.litellm import classify_exception
from agentcli.models.profile import ModelProfile, apply_overrides
from agentcli.models.routing import RoutingBackend
from agentcli.models.types import (
    CallOutcome,
    CallRecord,
    LLMResult,
    ModelBackend,
    ModelRequest,
    ModelResponse,
    PreCall,
    Price,
    Role,
    RunTotals,
    Usage,
)
from agentcli.redact import current as current_redactor

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
# A whole answer in one fenced block, any language tag: ```python\n...\n```
_ANY_FENCE = re.compile(r"^```[\w+.-]*[ \t]*\n(.*?)\n?```$", re.DOTALL)

#: The first output limit of a call per role when ``llm.max_output_tokens`` is 0 (the default),
#: capped by the model's own maximum: a plan (a feature's plan with its edits written inline ran
#: past 4,096 tokens on graded tasks), a step's answer (a whole module fits), a verdict.
#: A cut answer is asked for again once with the model's maximum.
ROLE_OUTPUT_TOKENS: dict[str, int] = {"planner": 8192, "executor": 8192, "reviewer": 2048}
#: The limits of a model whose planner style is "small" (the embedded model), per role: what each
#: answer needs (a grammar-bounded plan of a few steps, a step's short text, a verdict), so that a
#: reply that runs away stops in seconds on a CPU instead of generating to 1,024 tokens (a re-plan
#: that did took 366.9 s). Never asked again larger: a small model's cut answer fails as it is.
SMALL_MODEL_OUTPUT_TOKENS: dict[str, int] = {"planner": 512, "executor": 512, "reviewer": 256}
#: A model's maximum when nothing says it (an unknown model behind an OpenAI-compatible server).
UNKNOWN_MODEL_OUTPUT_TOKENS = 4096
#: A limit is shrunk to what the budget can pay for (or the context window leaves) down to this many
#: tokens, no further: a call the budget cannot pay this much for is refused by the guard instead
#: of being made to be cut.
MIN_AFFORDABLE_OUTPUT_TOKENS = 1024


def strip_fences(text: str) -> str:
    """``text`` without one Markdown fence around all of it (real models add them even when told
    not to); anything else is returned as it is, fences inside the text included."""
    m = _ANY_FENCE.match(text.strip())
    return m.group(1) + "\n" if m else text


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


class _Sent(NamedTuple):
    """One answered request, with what was worked out for it once: the token estimate (counted
    before sending, for the guard), the request hash and the usage (as recorded)."""

    resp: ModelResponse
    model: str
    req: ModelRequest
    attempts: int
    latency_ms: float
    estimate: int
    request_hash: str
    usage: Usage


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
        observers: Sequence[Callable[[CallRecord], None]] = (),
        headroom: Callable[[str, int, Price | None, int], int | None] | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.config = config
        self.backend: ModelBackend = backend or RoutingBackend(openai_http=config.llm.transport == "auto")
        self.call_log = call_log
        self.run_id = run_id
        self.guard = guard
        #: ``headroom(model, input_tokens, price, cached_tokens)``: the most output tokens the budget can still pay
        #: for (None: no limit); a call's output limit is never sized past it.
        self.headroom: Callable[[str, int, Price | None, int], int | None] | None = headroom
        self.observers: list[Callable[[CallRecord], None]] = list(observers)
        #: Told before each request is sent (its model, role, step): what a live display shows
        #: while the call is in flight; the observers hear of it when it is answered.
        self.on_send: list[Callable[[PreCall], None]] = []
        #: Told each piece of an answer's text as it is generated, with the step it is for (None:
        #: the planner's, the reviewer's), for a live display; with none, no backend streams.
        #: Called from the backend's worker thread.
        self.on_text: list[Callable[[str | None, str], None]] = []
        self.totals = RunTotals()
        #: The run's requests per model, for what a provider's prefix cache could serve of the next.
        self.prefix_cache = PrefixCache()
        self._sleep = sleep or asyncio.sleep
        self._profiles: dict[str, ModelProfile] = {}

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
        tool_choice: str | None = None,
    ) -> LLMResult:
        """One logical call. With ``response_model``, the reply is parsed and validated into it
        (``result.parsed``), re-asking with the errors up to ``llm.max_reasks`` times.
        ``json_schema`` overrides the schema sent (e.g. a grammar-friendlier one). ``tool_choice``
        ``"none"`` sends ``tools`` but asks for no call: the request keeps the prefix of the ones
        that offered them (a provider's prompt cache), and the reply is the answer."""
        cfg = self.config.llm
        chain = [model or self.config.model_for(role)]
        chain += [m for m in self.config.fallbacks if m not in chain]
        call_id = uuid.uuid4().hex[:16]
        msgs = [dict(m) for m in messages]
        response_format = None
        if response_model is not None or json_schema is not None:
            schema = json_schema or response_model.model_json_schema()  # type: ignore[union-attr]
            name = response_model.__name__ if response_model is not None else "response"
            response_format = {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
        limit = max_tokens or self.output_limit(role, chain[0])
        ceiling = max(limit, self.output_ceiling(role, chain[0]))
        attempts = 0
        latency = 0.0
        last_error: Exception | None = None
        cut: _Sent | None = None
        for _reask in range(cfg.max_reasks + 1 if response_format else 1):
            sent = await self._send_with_fallbacks(
                chain, msgs, response_format, tools, role, step_id, limit, call_id, attempts, tool_choice
            )
            attempts += sent.attempts
            latency += sent.latency_ms
            if sent.resp.truncated:
                larger = self._affordable(sent.model, sent.estimate, ceiling)
                if larger > sent.req.max_tokens:
                    # Asked once more with the largest limit: never act on a cut answer.
                    limit = larger
                    sent = await self._send_with_fallbacks(
                        chain, msgs, response_format, tools, role, step_id, limit, call_id, attempts,
                        tool_choice,
                    )
                    attempts += sent.attempts
                    latency += sent.latency_ms
            resp = sent.resp
            cut = sent if resp.truncated else None
            parsed: Any = None
            # A reply that calls tools is the caller's to carry out: its JSON answer comes later.
            if response_format is not None and not (tools and tool_choice != "none" and resp.tool_calls):
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
            if cut is not None:
                if response_format is None:
                    break
                # Whole-looking JSON that the limit still cut: not used either; asked again, shorter.
                msgs = [*msgs, {"role": "assistant", "content": resp.text},
                        {"role": "user", "content": _cut_message(cut.req.max_tokens)}]
                continue
            # The request's count, hash and usage as worked out when it was sent and recorded
            # (a fresh Usage: the recorded one went to the observers).
            usage = sent.usage.model_copy()
            return LLMResult(
                text=resp.text,
                parsed=parsed,
                tool_calls=resp.tool_calls,
                usage=usage,
                cost_usd=self._cost(sent.model, usage),
                latency_ms=round(latency, 3),
                attempts=attempts,
                model=chain[0],
                response_model=resp.model or sent.model,
                call_id=call_id,
                request_hash=sent.request_hash,
                input_tokens_estimate=sent.estimate,
                finish_reason=resp.finish_reason,
                max_tokens=sent.req.max_tokens,
            )
        if cut is not None:
            raise OutputTruncated(
                f"{cut.model}: the answer was cut at the output limit of {cut.req.max_tokens} tokens "
                f"(finish_reason: length; the largest limit the model and the budget allow is "
                f"{self._affordable(cut.model, cut.estimate, ceiling)}); nothing of it was used"
            )
        assert last_error is not None
        summary = format_validation_errors(last_error).replace("\n", "; ")  # type: ignore[arg-type]
        raise StructuredOutputError(
            f"{chain[0]}: no valid structured output after {cfg.max_reasks + 1} tries: {summary}"
        )

    def output_limit(self, role: Role, model: str | None = None) -> int:
        """The output limit a call of ``role`` starts with: ``llm.max_output_tokens`` when set,
        else :data:`ROLE_OUTPUT_TOKENS` for the role (:data:`SMALL_MODEL_OUTPUT_TOKENS` for a small
        model's), never over the model's own maximum. The planner's estimates use it too."""
        model = model or self.config.model_for(role)
        cap = self.config.llm.max_output_tokens
        most = self.model_max_output(model)
        if cap <= 0:
            limits = SMALL_MODEL_OUTPUT_TOKENS if self._small(model) else ROLE_OUTPUT_TOKENS
            cap = limits.get(role, 4096)
        return max(1, min(cap, most))

    def output_ceiling(self, role: Role, model: str | None = None) -> int:
        """The largest output limit a call of ``role`` may be asked again with after a cut answer:
        the model's maximum, or ``llm.max_output_tokens`` when that is set (a cap is a cap)."""
        model = model or self.config.model_for(role)
        if self.config.llm.max_output_tokens > 0 or self._small(model):
            return self.output_limit(role, model)
        return self.model_max_output(model)

    def model_max_output(self, model: str) -> int:
        """The most tokens ``model`` generates in one answer."""
        return self.profile(model).max_output_tokens or UNKNOWN_MODEL_OUTPUT_TOKENS

    def _small(self, model: str) -> bool:
        return self.profile(model).planner_style == "small"

    def _fits_context(self, model: str, estimate: int, limit: int) -> int:
        """``limit``, or less so that the request and its answer fit the model's context window (a
        provider refuses a request whose prompt plus ``max_tokens`` overflows it). Never below
        :data:`MIN_AFFORDABLE_OUTPUT_TOKENS`: a prompt that leaves less room is the backend's to
        refuse or stop at its window's end (the estimate is approximate for other tokenizers, and a
        small model's limits are that floor already)."""
        context = self.profile(model).context_tokens
        if not context:
            return limit
        return min(limit, max(context - estimate, MIN_AFFORDABLE_OUTPUT_TOKENS))

    def _affordable(self, model: str, estimate: int, ceiling: int, cached: int = 0) -> int:
        """``ceiling``, or less when the budget's ``headroom`` cannot pay for that many tokens
        (``cached`` of the input expected from the provider's cache)."""
        if self.headroom is None:
            return ceiling
        room = self.headroom(model, estimate, self._price(model), cached)
        if room is None:
            return ceiling
        return max(min(ceiling, room), min(ceiling, MIN_AFFORDABLE_OUTPUT_TOKENS))

    def estimate_input_tokens(self, messages: Sequence[dict[str, Any]], model: str) -> int:
        return tokens.count_messages(messages, model)

    def price(self, model: str) -> Price | None:
        """The model's price per token, or None when unknown."""
        return self._price(model)

    def configured_price(self, model: str) -> Price | None:
        """The price ``[models."NAME"]`` sets (``input_cost_per_mtok``, ``output_cost_per_mtok``), if any."""
        override = self.config.models.get(model)
        if override is None or (override.input_cost_per_mtok is None and override.output_cost_per_mtok is None):
            return None
        return Price((override.input_cost_per_mtok or 0.0) / 1e6, (override.output_cost_per_mtok or 0.0) / 1e6)

    def profile(self, model: str | None = None) -> ModelProfile:
        """What ``model`` (default: the default model) can do: its backend's profile with the
        ``[models."NAME"]`` overrides of the config applied. Asked once per model per client."""
        name = model or self.config.model
        cached = self._profiles.get(name)
        if cached is None:
            try:
                base = self.backend.profile(name)
            except Exception:
                base = ModelProfile()
            override = self.config.models.get(name)
            cached = apply_overrides(base, override.model_dump() if override is not None else None)
            self._profiles[name] = cached
        return cached

    def profile_for(self, role: Role) -> ModelProfile:
        """The profile of the model a role uses."""
        return self.profile(self.config.model_for(role))

    # -- internals

    def _request(
        self,
        model: str,
        msgs: list[dict[str, Any]],
        response_format: dict[str, Any] | None,
        tools: list[dict[str, Any]] | None,
        max_tokens: int | None,
        is_fallback: bool,
        step_id: str | None = None,
        tool_choice: str | None = None,
    ) -> ModelRequest:
        cfg = self.config.llm
        profile = self.profile(model)
        rf = response_format
        if rf is not None and profile.structured_output != "json_schema":
            # Without JSON-schema support: JSON mode (or nothing) plus the schema in the prompt.
            schema = json.dumps(rf["json_schema"]["schema"])
            msgs = [*msgs, {"role": "system", "content": f"Reply with one JSON object matching: {schema}"}]
            rf = {"type": "json_object"} if profile.structured_output == "json_object" else None
        # Nothing secret is sent: a tool output, a file or an answer holding a registered secret
        # value or a credential-shaped token reaches the model masked. Masked here, before the
        # request is hashed and recorded, so a replay (built from the masked record) asks the same.
        msgs = current_redactor().strings(msgs)
        api_base = None
        if self.config.api_base and not is_fallback and profile.uses_api_base:
            api_base = self.config.api_base
        return ModelRequest(
            model=model,
            messages=msgs,
            max_tokens=max_tokens or self.output_limit("executor", model),
            temperature=cfg.temperature,
            seed=cfg.seed,
            timeout=cfg.timeout_seconds,
            response_format=rf,
            tools=tools,
            tool_choice=tool_choice if tools else None,
            cache_marks=cache_marks(msgs) if profile.cache_breakpoints else (),
            api_base=api_base,
            step_id=step_id,
        )

    def _estimate(self, req: ModelRequest) -> int:
        """The request's input tokens, counted once per request (tiktoken over the whole prompt is
        the costliest thing a call does here): the guard, the call record, the usage fallback and
        the result all reuse this number."""
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
        tool_choice: str | None = None,
    ) -> _Sent:
        cfg = self.config.llm
        attempts = 0
        latency = 0.0
        errors: list[LLMError] = []
        for idx, model in enumerate(chain):
            req = self._request(model, msgs, response_format, tools, max_tokens, idx > 0, step_id, tool_choice)
            estimate = self._estimate(req)
            seq = RequestText(request_text(req.messages, tools=req.tools, response_format=req.response_format), model)
            cacheable = min(self.prefix_cache.peek(model, seq), estimate)
            price = self._price(model)  # also warms the provider import before latency is timed
            req.max_tokens = self._fits_context(model, estimate, req.max_tokens)
            if self.on_text and self.profile(model).streaming:
                req.on_text = functools.partial(self._streamed, step_id)
            if self.headroom is not None:
                # Sized within what the budget can still pay for, rather than refused by the guard.
                req.max_tokens = self._affordable(model, estimate, req.max_tokens, cacheable)
            for retry in range(cfg.max_retries + 1):
                pre = PreCall(model, estimate, req.max_tokens, price, role, step_id, cached_tokens_estimate=cacheable)
                if self.guard is not None:
                    self.guard(pre)
                for notify in self.on_send:
                    notify(pre)
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
                                 "retry" if transient else "error", exc, cacheable=cacheable)
                    if isinstance(exc, ModelRequestsBlocked):
                        raise
                    if transient:
                        await self._sleep(self._backoff(retry, exc.retry_after))
                        continue
                    errors.append(exc)
                    break
                ms = (time.perf_counter() - t0) * 1000
                latency += ms
                usage, request_hash = self._record(call_id, attempts_before + attempts, role, step_id, req,
                                                   resp, estimate, ms, "truncated" if resp.truncated else "ok",
                                                   None, cacheable=cacheable)
                self.prefix_cache.add(model, seq)
                return _Sent(resp, model, req, attempts, latency, estimate, request_hash, usage)
        last = errors[-1]
        tried = f" (after {attempts} attempts)" if attempts > 1 else ""
        more = f"; fallbacks tried: {', '.join(chain[1:])}" if len(chain) > 1 else ""
        # Our own class, not type(last): a provider's subclass may not take these arguments. A set-up
        # error keeps its class (and exit code 2): it names what to fix.
        cls = (LLMTransientError if isinstance(last, LLMTransientError) else
               ModelSetupError if isinstance(last, ModelSetupError) else LLMFatalError)
        raise cls(f"{last.one_line()}{tried}{more}", retry_after=last.retry_after, status=last.status) from last

    def _streamed(self, step_id: str | None, text: str) -> None:
        for listener in self.on_text:
            listener(step_id, text)

    def _backoff(self, retry: int, retry_after: float | None) -> float:
        cfg = self.config.llm
        delay = cfg.backoff_base_seconds * (2**retry)
        delay = delay * (0.5 + random.random() / 2)  # jitter: spread synchronized clients apart
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, cfg.backoff_max_seconds)

    def _price(self, model: str) -> Price | None:
        if self.profile(model).pricing == "free":
            return Price(0.0, 0.0)
        configured = self.configured_price(model)
        if configured is not None:
            return configured
        try:
            return self.backend.price(model)
        except Exception:
            return None

    def _usage(self, resp: ModelResponse, req: ModelRequest, estimate: int) -> Usage:
        """What the request used: the provider's counts, else the request's estimate and a count of
        the reply."""
        return Usage(
            input_tokens=resp.input_tokens if resp.input_tokens is not None else estimate,
            output_tokens=resp.output_tokens
            if resp.output_tokens is not None
            else tokens.count_text(resp.text, req.model),
            cached_input_tokens=resp.cached_input_tokens or 0,
            cache_write_tokens=resp.cache_write_tokens or 0,
        )

    def _cost(self, model: str, usage: Usage) -> float | None:
        price = self._price(model)
        return None if price is None else price.of_usage(usage)

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
        outcome: CallOutcome,
        exc: LLMError | None,
        *,
        cacheable: int = 0,
    ) -> tuple[Usage, str]:
        """Log, account and observe one attempt; its usage and request hash."""
        usage = self._usage(resp, req, estimate) if resp is not None else Usage()
        cost = self._cost(req.model, usage) if resp is not None else None
        price = self._price(req.model)
        self._account(req.model, usage, cost, answered=resp is not None, cacheable=cacheable, price=price)
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
            "gen_ai.usage.cached_input_tokens": usage.cached_input_tokens,
            "gen_ai.usage.cache_write_tokens": usage.cache_write_tokens,
            "cacheable_tokens": cacheable,
            "gen_ai.request.max_tokens": req.max_tokens,
            "input_tokens_estimate": estimate,
            "cost_usd": cost,
            "latency_ms": round(latency_ms, 3),
            "attempt": attempt,
            "outcome": outcome,
            "error_type": exc.error_type if exc is not None else None,
            "error": exc.one_line() if exc is not None else None,
            "request_hash": req.hash(),
            "finish_reason": resp.finish_reason if resp is not None else None,
            "profile": self.profile(req.model).as_dict(),
        }
        if resp is not None and cost is None:
            record["warning"] = f"price unknown for {req.model}; cost not counted"
        if self.call_log is not None:
            self.call_log.write(record)
        if self.observers:
            rec = CallRecord(call_id, attempt, role, step_id, req, record["request_hash"], resp, usage, cost,
                             latency_ms, outcome, record["error_type"], record["error"],
                             profile=record["profile"], price=price, cacheable_tokens=cacheable)
            for obs in self.observers:
                obs(rec)
        return usage, record["request_hash"]

    def _account(self, model: str, usage: Usage, cost: float | None, *, answered: bool, cacheable: int = 0,
                 price: Price | None = None) -> None:
        t = self.totals
        t.calls += 1
        t.input_tokens += usage.input_tokens
        t.output_tokens += usage.output_tokens
        t.cached_input_tokens += usage.cached_input_tokens
        t.cache_write_tokens += usage.cache_write_tokens
        t.cacheable_tokens += cacheable
        if answered:
            if cost is None:
                t.unpriced_calls += 1
                t.unpriced_models.add(model)
            else:
                t.cost_usd += cost
                if price is not None:
                    t.cache_saved_usd += price.cost(usage.input_tokens, usage.output_tokens) - cost

    def account_recorded(self, rec: CallRecord) -> None:
        """Count a call made earlier (a replay serving a recorded plan) as if made now: totals and
        observers see it, nothing is sent."""
        self._account(rec.request.model, rec.usage, rec.cost_usd, answered=rec.response is not None,
                      cacheable=rec.cacheable_tokens, price=rec.price)
        for obs in self.observers:
            obs(rec)


def _cut_message(limit: int) -> str:
    return (f"Your reply was cut at the output limit of {limit} tokens. Reply again with the complete "
            "JSON object, shorter.")
