"""What a model can do, as data: :class:`ModelProfile`.

Every model-specific decision in agentcli (how structured output is asked for, whether
``api_base`` applies, whether a zero price means free or unknown, which planner prompt and
reviewer a model gets, how many tokens fit in and out) reads the model's profile, never its
name. The backend that serves a model builds its profile (litellm's model info for hosted
providers, the GGUF file's metadata for local models, fixed values for the fakes), and
``[models."NAME"]`` in the config overrides any field (:func:`apply_overrides`).

The profile used for a call is recorded with it (the ``llm_call`` event), so a replay decides
with the recorded profile, not with whatever the backend says today.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "PROFILE_FIELDS",
    "ModelProfile",
    "PlannerStyle",
    "Pricing",
    "StructuredOutput",
    "apply_overrides",
]

#: How structured output is requested: a JSON schema (``response_format=json_schema``), JSON mode
#: plus the schema in the prompt (``json_object``), or the schema in the prompt alone (``prompted``).
StructuredOutput = Literal["json_schema", "json_object", "prompted"]
#: ``hosted``: the full planner prompt and a reviewer verdict; ``small``: the compact, grammar-narrowed
#: planner of a small local model (its measured levers) and answers grounded in the step outputs.
PlannerStyle = Literal["hosted", "small"]
#: ``metered``: a price per token is known; ``free``: zero by construction (a local model, a fake);
#: ``unknown``: no price (a zero reported for such a model means unknown, not free).
Pricing = Literal["metered", "free", "unknown"]


@dataclass(frozen=True)
class ModelProfile:
    """What one model can do. Built by its backend; overridden by ``[models."NAME"]``."""

    structured_output: StructuredOutput = "json_schema"
    """How the client asks this model for JSON (see :data:`StructuredOutput`)."""
    uses_api_base: bool = True
    """Whether ``api_base`` (an OpenAI-compatible endpoint) applies; False for in-process models."""
    pricing: Pricing = "unknown"
    """Whether the model's price is known, zero by construction, or unknown."""
    planner_style: PlannerStyle = "hosted"
    """Which planner strategy plans for this model."""
    grounded_answers: bool = False
    """The final answer is built from the steps' outputs rather than written by the reviewer."""
    context_tokens: int | None = None
    """Input context window in tokens, when known."""
    max_output_tokens: int | None = None
    """The most tokens the model generates in one reply, when known."""
    streaming: bool = False
    """Whether its backend can stream the answer as it is generated (shown live on a terminal; the
    recorded answer is the same whole answer either way)."""
    source: str = "default"
    """Where the values came from (``litellm``, ``gguf``, ``fake``, ``config``...), for `agent doctor`."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelProfile:
        """A recorded profile back; unknown keys (from a newer agentcli) are ignored."""
        return cls(**{k: v for k, v in data.items() if k in PROFILE_FIELDS})


#: The fields a config override may set.
PROFILE_FIELDS = frozenset(f.name for f in dataclasses.fields(ModelProfile))


def apply_overrides(profile: ModelProfile, overrides: dict[str, Any] | None) -> ModelProfile:
    """``profile`` with the fields a ``[models."NAME"]`` table sets (None values are ignored)."""
    if not overrides:
        return profile
    changes = {k: v for k, v in overrides.items() if k in PROFILE_FIELDS and v is not None and k != "source"}
    if not changes:
        return profile
    # Idempotent: a replay applies the overrides again to the profile recorded with them applied.
    source = profile.source if profile.source.endswith("+config") else f"{profile.source}+config"
    return dataclasses.replace(profile, **changes, source=source)
