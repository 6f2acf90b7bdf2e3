"""OpenAI-style chat requests in the shape a local GGUF model handles, and its replies back.

Messages become plain ``{role, content}`` strings any chat template accepts, and
``response_format`` the JSON schema decoding is constrained to. Tool calls are emulated: the
output is constrained to ``{"name": <const>, "arguments": <parameters>}`` per tool (plus
``{"content": ...}`` when ``tool_choice`` is ``auto``), the tools are described in the system
prompt, and the JSON reply is parsed back into a tool call. Pure Python: no llama.cpp, no litellm.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from agentcli.errors import LLMFatalError

# A free-text reply inside the tool-call JSON gets more room than a schema string.
TOOL_REPLY_MAX_CHARS = 1000


@dataclass
class ChatResult:
    """One generation on a local model: its text or tool call, why it stopped, token counts."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tool_name: str | None = None
    tool_arguments: str | None = None

    @property
    def tool_call_id(self) -> str:
        # Deterministic, so a replayed run produces the same ids as the recorded one.
        digest = hashlib.sha256(f"{self.tool_name}\0{self.tool_arguments}".encode()).hexdigest()
        return f"call_{digest[:24]}"


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return str(content)


def chat_messages(messages: list[Any], extra_system: str | None) -> list[dict[str, str]]:
    """OpenAI-style messages -> plain {role, content} strings any GGUF chat template accepts.

    Templates concatenate ``message['content']`` and know only system/user/assistant: tool
    calls become their JSON text (the format the model is asked to produce) and tool results
    become user turns.
    """
    out: list[dict[str, str]] = []
    for raw in messages:
        if isinstance(raw, dict):
            msg = raw
        elif hasattr(raw, "model_dump"):  # litellm's own Message objects, fed back as history
            msg = raw.model_dump()
        else:
            msg = dict(raw)
        role = str(msg.get("role") or "user")
        content = _text_of(msg.get("content"))
        if role == "developer":
            role = "system"
        if role == "assistant" and msg.get("tool_calls"):
            calls = []
            for call in msg["tool_calls"]:
                fn = call.get("function", {}) if isinstance(call, dict) else {}
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except (TypeError, ValueError):
                    args = fn.get("arguments")
                calls.append(json.dumps({"name": fn.get("name"), "arguments": args}))
            content = "\n".join([content, *calls]).strip()
        elif role in ("tool", "function"):
            label = msg.get("name") or msg.get("tool_call_id") or "tool"
            role, content = "user", f"Tool result ({label}):\n{content}"
        elif role not in ("system", "user", "assistant"):
            role = "user"
        out.append({"role": role, "content": content})
    if extra_system:
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{extra_system}".strip()}
        else:
            out.insert(0, {"role": "system", "content": extra_system})
    return out


def schema_of_response_format(fmt: Any) -> dict[str, Any] | None:
    """The JSON schema a ``response_format`` asks for; ``{}``-like generic JSON for json_object."""
    if fmt is None:
        return None
    if hasattr(fmt, "model_json_schema"):  # a pydantic class that reached us untranslated
        return dict(fmt.model_json_schema())
    if not isinstance(fmt, dict):
        raise LLMFatalError(f"unsupported response_format for a local model: {fmt!r}"[:200])
    kind = fmt.get("type")
    if kind == "json_schema":
        spec = fmt.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return dict(schema) if isinstance(schema, dict) else {"type": "object"}
    if kind == "json_object":
        schema = fmt.get("schema") or fmt.get("response_schema")
        return dict(schema) if isinstance(schema, dict) else {"type": "object"}
    if kind in (None, "text"):
        return None
    raise LLMFatalError(f"unsupported response_format type for a local model: {kind!r}")


def _hoist_parameters(params: dict[str, Any], slot: str, defs: dict[str, Any]) -> None:
    """Move a tool's parameters schema, and its own ``$defs``, into the shared ``$defs``.

    Its refs are relative to its own root. The converter names a ref's rule after the ref's
    last segment, so two tools' ``#/$defs/Item`` would share one rule: each definition gets a
    top-level name of its own (``tool0__Item``) and every ref is rewritten to match.
    """
    params = copy.deepcopy(params)
    local: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        sub = params.pop(key, None)
        if isinstance(sub, dict):
            local.update(sub)

    def fix(ref: str) -> str:
        if ref == "#":
            return f"#/$defs/{slot}"
        for key in ("$defs", "definitions"):
            prefix = f"#/{key}/"
            if ref.startswith(prefix):
                name, sep, rest = ref[len(prefix) :].partition("/")
                return f"#/$defs/{slot}__{name}{sep}{rest}"
        return f"#/$defs/{slot}{ref[1:]}" if ref.startswith("#/") else ref

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(x) for x in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items()}
        if isinstance(out.get("$ref"), str):
            out["$ref"] = fix(out["$ref"])
        return out

    defs[slot] = walk(params)
    for name, sub in local.items():
        defs[f"{slot}__{name}"] = walk(sub)


def tool_call_plan(tools: list[Any], tool_choice: Any) -> tuple[dict[str, Any], str] | None:
    """The schema and system-prompt text that make the model emit a tool call as JSON.

    Returns None when ``tool_choice`` is ``none``.
    """
    if tool_choice == "none":
        return None
    functions = []
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and fn.get("name"):
            functions.append(fn)
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        functions = [f for f in functions if f["name"] == wanted]
        if not functions:
            raise LLMFatalError(f"tool_choice names a tool that was not passed: {wanted!r}")
    if not functions:
        return None
    allow_reply = tool_choice in (None, "auto")

    defs: dict[str, Any] = {}
    branches: list[dict[str, Any]] = []
    lines = ["You can call these tools:"]
    for i, fn in enumerate(functions):
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        slot = f"tool{i}"
        _hoist_parameters(params, slot, defs)
        branches.append(
            {
                "type": "object",
                "properties": {"name": {"const": fn["name"]}, "arguments": {"$ref": f"#/$defs/{slot}"}},
                "required": ["name", "arguments"],
            }
        )
        desc = " ".join(str(fn.get("description") or "").split())
        lines.append(f"- {fn['name']}: {desc} Arguments schema: {json.dumps(params, separators=(',', ':'))}")
    lines.append('To call a tool, reply with only a JSON object: {"name": "<tool name>", "arguments": {...}}.')
    if allow_reply:
        branches.append(
            {
                "type": "object",
                "properties": {"content": {"type": "string", "maxLength": TOOL_REPLY_MAX_CHARS}},
                "required": ["content"],
            }
        )
        lines.append('To answer without a tool, reply with only: {"content": "<your answer>"}.')
    return {"$defs": defs, "anyOf": branches}, "\n".join(lines)


def parse_tool_reply(result: ChatResult) -> None:
    """Turn the JSON a :func:`tool_call_plan` grammar produced into a tool call or plain text, in place."""
    try:
        data = json.loads(result.text)
    except ValueError:
        return  # truncated at max_tokens: hand back the raw text, finish_reason says "length"
    if not isinstance(data, dict):
        return
    if isinstance(data.get("name"), str):
        result.tool_name = data["name"]
        result.tool_arguments = json.dumps(data.get("arguments") or {})
        result.text = ""
        result.finish_reason = "tool_calls"
    elif isinstance(data.get("content"), str):
        result.text = data["content"]


__all__ = [
    "TOOL_REPLY_MAX_CHARS",
    "ChatResult",
    "chat_messages",
    "parse_tool_reply",
    "schema_of_response_format",
    "tool_call_plan",
]
