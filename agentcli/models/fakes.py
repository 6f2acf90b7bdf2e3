"""Fake models shipped in the package, for tests, benchmarks and demos.

Both implement :class:`agentcli.models.types.ModelBackend`, so an :class:`~agentcli.models.client.LLMClient`
built on them behaves exactly as with a real provider: retries, structured-output
re-asks, guards, logs and totals all run. Token counts are real tiktoken counts.

* :class:`ScriptedModel` answers from a queue: text, JSON-able objects, tool calls,
  :class:`~agentcli.models.types.ModelResponse` objects, or exceptions to raise (a 429 is
  ``LLMTransientError("...", status=429, retry_after=0)``).
* :class:`FunctionModel` answers by calling a function of the request.

Like a provider, both cut an answer longer than the request's ``max_tokens`` (tiktoken tokens)
and say so with ``finish_reason: "length"``; a :class:`~agentcli.models.types.ModelResponse`
in the script may set its own ``finish_reason``. Pass ``cut_at_limit=False`` to serve answers whole.

From the command line (subprocess tests) the model names ``test/echo`` and
``test/script`` select them: ``test/script`` reads the queue from the JSON file
named by ``AGENT_TEST_SCRIPT`` (a list of strings, objects, or
``{"error": "transient"|"fatal", "status": 429, "message": "..."}``, or
``{"text": "...", "finish_reason": "length"}`` for an answer with a finish reason of its own); with
``AGENT_TEST_SCRIPT_SHARED=1`` processes share the queue (a session's turns, a killed turn resumed).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agentcli.errors import LLMFatalError, LLMTransientError
from agentcli.models import tokens
from agentcli.models.names import static_profile
from agentcli.models.profile import ModelProfile
from agentcli.models.types import ModelRequest, ModelResponse, Price, ToolCall

ScriptItem = str | dict[str, Any] | list[Any] | BaseModel | ToolCall | ModelResponse | BaseException

#: Prices used by the fakes unless told otherwise: gpt-4o-mini's, so budgets have something to count.
DEFAULT_PRICE = Price(input=0.15e-6, output=0.60e-6)
#: The fakes' most output tokens per answer unless their profile says otherwise: gpt-4o-mini's too.
DEFAULT_MAX_OUTPUT = 16384


def _to_response(item: Any, req: ModelRequest, model: str, cut_at_limit: bool = True) -> ModelResponse:
    if isinstance(item, BaseException):
        raise item
    if isinstance(item, ModelResponse):
        resp = item
    elif isinstance(item, ToolCall):
        resp = ModelResponse(tool_calls=[item])
    elif isinstance(item, list) and item and all(isinstance(x, ToolCall) for x in item):
        resp = ModelResponse(tool_calls=list(item))
    elif isinstance(item, BaseModel):
        resp = ModelResponse(text=item.model_dump_json())
    elif isinstance(item, dict | list):
        resp = ModelResponse(text=json.dumps(item))
    else:
        resp = ModelResponse(text=str(item))
    if resp.finish_reason is None:
        resp.finish_reason = "tool_calls" if resp.tool_calls else "stop"
        if cut_at_limit and resp.text:
            resp.text, cut = tokens.cut_text(resp.text, req.max_tokens, req.model)
            if cut:
                resp.finish_reason = "length"
    if resp.input_tokens is None:
        resp.input_tokens = tokens.count_messages(req.messages, req.model, tools=req.tools)
    if resp.output_tokens is None:
        resp.output_tokens = tokens.count_text(resp.text, req.model) + 8 * len(resp.tool_calls)
    resp.model = resp.model or model
    return resp


class ScriptedModel:
    """Answers requests from a queue, in order; records every request it saw."""

    def __init__(self, responses: Iterable[ScriptItem] = (), *, price: Price | None = DEFAULT_PRICE,
                 model_name: str = "test/scripted", profile: ModelProfile | None = None,
                 cut_at_limit: bool = True) -> None:
        self.queue: deque[ScriptItem] = deque(responses)
        self.requests: list[ModelRequest] = []
        self._price = price
        self._profile = profile
        self.model_name = model_name
        self.cut_at_limit = cut_at_limit

    def add(self, *items: ScriptItem) -> ScriptedModel:
        self.queue.extend(items)
        return self

    async def request(self, req: ModelRequest) -> ModelResponse:
        self.requests.append(req)
        if not self.queue:
            raise LLMFatalError(f"{req.model}: the scripted model has no response left")
        return _to_response(self.queue.popleft(), req, req.model, self.cut_at_limit)

    def price(self, model: str) -> Price | None:
        return self._price

    def profile(self, model: str) -> ModelProfile:
        return self._profile or fake_profile(model)


class FunctionModel:
    """Answers each request with ``fn(request)`` (sync or async), returning any script item."""

    def __init__(
        self,
        fn: Callable[[ModelRequest], ScriptItem | Awaitable[ScriptItem]],
        *,
        price: Price | None = DEFAULT_PRICE,
        profile: ModelProfile | None = None,
        cut_at_limit: bool = True,
    ) -> None:
        self.fn = fn
        self.requests: list[ModelRequest] = []
        self._price = price
        self._profile = profile
        self.cut_at_limit = cut_at_limit

    async def request(self, req: ModelRequest) -> ModelResponse:
        self.requests.append(req)
        out = self.fn(req)
        if inspect.isawaitable(out):
            out = await out
        return _to_response(out, req, req.model, self.cut_at_limit)

    def price(self, model: str) -> Price | None:
        return self._price

    def profile(self, model: str) -> ModelProfile:
        return self._profile or fake_profile(model)


class _SharedScript(ScriptedModel):
    """``test/script`` with ``AGENT_TEST_SCRIPT_SHARED=1``: one queue for every process that reads the
    same file (how far it was served is kept in ``<file>.pos``), so a session's turns, a killed
    turn and its resumption in another process take the answers in order."""

    def __init__(self, path: Path, items: list[ScriptItem]) -> None:
        self._pos_file = path.with_name(path.name + ".pos")
        self._served = int(self._pos_file.read_text() or 0) if self._pos_file.is_file() else 0
        super().__init__(items[self._served:])

    async def request(self, req: ModelRequest) -> ModelResponse:
        if self.queue:
            self._served += 1
            self._pos_file.write_text(str(self._served))
        return await super().request(req)


def fake_profile(model: str) -> ModelProfile:
    """The profile a fake answers with unless given one: that of the model it stands in for (a fake
    answering as ``local/smollm2`` plans like the small local model), minus the price, which
    is the fake's own."""
    base = static_profile(model)
    return dataclasses.replace(base, source="fake", max_output_tokens=base.max_output_tokens or DEFAULT_MAX_OUTPUT)


def last_user_text(req: ModelRequest) -> str:
    for msg in reversed(req.messages):
        if msg.get("role") == "user" and isinstance(msg.get("content"), str):
            return str(msg["content"])
    return ""


def _script_item(raw: Any) -> ScriptItem:
    if isinstance(raw, dict) and "error" in raw:
        cls = LLMTransientError if raw["error"] == "transient" else LLMFatalError
        message = str(raw.get("message") or raw["error"])
        return cls(message, status=raw.get("status"), retry_after=raw.get("retry_after"))
    if isinstance(raw, dict) and "tool_call" in raw:
        return ToolCall(**raw["tool_call"])
    if isinstance(raw, dict) and set(raw) == {"text", "finish_reason"}:
        return ModelResponse(text=str(raw["text"]), finish_reason=str(raw["finish_reason"]))
    return raw


def named_fake(model: str) -> ScriptedModel | FunctionModel:
    """The fake behind a ``test/...`` model name (for subprocess tests and demos)."""
    kind = model.split("/", 1)[1] if "/" in model else model
    if kind == "echo":
        return FunctionModel(last_user_text)
    if kind == "script":
        path = os.environ.get("AGENT_TEST_SCRIPT")
        if not path:
            raise LLMFatalError("model test/script needs AGENT_TEST_SCRIPT=<file.json>")
        items = json.loads(Path(path).read_text())
        if os.environ.get("AGENT_TEST_SCRIPT_SHARED") == "1":
            return _SharedScript(Path(path), [_script_item(x) for x in items])
        return ScriptedModel([_script_item(x) for x in items])
    raise LLMFatalError(f"unknown test model '{model}' (known: test/echo, test/script)")
