"""Which backend serves a model name (the gate that keeps tests off real models is in `names`).

This module (with the backends themselves) is the only place that reads a model's name:
``test/...`` goes to the in-package fakes, ``local/...`` to the embedded llama.cpp backend,
``openai/...`` sent to an OpenAI-compatible server (a request with an ``api_base``) to
:mod:`agentcli.models.openai_http` (unless ``llm.transport = "litellm"``), any other name to
litellm. Everything else asks the client for the model's
:class:`~agentcli.models.profile.ModelProfile`. Importing this module imports neither litellm nor
llama.cpp: each backend is created on the first request for one of its models.
"""

from __future__ import annotations

from agentcli.models.names import backend_kind, check_allowed, requests_allowed, static_profile
from agentcli.models.profile import ModelProfile
from agentcli.models.types import ModelBackend, ModelRequest, ModelResponse, Price

__all__ = [
    "RoutingBackend",
    "backend_kind",
    "check_allowed",
    "requests_allowed",
    "static_profile",
]

#: ``openai/...`` models on an OpenAI-compatible server may go over plain HTTP.
_OPENAI = "openai/"


class RoutingBackend:
    """The default backend: fakes, the local model or litellm, by the model's name."""

    def __init__(self, *, openai_http: bool = True) -> None:
        self._backends: dict[str, ModelBackend] = {}
        self._fakes: dict[str, ModelBackend] = {}
        #: Whether ``openai/`` models on an OpenAI-compatible server go over plain HTTP (and their
        #: price and profile come from litellm's model map, read as data: the same values).
        self.openai_http = openai_http

    def _compat(self) -> ModelBackend:
        backend = self._backends.get("openai_http")
        if backend is None:
            from agentcli.models.openai_http import OpenAICompatBackend

            backend = self._backends["openai_http"] = OpenAICompatBackend()
        return backend

    def _pick(self, model: str, api_base: str | None = None, *, info: bool = False) -> ModelBackend:
        kind = backend_kind(model)
        if kind == "litellm" and self.openai_http and model.startswith(_OPENAI) and (api_base or info):
            return self._compat()
        if kind == "fake":
            if model not in self._fakes:
                from agentcli.models.fakes import named_fake

                self._fakes[model] = named_fake(model)
            return self._fakes[model]
        backend = self._backends.get(kind)
        if backend is None:
            if kind == "local":
                from agentcli.models.local.model import LocalBackend

                backend = LocalBackend()
            else:
                from agentcli.models.litellm import LiteLLMBackend

                backend = LiteLLMBackend()
            self._backends[kind] = backend
        return backend

    async def request(self, req: ModelRequest) -> ModelResponse:
        return await self._pick(req.model, req.api_base).request(req)

    def price(self, model: str) -> Price | None:
        return self._pick(model, info=True).price(model)

    def profile(self, model: str) -> ModelProfile:
        return self._pick(model, info=True).profile(model)

    def check(self, model: str, *, api_base: str | None, declared: bool) -> None:
        """What the backend of ``model`` can tell before any request: raises
        :class:`~agentcli.errors.ModelSetupError` naming what to fix (the fakes check nothing)."""
        check = getattr(self._pick(model, api_base), "check", None)
        if check is not None:
            check(model, api_base=api_base, declared=declared)
