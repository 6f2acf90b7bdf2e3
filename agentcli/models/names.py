"""What a model's name tells without a backend: which backend serves it, the profile known
without asking a provider, and the gate that keeps tests off real models.

The backends (:mod:`agentcli.models.litellm`, :mod:`agentcli.models.local.model`,
:mod:`agentcli.models.fakes`) import this module, and :mod:`agentcli.models.routing` imports
them: the gate and the static profiles sit below both, so no import goes back up.
"""

from __future__ import annotations

import os

from agentcli.errors import ModelRequestsBlocked
from agentcli.models.profile import ModelProfile

__all__ = ["ALLOW_MODEL_REQUESTS", "backend_kind", "check_allowed", "requests_allowed", "static_profile"]

#: Tests set this to False (and AGENT_ALLOW_MODEL_REQUESTS=0 for subprocesses):
#: then any real model request (a provider, or the embedded model) fails unless the test opts in.
ALLOW_MODEL_REQUESTS = True

_LOCAL, _FAKE = "local/", "test/"


def requests_allowed() -> bool:
    env = os.environ.get("AGENT_ALLOW_MODEL_REQUESTS", "").strip().lower()
    if env in ("0", "false", "no"):
        return False
    if env in ("1", "true", "yes"):
        return True
    return ALLOW_MODEL_REQUESTS


def check_allowed(model: str, what: str = "model") -> None:
    """Raise :class:`~agentcli.errors.ModelRequestsBlocked` unless real model requests are allowed."""
    if not requests_allowed():
        raise ModelRequestsBlocked(
            f"real model requests are disabled here ({what} {model}); "
            "tests opt in with the allow_model_requests fixture"
        )


def backend_kind(model: str) -> str:
    """``fake``, ``local`` or ``litellm``: which backend serves ``model`` (`agent doctor` reports it)."""
    if model.startswith(_FAKE):
        return "fake"
    if model.startswith(_LOCAL):
        return "local"
    return "litellm"


def static_profile(model: str) -> ModelProfile:
    """A profile known without asking a provider: a local model's from its GGUF header, else the
    hosted default (what a fake standing in for a hosted model plans and reviews like)."""
    if backend_kind(model) == "local":
        from agentcli.models.local.profile import local_profile

        return local_profile(model)
    return ModelProfile(source="default")
