"""The per-call JSON log: one structlog record for every model request.

Each request an :class:`agentcli.models.client.LLMClient` sends (every attempt, retries
included) produces exactly one record, written as one JSON line to
``<data_dir>/runs/<run_id>/llm_calls.jsonl`` and, with ``--log-json``, to stderr.
Field names follow the OpenTelemetry GenAI conventions where one exists
(``gen_ai.request.model``, ``gen_ai.usage.input_tokens`` ...), so the records join
up with traces and with the run's event log through ``run_id``, ``step_id`` and
``call_id``. Every record passes through :class:`agentcli.redact.Redactor` first:
no API key, auth header or secret-looking environment value is ever written.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import structlog

from agentcli.redact import Redactor

LOG_SCHEMA_VERSION = 1
LLM_LOG_NAME = "llm_calls.jsonl"


def run_dir(data_dir: Path, run_id: str) -> Path:
    """The folder of one run under the data dir."""
    return data_dir / "runs" / run_id


class CallLog:
    """Appends one redacted JSON line per LLM request to a file and, optionally, stderr."""

    def __init__(self, path: Path | None, *, stderr: bool = False, stream: IO[str] | None = None) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._redact = Redactor()
        self._stderr: IO[str] | None = (stream or sys.stderr) if stderr else None
        self._bound: list[Any] | None = None
        self._processors: list[Any] = [
            self._scrub,
            structlog.processors.JSONRenderer(sort_keys=False),
        ]

    def _scrub(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
        return self._redact(dict(event))

    def _loggers(self) -> list[Any]:
        if self._bound is None:
            targets: list[IO[str]] = []
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # Line-buffered append: a crash loses at most the line being written.
                self._file = self.path.open("a", encoding="utf-8", buffering=1)
                targets.append(self._file)
            if self._stderr is not None:
                targets.append(self._stderr)
            self._bound = [
                structlog.wrap_logger(structlog.WriteLogger(t), processors=self._processors)  # type: ignore[arg-type]
                for t in targets
            ]
        return self._bound

    def write(self, record: dict[str, Any]) -> None:
        """Write one record; ``time`` and ``schema_version`` are added."""
        event: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "schema_version": LOG_SCHEMA_VERSION,
            **record,
        }
        for logger in self._loggers():
            logger.msg(**event)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._bound = None
