"""Which backend serves a model name, and the gate that keeps tests off real models.

This module (with the backends themselves) is the only place that reads a model's name:
``test/...`` goes to the in-package fakes, ``local/...`` to the embedded llama.cpp backend, any
other name to litellm. Everything else asks the client for the model's
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

class RoutingBackend:
    """The default backend: fakes, the local model or litellm, by the model's name."""

    def __init__(self) -> None:
        self._backends: dict[str, ModelBackend] = {}
        self._fakes: dict[str, ModelBackend] = {}

    def _pick(self, model: str) -> ModelBackend:
        kind = backend_kind(model)
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
        return await self._pick(req.model).request(req)

    def price(self, model: str) -> Price | None:
        return self._pick(model).price(model)

    def profile(self, model: str) -> ModelProfile:
        return self._pick(model).profile(model)
