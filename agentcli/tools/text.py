"""Text as a model should see it: colour codes removed, long text cut to its head and tail.

A failing command prints its verdict last (pytest's summary, a traceback, a compiler's error),
so whatever shows a model a bounded piece of output keeps the end, not only the beginning. Some
runners report each failure where it happens and only a count at the end (TAP and tape's
``not ok``, ``go test``'s ``--- FAIL``): what is cut from the middle keeps its lines that report a
failure (:class:`FailureLines`), so a bounded output still says what failed.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["FailureLines", "brief_json", "brief_value", "head_tail", "strip_ansi", "tail", "tail_with_failures"]

# CSI sequences (colours, cursor moves), OSC sequences (titles, hyperlinks) and lone escapes.
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (and without carriage-return redraws)."""
    text = _ANSI_RE.sub("", text)
    if "\r" in text:
        # A progress bar redraws its line with \r: only the last state of each line is real.
        text = "\n".join(line.rsplit("\r", 1)[-1] if line.strip("\r") else "" for line in text.split("\n"))
    return text


def _shorten(value: Any, chars: int, items: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= chars else f"{value[:chars]}...[{len(value) - chars} more chars]"
    if isinstance(value, dict):
        return {str(k): _shorten(v, chars, items) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        kept = [_shorten(v, chars, items) for v in value[:items]]
        return kept + ([f"...[{len(value) - items} more items]"] if len(value) > items else [])
    return value


def brief_value(value: Any, limit: int) -> Any:
    """``value`` (a tool call's arguments) shortened until its compact JSON is about ``limit``
    characters, staying the same shape: long strings keep their start and say how much of them
    is left out (``"def f():...[2400 more chars]"``), long lists their first items and a count of
    the rest. Cut harder (shorter strings, fewer items) until it fits; what no shortening brings
    under ``limit`` (hundreds of keys) comes back as its JSON text cut at ``limit``, saying so."""
    def dumps(v: Any) -> str:
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"), default=str)

    text = dumps(value)
    if len(text) <= limit:
        return value
    for chars, items in ((120, 8), (60, 4), (24, 2), (8, 1)):
        short = _shorten(value, chars, items)
        text = dumps(short)
        if len(text) <= limit:
            return short
    return f"{text[:limit]}...[cut: {len(text) - limit} more chars]"


def brief_json(value: Any, limit: int) -> str:
    """:func:`brief_value` as compact JSON text."""
    short = brief_value(value, limit)
    return short if isinstance(short, str) and not isinstance(value, str) else \
        json.dumps(short, ensure_ascii=False, separators=(",", ":"), default=str)


def head_tail(text: str, limit: int, *, head_share: float = 0.3) -> str:
    """At most about ``limit`` characters of ``text``: its head and its tail (the tail gets
    the larger share, ``1 - head_share``), with a marker saying how much was left out.
    Cuts fall on line boundaries when one is near, so no line is shown half."""
    if len(text) <= limit:
        return text
    limit = max(limit, 40)
    head_n = int(limit * head_share)
    tail_n = limit - head_n
    head = text[:head_n]
    nl = head.rfind("\n")
    if nl > head_n // 2:
        head = head[: nl + 1]
    end = text[len(text) - tail_n:]
    nl = end.find("\n")
    if 0 <= nl < tail_n // 2:
        end = end[nl + 1:]
    omitted = len(text) - len(head) - len(end)
    sep = "" if head.endswith("\n") else "\n"
    return f"{head}{sep}[... {omitted} chars omitted ...]\n{end}"


def tail(text: str, limit: int) -> str:
    """The last ``limit`` characters of ``text`` (from a line start when one is near)."""
    if len(text) <= limit:
        return text
    end = text[len(text) - limit:]
    nl = end.find("\n")
    if 0 <= nl < limit // 2:
        end = end[nl + 1:]
    return f"[... {len(text) - len(end)} chars before ...]\n{end}"


# A line that reports a failure, in the words of common test runners, compilers and interpreters.
_FAILURE_RE = re.compile(
    r"^\s*(?:not ok\b|FAIL\b|FAILED\b|ERROR\b|E {2,}\S|--- FAIL|[\u2717\u2716\u00d7] |\d+\) |error(?:\[\w+\])?:"
    r"|Traceback \(most recent|\w*(?:Error|Exception)\b:|AssertionError|panicked at|Assertion(?:Error)? failed)")


class FailureLines:
    """Collects, from lines a bounded output leaves out, those that report a failure, each with the
    few lines after it (where the expected and actual values are), up to ``limit`` characters."""

    def __init__(self, limit: int, context: int = 5) -> None:
        self.limit = limit
        self.context = context
        self.lines: list[str] = []
        self.size = 0
        self.more = 0  # failure lines seen after the room was full
        self._after = 0  # context lines still to keep after the last failure line

    def add(self, line: str) -> None:
        failure = _FAILURE_RE.match(line) is not None
        if failure:
            self._after = self.context
        elif self._after > 0:
            self._after -= 1
        else:
            return
        line = line[:300]
        if self.size + len(line) + 1 > self.limit:
            self.more += failure
            return
        self.lines.append(line)
        self.size += len(line) + 1

    def text(self) -> str:
        """The lines kept, with a note of those that did not fit; empty when there are none."""
        if not self.lines:
            return ""
        more = f"\n[... {self.more} more failure lines ...]" if self.more else ""
        return "\n".join(self.lines) + more


def tail_with_failures(text: str, limit: int, *, head_share: float = 0.0) -> str:
    """At most about ``limit`` characters of ``text``: like :func:`tail` (or :func:`head_tail` with a
    ``head_share``), but the lines of the part cut out that report a failure are kept too (in up to a
    third of ``limit``), so a runner that names failures only where they happen is still read."""
    if len(text) <= limit:
        return text
    room = limit - limit // 3
    head = ""
    if head_share:
        head = text[: int(room * head_share)]
        nl = head.rfind("\n")
        head = head[: nl + 1] if nl > len(head) // 2 else head
    end = tail(text[len(head):], room - len(head))
    end = end[end.find("\n") + 1:] if end.startswith("[... ") else end
    failures = FailureLines(limit // 3)
    for line in text[len(head): len(text) - len(end)].splitlines():
        failures.add(line)
    found = failures.text()
    if not found:  # the whole room goes to the head and the tail
        return head_tail(text, limit, head_share=head_share) if head_share else tail(text, limit)
    omitted = len(text) - len(head) - len(end)
    sep = "" if not head or head.endswith("\n") else "\n"
    return (f"{head}{sep}[... {omitted} chars omitted; the lines among them that report a failure:]\n"
            f"{found}\n[... the end:]\n{end}")
