"""Text as a model should see it: colour codes removed, long text cut to its head and tail.

A failing command prints its verdict last (pytest's summary, a traceback, a compiler's error),
so whatever shows a model a bounded piece of output keeps the end, not only the beginning.
"""

from __future__ import annotations

import re

__all__ = ["head_tail", "strip_ansi", "tail"]

# CSI sequences (colours, cursor moves), OSC sequences (titles, hyperlinks) and lone escapes.
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (and without carriage-return redraws)."""
    text = _ANSI_RE.sub("", text)
    if "\r" in text:
        # A progress bar redraws its line with \r: only the last state of each line is real.
        text = "\n".join(line.rsplit("\r", 1)[-1] if line.strip("\r") else "" for line in text.split("\n"))
    return text


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
