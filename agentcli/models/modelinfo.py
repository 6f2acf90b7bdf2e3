"""What the two provider backends read the same way, whichever of them sends the request.

:mod:`agentcli.models.litellm` (every provider, through litellm) and
:mod:`agentcli.models.openai_http` (OpenAI-compatible servers over plain HTTP) take a model's price
and profile from the same litellm model info, read the same usage fields of an answer and the same
tool-call arguments, and check a server the same way before a run: here, once. Nothing here imports
litellm.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit

from agentcli.errors import ModelSetupError
from agentcli.models.profile import ModelProfile
from agentcli.models.types import Price

__all__ = ["cache_usage", "check_reachable", "decode_args", "price_of", "profile_of"]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _positive(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and value > 0 else None


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else None


def price_of(info: dict[str, Any]) -> Price | None:
    """A model's price from its litellm model info; None when unknown (an unpriced model often
    reports 0.0: that is unknown, not free). Cache prices where the info has them."""
    pin, pout = _number(info.get("input_cost_per_token")), _number(info.get("output_cost_per_token"))
    if pin is None or pout is None or (not pin and not pout):
        return None
    return Price(pin, pout, cache_read=_number(info.get("cache_read_input_token_cost")),
                 cache_write=_number(info.get("cache_creation_input_token_cost")))


def profile_of(info: dict[str, Any], *, json_schema: bool) -> ModelProfile:
    """A hosted model's profile from its litellm model info (``json_schema``: whether it takes a
    JSON schema as its response format)."""
    return ModelProfile(
        structured_output="json_schema" if json_schema else "json_object",
        uses_api_base=True,
        pricing="metered" if price_of(info) is not None else "unknown",
        planner_style="hosted",
        context_tokens=_positive(info.get("max_input_tokens")),
        max_output_tokens=_positive(info.get("max_output_tokens")),
        # Chat completions stream on every provider litellm serves and on OpenAI-compatible servers;
        # the map marks the exceptions (models that answer only whole).
        streaming=info.get("supports_native_streaming") is not False,
        source="litellm" if info else "default",
    )


def cache_usage(usage: Any) -> tuple[int | None, int | None]:
    """Cached and cache-written input tokens of an answer's usage (an object or a dict), in every
    shape providers send: OpenAI's ``prompt_tokens_details.cached_tokens``, Anthropic's
    ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` (litellm copies the read count
    into the OpenAI field too)."""
    if usage is None:
        return None, None

    def get(obj: Any, key: str) -> Any:
        return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)

    details = get(usage, "prompt_tokens_details")
    cached = _count(get(details, "cached_tokens")) if details is not None else None
    if cached is None:
        cached = _count(get(usage, "cache_read_input_tokens"))
    return cached, _count(get(usage, "cache_creation_input_tokens"))


def decode_args(raw: Any) -> dict[str, Any] | str:
    """A tool call's arguments: the decoded JSON object, or the raw text when it is not one."""
    if isinstance(raw, dict):
        return raw
    try:
        val = json.loads(raw or "{}")
    except (TypeError, json.JSONDecodeError):
        return str(raw)
    return val if isinstance(val, dict) else str(raw)


def check_reachable(model: str, api_base: str) -> None:
    """Raise :class:`ModelSetupError` naming ``host:port`` when nothing accepts a connection at
    ``api_base`` (found before a run is recorded)."""
    parts = urlsplit(api_base if "//" in api_base else f"http://{api_base}")
    host, port = parts.hostname or "localhost", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=3):
            return
    except OSError as e:
        why = "connection refused" if isinstance(e, ConnectionRefusedError) else (e.strerror or str(e))
        raise ModelSetupError(f"{model}: cannot connect to {host}:{port} ({why}); is the server running, and "
                              "is api_base right?") from None
