"""Prompt caching: what of a request a provider's prefix cache could serve.

Providers cache the *prefix* of a request: OpenAI automatically, for a shared prefix of at least
1,024 tokens, counted in 128-token steps; Anthropic where the request marks a breakpoint
(``cache_control``). A request is cheap when what it shares with earlier ones comes first.

:class:`PrefixCache` keeps the token sequences of a run's requests (per model) and tells, for a new
request, the longest prefix it shares with any earlier one, rounded down by that rule: the
*cacheable* tokens. The client records it on every call (``cacheable_tokens``), the budget's
pre-call estimate prices it at the cache price where the model has one, and the benchmarks report
the share. The request is laid out as providers lay it out before the model: tool definitions,
then the response format, then the messages in order.
"""

from __future__ import annotations

import json
from typing import Any

from agentcli.models import tokens

#: The shortest prefix OpenAI's automatic cache serves, and the step it counts in.
MIN_CACHED_PREFIX = 1024
PREFIX_STEP = 128


def cacheable(shared: int) -> int:
    """Tokens a provider serves from cache for a prefix of ``shared`` tokens (the OpenAI rule)."""
    if shared < MIN_CACHED_PREFIX:
        return 0
    return MIN_CACHED_PREFIX + (shared - MIN_CACHED_PREFIX) // PREFIX_STEP * PREFIX_STEP


def request_text(messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                 response_format: dict[str, Any] | None = None) -> str:
    """A request as the text a prefix cache sees (tools, response format, messages), which
    :func:`request_tokens` encodes."""
    parts: list[str] = []
    if tools:
        parts.append(json.dumps(tools, sort_keys=False, separators=(",", ":")))
    if response_format:
        parts.append(json.dumps(response_format, sort_keys=False, separators=(",", ":")))
    for m in messages:
        content = m.get("content")
        text = content if isinstance(content, str) else json.dumps(content, default=str)
        parts.append(f"<|{m.get('role', '')}|>{text}")
        if m.get("tool_calls"):
            parts.append(json.dumps(m["tool_calls"], default=str))
    return "\n".join(parts)


def request_tokens(messages: list[dict[str, Any]], model: str, *, tools: list[dict[str, Any]] | None = None,
                   response_format: dict[str, Any] | None = None) -> list[int]:
    """A request as the token sequence a prefix cache sees (tools, response format, messages)."""
    return tokens.encode(request_text(messages, tools=tools, response_format=response_format), model)


class RequestText:
    """A request's text (:func:`request_text`) for a :class:`PrefixCache`, encoded only when a
    comparison needs its tokens: the first request to a model, and one sharing too short a prefix
    with every earlier one (a reviewer's request after a planner's), is never encoded (the whole
    request, a reviewer's digest of 1,000 steps, takes milliseconds to encode)."""

    def __init__(self, text: str, model: str) -> None:
        self.text = text
        self.model = model
        self._ids: list[int] | None = None

    def ids(self) -> list[int]:
        if self._ids is None:
            self._ids = tokens.encode(self.text, self.model)
        return self._ids


def _common_chars(a: str, b: str) -> int:
    """The length of the common prefix of two strings (slices compared by halves)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _may_share(a: RequestText, b: RequestText) -> bool:
    """Whether two requests' texts may share a cacheable prefix of tokens. Every token is at least
    a byte, so the tokens two sequences share decode to bytes both texts begin with: fewer than
    :data:`MIN_CACHED_PREFIX` common bytes (the common characters' UTF-8, and up to 3 bytes of the
    first character that differs) cannot make that many tokens."""
    n = _common_chars(a.text, b.text)
    return len(a.text[:n].encode("utf-8", "surrogatepass")) + 3 >= MIN_CACHED_PREFIX


def shared_prefix(a: list[int], b: list[int]) -> int:
    """The length of the common prefix of two token sequences."""
    n = min(len(a), len(b))
    i = 0
    # Compare in blocks first: requests share thousands of tokens, so this is ~n/256 slice compares.
    block = 256
    while i + block <= n and a[i:i + block] == b[i:i + block]:
        i += block
    while i < n and a[i] == b[i]:
        i += 1
    return i


#: Anthropic takes at most 4 cache breakpoints per request.
MAX_MARKS = 4


def cache_marks(messages: list[dict[str, Any]]) -> tuple[int, ...]:
    """Where a request's stable prefixes end, for a provider that caches only marked prefixes: the
    system message (rules, tools, project instructions: the same in every request of a role) and,
    in a conversation (a survey, a re-ask, a later review), the message before the newest one (the
    conversation so far, which the next request repeats)."""
    marks: list[int] = []
    if messages and messages[0].get("role") == "system":
        marks.append(0)
    if len(messages) > 2:
        marks.append(len(messages) - 2)
    return tuple(dict.fromkeys(marks))[:MAX_MARKS]


def marked(messages: list[dict[str, Any]], marks: tuple[int, ...]) -> list[dict[str, Any]]:
    """``messages`` with an ephemeral ``cache_control`` on the last content block of each marked one
    (a text content becomes one text block); the others unchanged."""
    out = []
    for i, m in enumerate(messages):
        content = m.get("content")
        if i not in marks or not content:
            out.append(m)
            continue
        blocks: list[dict[str, Any]] = ([{"type": "text", "text": content}] if isinstance(content, str)
                                        else [dict(b) for b in content])
        blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
        out.append({**m, "content": blocks})
    return out


class PrefixCache:
    """The requests of one run, per model, and what each new one could be served from cache.
    A request is its token sequence, or its :class:`RequestText` (encoded only if compared)."""

    def __init__(self, keep: int = 64) -> None:
        self._seen: dict[str, list[list[int] | RequestText]] = {}
        self._keep = keep

    def peek(self, model: str, seq: list[int] | RequestText) -> int:
        """The cacheable tokens of ``seq`` against the earlier requests to ``model`` (not stored)."""
        best = 0
        for old in self._seen.get(model, ()):
            if isinstance(old, RequestText) and isinstance(seq, RequestText) and not _may_share(old, seq):
                continue  # shares fewer tokens than the least a cache serves: no need to count them
            best = max(best, shared_prefix(_ids(old), _ids(seq)))
        return cacheable(best)

    def add(self, model: str, seq: list[int] | RequestText) -> None:
        """Remember a request that was sent (the provider now holds its prefix)."""
        seen = self._seen.setdefault(model, [])
        seen.append(seq)
        if len(seen) > self._keep:  # bounded: a long run keeps its most recent requests
            del seen[0]


def _ids(seq: list[int] | RequestText) -> list[int]:
    return seq.ids() if isinstance(seq, RequestText) else seq


__all__ = ["MAX_MARKS", "MIN_CACHED_PREFIX", "PREFIX_STEP", "PrefixCache", "RequestText", "cache_marks", "cacheable",
           "marked", "request_text", "request_tokens", "shared_prefix"]
