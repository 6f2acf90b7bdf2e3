"""A run's final answer as data: ``agent run --output-schema FILE``.

When a run completes, the answer (the reviewer's, or the grounded tool outputs) is
turned into one JSON value that validates against the user's JSON Schema: the
executor's model is asked for it with the schema as its structured-output format,
and re-asked with the validation errors (``llm.max_reasks`` times) until it
validates. The call is an ordinary recorded LLM call (role ``reviewer``), so a replay
serves it from the recording like any other.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from agentcli.errors import AgentError, StructuredOutputError, UsageError
from agentcli.models.client import LLMClient

__all__ = ["AnswerSchemaError", "load_output_schema", "shape_answer"]

_SYSTEM = (
    "You turn the result of a finished task into data. Reply with one JSON value that matches "
    "the given JSON Schema, built only from the result below; nothing else."
)


class AnswerSchemaError(AgentError):
    """The model gave no answer that validates against the output schema."""


def _jsonschema() -> Any:
    # Imported by name: it ships no type hints.
    return importlib.import_module("jsonschema")


def load_output_schema(path: Path) -> dict[str, Any]:
    """Read and check a JSON Schema file; :class:`UsageError` (exit 2) if it is not one."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"--output-schema {path}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"--output-schema {path}: not JSON: {e}") from None
    if not isinstance(schema, dict):
        raise UsageError(f"--output-schema {path}: a JSON Schema is an object")
    js = _jsonschema()
    try:
        js.validators.validator_for(schema).check_schema(schema)
    except js.SchemaError as e:
        raise UsageError(f"--output-schema {path}: not a valid JSON Schema: {e.message}") from None
    return schema


def schema_problems(schema: dict[str, Any], value: Any) -> list[str]:
    """Why ``value`` does not validate (``at <path>: <message>``), at most 10; empty when it does."""
    validator = _jsonschema().validators.validator_for(schema)(schema)
    out = []
    for err in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))[:10]:
        where = "/".join(map(str, err.absolute_path)) or "(root)"
        out.append(f"at {where}: {err.message}")
    return out


async def shape_answer(client: LLMClient, task: str, answer: str, schema: dict[str, Any]) -> Any:
    """The answer as a JSON value valid against ``schema``; :class:`AnswerSchemaError` if none comes."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": f"# Task\n{task}\n\n# Result\n{answer}\n\n# JSON Schema\n"
                                    + json.dumps(schema, ensure_ascii=False)},
    ]
    tries = client.config.llm.max_reasks + 1
    problems: list[str] = []
    for _ in range(tries):
        try:
            result = await client.acomplete(messages, role="reviewer", json_schema=schema)
        except StructuredOutputError as e:
            raise AnswerSchemaError(f"the answer is not valid JSON for --output-schema: {e.one_line()}") from None
        problems = schema_problems(schema, result.parsed)
        if not problems:
            return result.parsed
        messages = [*messages, {"role": "assistant", "content": result.text},
                    {"role": "user", "content": "That does not validate against the JSON Schema:\n"
                     + "\n".join(f"- {p}" for p in problems) + "\nReply again with only the corrected JSON."}]
    raise AnswerSchemaError(f"no answer valid against --output-schema after {tries} tries: {'; '.join(problems)}")
