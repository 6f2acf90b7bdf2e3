"""apply_edits: search/replace edits to existing files, checked in full before anything changes.

The edits are data: a list of ``{path, search, replace}`` (:class:`Edit`), typically the answer of
an ``llm`` step whose answer shape is ``edits`` (sent to the model as ``response_format``,
:class:`EditList`). Before a single byte is written, every edit is checked against the files
as they will be when it applies (edits to one file apply in order): its file exists in the
workspace and is text, and its ``search`` occurs there exactly once. A problem is an
``invalid_args`` error with one entry per failing edit (``loc`` ``["edits", i, "search"]``) that
says what was wrong and shows the closest text of the file (an edit whose replacement would put
a secret's ``[REDACTED]`` mask into the file is one too, ``masked_secret``), so the executor's model can correct
the edits the way it corrects any invalid arguments (``executor.max_arg_corrections``). The
approval prompt shows the combined diff of every file. New files are written with write_file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentcli.redact import introduces_mask
from agentcli.tools.base import ArgsModel, Tool, ToolContext, ToolFailure
from agentcli.tools.closest import closest_lines
from agentcli.tools.files import (
    _atomic_write,
    line_ends_back,
    masked_search_hint,
    masked_write_problem,
    read_for_edit,
    unified_diff,
)
from agentcli.tools.paths import is_binary, rel_posix, resolve_in_workspace

__all__ = ["Edit", "EditList", "apply_edits_tool", "plan_edits"]

MAX_EDITS = 50


class Edit(BaseModel):
    """One search/replace edit of an existing file."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., min_length=1, description="File to change, relative to the workspace root; "
                      "it must exist (write_file creates new files).")
    search: str = Field(..., min_length=1, description="Text of the file to replace, copied exactly "
                        "(indentation included), with enough lines to occur exactly once in the file.")
    replace: str = Field(..., description="The text that takes its place.")


#: What an empty edit list does (the model found nothing to change): said, not an error.
NO_CHANGE = "no change: the edit list is empty"


class EditList(BaseModel):
    """The answer of an ``llm`` step whose answer shape is ``edits``."""

    model_config = ConfigDict(extra="forbid")

    edits: list[Edit] = Field(..., max_length=MAX_EDITS,
                              description="The edits, applied in order; empty when nothing needs to change.")


class ApplyEditsArgs(ArgsModel):
    edits: list[Edit] = Field(
        ..., max_length=MAX_EDITS,
        description="Edits applied in order (none: nothing is changed); usually {{sN.output}} of an llm step "
        "with \"answer\": \"edits\".",
    )

    @field_validator("edits", mode="before")
    @classmethod
    def _whole_answer(cls, value: Any) -> Any:
        # {{sN.output}} of an edits step is the list; the whole answer {"edits": [...]} is accepted too.
        if isinstance(value, dict) and set(value) == {"edits"}:
            return value["edits"]
        return value


def _problem(i: int, field: str, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["edits", i, field], "msg": msg, "type": kind}


def _squash(text: str) -> str:
    return "\n".join(line.strip() for line in text.strip().splitlines())


def plan_edits(edits: list[Edit], ctx: ToolContext) -> tuple[dict[Path, tuple[str, str]], list[dict[str, Any]]]:
    """Every file the edits change, as ``{path: (old, new)}``, and every problem (none: safe to
    apply). Nothing is written."""
    files: dict[Path, tuple[str, str]] = {}
    problems: list[dict[str, Any]] = []
    crlf_files: set[Path] = set()  # every line ends in CRLF: edited as LF, written back with CRLF
    for i, edit in enumerate(edits):
        try:
            path = resolve_in_workspace(ctx.workspace, edit.path)
        except ToolFailure as exc:
            problems.append(_problem(i, "path", exc.message, exc.error_type))
            continue
        rel_parts = path.relative_to(ctx.workspace.resolve()).parts
        if ".git" in rel_parts:
            problems.append(_problem(i, "path", f"{edit.path!r} is inside .git/; the agent does not write there",
                                     "path_not_writable"))
            continue
        if path not in files:
            if not path.is_file():
                what = "is a directory" if path.is_dir() else "does not exist; use write_file to create it"
                problems.append(_problem(i, "path", f"{edit.path!r} {what}", "file_missing"))
                continue
            if is_binary(path):
                problems.append(_problem(i, "path", f"{edit.path!r} is a binary file", "binary_file"))
                continue
            text, crlf = read_for_edit(path)
            files[path] = (text, text)
            if crlf:
                crlf_files.add(path)
        old, current = files[path]
        if introduces_mask(edit.replace, edit.search):
            problems.append(masked_write_problem(["edits", i, "replace"], edit.path))
            continue
        search, replace = edit.search, edit.replace
        if path in crlf_files:
            search, replace = search.replace("\r\n", "\n"), replace.replace("\r\n", "\n")
        count = current.count(search)
        if count == 1:
            files[path] = (old, current.replace(search, replace, 1))
            continue
        earlier = " (after the earlier edits to it)" if current != old else ""
        if count == 0:
            hint = ""
            if _squash(search) and _squash(search) in _squash(current):
                hint = " It differs from the file only in whitespace or indentation."
            hint += masked_search_hint(search, current)
            problems.append(_problem(
                i, "search",
                f"the search text is not in {edit.path}{earlier}; it must be copied exactly.{hint} "
                f"The closest text of the file is:\n{closest_lines(current, search)}",
                "search_not_found"))
        else:
            problems.append(_problem(
                i, "search",
                f"the search text occurs {count} times in {edit.path}{earlier}; include more of the "
                "surrounding lines so that it occurs exactly once", "search_not_unique"))
    for path in crlf_files:
        old, new = files[path]
        files[path] = (line_ends_back(old, True), line_ends_back(new, True))
    return files, problems


def _check(args: ApplyEditsArgs, ctx: ToolContext) -> list[dict[str, Any]]:
    return plan_edits(args.edits, ctx)[1]


def _changed(args: ApplyEditsArgs, ctx: ToolContext) -> dict[Path, tuple[str, str]]:
    files, problems = plan_edits(args.edits, ctx)
    if problems:  # the file changed since the check: nothing is written
        raise ToolFailure("; ".join(str(p["msg"]).split("\n")[0] for p in problems))
    return files


def preview_edits(args: ApplyEditsArgs, ctx: ToolContext) -> str:
    """The combined diff of every file the edits change."""
    if not args.edits:
        return NO_CHANGE
    return "".join(unified_diff(old, new, rel_posix(ctx.workspace, path))
                   for path, (old, new) in _changed(args, ctx).items())


def apply_edits(args: ApplyEditsArgs, ctx: ToolContext) -> str:
    if not args.edits:
        return NO_CHANGE
    files = _changed(args, ctx)
    written: list[tuple[Path, str]] = []
    try:
        for path, (old, new) in files.items():
            _atomic_write(path, new)
            written.append((path, old))
    except OSError as exc:
        for path, old in written:  # all or nothing: the files already written get their old text back
            _atomic_write(path, old)
        raise ToolFailure(f"cannot write {exc.filename}: {exc.strerror}; no file was changed") from None
    counts: dict[str, int] = {}
    for edit in args.edits:
        rel = rel_posix(ctx.workspace, resolve_in_workspace(ctx.workspace, edit.path))
        counts[rel] = counts.get(rel, 0) + 1
    listed = ", ".join(f"{rel} ({n} edit{'s' if n != 1 else ''})" for rel, n in counts.items())
    return f"edited {listed}"


def apply_edits_tool() -> Tool:
    return Tool(
        name="apply_edits",
        description="Apply search/replace edits to existing files: every search text must occur exactly "
        "once in its file, or nothing is changed.",
        args_model=ApplyEditsArgs,
        func=apply_edits,
        risk="write",
        preview_func=preview_edits,
        check_func=_check,
        returns=str,
        # Its edits come from an llm step with an `edits` answer, which only a hosted planner writes.
        small_planner=False,
    )
