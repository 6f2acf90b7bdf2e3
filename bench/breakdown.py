"""Where the input tokens of agentcli's requests go: per role, per section of the request.

A request is split into its parts as a provider sees them: the ``tools`` parameter, the response
schema, and each message, which is cut at its ``# Heading`` lines (the planner's ``# Tools``,
``# Repository map``, ``# Task`` ...; what comes before the first heading is the message's
``rules``). Every part is counted with tiktoken. Used by the cache section (:mod:`bench.cache`) and
on its own::

    python -m bench.breakdown            # the calls suite's agentcli requests, one table
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from agentcli.models import tokens
from agentcli.models.types import ModelRequest

_HEADING = re.compile(r"^# (.+)$", re.M)


def role_of(req: ModelRequest) -> str:
    """planner, step, reviewer or other, from the request itself."""
    system = str(req.messages[0].get("content", "")) if req.messages else ""
    name = ((req.response_format or {}).get("json_schema") or {}).get("name")
    if name == "Review" or system.startswith("You review"):
        return "reviewer"
    if system.startswith("You are the planner"):
        return "planner"
    if system.startswith("You carry out one step"):
        return "step"
    return "other"


def _split(text: str, prefix: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    marks = list(_HEADING.finditer(text))
    head = text[: marks[0].start()] if marks else text
    if head.strip():
        out.append((f"{prefix} rules", head))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        title = m.group(1).split("(")[0].strip().lower()
        out.append((f"{prefix} {title}", text[m.start():end]))
    return out


def sections(req: ModelRequest) -> list[tuple[str, int]]:
    """``(section, tokens)`` for every part of ``req``, in the order sent."""
    parts: list[tuple[str, str]] = []
    if req.tools:
        parts.append(("tools parameter", json.dumps(req.tools, separators=(",", ":"))))
    if req.response_format:
        parts.append(("response schema", json.dumps(req.response_format, separators=(",", ":"))))
    for i, m in enumerate(req.messages):
        role = str(m.get("role", ""))
        content = m.get("content")
        text = content if isinstance(content, str) else json.dumps(content, default=str)
        prefix = role if i > 1 or role != "user" else "user"
        if i >= 2:
            prefix = f"{role}#{i}"
        parts += _split(text or "", prefix)
        if m.get("tool_calls"):
            parts.append((f"{role}#{i} tool calls", json.dumps(m["tool_calls"], default=str)))
    return [(name, tokens.count_text(text, req.model)) for name, text in parts]


def table(requests: list[ModelRequest]) -> str:
    """A text table: per role, the average tokens of each section per request, and the total."""
    by_role: dict[str, list[ModelRequest]] = defaultdict(list)
    for r in requests:
        by_role[role_of(r)].append(r)
    lines = []
    for role, reqs in sorted(by_role.items()):
        sums: dict[str, int] = defaultdict(int)
        for r in reqs:
            for name, n in sections(r):
                sums[name] += n
        total = sum(sums.values())
        lines.append(f"{role}: {len(reqs)} requests, {total:,} tokens ({total // len(reqs):,} a request)")
        for name, n in sorted(sums.items(), key=lambda kv: -kv[1]):
            lines.append(f"    {name:<40} {n // len(reqs):>7,} a request  {n / total:6.1%}")
    return "\n".join(lines)


def summary(requests: list[ModelRequest]) -> dict[str, Any]:
    """Per role: requests, total tokens, and the biggest sections (average tokens a request)."""
    out: dict[str, Any] = {}
    by_role: dict[str, list[ModelRequest]] = defaultdict(list)
    for r in requests:
        by_role[role_of(r)].append(r)
    for role, reqs in sorted(by_role.items()):
        sums: dict[str, int] = defaultdict(int)
        for r in reqs:
            for name, n in sections(r):
                sums[name] += n
        out[role] = {"requests": len(reqs), "tokens": sum(sums.values()),
                     "sections": {k: v // len(reqs) for k, v in sorted(sums.items(), key=lambda kv: -kv[1])}}
    return out


def main() -> None:
    from bench import cache, suite

    base = Path(tempfile.mkdtemp(prefix="breakdown-"))
    reqs = asyncio.run(cache._agentcli_requests(suite.TASKS, base))
    print(table(reqs))


if __name__ == "__main__":
    main()
