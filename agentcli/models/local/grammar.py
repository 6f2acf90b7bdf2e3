"""JSON schema -> a GBNF grammar llama.cpp accepts, for grammar-constrained decoding.

A 135M model loops inside strings until ``max_tokens`` under a plain schema, so a schema is first
passed through :func:`bound_schema` (every string gets a ``maxLength``, every array a
``maxItems``). It is then rewritten around what llama-cpp-python's schema converter gets wrong
(type lists, schemas without a structural keyword, a root ``$ref``, regex ``pattern`` escapes it
copies into grammars llama.cpp rejects: :func:`_normalize_for_converter`, :func:`_rewrite_pattern`),
converted, and checked by llama.cpp itself before use, since sampling with a grammar it cannot
parse crashes the process. Grammars are cached per schema.

llama_cpp is imported only when a grammar is built, not at module import.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

from agentcli.models.local.loader import import_llama_cpp, recent_errors

GRAMMAR_MAX_STRING = 200
#: Longest string any grammar allows (a schema's own larger maxLength is lowered to it).
GRAMMAR_CAP_STRING = 1000
GRAMMAR_MAX_ITEMS = 8


def bound_schema(schema: dict[str, Any], *, max_string: int = 200, max_items: int = 8,
                 cap_string: int | None = None) -> dict[str, Any]:
    """A copy of ``schema`` where every string has a ``maxLength`` and every array a ``maxItems``.

    Small models under a grammar loop inside an unbounded string or array until ``max_tokens``;
    a bound turns that into a closed string. Existing bounds are kept; a bound is never set
    below the schema's own ``minLength``/``minItems``. Strings fixed by ``enum``/``const`` are
    left alone. Recurses through ``properties``, ``additionalProperties``, ``items``,
    ``prefixItems``, ``anyOf``/``oneOf``/``allOf``, ``$defs``/``definitions`` and ``not``.
    """
    if max_string < 1 or max_items < 1:
        raise ValueError("max_string and max_items must be positive")
    out = copy.deepcopy(schema)
    _bound_in_place(out, max_string, max_items, cap_string)
    return out


def _types_of(node: dict[str, Any]) -> set[str]:
    t = node.get("type")
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return {x for x in t if isinstance(x, str)}
    return set()


def _bound_in_place(node: Any, max_string: int, max_items: int, cap: int | None = None) -> None:
    if isinstance(node, list):
        for item in node:
            _bound_in_place(item, max_string, max_items, cap)
        return
    if not isinstance(node, dict):
        return
    types = _types_of(node)
    if "string" in types and "maxLength" not in node and "enum" not in node and "const" not in node:
        node["maxLength"] = max(max_string, int(node.get("minLength", 0)))
    elif cap is not None and isinstance(node.get("maxLength"), int) and node["maxLength"] > cap:
        # llama.cpp refuses grammars whose repetitions pass ~2,000; a long answer is cut instead.
        node["maxLength"] = max(cap, int(node.get("minLength", 0)))
    if "array" in types and "maxItems" not in node:
        node["maxItems"] = max(max_items, int(node.get("minItems", 0)))
    for key in ("properties", "$defs", "definitions", "patternProperties"):
        sub = node.get(key)
        if isinstance(sub, dict):
            for child in sub.values():
                _bound_in_place(child, max_string, max_items, cap)
    for key in ("items", "additionalProperties", "prefixItems", "anyOf", "oneOf", "allOf", "not"):
        if key in node:
            _bound_in_place(node[key], max_string, max_items, cap)


_STRUCTURAL_KEYS = {
    "type",
    "$ref",
    "anyOf",
    "oneOf",
    "allOf",
    "const",
    "enum",
    "properties",
    "additionalProperties",
    "items",
    "prefixItems",
    "pattern",
    "format",
}


def _any_primitive(max_string: int) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "string", "maxLength": max_string},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
        ]
    }


def _normalize_for_converter(node: Any, max_string: int, *, keep_patterns: bool) -> Any:
    """Rewrite what llama-cpp-python's schema converter gets wrong into what it handles.

    - ``"type": [..]`` becomes ``anyOf`` (the converter drops maxLength & co. on type lists);
    - a schema with no structural keyword (pydantic's ``Any`` is ``{"title": ...}``) crashes the
      converter, and ``{}`` becomes "any object": both become a bounded primitive union;
    - ``pattern`` is rewritten into the regex subset the converter translates correctly, or
      dropped (the length bound stays) when it cannot be;
    - ``enum`` / ``const`` strings holding a quote, a backslash or a control character are left out
      (the converter escapes them wrongly and llama.cpp rejects the whole grammar: a task naming
      ``symbol"\\,`` once made every plan fail); an enum left empty becomes a plain string.
    """
    if isinstance(node, list):
        return [_normalize_for_converter(x, max_string, keep_patterns=keep_patterns) for x in node]
    if not isinstance(node, dict):
        return node
    if not (_STRUCTURAL_KEYS & node.keys()):
        return _any_primitive(max_string)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {
                k: _normalize_for_converter(v, max_string, keep_patterns=keep_patterns) for k, v in value.items()
            }
        elif key in ("items", "additionalProperties", "prefixItems", "anyOf", "oneOf", "allOf"):
            out[key] = _normalize_for_converter(value, max_string, keep_patterns=keep_patterns)
        elif key == "pattern":
            rewritten = _rewrite_pattern(value) if keep_patterns and isinstance(value, str) else None
            if rewritten is not None:
                out[key] = rewritten
        elif key == "enum" and isinstance(value, list):
            kept = [v for v in value if not _unliteral(v)]
            if kept:
                out[key] = kept
            else:
                out.setdefault("type", "string")
        elif key == "const" and _unliteral(value):
            out.setdefault("type", "string")
        else:
            out[key] = value
    t = out.get("type")
    if isinstance(t, list) and not ({"anyOf", "oneOf", "$ref", "const", "enum"} & out.keys()):
        rest = {k: v for k, v in out.items() if k != "type"}
        out = {"anyOf": [{**rest, "type": x} for x in t]}
    return out


def _unliteral(value: Any) -> bool:
    """A string the converter cannot put into a grammar literal correctly."""
    return isinstance(value, str) and any(c in '"\\' or ord(c) < 0x20 or c == "\x7f" for c in value)


# What a JSON string may hold unescaped: no quote, no backslash, no control character.
_JSON_CHAR_EXCLUDE = r"\x22\x5C\x00-\x1F\x7F"
_CLASS_ESCAPES = {"d": "0-9", "w": "a-zA-Z0-9_", "s": " "}
_NEGATED_CLASS_ESCAPES = {"D": "0-9", "W": "a-zA-Z0-9_", "S": " "}


def _rewrite_pattern(pattern: str) -> str | None:
    """Rewrite a regex into the subset llama-cpp-python's converter turns into a valid grammar.

    The converter (0.3.x) copies escapes such as ``\\d`` or ``\\.`` into GBNF literals, which
    llama.cpp then rejects ("unknown escape"); it refuses ``(?:`` and unanchored patterns; and
    ``.`` / ``[^...]`` let a raw quote or control character into the JSON string. Returns
    ``None`` for what cannot be expressed (lookarounds, backreferences, unanchored patterns).
    """
    if not (pattern.startswith("^") and pattern.endswith("$")) or pattern.endswith("\\$"):
        return None
    body = pattern[1:-1]
    out: list[str] = []
    i = 0
    in_class = False
    while i < len(body):
        c = body[i]
        if c == "\\":
            if i + 1 >= len(body):
                return None
            e = body[i + 1]
            i += 2
            if e in _CLASS_ESCAPES:
                out.append(_CLASS_ESCAPES[e] if in_class else f"[{_CLASS_ESCAPES[e]}]")
            elif e in _NEGATED_CLASS_ESCAPES:
                if in_class:
                    return None
                out.append(f"[^{_NEGATED_CLASS_ESCAPES[e]}{_JSON_CHAR_EXCLUDE}]")
            elif e.isalnum():  # \b, \1, \p{..}, \n ...: no faithful grammar equivalent here
                return None
            else:
                hex_char = f"\\x{ord(e):02X}"
                out.append(hex_char if in_class else f"[{hex_char}]")
            continue
        if in_class:
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            if body.startswith("[^", i):
                out.append("[^" + _JSON_CHAR_EXCLUDE)
                i += 2
            else:
                out.append("[")
                i += 1
            continue
        if c == "(" and body.startswith("(?", i):
            if body.startswith("(?:", i):
                out.append("(")
                i += 3
                continue
            return None  # lookaround, named group, inline flags
        if c == ".":
            out.append(f"[^{_JSON_CHAR_EXCLUDE}]")
            i += 1
            continue
        if c in "^$":
            return None  # inner anchors
        out.append(c)
        i += 1
    if in_class:
        return None
    return "^" + "".join(out) + "$"


def _inline_root_ref(schema: dict[str, Any]) -> dict[str, Any]:
    # The converter does not walk the rest of a root that holds a $ref, so refs inside $defs
    # stay unresolved (KeyError on recursive models). Replace the root by its target.
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = schema
    for part in ref[2:].split("/"):
        if not isinstance(target, dict) or part not in target:
            return schema
        target = target[part]
    if not isinstance(target, dict):
        return schema
    merged = {k: v for k, v in schema.items() if k != "$ref"}
    merged.update(copy.deepcopy(target))
    return merged


# The converter's string character rule lets raw control characters into a JSON string, which
# strict JSON parsers (json.loads, pydantic) reject; llama.cpp's C++ converter excludes them.
_CHAR_RULE_FIX = (
    r'char ::= [^"\\] | "\\"',
    r'char ::= [^"\\\x7F\x00-\x1F] | "\\"',
)

_grammar_cache: dict[str, str] = {}
_grammar_cache_lock = threading.Lock()


class SchemaNotSupported(Exception):
    pass


def gbnf_for(schema: dict[str, Any], vocab: Any) -> str:
    """A GBNF grammar for ``schema`` that llama.cpp accepts (cached per schema)."""
    key = json.dumps(schema, sort_keys=True, default=str)
    with _grammar_cache_lock:
        cached = _grammar_cache.get(key)
    if cached is not None:
        return cached
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    errors: list[str] = []
    bounded = bound_schema(schema, max_string=GRAMMAR_MAX_STRING, max_items=GRAMMAR_MAX_ITEMS,
                           cap_string=GRAMMAR_CAP_STRING)
    for keep_patterns in (True, False):
        prepared = _normalize_for_converter(_inline_root_ref(bounded), GRAMMAR_MAX_STRING, keep_patterns=keep_patterns)
        try:
            gbnf = json_schema_to_gbnf(json.dumps(prepared))
        except Exception as e:  # the converter asserts on what it does not support
            errors.append(f"{type(e).__name__}: {e}")
            continue
        gbnf = gbnf.replace(*_CHAR_RULE_FIX)
        if _grammar_parses(gbnf, vocab):
            with _grammar_cache_lock:
                _grammar_cache[key] = gbnf
            return gbnf
        errors.append(recent_errors[-1] if recent_errors else "llama.cpp rejected the grammar")
    raise SchemaNotSupported(" ".join(errors[-1].split())[:300])


@contextlib.contextmanager
def _quiet_c_stderr() -> Iterator[None]:
    """Silence writes to file descriptor 2 (C code) for the duration."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _grammar_parses(gbnf: str, vocab: Any) -> bool:
    # A grammar llama.cpp cannot parse yields a NULL sampler, and adding NULL to the sampler
    # chain crashes the process: check first, with a throwaway sampler.
    llama_cpp = import_llama_cpp()
    recent_errors.clear()
    with _quiet_c_stderr():  # llama.cpp prints a rejected grammar whole, straight to fd 2
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


__all__ = [
    "GRAMMAR_CAP_STRING",
    "GRAMMAR_MAX_ITEMS",
    "GRAMMAR_MAX_STRING",
    "SchemaNotSupported",
    "bound_schema",
    "gbnf_for",
]
