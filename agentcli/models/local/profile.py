"""A local model's :class:`~agentcli.models.profile.ModelProfile`, from its GGUF header alone
(no llama.cpp, no load): the small-model planner below a size, the hosted one above it."""

from __future__ import annotations

from pathlib import Path

from agentcli.errors import LLMFatalError
from agentcli.models.local.gguf import GGUFError, parameter_count, read_metadata
from agentcli.models.local.loader import resolve_model_path, settings
from agentcli.models.profile import ModelProfile

__all__ = ["SMALL_MODEL_FILE_BYTES", "SMALL_MODEL_PARAMETERS", "local_profile"]

#: Below this many parameters a local model gets the small-model planner (compact prompt, grammar
#: narrowed by examples, answers grounded in step outputs); at or above it, the hosted planner
#: and a reviewer. SmolLM2-135M is the model the small planner was measured on; 7B instruct
#: models follow the full prompt.
SMALL_MODEL_PARAMETERS = 2_000_000_000
#: When a GGUF's header names no parameter count: a file this size or smaller counts as small
#: (a 2B model at 4-5 bits is ~1.2-1.5 GB).
SMALL_MODEL_FILE_BYTES = 1_300_000_000

_profiles: dict[Path, ModelProfile] = {}


def local_profile(model: str) -> ModelProfile:
    """The profile of a ``local/...`` model, from its GGUF header (cached per file).

    A file that cannot be found or read gets the small-model profile: the request itself then
    fails with the precise reason.
    """
    try:
        path = resolve_model_path(model)
    except LLMFatalError:
        return ModelProfile(uses_api_base=False, pricing="free", planner_style="small", grounded_answers=True,
                            source="gguf")
    cached = _profiles.get(path)
    if cached is not None:
        return cached
    try:
        meta = read_metadata(path, stop_at="tokenizer.")
    except (OSError, GGUFError):
        meta = {}
    params = parameter_count(meta)
    small = params < SMALL_MODEL_PARAMETERS if params is not None else path.stat().st_size <= SMALL_MODEL_FILE_BYTES
    arch = meta.get("general.architecture")
    trained = meta.get(f"{arch}.context_length") if arch else None
    context = min(int(trained), settings.n_ctx) if isinstance(trained, int) and trained > 0 else settings.n_ctx
    profile = ModelProfile(
        structured_output="json_schema",  # decoding is grammar-constrained to the schema
        uses_api_base=False,
        pricing="free",
        planner_style="small" if small else "hosted",
        grounded_answers=small,
        context_tokens=context,
        # Prompt and reply share the context window.
        max_output_tokens=context,
        streaming=True,  # tokens are seen as llama.cpp generates them
        source="gguf",
    )
    _profiles[path] = profile
    return profile
