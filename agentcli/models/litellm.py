"""The hosted providers' backend, and the only module that imports litellm.

:class:`LiteLLMBackend` serves every provider litellm knows (its price and profile from litellm's
model info); :class:`agentcli.models.routing.RoutingBackend` sends ``local/...`` and ``test/...``
names elsewhere, so an offline run never imports litellm. Also here: :func:`classify_exception`
(any provider exception onto our transient/fatal errors) and :func:`embed_texts`.

A request whose ``on_text`` is set streams (litellm's chunks, its text told as it comes) and is put
back together with litellm's ``stream_chunk_builder`` into the response a whole request returns, usage
included (``stream_options.include_usage``).

litellm takes ~3 s to import, so it is imported lazily, on the first real call,
with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` set first (otherwise it fetches its
price map over the network at import).
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from typing import Any

from agentcli.errors import (
    LLMError,
    LLMFatalError,
    LLMTransientError,
    ModelSetupError,
)
from agentcli.models.modelinfo import cache_usage, check_reachable, decode_args, price_of, profile_of
from agentcli.models.names import check_allowed

# The key sent to an ``api_base`` server when none is configured (an OpenAI-compatible server that
# needs no key ignores it; the client refuses to send nothing): the same on both transports.
from agentcli.models.openai_http import PLACEHOLDER_KEY
from agentcli.models.profile import ModelProfile
from agentcli.models.stream import STREAM_OPTIONS, cut_off
from agentcli.models.types import ModelRequest, ModelResponse, Price, ToolCall

# ------------------------------------------------------------------ litellm backend

_litellm_mod: Any = None


def litellm_module() -> Any:
    """Import litellm once, configured for offline, quiet use."""
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




def endpoint(api_base: str | None) -> str:
    """``host:port`` of an endpoint URL (``the provider's endpoint`` without one)."""
    if not api_base:
        return "the provider's endpoint"
    url = urllib.parse.urlparse(api_base if "//" in api_base else f"http://{api_base}")
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"{url.hostname or 'localhost'}:{port}"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 8:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _refused(exc: BaseException) -> bool:
    return any(isinstance(e, ConnectionRefusedError) or "connection refused" in str(e).lower()
               or "errno 111" in str(e).lower() for e in _chain(exc))


def key_variables(model: str) -> list[str]:
    """The environment variables litellm reads ``model``'s key from (``OPENAI_API_KEY``...), set or not."""
    try:
        env = litellm_module().validate_environment(model=model, api_key=None)
    except Exception:
        return []
    missing = list(env.get("missing_keys") or [])
    if missing:
        return missing
    try:
        provider = litellm_module().get_llm_provider(model)[1]
    except Exception:
        return []
    return [f"{provider.upper()}_API_KEY"] if provider else []


def missing_keys(model: str) -> list[str]:
    """The variables ``model`` needs that the environment does not set (empty: none missing)."""
    try:
        env = litellm_module().validate_environment(model=model)
    except Exception:
        return []
    return list(env.get("missing_keys") or [])


def similar_models(model: str, n: int = 3) -> list[str]:
    """The model names litellm knows that resemble ``model`` (difflib), best first."""
    import difflib

    litellm = litellm_module()
    names = sorted({*getattr(litellm, "model_list", []), *getattr(litellm, "model_cost", {}).keys()} - {"sample_spec"})
    bare = model.split("/", 1)[1] if "/" in model else model
    found = difflib.get_close_matches(model, names, n=n, cutoff=0.6)
    found += [m for m in difflib.get_close_matches(bare, names, n=n, cutoff=0.6) if m not in found]
    return found[:n]


def _resembles(model: str) -> str:
    close = similar_models(model)
    return f"; litellm knows {', '.join(close)}" if close else "; litellm knows no model of a similar name"


def unknown_model(model: str) -> ModelSetupError:
    """A model name litellm knows nothing about (no provider, no price, no limits)."""
    return ModelSetupError(f"unknown model '{model}'{_resembles(model)} (a model served by an "
                           "OpenAI-compatible server needs --api-base; one litellm does not list can be "
                           f'declared with a [models."{model}"] table)')


def _setup_error(exc: Exception, model: str, api_base: str | None, status: Any, name: str,
                 text: str) -> ModelSetupError | None:
    """The set-up problem ``exc`` reveals, named (None: not a set-up problem)."""
    low = text.lower()
    where = endpoint(api_base)
    if _refused(exc):
        return ModelSetupError(f"{model}: cannot connect to {where} (connection refused): is the server "
                               "running, and is --api-base right?", status=None)
    if ("api_key" in low and ("must be set" in low or "missing" in low)) or "missing credentials" in low:
        keys = key_variables(model) or ["the provider's API key variable"]
        return ModelSetupError(f"{model}: no API key: set {' or '.join(keys)} in the environment", status=status)
    if status in (401, 403) or name in ("AuthenticationError", "PermissionDeniedError"):
        keys = key_variables(model) or ["the provider's API key variable"]
        return ModelSetupError(f"{model}: the server at {where} refused the credentials (HTTP {status}): "
                               f"{text[:160]}; set {' or '.join(keys)} to the key it expects",
                               status=status if isinstance(status, int) else None)
    if status == 404 or name == "NotFoundError":
        hint = "" if api_base else _resembles(model)
        return ModelSetupError(f"{model}: not found at {where} (HTTP 404){hint}: {text[:160]}", status=404)
    if "llm provider not provided" in low or "provider not provided" in low:
        return unknown_model(model)
    return None


#: What the HTTP clients under litellm (httpx, aiohttp, http.client) raise for a body that ends short.
_CUT_NAMES = ("RemoteProtocolError", "ClientPayloadError", "ContentLengthError", "TransferEncodingError",
              "IncompleteRead")


def _cut_mid_way(exc: BaseException) -> bool:
    """Whether ``exc`` is an answer whose body ended before it was whole (the connection closed)."""
    return any(type(e).__name__ in _CUT_NAMES for e in _chain(exc))


def classify_exception(exc: Exception, model: str, api_base: str | None = None) -> LLMError:
    """Map any provider exception onto our transient/fatal errors; a set-up problem (missing key,
    refused connection, unknown model, authentication, 404) onto :class:`ModelSetupError`."""
    if isinstance(exc, LLMError):
        return exc
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    text = _first_line(str(exc))
    if text.startswith(f"{name}: "):
        text = text[len(name) + 2 :]
    setup = _setup_error(exc, model, api_base, status, name, text)
    if setup is not None:
        return setup
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
    """Every hosted provider's model, through litellm."""

    def __init__(self) -> None:
        #: Per model: whether its key is missing from the environment (an ``api_base`` call then
        #: sends :data:`PLACEHOLDER_KEY`).
        self._keyless: dict[str, bool] = {}

    async def request(self, req: ModelRequest) -> ModelResponse:
        check_allowed(req.model)
        litellm = litellm_module()
        kwargs: dict[str, Any] = {
            "model": req.model,
            "messages": req.messages,
            **req.generation_options(),
            "timeout": req.timeout,
            # Retries are ours (Retry-After, logging); neither litellm nor the SDK under it may retry.
            "num_retries": 0,
            "max_retries": 0,
        }
        if req.api_base:
            kwargs["api_base"] = req.api_base
            if self._needs_placeholder(req.model):
                kwargs["api_key"] = PLACEHOLDER_KEY
        try:
            if req.on_text is not None:
                resp = await self._streamed(litellm, kwargs, req)
            else:
                resp = await litellm.acompletion(**kwargs)
        except LLMError:
            raise
        except Exception as exc:
            if _cut_mid_way(exc):
                raise cut_off(req.model, endpoint(req.api_base)) from exc
            raise classify_exception(exc, req.model, req.api_base) from exc
        try:
            choice = resp.choices[0]
            msg = choice.message
            calls = [
                ToolCall(id=tc.id or "", name=tc.function.name, arguments=decode_args(tc.function.arguments))
                for tc in (getattr(msg, "tool_calls", None) or [])
            ]
            usage = getattr(resp, "usage", None)
            cached, written = cache_usage(usage)
            return ModelResponse(
                text=msg.content or "",
                tool_calls=calls,
                input_tokens=getattr(usage, "prompt_tokens", None),
                output_tokens=getattr(usage, "completion_tokens", None),
                cached_input_tokens=cached,
                cache_write_tokens=written,
                model=getattr(resp, "model", None),
                finish_reason=getattr(choice, "finish_reason", None),
            )
        except (AttributeError, IndexError, TypeError) as exc:
            raise LLMTransientError(f"{req.model}: malformed response: {exc}") from exc

    async def _streamed(self, litellm: Any, kwargs: dict[str, Any], req: ModelRequest) -> Any:
        """The answer streamed (its text told to ``req.on_text`` as it comes), put back together by
        litellm into the response a whole request returns. Cut off mid-way: :func:`cut_off`."""
        stream = await litellm.acompletion(**kwargs, **STREAM_OPTIONS)
        chunks: list[Any] = []
        finished = False
        try:
            async for chunk in stream:
                chunks.append(chunk)
                for choice in getattr(chunk, "choices", None) or []:
                    piece = getattr(getattr(choice, "delta", None), "content", None)
                    if isinstance(piece, str) and piece and req.on_text is not None:
                        req.on_text(piece)
                    finished = finished or bool(getattr(choice, "finish_reason", None))
        except Exception as exc:
            setup = classify_exception(exc, req.model, req.api_base)
            if isinstance(setup, ModelSetupError):
                raise setup from exc
            raise cut_off(req.model, endpoint(req.api_base)) from exc
        if hasattr(stream, "received_finish_reason"):
            # litellm ends every stream with a finish_reason of its own ("stop" when the provider sent
            # none, as when the connection closed mid-way): whether the provider finished is here.
            finished = bool(stream.received_finish_reason or getattr(stream, "intermittent_finish_reason", None))
        if not finished:
            raise cut_off(req.model, endpoint(req.api_base))
        whole = litellm.stream_chunk_builder(chunks, messages=req.messages)
        # The model the server named (the chunks carry the one asked for): a whole answer records it.
        named = [m for c in chunks if (m := (getattr(c, "_hidden_params", None) or {}).get("provider_response_model"))]
        if named:
            whole.model = named[-1]
        return whole

    def _needs_placeholder(self, model: str) -> bool:
        if model not in self._keyless:
            self._keyless[model] = bool(missing_keys(model))
        return self._keyless[model]

    def check(self, model: str, *, api_base: str | None, declared: bool) -> None:
        """Raise :class:`ModelSetupError` when ``model`` cannot be called as configured, found without
        a request: the server at ``api_base`` refuses connections; without one, litellm knows
        nothing of the model (unless ``declared`` by a ``[models."NAME"]`` table) or the
        provider's key is not set."""
        if api_base:
            check_reachable(model, api_base)
            return
        if not declared and not self._info(model):
            # No provider, price or limits: a typo far more often than a model too new to be listed.
            raise unknown_model(model)
        missing = missing_keys(model)
        if missing:
            raise ModelSetupError(f"{model}: no API key: set {' or '.join(missing)} in the environment "
                                  "(a server that needs no key: --api-base URL)")

    def _info(self, model: str) -> dict[str, Any]:
        """litellm's model info; empty for a model it does not know (it answers some unknown names
        with a made-up entry of zeros and no provider)."""
        try:
            info = dict(litellm_module().get_model_info(model))
        except Exception:
            return {}
        return info if info.get("litellm_provider") else {}

    def price(self, model: str) -> Price | None:
        return price_of(self._info(model))

    def profile(self, model: str) -> ModelProfile:
        """From litellm's model info (read once): JSON-schema support, token limits, whether a price is known."""
        try:
            schema = bool(litellm_module().supports_response_schema(model=model))
        except Exception:
            schema = False
        return profile_of(self._info(model), json_schema=schema)


# ------------------------------------------------------------------ embeddings


def embed_texts(model: str, texts: list[str], api_base: str | None = None, *,
                timeout: float = 120.0) -> list[list[float]]:
    """Embed ``texts`` with a litellm embedding model (``openai/text-embedding-3-small``, ...).

    One request for the whole batch (callers batch); vectors come back in input order.
    Raises :class:`ModelRequestsBlocked` under tests without opt-in, and
    LLMTransientError / LLMFatalError (classified like completions) on failure.
    """
    check_allowed(model, "embedding model")
    if not texts:
        return []
    litellm = litellm_module()
    kwargs: dict[str, Any] = {"model": model, "input": texts, "timeout": timeout, "num_retries": 0}
    if api_base:
        kwargs["api_base"] = api_base
        if missing_keys(model):
            kwargs["api_key"] = PLACEHOLDER_KEY
    try:
        resp = litellm.embedding(**kwargs)
    except Exception as exc:
        raise classify_exception(exc, model, api_base) from exc
    try:
        items = sorted(resp.data, key=lambda d: d["index"] if isinstance(d, dict) else d.index)
        vectors = [list(map(float, d["embedding"] if isinstance(d, dict) else d.embedding)) for d in items]
    except (AttributeError, KeyError, TypeError) as exc:
        raise LLMTransientError(f"{model}: malformed embedding response: {exc}") from exc
    if len(vectors) != len(texts):
        raise LLMTransientError(f"{model}: {len(vectors)} embeddings for {len(texts)} texts")
    return vectors
