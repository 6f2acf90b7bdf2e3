"""search_code: literal or regex search over the workspace's text files.

Every text file that ``.gitignore`` (and ``.git/info/exclude``) does not exclude is searched,
whatever its extension (binary files, found by a NUL byte in their head, and files over
``tools.max_file_bytes`` are skipped); an optional ``glob`` narrows it: ``*.ts`` (a file name, at
any depth), ``src/**`` or ``src/**/*.tsx`` (a path from the workspace root), ``*.{ts,tsx}``.
"""

from __future__ import annotations

import re
from typing import Any, Self

from pydantic import BaseModel, Field, field_validator, model_validator

from agentcli.tools.base import ArgsModel, Tool, ToolContext
from agentcli.tools.paths import WorkspaceWalker, check_glob, glob_to_regex, is_binary

__all__ = ["MAX_CONTEXT", "SearchCodeArgs", "SearchMatch", "search_tool"]

_SNIPPET_CHARS = 200
#: The most lines a match shows on each side (a larger ``context`` is taken as this): a search with
#: context stands for the read that would follow it, not for reading whole files.
MAX_CONTEXT = 100
# Lines longer than this are only searched in their head: Python's regex engine holds the
# GIL, so a pathological pattern over a megabyte-long line could stall the whole agent.
_MAX_LINE_CHARS = 4000
_BRACES_RE = re.compile(r"\{([^{}]*)\}")


class SearchMatch(BaseModel):
    """One match of search_code (its output is a list of these)."""

    file: str = Field(..., description="Path of the file, relative to the workspace root.")
    line: int = Field(..., description="Line number, 1-based.")
    snippet: str = Field(..., description="The matching line as it is (indentation kept), at most 200 characters; "
                         "with context, the lines around it as they are, from from_line on.")
    from_line: int | None = Field(None, description="With context: the line snippet starts at.")


class SearchCodeArgs(ArgsModel):
    """Arguments of search_code."""

    query: str = Field(
        ...,
        min_length=1,
        max_length=200,
        description="Text to find. Case-insensitive unless it contains an uppercase letter.",
    )
    glob: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Only files matching this glob: '*.ts' a file name at any depth, 'src/**/*.tsx' a path "
        "from the workspace root, '*.{ts,tsx}' either.",
    )
    max_results: int = Field(5, ge=1, le=20, description="At most this many matches.")
    regex: bool = Field(False, description="query is a Python regular expression.")
    context: int = Field(0, ge=0, description="Lines of code shown before and after each match (as read_file "
                         "gives them), at most 100.")

    @field_validator("context")
    @classmethod
    def _at_most(cls, value: int) -> int:
        # Taken down to the most, not refused: in a planner's survey a refused call costs a round.
        return min(value, MAX_CONTEXT)

    @model_validator(mode="after")
    def _compiles(self) -> Self:
        if self.regex:
            try:
                re.compile(self.query)
            except re.error as exc:
                raise ValueError(f"query is not a valid regular expression: {exc}") from None
        return self

    def pattern(self) -> re.Pattern[str]:
        flags = 0 if any(c.isupper() for c in self.query) else re.IGNORECASE
        return re.compile(self.query if self.regex else re.escape(self.query), flags)


def _expand(glob: str) -> list[str]:
    """``*.{ts,tsx}`` -> ``*.ts``, ``*.tsx`` (one level of braces, as shells and ripgrep read it)."""
    m = _BRACES_RE.search(glob)
    if m is None:
        return [glob]
    return [x for alt in m.group(1).split(",") for x in _expand(glob[: m.start()] + alt + glob[m.end():])]


def _matcher(glob: str | None) -> Any:
    """A predicate on workspace-relative paths: a glob without ``/`` is matched against the file
    name (as in ``.gitignore``), one with ``/`` against the whole path."""
    if glob is None:
        return lambda rel: True
    globs = [g.removeprefix("./") for g in _expand(glob)]
    by_name = [glob_to_regex(g) for g in globs if "/" not in g]
    by_path = [glob_to_regex(g) for g in globs if "/" in g]

    def match(rel: str) -> bool:
        name = rel.rpartition("/")[2]
        return any(r.match(name) for r in by_name) or any(r.match(rel) for r in by_path)

    return match


def _cut(line: str) -> str:
    return line if len(line) <= _SNIPPET_CHARS else line[:_SNIPPET_CHARS] + "..."


def _with_context(rel: str, lines: list[str], hits: list[int], context: int) -> list[dict[str, Any]]:
    """The matches of one file, each with the lines around it; matches whose lines overlap share one
    window, shown with the first of them (the others show their own line only)."""
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(hits):
        first, last = max(1, hits[i] - context), min(len(lines), hits[i] + context)
        j = i + 1
        while j < len(hits) and hits[j] - context <= last + 1:
            last = min(len(lines), hits[j] + context)
            j += 1
        out.append({"file": rel, "line": hits[i], "from_line": first,
                    "snippet": "\n".join(_cut(x) for x in lines[first - 1:last])})
        out += [{"file": rel, "line": n, "snippet": _cut(lines[n - 1])} for n in hits[i + 1:j]]
        i = j
    return out


def _search(args: SearchCodeArgs, ctx: ToolContext) -> list[dict[str, Any]]:
    if args.glob is not None:
        check_glob(ctx.workspace, args.glob)
    wanted = _matcher(args.glob)
    pattern = args.pattern()
    walker = WorkspaceWalker(ctx.workspace, ctx.data_dir)
    results: list[dict[str, Any]] = []
    for path, rel in walker.iter_files():
        if not wanted(rel):
            continue
        try:
            if path.stat().st_size > ctx.config.max_file_bytes or is_binary(path):
                continue
            with path.open("r", encoding="utf-8", errors="replace") as f:
                if args.context:
                    # Read whole (it is at most max_file_bytes), split as iterating the file splits, so
                    # line numbers agree with read_file's.
                    lines = f.read().split("\n")
                    if lines and lines[-1] == "":
                        lines.pop()
                    hits = [n for n, line in enumerate(lines, 1) if pattern.search(line[:_MAX_LINE_CHARS])]
                    results += _with_context(rel, lines, hits[: args.max_results - len(results)], args.context)
                else:
                    for lineno, line in enumerate(f, 1):
                        if pattern.search(line[:_MAX_LINE_CHARS]):
                            # Indentation kept: a model copies an edit's search text from it.
                            results.append({"file": rel, "line": lineno, "snippet": _cut(line.rstrip("\r\n"))})
                            if len(results) >= args.max_results:
                                return results
            if len(results) >= args.max_results:
                return results
        except OSError:
            continue  # unreadable or vanished mid-walk: not the model's problem
    return results


def search_tool() -> Tool:
    """The search_code tool."""
    return Tool(
        name="search_code",
        description="Search the workspace's text files (any extension) for literal text or a regex: file, "
        "line and snippet of each match. Skips binary, huge and .gitignored files.",
        args_model=SearchCodeArgs,
        func=_search,
        returns=list[SearchMatch],
    )
