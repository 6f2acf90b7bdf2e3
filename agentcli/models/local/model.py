"""The embedded, offline default model: llama.cpp in process, as litellm's ``local/...`` provider.

:func:`register` installs a ``litellm.CustomLLM`` handler for the ``local`` provider, so
``litellm.completion(model="local/smollm2", ...)`` returns a normal ModelResponse with llama.cpp's
real token counts and a price of zero, and everything downstream (logging, budgets, replay)
treats it like any other model. Model names, files and loading (``local/smollm2``,
``local/PATH.gguf``, :func:`~agentcli.models.local.loader.configure`) live in :mod:`agentcli.models.local.loader`;
the JSON schema -> grammar conversion in :mod:`agentcli.models.local.grammar`; the translation of
messages, ``response_format`` and tools in :mod:`agentcli.models.local.chat`.

Neither litellm nor llama_cpp is imported at module import: ``agent --help`` must stay fast. The
litellm module is handed to :func:`register` by :mod:`agentcli.models.litellm`, and its response types
are taken from it: this module never imports litellm itself.

Structured output: ``response_format`` (``json_schema`` or ``json_object`` with an optional
``schema``) constrains decoding with a GBNF grammar converted from the JSON schema. A 135M model
loops inside strings until ``max_tokens`` under a plain schema, so the schema is first passed
through :func:`~agentcli.models.local.grammar.bound_schema` and decoding uses a repeat penalty. Tool
calls are emulated the same way: the output is constrained to
``{"name": <const>, "arguments": <parameters>}`` per tool (plus ``{"content": ...}`` when
``tool_choice`` is ``auto``) and returned as ``tool_calls``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from agentcli.errors import AgentError, LLMFatalError
from agentcli.models.local.chat import (
    ChatResult,
    chat_messages,
    parse_tool_reply,
    schema_of_response_format,
    tool_call_plan,
)
from agentcli.models.local.grammar import SchemaNotSupported, gbnf_for
from agentcli.models.local.loader import BUNDLED, PROVIDER, LoadedModel, get_loaded, settings

DEFAULT_MAX_TOKENS = 1024
# Measured on SmolLM2-135M: 1.15 plus bounded strings took schema-valid output from 1/4 to 5/5.
DEFAULT_REPEAT_PENALTY = 1.15


# ------------------------------------------------------------------ generation


def _int_param(params: dict[str, Any], *names: str, default: int) -> int:
    for name in names:
        value = params.get(name)
        if value is not None:
            return int(value)
    return default


def _float_param(params: dict[str, Any], name: str, default: float) -> float:
    value = params.get(name)
    return default if value is None else float(value)


def _run(model: str, messages: list[Any], optional_params: dict[str, Any] | None) -> ChatResult:
    """One blocking chat completion on a local model."""
    params = dict(optional_params or {})
    if params.get("n") not in (None, 1):
        raise LLMFatalError("local models return one choice per call (n=1)")
    entry = get_loaded(model)
    llama = entry.llama

    tools = params.get("tools") or params.get("functions")
    if params.get("functions") and not params.get("tools"):
        tools = [{"type": "function", "function": f} for f in params["functions"]]
    tool_plan = tool_call_plan(tools, params.get("tool_choice")) if tools else None
    if tool_plan is not None:
        schema: dict[str, Any] | None = tool_plan[0]
        extra_system: str | None = tool_plan[1]
    else:
        schema = schema_of_response_format(params.get("response_format"))
        extra_system = None

    grammar = None
    if schema is not None:
        from llama_cpp import LlamaGrammar

        try:
            gbnf = gbnf_for(schema, llama._model.vocab)
        except SchemaNotSupported as e:
            raise LLMFatalError(f"local model cannot follow this JSON schema: {e}") from None
        grammar = LlamaGrammar.from_string(gbnf, verbose=False)

    stop = params.get("stop")
    chat = chat_messages(messages, extra_system)
    sampling: dict[str, Any] = {
        "temperature": _float_param(params, "temperature", 0.0),
        "seed": _int_param(params, "seed", default=0),
        "max_tokens": _int_param(params, "max_tokens", "max_completion_tokens", default=DEFAULT_MAX_TOKENS),
        "top_p": _float_param(params, "top_p", 0.95),
        "top_k": _int_param(params, "top_k", default=40),
        "repeat_penalty": _float_param(params, "repeat_penalty", DEFAULT_REPEAT_PENALTY),
        "frequency_penalty": _float_param(params, "frequency_penalty", 0.0),
        "presence_penalty": _float_param(params, "presence_penalty", 0.0),
        "stop": [stop] if isinstance(stop, str) else list(stop or []),
        "grammar": grammar,
    }
    with entry.lock:
        try:
            if entry.formatter is not None:
                out = _generate_from_template(entry, chat, sampling)
                text = out["choices"][0]["text"]
            else:
                llama.reset()
                out = llama.create_chat_completion(messages=chat, **sampling)
                text = out["choices"][0]["message"].get("content")
        except ValueError as e:
            if "exceed context window" in str(e):
                raise _ContextTooLong(f"{e}; the local model's context is {entry.n_ctx} tokens") from None
            raise LLMFatalError(f"local model {entry.path.name}: {' '.join(str(e).split())}") from None
        except Exception as e:
            # A chat template that rejects the messages (jinja2 raise_exception), a llama.cpp
            # failure: none of it gets better by retrying, and litellm would report anything
            # not its own as a (transient) APIConnectionError.
            detail = " ".join(str(e).split())[:300]
            raise LLMFatalError(f"local model {entry.path.name}: {type(e).__name__}: {detail}") from None

    usage = out.get("usage") or {}
    result = ChatResult(
        text=text or "",
        finish_reason=out["choices"][0].get("finish_reason") or "stop",
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
    )
    if tool_plan is not None:
        parse_tool_reply(result)
    return result


def _generate_from_template(entry: LoadedModel, chat: list[dict[str, str]], sampling: dict[str, Any]) -> Any:
    """Format and tokenize the prompt ourselves, reuse what we may of the KV cache, generate.

    Reuse must not change the answer. llama.cpp computes a token's KV entries with different
    kernels depending on the size of the batch it arrives in (a lone token takes another
    path than a batch), so re-evaluating a suffix in batches shaped differently from a fresh
    evaluation can flip a greedy choice: measured, the same request after itself diverged
    after ~90 characters. A fresh evaluation goes in batches of ``n_batch`` from position 0,
    so only a prefix that is a whole number of batches is kept; the rest is evaluated in the
    very batches a fresh run would use.
    """
    llama = entry.llama
    formatted = entry.formatter(messages=chat)
    tokens = llama.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True)
    keep = 0
    if settings.reuse_prefix and llama.n_tokens > 0:
        cached = llama.input_ids[: llama.n_tokens]
        common = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            common += 1
        keep = (min(common, len(tokens) - 1) // llama.n_batch) * llama.n_batch
    if keep:
        # create_completion keeps exactly the cached tokens that match the prompt: show it these.
        llama.n_tokens = keep
    else:
        llama.reset()
    stop = list(sampling["stop"])
    stop.extend(s for s in (formatted.stop if isinstance(formatted.stop, list) else [formatted.stop]) if s)
    return llama.create_completion(tokens, stopping_criteria=formatted.stopping_criteria, **{**sampling, "stop": stop})


class _ContextTooLong(Exception):
    pass


# ------------------------------------------------------------------ litellm provider

_registered: dict[str, Any] = {}
_priced: set[str] = set()
_register_lock = threading.Lock()
_price_lock = threading.Lock()


def _register_price(litellm: Any, key: str) -> None:
    with _price_lock:
        if key not in _priced:
            _register_price_locked(litellm, key)


def _register_price_locked(litellm: Any, key: str) -> None:
    n_ctx = settings.n_ctx
    litellm.register_model(
        {
            key: {
                "litellm_provider": PROVIDER,
                "mode": "chat",
                "input_cost_per_token": 0.0,
                "output_cost_per_token": 0.0,
                # Explicit zeros: without them litellm logs a warning on every registration.
                "cache_creation_input_token_cost": 0.0,
                "cache_read_input_token_cost": 0.0,
                "max_tokens": n_ctx,
                "max_input_tokens": n_ctx,
                "max_output_tokens": n_ctx,
                "supports_response_schema": True,
                "supports_function_calling": True,
            }
        }
    )
    _priced.add(key)


def _error_classes(litellm: Any) -> tuple[type[Exception], type[Exception]]:
    """Errors that are both our LLMFatalError and litellm's BadRequestError.

    litellm wraps any exception a custom handler raises that is not one of its own types into
    ``APIConnectionError`` (which reads as transient, and whose message carries a traceback and
    a bug-report URL); its own types pass through unchanged. Being both keeps the one-line
    message, the fatal classification, and litellm's "do not retry a 400" semantics.
    """

    def fatal_as(base: Any) -> Any:
        class Error(LLMFatalError, base):
            def __init__(self, message: str, model: str) -> None:
                base.__init__(self, message=message, model=model, llm_provider=PROVIDER)
                self.message = message
                self.retry_after = None
                self.status = 400

            def __str__(self) -> str:
                return self.message

        return Error

    LocalModelError = fatal_as(litellm.BadRequestError)
    LocalContextWindowError = fatal_as(litellm.ContextWindowExceededError)
    return LocalModelError, LocalContextWindowError


class _Handler:
    """The methods of the ``CustomLLM`` subclass built in :func:`register`."""

    _litellm: Any
    _fatal: Any
    _context: Any

    def _call(self, model: str, messages: list[Any], optional_params: dict[str, Any] | None) -> ChatResult:
        full = f"{PROVIDER}/{model}"
        try:
            _register_price(self._litellm, full)
            return _run(model, messages, optional_params)
        except _ContextTooLong as e:
            raise self._context(f"{full}: {e}", full) from None
        except AgentError as e:
            raise self._fatal(e.one_line(), full) from None

    def _fill(self, model: str, result: ChatResult, model_response: Any) -> Any:
        # The response types come from the litellm module agentcli.models.litellm handed over: this module
        # imports nothing of litellm (llm.py is its only importer).
        types = self._litellm.types.utils
        ChatCompletionMessageToolCall, Choices, Function, Message, Usage = (
            types.ChatCompletionMessageToolCall, types.Choices, types.Function, types.Message, types.Usage)
        tool_calls = None
        if result.tool_name is not None:
            tool_calls = [
                ChatCompletionMessageToolCall(
                    id=result.tool_call_id,
                    type="function",
                    function=Function(name=result.tool_name, arguments=result.tool_arguments or "{}"),
                )
            ]
        message = Message(content=result.text if tool_calls is None else None, role="assistant", tool_calls=tool_calls)
        model_response.choices = [Choices(index=0, finish_reason=result.finish_reason, message=message)]
        model_response.model = f"{PROVIDER}/{model}"
        model_response.created = int(time.time())
        model_response.usage = Usage(
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            total_tokens=result.prompt_tokens + result.completion_tokens,
        )
        return model_response

    def _chunk(self, result: ChatResult) -> dict[str, Any]:
        tool_use = None
        if result.tool_name is not None:
            tool_use = {
                "id": result.tool_call_id,
                "type": "function",
                "function": {"name": result.tool_name, "arguments": result.tool_arguments or "{}"},
                "index": 0,
            }
        return {
            "text": result.text,
            "tool_use": tool_use,
            "is_finished": True,
            "finish_reason": result.finish_reason,
            "index": 0,
            "usage": {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            },
        }

    def completion(
        self,
        model: str,
        messages: list[Any],
        model_response: Any = None,
        optional_params: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        if model_response is None:
            model_response = self._litellm.ModelResponse()
        return self._fill(model, self._call(model, messages, optional_params), model_response)

    async def acompletion(
        self,
        model: str,
        messages: list[Any],
        model_response: Any = None,
        optional_params: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        import asyncio  # lazily: ~40 ms of import the synchronous paths never need

        if model_response is None:
            model_response = self._litellm.ModelResponse()
        result = await asyncio.to_thread(self._call, model, messages, optional_params)
        return self._fill(model, result, model_response)

    # Streaming yields the whole answer as one chunk: generation holds the model lock, and a
    # consumer that stops iterating early must not leave the model locked.
    def streaming(
        self, model: str, messages: list[Any], optional_params: dict[str, Any] | None = None, **_: Any
    ) -> Iterator[dict[str, Any]]:
        yield self._chunk(self._call(model, messages, optional_params))

    async def astreaming(
        self, model: str, messages: list[Any], optional_params: dict[str, Any] | None = None, **_: Any
    ) -> AsyncIterator[dict[str, Any]]:
        import asyncio

        yield self._chunk(await asyncio.to_thread(self._call, model, messages, optional_params))


def register(litellm_module: Any) -> None:
    """Install the ``local`` provider into litellm and price the bundled models at zero.

    Idempotent: a second call (for the same litellm module) changes nothing. Other custom
    providers already in ``litellm.custom_provider_map`` are kept. ``local/PATH.gguf`` models
    are priced at zero on first use.
    """
    with _register_lock:
        handler = _registered.get("handler")
        if handler is None or _registered.get("module") is not litellm_module:
            fatal, context = _error_classes(litellm_module)
            cls = type(
                "LocalLLMHandler",
                (_Handler, litellm_module.CustomLLM),
                {"_litellm": litellm_module, "_fatal": fatal, "_context": context},
            )
            handler = cls()
            _registered.update(module=litellm_module, handler=handler)
            _priced.clear()
        providers = [p for p in litellm_module.custom_provider_map if p.get("provider") != PROVIDER]
        litellm_module.custom_provider_map = [*providers, {"provider": PROVIDER, "custom_handler": handler}]
        # completion() does this on each call; cost_per_token before any call needs it too.
        setup = getattr(getattr(litellm_module, "utils", None), "custom_llm_setup", None)
        if callable(setup):
            setup()
        for name in BUNDLED:
            _register_price(litellm_module, f"{PROVIDER}/{name}")




__all__ = ["register"]
