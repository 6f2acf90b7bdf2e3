"""Streamed answers: put back together whole, their text told as it arrives.

A streamed chat completion comes as chunks (``chat.completion.chunk``: a ``delta`` of text or of
tool calls per chunk, the ``finish_reason`` in the last one, ``usage`` in a chunk of its own when
asked for with ``stream_options.include_usage``). :class:`Assembly` adds them up into the body a
non-streamed request returns (``chat.completion``), so a backend reads a streamed answer with the
code that reads a whole one, and what is recorded is the same. :func:`read_sse` reads such a
stream from an HTTP response (server-sent events).

An answer that ends before it is whole (the connection closes mid-way, or the stream ends without
a ``finish_reason``) is :func:`cut_off`: one error, the same whether the answer was streamed or not,
retried as any transient failure; nothing of it is used.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterable
from typing import Any

from agentcli.errors import LLMTransientError

__all__ = ["STREAM_OPTIONS", "AnswerCut", "Assembly", "cut_off", "read_sse"]

#: What a streamed request adds to its body: the stream, with the usage at its end (so the record
#: has the provider's token counts, cached tokens included, as without streaming).
STREAM_OPTIONS: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}


class AnswerCut(Exception):
    """The answer ended before it was whole."""


def cut_off(model: str, where: str) -> LLMTransientError:
    """The error of an answer cut off mid-way, streamed or not."""
    return LLMTransientError(f"{model}: the answer from {where} was cut off mid-way (the connection closed "
                             "before it was complete); nothing of it was used")


class Assembly:
    """A streamed answer, added up chunk by chunk; ``on_text`` hears each piece of its text."""

    def __init__(self, on_text: Callable[[str], None] | None = None) -> None:
        self.on_text = on_text
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.chunks = 0

    def add(self, chunk: dict[str, Any]) -> None:
        """One chunk (a decoded ``data:`` event)."""
        self.chunks += 1
        if chunk.get("model"):
            self.model = chunk["model"]
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            piece = delta.get("content")
            if isinstance(piece, str) and piece:
                self.text.append(piece)
                if self.on_text is not None:
                    self.on_text(piece)
            for tc in delta.get("tool_calls") or []:
                call = self.calls.setdefault(int(tc.get("index", len(self.calls))),
                                             {"id": "", "name": "", "arguments": []})
                call["id"] = tc.get("id") or call["id"]
                fn = tc.get("function") or {}
                call["name"] += fn.get("name") or ""
                call["arguments"].append(fn.get("arguments") or "")
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def body(self) -> dict[str, Any]:
        """The answer as a non-streamed request returns it; :class:`AnswerCut` when it never finished."""
        if self.finish_reason is None:
            raise AnswerCut("the stream ended without a finish_reason")
        calls = [{"id": c["id"], "type": "function",
                  "function": {"name": c["name"], "arguments": "".join(c["arguments"])}}
                 for _, c in sorted(self.calls.items())]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text)}
        if calls:
            message["tool_calls"] = calls
        body: dict[str, Any] = {"object": "chat.completion", "model": self.model,
                                "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}]}
        if self.usage is not None:
            body["usage"] = self.usage
        return body


def events(lines: Iterable[bytes]) -> Iterable[str]:
    """The ``data:`` payloads of a server-sent event stream, up to ``[DONE]``."""
    for raw in lines:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue  # comments (``: keep-alive``), ``event:`` and ``id:`` lines, blank separators
        data = line[5:].strip().decode("utf-8", "replace")
        if data == "[DONE]":
            return
        yield data


def read_sse(resp: http.client.HTTPResponse, on_text: Callable[[str], None] | None) -> dict[str, Any]:
    """A streamed answer read from ``resp`` and put back together (see :meth:`Assembly.body`).

    Raises :class:`AnswerCut` when the connection closes before the answer is whole, ValueError
    for a chunk that is not JSON."""
    whole = Assembly(on_text)
    try:
        for data in events(resp):
            chunk = json.loads(data)
            if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
                raise ValueError(f"error in the stream: {chunk['error'].get('message', '')}")
            if isinstance(chunk, dict):
                whole.add(chunk)
    except (http.client.IncompleteRead, ConnectionResetError) as exc:
        raise AnswerCut(str(exc)) from exc
    return whole.body()
