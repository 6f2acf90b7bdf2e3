"""OpenTelemetry traces of runs, built from the run's events.

A run is one trace. Spans are not opened and closed around the code that does the
work: :class:`SpanConverter` listens to the run's :class:`~agentcli.record.events.EventLog`
(``EventLog.listeners``) and turns the event stream into spans whose start and end
times are taken from the events. The same converter therefore traces a live run
(``agent run`` with ``[telemetry] exporter`` set) and a recorded one after the fact
(``agent replay RUN_ID --export-trace``), and both give the same tree::

    invoke_agent agentcli                    root, run_started .. run_finished; transitions are span events
    ├── planning | replanning | reviewing    from the transition into the state to the next transition
    │   └── chat {model}                     planner / reviewer calls (ends at the llm_call event,
    │                                        starts latency_ms earlier)
    └── step {id}                            step_started .. step_finished
        ├── chat {model}                     llm-step calls and argument corrections
        └── execute_tool {tool}              ends at the tool_call event, starts duration_ms earlier

Approvals, tool intents and argument corrections are events on their step span; review
verdicts on the reviewing span; a failed budget check on the root span. An LLM call or
tool call that failed, a failed or denied step, a planning that ended in FAILED and a
run that did not complete get status ERROR, an ``error.type`` attribute and an
``exception`` event with the (redacted) message.

Attributes follow the OpenTelemetry GenAI semantic conventions:
``gen_ai.operation.name`` (``invoke_agent`` / ``chat`` / ``execute_tool``),
``gen_ai.provider.name`` (from the litellm model prefix: ``openai/...`` -> openai,
``anthropic/...`` -> anthropic, ``ollama/...`` -> ollama, ``local/...`` -> local,
``bedrock/...`` -> aws.bedrock ...), ``gen_ai.request.model``, ``gen_ai.response.model``,
``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``, ``gen_ai.tool.name``,
``gen_ai.agent.name`` and ``gen_ai.conversation.id`` (the run id, on every span).
The cost of a call, in USD, is ``gen_ai.usage.cost``: the conventions have no cost
attribute yet, so this name is our choice (it sits beside the usage counts it is
computed from; it is absent when the model's price is unknown, and then
``agentcli.cost_unknown`` is true). Run totals go on the root span as
``agentcli.usage.*`` rather than ``gen_ai.usage.*``, so that a backend summing usage
over a trace does not count every call twice.

For backends that read OpenInference (Arize Phoenix), spans also carry
``openinference.span.kind`` (AGENT / CHAIN / LLM / TOOL), ``llm.model_name``,
``llm.provider``, ``llm.token_count.prompt`` / ``.completion`` / ``.total`` and
``session.id`` (the run id).

Content: prompts, completions, the task, the answer, tool arguments and tool outputs go
into spans only with ``[telemetry] capture_content = true``, as
``gen_ai.input.messages`` / ``gen_ai.output.messages`` (JSON strings in the GenAI
message format), ``gen_ai.tool.call.arguments`` / ``gen_ai.tool.call.result`` and the
OpenInference ``input.value`` / ``output.value`` / ``llm.*_messages``. Every string put
in a span passes through :class:`agentcli.redact.Redactor`: secrets never do.

The trace id is derived from the run id (the first 128 bits of its sha256), so a
resumed run continues the same trace and a trace can be found from a run id
(:func:`trace_id_for`).

Cost when off: with ``exporter = "none"`` nothing here imports OpenTelemetry; the SDK
is imported by :func:`start_run_telemetry` / :func:`export_recording` only when a
trace is wanted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentcli import __version__
from agentcli.errors import UsageError
from agentcli.record import events as ev
from agentcli.record.reader import payload_of
from agentcli.redact import Redactor

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from agentcli.config import TelemetryConfig
    from agentcli.record.events import Event
    from agentcli.record.reader import RunRecord

log = logging.getLogger(__name__)

AGENT_NAME = "agentcli"
#: Longest text of one message, tool argument or output put in a span (longer is clipped).
MAX_CONTENT_CHARS = 16_000
#: litellm model prefixes whose GenAI ``gen_ai.provider.name`` differs from the prefix.
_PROVIDERS = {
    "bedrock": "aws.bedrock", "bedrock_converse": "aws.bedrock", "sagemaker": "aws.sagemaker",
    "azure": "azure.ai.openai", "azure_ai": "azure.ai.inference", "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai", "vertex_ai_beta": "gcp.vertex_ai", "mistral": "mistral_ai",
    "xai": "x_ai", "watsonx": "ibm.watsonx.ai", "ollama_chat": "ollama", "text-completion-openai": "openai",
}
_STATE_SPANS = {"PLANNING": "planning", "REPLANNING": "replanning", "REVIEWING": "reviewing",
                "VERIFYING": "verifying"}
_INSTALL_HINT = "OpenTelemetry is not installed: pip install 'agentcli[otel]'"


def provider_name(model: str) -> str:
    """``gen_ai.provider.name`` for a litellm model name (its prefix; a guess for bare names)."""
    if "/" in model:
        prefix = model.split("/", 1)[0].lower()
        return _PROVIDERS.get(prefix, prefix)
    m = model.lower()
    if m.startswith(("gpt-", "o1", "o3", "o4", "chatgpt", "text-embedding")):
        return "openai"
    if m.startswith("claude"):
        return "anthropic"
    if m.startswith("gemini"):
        return "gcp.gemini"
    return "unknown"


def trace_id_for(run_id: str) -> int:
    """The trace id of a run: the first 128 bits of sha256(run_id) (never 0)."""
    return int(hashlib.sha256(run_id.encode()).hexdigest()[:32], 16) or 1


def _ns(t: float) -> int:
    return int(t * 1e9)


def _clip(text: str, limit: int = MAX_CONTENT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def _attrs(**values: Any) -> dict[str, Any]:
    """Keyword names use ``__`` for dots; None values are left out (OTel rejects them)."""
    return {k.replace("__", "."): v for k, v in values.items() if v is not None}


class SpanConverter:
    """Turns a run's events, in order, into spans (see the module docstring).

    Use :meth:`on_event` as an ``EventLog`` listener, or feed a recording's events to it;
    :meth:`close` ends whatever is still open (a run that crashed). It never raises into
    the run: a failure is logged once and the event is skipped."""

    def __init__(self, tracer: Tracer, *, capture_content: bool = False,
                 id_slot: TraceIdSlot | None = None, redactor: Redactor | None = None) -> None:
        self.tracer = tracer
        self.capture = capture_content
        self.ids = id_slot
        self.redact = redactor or Redactor()
        self.spans = 0  # spans started
        self.trace_ids: list[int] = []
        self._lock = threading.Lock()
        self._failed = False
        self._root: Span | None = None
        self._run_id = ""
        self._state: tuple[Span, str] | None = None  # the open planning/replanning/reviewing span
        self._steps: dict[str, Span] = {}
        self._estimates: dict[str, float | None] = {}
        self._last_time: float | None = None

    # ------------------------------------------------------------- plumbing

    def __call__(self, event: Event) -> None:
        self.on_event(event)

    def on_event(self, event: Event) -> None:
        with self._lock:
            try:
                self._handle(event)
            except Exception as e:  # telemetry must never break a run
                if not self._failed:
                    self._failed = True
                    log.warning("telemetry: event %s #%s not traced: %s", event.type, event.seq, e)
            self._last_time = event.time

    def feed(self, events: Iterable[Event]) -> None:
        for e in events:
            self.on_event(e)

    def close(self) -> None:
        """End every open span at the last event's time (a run without run_finished is an error)."""
        with self._lock:
            if self._root is not None:
                self._end_run(self._last_time, "interrupted", "the recording has no run_finished event")

    def _start(self, name: str, start: float, parent: Span | None, attributes: dict[str, Any],
               kind: Any = None) -> Span:
        from opentelemetry import context as otel_context
        from opentelemetry import trace

        ctx = trace.set_span_in_context(parent) if parent is not None else otel_context.Context()
        attributes = {"gen_ai.conversation.id": self._run_id, **attributes}
        span = self.tracer.start_span(name, context=ctx, kind=kind or trace.SpanKind.INTERNAL,
                                      attributes=attributes, start_time=_ns(start))
        self.spans += 1
        return span

    def _clean(self, value: str) -> str:
        return self.redact.text(value)

    def _error(self, span: Span, etype: str, message: str, at: float) -> None:
        from opentelemetry.trace import Status, StatusCode

        message = self._clean(message)
        span.set_attribute("error.type", etype)
        span.set_status(Status(StatusCode.ERROR, f"{etype}: {message}"[:1000]))
        span.add_event("exception", {"exception.type": etype, "exception.message": message},
                       timestamp=_ns(at))

    def _content(self, span: Span, attributes: dict[str, Any]) -> None:
        if self.capture:
            span.set_attributes({k: self._clean(v) for k, v in attributes.items() if v is not None})

    def _current(self, step_id: str | None = None) -> Span | None:
        if step_id is not None and step_id in self._steps:
            return self._steps[step_id]
        return self._state[0] if self._state is not None else self._root

    # ------------------------------------------------------------- events

    def _handle(self, e: Event) -> None:
        d = payload_of(e)
        if isinstance(d, ev.RunStarted):
            self._start_run(e, d)
            return
        if self._root is None:
            self._start_run(e, None)  # a recording that lost its first line: trace what there is
        handler: Callable[[Event, Any], None] | None = getattr(self, f"_on_{e.type}", None)
        if handler is not None:
            handler(e, d)
        else:  # memory_recall, memory_write and any newer event type
            span = self._current(e.step_id)
            if span is not None:
                span.add_event(e.type, self._flat(d.event_data()), timestamp=_ns(e.time))

    def _flat(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in data.items():
            if isinstance(v, bool | int | float):
                out[f"agentcli.{k}"] = v
            elif isinstance(v, str):
                out[f"agentcli.{k}"] = self._clean(_clip(v, 500))
        return out

    def _start_run(self, e: Event, start: ev.RunStarted | None) -> None:
        if self._root is not None:  # a resumed run after a crash: the earlier part ends here
            self._end_run(self._last_time or e.time, "interrupted", "the run was interrupted (no run_finished)")
        d = start or ev.RunStarted()
        self._run_id = e.run_id
        model = d.model
        if self.ids is not None:
            self.ids.next_trace_id = trace_id_for(e.run_id)
        self._root = self._start(f"invoke_agent {AGENT_NAME}", e.time, None, _attrs(
            gen_ai__operation__name="invoke_agent", gen_ai__agent__name=AGENT_NAME,
            gen_ai__provider__name=provider_name(model) if model else None,
            gen_ai__request__model=model or None, openinference__span__kind="AGENT", session__id=e.run_id,
            agentcli__run__id=e.run_id, agentcli__resumed=d.resumed or None,
            agentcli__parent_run=d.parent or d.replay_of, agentcli__version=__version__,
        ))
        self.trace_ids.append(self._root.get_span_context().trace_id)
        if self.ids is not None:
            self.ids.next_trace_id = None
        task = d.task
        self._content(self._root, {"input.value": _clip(str(task)) if task else None,
                                   "input.mime_type": "text/plain" if task else None})

    def _end_run(self, at: float | None, reason: str, message: str, *, status: str = "FAILED",
                 data: ev.RunFinished | None = None) -> None:
        assert self._root is not None
        at = at if at is not None else self._last_time or 0.0
        self._end_state(at, None)
        for sid in list(self._steps):
            span = self._steps.pop(sid)
            self._error(span, "interrupted", "the run stopped during this step", at)
            span.end(end_time=_ns(at))
        root = self._root
        root.set_attributes(_attrs(agentcli__run__status=status, agentcli__run__reason=reason))
        if data is not None:
            t = data.totals
            root.set_attributes(_attrs(
                agentcli__usage__calls=t.get("calls"), agentcli__usage__input_tokens=t.get("input_tokens"),
                agentcli__usage__output_tokens=t.get("output_tokens"), agentcli__usage__cost=t.get("cost_usd"),
                agentcli__usage__unpriced_calls=t.get("unpriced_calls"),
                agentcli__exit_code=data.exit_code,
            ))
            answer = data.answer
            if status == "COMPLETE":
                self._content(root, {"output.value": _clip(str(answer)) if answer else None,
                                     "output.mime_type": "text/plain" if answer else None})
        if status != "COMPLETE":
            self._error(root, reason, message, at)
        root.end(end_time=_ns(at))
        self._root = None

    def _on_run_finished(self, e: Event, d: ev.RunFinished) -> None:
        self._end_run(e.time, d.reason or "failed", d.answer or d.reason, status=d.status, data=d)

    def _end_state(self, at: float, failure: str | None) -> None:
        if self._state is None:
            return
        span, _name = self._state
        if failure is not None:
            self._error(span, "failed", failure, at)
        span.end(end_time=_ns(at))
        self._state = None

    def _on_transition(self, e: Event, d: ev.TransitionMade) -> None:
        src, dst, reason = d.src, d.to, d.reason
        assert self._root is not None
        self._root.add_event("transition", {"agentcli.state.from": src, "agentcli.state.to": dst,
                                            "agentcli.state.reason": self._clean(reason)},
                             timestamp=_ns(e.time))
        # a planning (or re-planning) that ends in FAILED failed: the planner, the budget, a refusal
        self._end_state(e.time, reason if dst == "FAILED" else None)
        if dst in _STATE_SPANS:
            name = _STATE_SPANS[dst]
            span = self._start(name, e.time, self._root, _attrs(
                openinference__span__kind="CHAIN", agentcli__state=dst, agentcli__state__reason=self._clean(reason)))
            self._state = (span, name)

    def _on_plan_created(self, e: Event, d: ev.PlanCreated) -> None:
        plan = d.plan
        steps = plan.get("steps") or []
        for s in steps:
            self._estimates[str(s.get("id"))] = s.get("estimated_cost_usd")
        attrs = _attrs(agentcli__plan__id=plan.get("id"), agentcli__plan__hash=plan.get("hash"),
                       agentcli__plan__steps=len(steps), agentcli__plan__replan=d.replan,
                       agentcli__plan__estimated_cost_usd=plan.get("estimated_cost_usd"),
                       agentcli__plan__estimated_tokens=plan.get("estimated_tokens"))
        span = self._current()
        if span is not None:
            if self._state is not None:
                span.set_attributes(attrs)
            span.add_event("plan_created", attrs, timestamp=_ns(e.time))

    def _on_step_started(self, e: Event, d: ev.StepStarted) -> None:
        sid = e.step_id or "?"
        old = self._steps.pop(sid, None)
        if old is not None:
            old.end(end_time=_ns(e.time))
        self._steps[sid] = self._start(f"step {sid}", e.time, self._root, _attrs(
            openinference__span__kind="CHAIN", agentcli__step__id=sid,
            agentcli__step__title=self._clean(d.title), agentcli__step__kind=d.kind,
            agentcli__step__tool=d.tool, agentcli__step__estimated_cost_usd=self._estimates.get(sid),
        ))

    def _on_step_finished(self, e: Event, d: ev.StepFinished) -> None:
        sid = e.step_id or "?"
        span = self._steps.pop(sid, None)
        if span is None:  # skipped before it started: a zero-length span says so
            span = self._start(f"step {sid}", e.time, self._root, _attrs(
                openinference__span__kind="CHAIN", agentcli__step__id=sid,
                agentcli__step__estimated_cost_usd=self._estimates.get(sid)))
        status = d.status
        span.set_attributes(_attrs(
            agentcli__step__status=status, agentcli__step__attempts=d.attempts,
            agentcli__step__input_tokens=d.input_tokens, agentcli__step__output_tokens=d.output_tokens,
            agentcli__step__cost_usd=d.cost_usd))
        err = d.error or {}
        if status in ("failed", "denied"):
            self._error(span, str(err.get("type") or status), str(err.get("message") or status), e.time)
        elif status == "skipped" and err:
            span.set_attribute("agentcli.step.skip_reason", self._clean(str(err.get("message", ""))))
        out = d.output
        if status == "ok" and out is not None:
            self._content(span, {"output.value": _clip(_text(out))})
        span.end(end_time=_ns(e.time))

    def _on_llm_call(self, e: Event, d: ev.LlmCall) -> None:
        from opentelemetry.trace import SpanKind

        model = d.model
        resp_model = d.response.model if d.response is not None else None
        latency = d.latency_ms / 1000
        cost = d.cost_usd
        inp, out = d.usage.input_tokens, d.usage.output_tokens
        parent = self._current(e.step_id)
        span = self._start(f"chat {model}", e.time - latency, parent, _attrs(
            gen_ai__operation__name="chat", gen_ai__provider__name=provider_name(model),
            gen_ai__request__model=model, gen_ai__response__model=resp_model,
            gen_ai__usage__input_tokens=inp, gen_ai__usage__output_tokens=out, gen_ai__usage__cost=cost,
            gen_ai__request__max_tokens=d.request.max_tokens,
            gen_ai__response__finish_reasons=[d.response.finish_reason] if d.response is not None
            and d.response.finish_reason else None,
            gen_ai__request__temperature=d.request.temperature,
            agentcli__cost_unknown=True if d.response is not None and cost is None else None,
            agentcli__role=d.role, agentcli__call_id=d.call_id, agentcli__attempt=d.attempt,
            agentcli__outcome=d.outcome, agentcli__step__id=e.step_id,
            openinference__span__kind="LLM", llm__model_name=resp_model or model,
            llm__provider=provider_name(model), llm__token_count__prompt=inp, llm__token_count__completion=out,
            llm__token_count__total=inp + out,
        ), kind=SpanKind.CLIENT)
        if self.capture:
            self._llm_content(span, d)
        if d.outcome in ("error", "retry") or d.response is None:
            self._error(span, d.error_type or "error", d.error or "no response", e.time)
        span.end(end_time=_ns(e.time))

    def _llm_content(self, span: Span, d: ev.LlmCall) -> None:
        messages = self.redact(list(d.request.messages))
        inputs = []
        flat: dict[str, Any] = {}
        for i, m in enumerate(messages):
            role = str(m.get("role", "user")) if isinstance(m, dict) else "user"
            content = _clip(_text(m.get("content") if isinstance(m, dict) else m) or "")
            inputs.append({"role": role, "parts": [{"type": "text", "content": content}]})
            flat[f"llm.input_messages.{i}.message.role"] = role
            flat[f"llm.input_messages.{i}.message.content"] = content
        attrs: dict[str, Any] = {
            "gen_ai.input.messages": json.dumps(inputs, ensure_ascii=False),
            "input.value": json.dumps(messages, ensure_ascii=False, default=str),
            "input.mime_type": "application/json", **flat,
        }
        if d.response is not None:
            resp = self.redact(d.response.model_dump())
            text = _clip(str(resp.get("text") or ""))
            parts: list[dict[str, Any]] = [{"type": "text", "content": text}] if text else []
            for c in resp.get("tool_calls") or []:
                parts.append({"type": "tool_call", "id": c.get("id"), "name": c.get("name"),
                              "arguments": c.get("arguments")})
            attrs.update({
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": parts}], ensure_ascii=False,
                                                     default=str),
                "output.value": text, "output.mime_type": "text/plain",
                "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": text,
            })
        self._content(span, attrs)

    def _on_tool_call(self, e: Event, d: ev.ToolCalled) -> None:
        tool = d.tool
        result = d.result
        duration = float(result.get("duration_ms") or 0) / 1000
        span = self._start(f"execute_tool {tool}", e.time - duration, self._current(e.step_id), _attrs(
            gen_ai__operation__name="execute_tool", gen_ai__tool__name=tool, gen_ai__tool__type="function",
            openinference__span__kind="TOOL", tool__name=tool, agentcli__step__id=e.step_id,
            agentcli__tool__attempt=d.attempt, agentcli__tool__ok=bool(result.get("ok")),
            agentcli__tool__truncated=bool(result.get("truncated")) or None,
        ))
        args = _clip(_text(self.redact(d.args or {})))
        output = result.get("output")
        out_text = None if output is None else _clip(_text(self.redact(output)))
        self._content(span, {"gen_ai.tool.call.arguments": args, "input.value": args,
                             "input.mime_type": "application/json",
                             "gen_ai.tool.call.result": out_text, "output.value": out_text})
        if not result.get("ok"):
            err = result.get("error") or {}
            self._error(span, str(err.get("type") or "error"), str(err.get("message") or "tool failed"), e.time)
        span.end(end_time=_ns(e.time))

    def _step_event(self, e: Event, name: str, attrs: dict[str, Any]) -> None:
        span = self._current(e.step_id)
        if span is not None:
            span.add_event(name, attrs, timestamp=_ns(e.time))

    def _on_approval(self, e: Event, d: ev.ApprovalMade) -> None:
        self._step_event(e, "approval", _attrs(
            gen_ai__tool__name=d.tool, agentcli__approval__decision=d.decision,
            agentcli__approval__decided_by=d.decided_by, agentcli__approval__risk=d.risk,
            agentcli__approval__message=self._clean(d.message) or None))

    def _on_tool_intent(self, e: Event, d: ev.ToolIntent) -> None:
        self._step_event(e, "tool_intent", _attrs(gen_ai__tool__name=d.tool, agentcli__tool__attempt=d.attempt))

    def _on_review(self, e: Event, d: ev.Reviewed) -> None:
        if d.kind == "args_corrected":
            self._step_event(e, "args_corrected", _attrs(gen_ai__tool__name=d.tool))
            return
        self._step_event(e, "review", _attrs(
            agentcli__review__outcome=d.outcome,
            agentcli__review__reason=self._clean(d.reason or "") or None))

    def _on_budget_check(self, e: Event, d: ev.BudgetChecked) -> None:
        if d.ok or self._root is None:
            return  # passing checks are many and say nothing a trace needs
        self._root.add_event("budget_exceeded", _attrs(
            agentcli__budget__which=d.which, agentcli__budget__kind=d.kind,
            agentcli__budget__message=self._clean(str((d.model_extra or {}).get("message") or "")) or None,
            agentcli__step__id=e.step_id), timestamp=_ns(e.time))


# ------------------------------------------------------------------ the SDK side


class TraceIdSlot:
    """The trace id the next root span must get (:func:`trace_id_for` its run id), read by the
    provider's id generator; span ids stay random."""

    def __init__(self) -> None:
        self.next_trace_id: int | None = None


def _id_generator(slot: TraceIdSlot) -> Any:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class RunIdGenerator(RandomIdGenerator):
        def generate_trace_id(self) -> int:
            return slot.next_trace_id or super().generate_trace_id()

        def is_trace_id_random(self) -> bool:
            return False  # derived from the run id, not drawn at random (W3C random flag unset)

    return RunIdGenerator()


def _import_sdk() -> None:
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        raise UsageError(_INSTALL_HINT) from None


def _endpoint(value: str) -> str | None:
    if not value:
        return None  # the exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, else localhost:4318
    value = value.rstrip("/")
    return value if value.endswith("/v1/traces") else value + "/v1/traces"


def make_exporter(cfg: TelemetryConfig) -> SpanExporter:
    """The exporter ``[telemetry] exporter`` names (not ``none``)."""
    _import_sdk()
    if cfg.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)  # stderr: `--json` output on stdout stays clean
    if cfg.exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise UsageError(_INSTALL_HINT) from None
        return OTLPSpanExporter(endpoint=_endpoint(cfg.endpoint), headers=dict(cfg.headers) or None)
    raise UsageError("telemetry is off: set [telemetry] exporter = \"otlp\" or \"console\" "
                     "(or AGENT_TELEMETRY__EXPORTER=console)")


def make_provider(cfg: TelemetryConfig, exporter: SpanExporter | None = None, *,
                  batch: bool | None = None) -> tuple[TracerProvider, TraceIdSlot]:
    """A tracer provider of our own (the global one is left alone) exporting to ``exporter``
    (default: the configured one). OTLP batches; console and injected exporters export each span
    as it ends, unless ``batch`` says otherwise."""
    _import_sdk()
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    attrs: dict[str, Any] = {"service.version": __version__}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attrs["service.name"] = cfg.service_name
    ids = TraceIdSlot()
    provider = TracerProvider(resource=Resource.create(attrs), id_generator=_id_generator(ids),
                              shutdown_on_exit=False)
    use_batch = (exporter is None and cfg.exporter == "otlp") if batch is None else batch
    exp = exporter if exporter is not None else make_exporter(cfg)
    provider.add_span_processor(BatchSpanProcessor(exp) if use_batch else SimpleSpanProcessor(exp))
    return provider, ids


@dataclass
class RunTelemetry:
    """What a command attaches to a run: the EventLog listener, and what to call at the end."""

    converter: SpanConverter
    provider: TracerProvider

    @property
    def listener(self) -> Callable[[Event], None]:
        return self.converter.on_event

    def shutdown(self) -> None:
        """End open spans, flush the exporter and shut the provider down. Never raises."""
        try:
            self.converter.close()
            self.provider.force_flush()
            self.provider.shutdown()
        except Exception as e:  # an unreachable collector must not fail the run
            log.warning("telemetry: export failed: %s", e)


def start_run_telemetry(cfg: TelemetryConfig, exporter: SpanExporter | None = None) -> RunTelemetry | None:
    """The listener and shutdown for one run, or None when telemetry is off (nothing imported)."""
    if cfg.exporter == "none" and exporter is None:
        return None
    provider, ids = make_provider(cfg, exporter)
    converter = SpanConverter(provider.get_tracer("agentcli", __version__), capture_content=cfg.capture_content,
                              id_slot=ids)
    return RunTelemetry(converter, provider)


@dataclass
class ExportResult:
    run_id: str
    spans: int
    trace_ids: list[str]


def export_recording(rec: RunRecord, cfg: TelemetryConfig, exporter: SpanExporter | None = None) -> ExportResult:
    """Emit a recorded run as a trace through the same converter a live run uses. Executes nothing."""
    if cfg.exporter == "none" and exporter is None:
        make_exporter(cfg)  # raises the "telemetry is off" usage error
    tel = start_run_telemetry(cfg, exporter)
    assert tel is not None
    tel.converter.feed(rec.events)
    tel.shutdown()
    return ExportResult(rec.run_id, tel.converter.spans, [f"{t:032x}" for t in tel.converter.trace_ids])
