"""File tools: read_file, list_files, write_file, edit_file. All confined to the workspace."""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self, TextIO

from pydantic import Field, model_validator

from agentcli.redact import REDACTED, introduces_mask
from agentcli.tools.base import ArgsModel, Capped, Tool, ToolContext, ToolFailure
from agentcli.tools.closest import closest_lines
from agentcli.tools.paths import (
    WorkspaceWalker,
    check_glob,
    glob_to_regex,
    is_binary,
    rel_posix,
    resolve_in_workspace,
)

__all__ = ["file_tools"]

_MAX_DIFF_CHARS = 200_000


# -- read_file --------------------------------------------------------------------------------


class ReadFileArgs(ArgsModel):
    path: str = Field(..., min_length=1, description="File path relative to the workspace root.")
    start_line: int | None = Field(None, ge=1, description="First line (1-based; default 1).")
    end_line: int | None = Field(None, ge=1, description="Last line, inclusive (default: the end).")

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.start_line is not None and self.end_line is not None and self.end_line < self.start_line:
            raise ValueError("end_line must be >= start_line")
        return self


def _existing_file(ctx: ToolContext, raw: str) -> Path:
    path = resolve_in_workspace(ctx.workspace, raw)
    if path.is_dir():
        raise ToolFailure(f"{raw!r} is a directory; use list_files to see what it holds")
    if not path.exists():
        raise ToolFailure(f"file {raw!r} does not exist")
    if not path.is_file():
        raise ToolFailure(f"{raw!r} is not a regular file")
    return path


def _text_file(ctx: ToolContext, raw: str) -> Path:
    path = _existing_file(ctx, raw)
    if is_binary(path):
        size = path.stat().st_size
        raise ToolFailure(f"{raw!r} is a binary file ({size} bytes); only text files can be read")
    return path


def _capped_lines(f: TextIO, cap: int) -> Iterator[str]:
    # Like iterating the file, but one enormous line (minified JS, a data dump) is cut at
    # `cap` characters instead of being loaded whole.
    while True:
        line = f.readline(cap)
        if not line:
            return
        if len(line) == cap and not line.endswith("\n"):
            while (rest := f.readline(cap)) and not rest.endswith("\n"):
                pass
        yield line


def read_file(args: ReadFileArgs, ctx: ToolContext) -> str | Capped:
    path = _text_file(ctx, args.path)
    size = path.stat().st_size
    start = args.start_line or 1
    end = args.end_line
    total = ctx.config.output_limit_chars
    limit = total - min(200, total // 4)  # room for the truncation note
    # Streamed line by line: a file over max_file_bytes is never held in memory whole,
    # and reading stops as soon as the requested range (or the output limit) is covered.
    chunks: list[str] = []
    used = 0
    last = start - 1
    with path.open("r", encoding="utf-8", errors="replace", newline="") as f:
        for lineno, line in enumerate(_capped_lines(f, limit + 1), 1):
            if lineno < start:
                continue
            if end is not None and lineno > end:
                break
            if used + len(line) > limit:
                more = f"file is {size} bytes" if size > ctx.config.max_file_bytes else "more lines follow"
                chunks.append(
                    f"\n[... output truncated after line {last} ({more}); "
                    f"read on with start_line={last + 1} ...]"
                )
                return Capped("".join(chunks), truncated=True)
            chunks.append(line)
            used += len(line)
            last = lineno
    if last < start and start > 1:
        raise ToolFailure(f"start_line {start} is past the end of {args.path!r} ({last} lines)")
    return "".join(chunks)


# -- list_files -------------------------------------------------------------------------------


class ListFilesArgs(ArgsModel):
    pattern: str = Field(
        "**/*",
        min_length=1,
        max_length=300,
        description="Glob relative to the workspace root: '**/*.py' = all Python files, "
        "'src/*' = files directly in src. '*' stays within one directory.",
    )


def list_files(args: ListFilesArgs, ctx: ToolContext) -> list[str]:
    check_glob(ctx.workspace, args.pattern)
    regex = glob_to_regex(args.pattern.removeprefix("./"))
    walker = WorkspaceWalker(ctx.workspace, ctx.data_dir)
    return [rel for _, rel in walker.iter_files() if regex.match(rel)]


# -- write_file and edit_file -----------------------------------------------------------------


class WriteFileArgs(ArgsModel):
    path: str = Field(..., min_length=1, description="File path relative to the workspace root.")
    content: str = Field(..., description="The complete new content of the file.")


class EditFileArgs(ArgsModel):
    path: str = Field(..., min_length=1, description="File path relative to the workspace root.")
    search: str = Field(
        ..., min_length=1, description="Exact text to replace; must occur exactly once in the file."
    )
    replace: str = Field(..., description="Text to put in its place.")


def _writable_target(ctx: ToolContext, raw: str) -> Path:
    path = resolve_in_workspace(ctx.workspace, raw)
    rel_parts = path.relative_to(ctx.workspace.resolve()).parts
    if ".git" in rel_parts:
        # Writing into .git (hooks, config) would let a write turn into code execution.
        raise ToolFailure(f"{raw!r} is inside .git/; the agent does not write there")
    if path.is_dir():
        raise ToolFailure(f"{raw!r} is a directory")
    return path


def read_for_edit(path: Path) -> tuple[str, bool]:
    """A file's text to edit, and whether every line of it ends in CRLF. Such a file is read with LF
    line ends, so a search text a model writes with ``\n`` matches, and :func:`line_ends_back` gives
    its CRLF back on write; any other file is read exactly as it is, so an edit never rewrites line
    ends it did not touch (a mixed file keeps its own)."""
    with path.open("r", encoding="utf-8", errors="replace", newline="") as f:
        raw = f.read()
    if "\r\n" in raw and raw.count("\r\n") == raw.count("\n"):
        return raw.replace("\r\n", "\n"), True
    return raw, False


def line_ends_back(text: str, crlf: bool) -> str:
    """``text`` (LF line ends, or CRLF a model copied) with the line ends of a CRLF file when ``crlf``."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n") if crlf else text


def _read_text_or_empty(path: Path, raw: str) -> tuple[str, bool]:
    if not path.exists():
        return "", False
    if is_binary(path):
        raise ToolFailure(f"{raw!r} is a binary file; it cannot be edited as text")
    return read_for_edit(path)


def unified_diff(old: str, new: str, rel: str, *, created: bool = False) -> str:
    """The unified diff between two versions of a workspace file, as ``git diff`` shows it."""
    diff = "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile="/dev/null" if created else f"a/{rel}",
            tofile=f"b/{rel}",
        )
    )
    if diff and not diff.endswith("\n"):
        diff += "\n"
    if len(diff) > _MAX_DIFF_CHARS:
        diff = diff[:_MAX_DIFF_CHARS] + f"\n[... diff truncated: {len(diff)} chars in all ...]\n"
    return diff or f"(no change to {rel})\n"


@functools.cache
def _new_file_mode() -> int:
    """0o666 less the umask, as open() would create the file (mkstemp makes it 0o600). Read from
    /proc: os.umask() can only be read by setting it, a race with tools running in threads."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path("/proc/self/status").read_text()
        umask = next(line for line in status.splitlines() if line.startswith("Umask:")).split()[1]
        return 0o666 & ~int(umask, 8)
    return 0o644


def _atomic_write(path: Path, content: str) -> None:
    # Write to a temp file and rename, so an interrupted write never leaves half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else _new_file_mode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def masked_write_problem(loc: list[str | int], path: str) -> dict[str, Any]:
    """The ``invalid_args`` entry of a write that would put a secret's mask into a file."""
    return {"loc": loc, "type": "masked_secret",
            "msg": f"the text holds {REDACTED}, which stands for a secret that was masked before you saw "
                   f"it: writing it would put the mask into {path} in place of the real value. Do not "
                   f"write {REDACTED}; leave the part of the file that holds it unchanged (edit only the "
                   "lines around it), or tell the user that the secret must be set by hand"}


def _check_write(args: WriteFileArgs, ctx: ToolContext) -> list[dict[str, Any]]:
    if REDACTED not in args.content:
        return []
    path = resolve_in_workspace(ctx.workspace, args.path)
    old = path.read_text(encoding="utf-8", errors="replace") if path.is_file() and not is_binary(path) else ""
    return [masked_write_problem(["content"], args.path)] if introduces_mask(args.content, old) else []


def _check_edit(args: EditFileArgs, ctx: ToolContext) -> list[dict[str, Any]]:
    return [masked_write_problem(["replace"], args.path)] if introduces_mask(args.replace, args.search) else []


def masked_search_hint(search: str, text: str) -> str:
    """A hint for a search text that was not found because it holds a mask the file does not."""
    if REDACTED in search and REDACTED not in text:
        return (f" It holds {REDACTED}, the mask of a secret you were not shown; the file holds the real "
                "value: choose a search text without that part.")
    return ""


def preview_write(args: WriteFileArgs, ctx: ToolContext) -> str:
    path = _writable_target(ctx, args.path)
    old, crlf = _read_text_or_empty(path, args.path)
    return unified_diff(line_ends_back(old, crlf), line_ends_back(args.content, crlf),
                        rel_posix(ctx.workspace, path), created=not path.exists())


def write_file(args: WriteFileArgs, ctx: ToolContext) -> str:
    path = _writable_target(ctx, args.path)
    existed = path.exists()
    if existed and is_binary(path):
        raise ToolFailure(f"{args.path!r} is a binary file; the agent does not overwrite binaries")
    # A file whose lines all end in CRLF keeps them: the new content is written with CRLF too.
    content = line_ends_back(args.content, existed and read_for_edit(path)[1])
    _atomic_write(path, content)
    verb = "overwrote" if existed else "created"
    return f"{verb} {rel_posix(ctx.workspace, path)} ({len(content.encode())} bytes)"


def _apply_edit(args: EditFileArgs, ctx: ToolContext) -> tuple[Path, str, str]:
    path = _writable_target(ctx, args.path)
    if not path.exists():
        raise ToolFailure(f"file {args.path!r} does not exist; use write_file to create it")
    old, crlf = _read_text_or_empty(path, args.path)
    search = args.search.replace("\r\n", "\n") if crlf else args.search
    count = old.count(search)
    if count == 0:
        raise ToolFailure(f"the search text was not found in {args.path!r}; it must match exactly."
                          + masked_search_hint(search, old)
                          + f" The closest text of the file is:\n{closest_lines(old, search)}")
    if count > 1:
        raise ToolFailure(
            f"the search text occurs {count} times in {args.path!r}; include more surrounding lines "
            "so that it occurs exactly once"
        )
    new = old.replace(search, args.replace.replace("\r\n", "\n") if crlf else args.replace, 1)
    return path, line_ends_back(old, crlf), line_ends_back(new, crlf)


def preview_edit(args: EditFileArgs, ctx: ToolContext) -> str:
    path, old, new = _apply_edit(args, ctx)
    return unified_diff(old, new, rel_posix(ctx.workspace, path))


def edit_file(args: EditFileArgs, ctx: ToolContext) -> str:
    path, _old, new = _apply_edit(args, ctx)
    _atomic_write(path, new)
    return f"edited {rel_posix(ctx.workspace, path)}: replaced 1 occurrence"


def file_tools() -> list[Tool]:
    return [
        Tool(
            name="read_file",
            description="Read a text file of the workspace, optionally only lines start_line..end_line.",
            args_model=ReadFileArgs,
            func=read_file,
            returns=str,
        ),
        Tool(
            name="list_files",
            description="List workspace files matching a glob. Skips .gitignored files, .git/ and .venv/.",
            args_model=ListFilesArgs,
            func=list_files,
            returns=list[str],
        ),
        Tool(
            name="write_file",
            description="Create or overwrite a text file (parent directories are created).",
            args_model=WriteFileArgs,
            func=write_file,
            risk="write",
            preview_func=preview_write,
            check_func=_check_write,
            returns=str,
        ),
        Tool(
            name="edit_file",
            description="Replace one exact occurrence of `search` with `replace` in a text file.",
            args_model=EditFileArgs,
            func=edit_file,
            risk="write",
            preview_func=preview_edit,
            check_func=_check_edit,
            returns=str,
        ),
    ]
