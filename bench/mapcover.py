"""How much of a project's definitions a repository map shows, counted against tree-sitter's own
view of them: the definitions each grammar's ``queries/tags.scm`` tags (the query Aider's map is
built on; for TypeScript, JavaScript's and TypeScript's together), at the top level, that is not
inside a function's body. Python's module constants (``@definition.constant``, any assignment) are
not counted: the map shows upper-case constants, and only for its best files.

Shared by ``tests/test_repomap.py`` (fixture repositories) and ``bench/repomap_bench.py`` (real
projects from the package registries).
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from pathlib import Path
from typing import Any

from agentcli.planning.outline import language_of

__all__ = ["Coverage", "map_coverage", "tagged_top_level"]

_TAGS = {
    "python": ["tree_sitter_python"],
    "javascript": ["tree_sitter_javascript"],
    "typescript": ["tree_sitter_javascript", "tree_sitter_typescript"],
    "tsx": ["tree_sitter_javascript", "tree_sitter_typescript"],
    "go": ["tree_sitter_go"],
    "rust": ["tree_sitter_rust"],
    "java": ["tree_sitter_java"],
}
_LANGUAGE_FN = {"typescript": "language_typescript", "tsx": "language_tsx"}
_FUNCTIONS = frozenset({
    "function_definition", "lambda", "function_declaration", "function_expression", "arrow_function",
    "generator_function", "generator_function_declaration", "method_definition", "function_item", "closure_expression",
    "method_declaration", "constructor_declaration", "func_literal", "statement_block", "block",
})
# A block is a body (of a function, a loop, an if) everywhere but where these hold it.
_BODY_OWNERS = frozenset({"class_definition", "if_statement", "try_statement", "else_clause", "elif_clause",
                          "except_clause", "finally_clause", "internal_module", "module", "ambient_declaration",
                          "with_statement"})


@cache
def _query(lang: str) -> tuple[Any, Any]:
    from tree_sitter import Language, Parser, Query

    module = importlib.import_module("tree_sitter_typescript" if lang in ("typescript", "tsx") else _TAGS[lang][0])
    language = Language(getattr(module, _LANGUAGE_FN.get(lang, "language"))())
    texts = []
    for name in _TAGS[lang]:
        path = Path(importlib.import_module(name).__file__ or "").parent / "queries" / "tags.scm"
        texts.append(path.read_text(encoding="utf-8"))
    source = "\n".join(texts)
    # Patterns the other grammar lacks a node of are dropped, one at a time, until the query compiles.
    while True:
        try:
            return Parser(language), Query(language, source)
        except Exception as e:  # tree_sitter.QueryError: an unknown node type at a given offset
            m = re.search(r"row:? (\d+)", str(e))
            if m is None:
                raise
            source = _drop_pattern(source, int(m.group(1)))


def _drop_pattern(source: str, row: int) -> str:
    """The query without the top-level pattern around line ``row``."""
    lines = source.split("\n")
    start = row
    while start > 0 and not lines[start].startswith(("(", "[")):
        start -= 1
    end = row + 1
    while end < len(lines) and not lines[end].startswith(("(", "[")):
        end += 1
    return "\n".join(lines[:start] + lines[end:])


def _top_level(node: Any) -> bool:
    p = node.parent
    while p is not None:
        if p.type in _FUNCTIONS and not (p.type in ("block", "statement_block") and p.parent is not None
                                         and p.parent.type in _BODY_OWNERS):
            return False
        p = p.parent
    return True


def tagged_top_level(src: bytes, lang: str) -> set[tuple[int, str]]:
    """(line, name) of each top-level definition tree-sitter's tags query finds in ``src``."""
    from tree_sitter import QueryCursor

    parser, query = _query(lang)
    tree = parser.parse(src)
    out: set[tuple[int, str]] = set()
    for _, caps in QueryCursor(query).matches(tree.root_node):
        kinds = [k for k in caps if k.startswith("definition.")]
        if not kinds or "definition.constant" in kinds or "name" not in caps:
            continue
        node, name = caps[kinds[0]][0], caps["name"][0]
        if _top_level(node):
            out.add((name.start_point[0] + 1, src[name.start_byte:name.end_byte].decode("utf-8", "replace")))
    return out


class Coverage:
    """Definitions found and shown, per file and in all."""

    def __init__(self) -> None:
        self.found: dict[str, set[tuple[int, str]]] = {}
        self.shown: dict[str, set[tuple[int, str]]] = {}

    def share(self, files: list[str] | None = None) -> float:
        keys = self.found if files is None else [f for f in files if f in self.found]
        found = sum(len(self.found[f]) for f in keys)
        return 1.0 if not found else sum(len(self.shown[f]) for f in keys) / found

    def missed(self) -> list[str]:
        return [f"{f}:{line} {name}" for f, s in self.found.items() for line, name in sorted(s - self.shown[f])]


def _shown_lines(map_text: str) -> dict[str, list[str]]:
    """The map's outline: file -> its lines (``  139 def urlopen(...)``)."""
    out: dict[str, list[str]] = {}
    body = map_text.split("most relevant first:\n", 1)
    current: list[str] | None = None
    for line in body[1].splitlines() if len(body) == 2 else []:
        if line and not line.startswith(" "):
            current = out.setdefault(line.split("  (", 1)[0], [])
        elif current is not None:
            current.append(line)
    return out


def map_coverage(workspace: Path, map_text: str, files: list[str]) -> Coverage:
    """Of the top-level definitions tree-sitter tags in ``files``, those the map shows: a line of
    the file's outline at the definition's line that holds its name."""
    shown_lines = _shown_lines(map_text)
    cov = Coverage()
    for rel in files:
        lang = language_of(rel)
        if lang is None or lang not in _TAGS:
            continue
        found = tagged_top_level((workspace / rel).read_bytes(), lang)
        by_line: dict[int, str] = {}
        for line in shown_lines.get(rel, []):
            head, _, text = line.strip().partition(" ")
            if head.isdigit():
                by_line[int(head)] = by_line.get(int(head), "") + " " + text
        cov.found[rel] = found
        cov.shown[rel] = {(n, name) for n, name in found if name in by_line.get(n, "")}
    return cov


def outline_coverage(workspace: Path, files: list[str]) -> Coverage:
    """Of the top-level definitions tree-sitter tags in ``files``, those the map's outline of each
    file holds (whatever the budget lets the map show)."""
    from agentcli.planning.outline import outline_source

    cov = Coverage()
    for rel in files:
        lang = language_of(rel)
        if lang is None or lang not in _TAGS:
            continue
        src = (workspace / rel).read_bytes()
        found = tagged_top_level(src, lang)
        by_line: dict[int, str] = {}
        for s in outline_source(src, lang).symbols:
            by_line[s.line] = by_line.get(s.line, "") + " " + s.text
        cov.found[rel] = found
        cov.shown[rel] = {(n, name) for n, name in found if name in by_line.get(n, "")}
    return cov
