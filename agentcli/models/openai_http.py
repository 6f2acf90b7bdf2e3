"""OpenAI-compatible servers (Ollama, vLLM, LM Studio, llama.cpp's server...) over plain HTTP.

A model named ``openai/NAME`` with an ``api_base`` is served by a server that speaks OpenAI's
chat-completions protocol and nothing else: there is no provider quirk for litellm to translate.
:class:`OpenAICompatBackend` sends that one POST with the standard library's ``http.client`` (in a
worker thread) and never imports litellm, whose import costs ~3 s CPU and ~170 MiB (httpx, which
litellm and the OpenAI SDK use, would add ~0.15 s CPU and ~10 MiB for nothing more): a hosted run's
fixed cost is then close to an offline one's. Prices, limits and whether the model takes a JSON schema
come from litellm's bundled model map, read as data (:func:`model_info`), so they are the same as
through litellm. ``llm.transport = "litellm"`` sends these requests through litellm too; every
other provider, and ``openai/`` without an ``api_base`` (OpenAI itself, whose models need litellm's
parameter translation), always goes through :mod:`agentcli.models.litellm`.

Errors are classified as :func:`agentcli.models.litellm.classify_exception` classifies litellm's:
429, 5xx, timeouts and malformed bodies are transient (retried, ``Retry-After`` honoured); a
refused connection, an authentication failure, an unknown model or any other 4xx is fatal and
names its cause. An answer cut off mid-way is one error, streamed or not (:func:`agentcli.models.stream.cut_off`).

A request whose ``on_text`` is set (a terminal shows the answer as it comes) streams
(``stream: true`` with the usage at the end) and is put back together into the body a whole answer
has (:mod:`agentcli.models.stream`): what is recorded is the same.
"""

from __future__ import annotations

import asyncio
import http.client
import importlib.util
import json
import os
import socket
import ssl
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agentcli.errors import LLMError, LLMFatalError, LLMTransientError, ModelSetupError
from agentcli.models.modelinfo import cache_usage, check_reachable, decode_args, price_of, profile_of
from agentcli.models.names import check_allowed
from agentcli.models.profile import ModelProfile
from agentcli.models.stream import STREAM_OPTIONS, AnswerCut, cut_off, read_sse
from agentcli.models.types import ModelRequest, ModelResponse, Price, ToolCall

PREFIX = "openai/"
_TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}
#: What a server that needs no key is sent when no key is set (OpenAI's clients require one).
PLACEHOLDER_KEY = "sk-no-key-required"


@lru_cache(maxsize=1)
def _model_map() -> dict[str, Any]:
    """litellm's bundled price and limits map, read without importing litellm ({} without it)."""
    spec = importlib.util.find_spec("litellm")
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(loc) / "model_prices_and_context_window_backup.json"
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
            return data if isinstance(data, dict) else {}
    return {}


def model_info(model: str) -> dict[str, Any]:
    """The map's entry of an ``openai/NAME`` model (by ``NAME`` or the whole name), or {}."""
    table = _model_map()
    name = model[len(PREFIX):] if model.startswith(PREFIX) else model
    for key in (name, model):
        entry = table.get(key)
        if isinstance(entry, dict):
            return entry
    return {}


def _endpoint(api_base: str) -> str:
    base = api_base.rstrip("/")
    return base if base.endswith("/chat/completions") else f"{base}/chat/completions"


def _where(api_base: str) -> str:
    parts = urlsplit(api_base)
    return parts.netloc or api_base


def _server_message(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300]
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return " ".join(str(err.get("message", "")).split())[:300]
    if isinstance(err, str):
        return err[:300]
    return " ".join(text.split())[:300]


def _retry_after(raw: str | None) -> float | None:
    try:
        return max(0.0, float(raw)) if raw else None
    except ValueError:
        return None


class _Unreachable(Exception):
    """The server could not be reached (refused, unknown host, TLS): the cause, for one line."""


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float,
          on_text: Callable[[str], None] | None = None) -> tuple[int, str | None, bytes | dict[str, Any]]:
    """One HTTP POST: status, its Retry-After header and the body (raises TimeoutError, _Unreachable,
    AnswerCut). With ``on_text`` the request streams: a successful answer's body is the streamed
    one put back together (:func:`agentcli.models.stream.read_sse`), its text told as it arrives."""
    parts = urlsplit(url)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    kwargs: dict[str, Any] = {"timeout": timeout}
    if parts.scheme == "https":
        kwargs["context"] = ssl.create_default_context()
    conn = conn_cls(parts.hostname or "", parts.port, **kwargs)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        try:
            conn.request("POST", path, body=body, headers=headers)
        except ConnectionRefusedError as exc:
            raise _Unreachable("connection refused") from exc
        except socket.gaierror as exc:
            raise _Unreachable("unknown host") from exc
        except ssl.SSLError as exc:
            raise _Unreachable(f"TLS: {exc.reason or exc}") from exc
        resp = conn.getresponse()
        if on_text is not None and resp.status < 400 and "event-stream" in (resp.getheader("content-type") or ""):
            return resp.status, None, read_sse(resp, on_text)
        # Not a stream (an error, or a server that answers whole even when asked to stream): as ever.
        try:
            return resp.status, resp.getheader("retry-after"), resp.read()
        except http.client.IncompleteRead as exc:
            raise AnswerCut(str(exc)) from exc
    finally:
        conn.close()


def http_error(status: int, message: str, model: str, api_base: str, retry_after: float | None = None) -> LLMError:
    """An HTTP error answer of the server as our error, with its cause named."""
    where = _where(api_base)
    if status in _TRANSIENT_STATUS:
        return LLMTransientError(f"{model}: HTTP {status} from {where}: {message}", retry_after=retry_after,
                                 status=status)
    # A set-up error (exit 2, never retried): the key, the name or api_base is what to fix.
    if status in (401, 403):
        return ModelSetupError(f"{model}: the server at {where} refused the credentials (HTTP {status}): {message}; "
                             "set OPENAI_API_KEY to the key it expects", status=status)
    if status == 404:
        return ModelSetupError(f"{model}: not found at {where} (HTTP 404): {message}; check the model name "
                             f"({model[len(PREFIX):]}) and that api_base ends in /v1", status=status)
    return LLMFatalError(f"{model}: HTTP {status} from {where}: {message}", status=status)


class OpenAICompatBackend:
    """``openai/NAME`` models on an OpenAI-compatible server (``api_base``), over plain HTTP."""

    async def request(self, req: ModelRequest) -> ModelResponse:
        check_allowed(req.model)
        api_base = req.api_base or ""
        streamed = req.on_text is not None
        body = json.dumps({"model": req.model[len(PREFIX):], "messages": req.messages,
                           **req.generation_options(), **(STREAM_OPTIONS if streamed else {})}).encode()
        key = os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_KEY
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                   "Accept": "text/event-stream" if streamed else "application/json"}
        where = _where(api_base)
        try:
            status, retry_after, raw = await asyncio.to_thread(_post, _endpoint(api_base), body, headers,
                                                               req.timeout, req.on_text)
        except TimeoutError as exc:
            raise LLMTransientError(f"{req.model}: no answer from {where} within {req.timeout:g} s") from exc
        except AnswerCut as exc:
            raise cut_off(req.model, where) from exc
        except ValueError as exc:  # a streamed chunk that is not JSON, or an error event in the stream
            raise LLMTransientError(f"{req.model}: malformed response from {where}: {exc}") from exc
        except _Unreachable as exc:
            raise ModelSetupError(f"{req.model}: cannot connect to {where} ({exc}); is the server running, and is "
                                  "api_base right?") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise LLMTransientError(f"{req.model}: {type(exc).__name__} talking to {where}: {exc}") from exc
        if isinstance(raw, bytes) and status >= 400:
            raise http_error(status, _server_message(raw), req.model, api_base, _retry_after(retry_after))
        try:
            data = raw if isinstance(raw, dict) else json.loads(raw)
            choice = data["choices"][0]
            msg = choice["message"]
            calls = [ToolCall(id=tc.get("id") or "", name=tc["function"]["name"],
                              arguments=decode_args(tc["function"].get("arguments")))
                     for tc in (msg.get("tool_calls") or [])]
            usage = data.get("usage") or {}
            cached, written = cache_usage(usage)
            return ModelResponse(
                text=msg.get("content") or "", tool_calls=calls,
                input_tokens=_tokens(usage.get("prompt_tokens")), output_tokens=_tokens(usage.get("completion_tokens")),
                cached_input_tokens=cached, cache_write_tokens=written,
                model=data.get("model"), finish_reason=choice.get("finish_reason"),
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LLMTransientError(f"{req.model}: malformed response from {_where(api_base)}: "
                                    f"{type(exc).__name__}: {exc}") from exc

    def check(self, model: str, *, api_base: str | None, declared: bool) -> None:
        """Raise :class:`ModelSetupError` when the server at ``api_base`` refuses connections (found
        before a run exists; no key is needed: a placeholder is sent)."""
        if api_base:
            check_reachable(model, api_base)

    def price(self, model: str) -> Price | None:
        return price_of(model_info(model))

    def profile(self, model: str) -> ModelProfile:
        """From litellm's model map, as :meth:`LiteLLMBackend.profile` reads it through litellm."""
        info = model_info(model)
        return profile_of(info, json_schema=bool(info.get("supports_response_schema")))


def _tokens(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


__all__ = ["PLACEHOLDER_KEY", "OpenAICompatBackend", "http_error", "model_info"]
