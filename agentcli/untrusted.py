"""Reading input agentcli does not control: bounded JSON, strict UTF-8 text.

Every file or argument a user, a model or an earlier crash may have produced (``--args``,
plan files, run records, config files, command-line text) is read through here, so that
a hostile or damaged input ends in one clear :class:`InputError` naming it (exit code 2)
instead of a ``RecursionError`` or ``UnicodeDecodeError`` deep inside the code that uses it.

The limits, and why:

* size: checked before parsing, so a huge file costs nothing but a ``stat``;
* depth: the standard library's parser recurses once per nesting level, and so do our own
  walkers (reference resolution, the redactor, canonical JSON); anything deeper than
  :data:`MAX_DEPTH` is refused after an iterative check, well below Python's recursion limit;
* text: JSON may hold lone surrogates (``"\\ud800"``), which no UTF-8 file, hash or terminal
  can take; they are refused (or, for run records, replaced by U+FFFD).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from agentcli.errors import UsageError

#: Nesting deeper than this is refused (real plans, args and records stay under 20).
MAX_DEPTH = 100
#: Default size limit of one JSON document (``--args``, a plan file).
MAX_JSON_BYTES = 8 * 1024 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")


class InputError(UsageError):
    """An input (a file, an argument, a record) that cannot be read as what it should be."""


def check_text(value: str, what: str) -> str:
    """``value`` if it is valid Unicode text; a lone surrogate (from bytes that were not UTF-8,
    as Python decodes ``argv`` and pipes) is an :class:`InputError` naming ``what``."""
    m = _SURROGATE.search(value)
    if m is not None:
        raise InputError(f"{what} is not valid UTF-8 text (at character {m.start()})")
    return value


def decode_utf8(data: bytes, what: str) -> str:
    """Strict UTF-8 (a leading BOM is dropped); an error names ``what`` and the byte offset."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} is not valid UTF-8 (byte {e.start}: {e.reason})") from None


def read_text_file(path: Path, what: str | None = None, *, max_bytes: int = MAX_JSON_BYTES) -> str:
    """A whole text file, size-checked before reading and strictly decoded."""
    label = what or str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(f"{label} is too large ({size} bytes; at most {max_bytes})")
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {label}: {e.strerror or e}") from None
    return decode_utf8(data, label)


def _where(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the document"


def _clean(value: Any, max_depth: int) -> bool:
    """Whether ``value`` is within ``max_depth`` and holds no lone surrogate: :func:`_walk`'s check
    without the path of every node (a plan of 1,000 steps has ~10,000), which only a failure needs."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        t = type(node)
        if t is str:
            if not node.isascii() and _SURROGATE.search(node):
                return False
        elif t is dict:
            if depth >= max_depth:
                return False
            for k, v in node.items():
                if not k.isascii() and _SURROGATE.search(k):
                    return False
                if type(v) is not str or not v.isascii():  # an ASCII string is clean: not pushed
                    stack.append((v, depth + 1))
        elif t is list:
            if depth >= max_depth:
                return False
            stack.extend([(v, depth + 1) for v in node])
        elif isinstance(node, str | dict | list):  # a subclass: the full walk
            return False
    return True


def _walk(value: Any, what: str, max_depth: int, surrogates: str) -> bool:
    """Iterative check of depth and text; True when a lone surrogate was seen (``replace`` mode)."""
    if _clean(value, max_depth):
        return False
    found = False
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, loc = stack.pop()
        if isinstance(node, str):
            if not node.isascii() and _SURROGATE.search(node):
                if surrogates == "reject":
                    check_text(node, f"{what}: {_where(loc)}")
                found = True
            continue
        if isinstance(node, dict):
            if len(loc) >= max_depth:
                raise InputError(f"{what} is nested too deeply (more than {max_depth} levels)")
            for k, v in node.items():
                if not k.isascii() and _SURROGATE.search(k):
                    if surrogates == "reject":
                        check_text(k, f"{what}: a key in {_where(loc)}")
                    found = True
                stack.append((v, (*loc, k)))
        elif isinstance(node, list):
            if len(loc) >= max_depth:
                raise InputError(f"{what} is nested too deeply (more than {max_depth} levels)")
            stack.extend((v, (*loc, i)) for i, v in enumerate(node))
    return found


def check_depth(value: Any, what: str, *, max_depth: int = MAX_DEPTH) -> None:
    """Refuse data (parsed JSON or TOML) nested deeper than ``max_depth`` or holding lone surrogates."""
    _walk(value, what, max_depth, "reject")


def load_json(
    data: bytes | str,
    what: str,
    *,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_DEPTH,
    surrogates: Literal["reject", "replace"] = "reject",
) -> Any:
    """Parse untrusted JSON within limits. Every failure is an :class:`InputError` naming ``what``:
    too large, not UTF-8, not JSON (with line and column), nested too deeply, lone surrogates
    (``surrogates="replace"`` turns them into U+FFFD instead: for records agentcli wrote itself)."""
    if len(data) > max_bytes:
        raise InputError(f"{what} is too large ({len(data)} bytes; at most {max_bytes})")
    text = decode_utf8(data, what) if isinstance(data, bytes) else data
    if isinstance(data, str) and surrogates == "reject":
        check_text(text, what)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{what} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise InputError(f"{what} is nested too deeply (more than {max_depth} levels)") from None
    if _walk(value, what, max_depth, surrogates):
        # Depth is bounded by now, so the round trip cannot recurse too far.
        value = json.loads(_SURROGATE.sub("\ufffd", json.dumps(value, ensure_ascii=False)))
    return value


def read_json_file(path: Path, what: str | None = None, *, max_bytes: int = MAX_JSON_BYTES,
                   max_depth: int = MAX_DEPTH) -> Any:
    """A JSON file read with :func:`load_json`'s limits (the size checked before reading)."""
    label = what or str(path)
    return load_json(read_text_file(path, label, max_bytes=max_bytes), label, max_bytes=max_bytes,
                     max_depth=max_depth)
