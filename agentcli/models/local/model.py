"""The embedded, offline default model: llama.cpp in process, as the ``local/...`` backend.

:class:`LocalBackend` is a :class:`~agentcli.models.types.ModelBackend` that runs each request on
llama.cpp in a worker thread and returns llama.cpp's real token counts and a price of zero, so
everything downstream (logging, budgets, replay) treats it like any other model; no litellm is
imported on this path (an offline run never pays litellm's ~2 s import). Model names, files and
loading (``local/smollm2``,
``local/PATH.gguf``, :func:`~agentcli.models.local.loader.configure`) live in :mod:`agentcli.models.local.loader`;
the JSON schema -> grammar conversion in :mod:`agentcli.models.local.grammar`; the translation of
messages, ``response_format`` and tools in :mod:`agentcli.models.local.chat`.

llama_cpp is imported on the first load, not at module import: ``agent --help`` must stay fast.

Structured output: ``response_format`` (``json_schema`` or ``json_object`` with an optional
``schema``) constrains decoding with a GBNF grammar converted from the JSON schema. A 135M model
loops inside strings until ``max_tokens`` under a plain schema, so the schema is first passed
through :func:`~agentcli.models.local.grammar.bound_schema` and decoding uses a repeat penalty. Tool
calls are emulated the same way: the output is constrained to
``{"name": <const>, "arguments": <parameters>}`` per tool (plus ``{"content": ...}`` when
``tool_choice`` is ``auto``) and returned as ``tool_calls``.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any

from agentcli.errors import LLMFatalError, ModelSetupError
from agentcli.models.local.chat import (
    ChatResult,
    chat_messages,
    parse_tool_reply,
    schema_of_response_format,
    tool_call_plan,
)
from agentcli.models.local.grammar import SchemaNotSupported, gbnf_for
from agentcli.models.local.loader import LoadedModel, get_loaded, resolve_model_path, settings
from agentcli.models.local.profile import local_profile
from agentcli.models.names import check_allowed
from agentcli.models.profile import ModelProfile
from agentcli.models.types import ModelRequest, ModelResponse, Price, ToolCall

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


def _run(model: str, messages: list[Any], optional_params: dict[str, Any] | None,
         on_text: Callable[[str], None] | None = None, abandoned: threading.Event | None = None) -> ChatResult:
    """One blocking chat completion on a local model (``on_text``: told the text as it is generated;
    ``abandoned``: set when nobody waits for the answer any more, which ends the generation at its
    next token)."""
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
                out = _generate_from_template(entry, chat, sampling, on_text, abandoned)
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
            # failure: none of it gets better by retrying.
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


def _generate_from_template(entry: LoadedModel, chat: list[dict[str, str]], sampling: dict[str, Any],
                            on_text: Callable[[str], None] | None = None,
                            abandoned: threading.Event | None = None) -> Any:
    """Format and tokenize the prompt ourselves, reuse what we may of the KV cache, generate.

    Reuse must not change the answer. llama.cpp computes a token's KV entries with different
    kernels depending on the size of the batch it arrives in (a lone token takes another
    path than a batch), so re-evaluating a suffix in batches shaped differently from a fresh
    evaluation can flip a greedy choice: measured, the same request after itself diverged
    after ~90 characters. A fresh evaluation goes in batches of ``n_batch`` from position 0,
    so only a prefix that is a whole number of batches is kept; the rest is evaluated in the
    very batches a fresh run would use.

    ``on_text`` hears the tokens as they are generated, through a stopping criterion that never
    stops: generation, and so the answer and its token counts, are exactly as without it. Another
    criterion stops once ``abandoned`` is set (the run was interrupted: the model lock is free for
    the next request at once, not after ``max_tokens`` more tokens nobody reads).
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
    criteria = formatted.stopping_criteria
    extra: list[Any] = []
    if on_text is not None:
        extra.append(_Teller(llama, len(tokens), on_text))
    if abandoned is not None:
        extra.append(lambda input_ids, logits: abandoned.is_set())
    if extra:
        from llama_cpp import StoppingCriteriaList

        criteria = StoppingCriteriaList([*(criteria or []), *extra])
    return llama.create_completion(tokens, stopping_criteria=criteria, **{**sampling, "stop": stop})


class _Teller:
    """A stopping criterion that never stops: it tells the tokens generated so far as text.

    llama.cpp asks it before each new token with every token evaluated so far (the prompt's and
    the answer's up to the last one); bytes of a character split across tokens wait for the rest."""

    def __init__(self, llama: Any, start: int, on_text: Callable[[str], None]) -> None:
        self.llama = llama
        self.seen = start
        self.on_text = on_text
        self.decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        n = len(input_ids)
        if n > self.seen:
            new = [int(t) for t in input_ids[self.seen:n]]
            prev = [int(t) for t in input_ids[max(0, self.seen - 8):self.seen]]
            self.seen = n
            with contextlib.suppress(Exception):  # a display's text never fails a generation
                piece = self.decode(self.llama.detokenize(new, prev_tokens=prev))
                if piece:
                    self.on_text(piece)
        return False


class _ContextTooLong(Exception):
    pass


# ------------------------------------------------------------------ the backend

class LocalBackend:
    """``local/...`` models, served in-process by llama.cpp (in a worker thread), without litellm."""

    async def request(self, req: ModelRequest) -> ModelResponse:
        import asyncio  # lazily: ~40 ms of import the synchronous paths never need

        check_allowed(req.model)
        abandoned = threading.Event()
        try:
            result = await asyncio.to_thread(_run, req.model, req.messages, req.generation_options(), req.on_text,
                                             abandoned)
        except _ContextTooLong as e:
            raise LLMFatalError(f"{req.model}: {e}") from None
        except asyncio.CancelledError:
            abandoned.set()  # the thread cannot be cancelled; its generation can be ended
            raise
        calls = []
        if result.tool_name is not None:
            try:
                args = json.loads(result.tool_arguments or "{}")
            except ValueError:
                args = result.tool_arguments or ""
            calls.append(ToolCall(id=result.tool_call_id, name=result.tool_name,
                                  arguments=args if isinstance(args, dict) else str(args)))
        return ModelResponse(
            text=result.text if not calls else "",
            tool_calls=calls,
            input_tokens=result.prompt_tokens,
            output_tokens=result.completion_tokens,
            model=req.model,
            finish_reason=result.finish_reason,
        )

    def price(self, model: str) -> Price | None:
        return Price(0.0, 0.0)

    def profile(self, model: str) -> ModelProfile:
        return local_profile(model)

    def check(self, model: str, *, api_base: str | None, declared: bool) -> None:
        """Raise :class:`~agentcli.errors.ModelSetupError` for a local model that names no bundled
        model or no GGUF file (found before a run exists)."""
        try:
            resolve_model_path(model)
        except LLMFatalError as e:
            raise ModelSetupError(e.message) from None


__all__ = ["LocalBackend", "local_profile"]
