"""Building a run's dependencies from settings: ids, the call log, the LLM client.

Commands call these factories so that each of them wires things the same way.
"""

from __future__ import annotations

from pathlib import Path

from agentcli.config import Settings
from agentcli.errors import WorkspaceError
from agentcli.models.calllog import LLM_LOG_NAME, CallLog, run_dir
from agentcli.models.client import LLMClient
from agentcli.models.types import ModelBackend


def ensure_data_dir(settings: Settings) -> Path:
    d = settings.data_dir
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WorkspaceError(f"data dir '{d}' cannot be created: {e.strerror}") from None
    return d


def build_llm_client(
    settings: Settings,
    run_id: str,
    *,
    log_json: bool = False,
    backend: ModelBackend | None = None,
) -> LLMClient:
    """An LLM client whose per-call records go to the run's folder (and stderr with --log-json)."""
    data = ensure_data_dir(settings)
    log = CallLog(
        run_dir(data, run_id) / LLM_LOG_NAME,
        stderr=log_json or settings.config.logging.json_stderr,
    )
    return LLMClient(settings.config, backend=backend, call_log=log, run_id=run_id)
