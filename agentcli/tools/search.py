"""search_code: literal or regex search over the workspace's text files.

The argument model is built from the configuration: ``extensions`` is a list of
``Literal`` values taken from ``tools.search_extensions``, so the JSON Schema the
planner sees enumerates exactly the allowed extensions, and anything else is an
``invalid_args`` error naming them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, create_model, field_validator, model_validator

from agentcli.tools.base import ArgsModel, Tool, ToolContext
from agentcli.tools.paths import WorkspaceWalker, is_binary

__all__ = ["SearchCodeArgsBase", "SearchMatch", "search_args_model", "search_tool"]

_SNIPPET_CHARS = 200
# Lines longer than this are only searched in their head: Python's regex engine holds the
# GIL, so a pathological pattern over a megabyte-long line could stall the whole agent.
_MAX_LINE_CHARS = 4000


class SearchMatch(BaseModel):
    """One match of search_code (its output is a list of these)."""

    file: str = Field(..., description="Path of the file, relative to the workspace root.")
    line: int = Field(..., description="Line number, 1-based.")
    snippet: str = Field(..., description="The matching line as it is (indentation kept), at most 200 characters.")


class SearchCodeArgsBase(ArgsModel):
    """Fields of search_code except ``extensions``, whose type depends on the configuration."""

    query: str = Field(
        ...,
        min_length=3,
        max_length=200,
        description="Text to find. Case-insensitive unless it contains an uppercase letter.",
    )
    max_results: int = Field(5, ge=1, le=20, description="Maximum matches returned.")
    regex: bool = Field(False, description="Treat query as a Python regular expression, not literal text.")

    @field_validator("extensions", mode="before", check_fields=False)
    @classmethod
    def _dot_prefix(cls, value: Any) -> Any:
        # Models often write "py" for ".py"; accept it rather than spend a correction round.
        if isinstance(value, list):
            return [f".{v}" if isinstance(v, str) and v and not v.startswith(".") else v for v in value]
        return value

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


def search_args_model(extensions: Sequence[str]) -> type[SearchCodeArgsBase]:
    """The search_code args model for a configured list of extensions."""
    exts = tuple(dict.fromkeys(extensions))
    ext_item: Any = Literal.__getitem__(exts) if exts else str
    model: type[SearchCodeArgsBase] = create_model(
        "SearchCodeArgs",
        __base__=SearchCodeArgsBase,
        extensions=(
            list[ext_item] | None,
            Field(
                None,
                min_length=1,
                description="Only files with these extensions. Default: every allowed extension.",
            ),
        ),
    )
    return model


def _search(args: Any, ctx: ToolContext) -> list[dict[str, Any]]:
    allowed = tuple(args.extensions or ctx.config.search_extensions)
    pattern = args.pattern()
    walker = WorkspaceWalker(ctx.workspace, ctx.data_dir)
    results: list[dict[str, Any]] = []
    for path, rel in walker.iter_files():
        if not rel.endswith(allowed):
            continue
        try:
            if path.stat().st_size > ctx.config.max_file_bytes or is_binary(path):
                continue
            with path.open("r", encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    if pattern.search(line[:_MAX_LINE_CHARS]):
                        # Indentation kept: a model copies an edit's search text from it.
                        snippet = line.rstrip("\r\n")
                        if len(snippet) > _SNIPPET_CHARS:
                            snippet = snippet[:_SNIPPET_CHARS] + "..."
                        results.append({"file": rel, "line": lineno, "snippet": snippet})
                        if len(results) >= args.max_results:
                            return results
        except OSError:
            continue  # unreadable or vanished mid-walk: not the model's problem
    return results


def search_tool(extensions: Sequence[str]) -> Tool:
    return Tool(
        name="search_code",
        description="Search the workspace's text files for a literal string (or a regex). "
        "Returns file, line and snippet for each match. Skips binary, huge and .gitignored files.",
        args_model=search_args_model(extensions),
        func=_search,
        returns=list[SearchMatch],
    )
