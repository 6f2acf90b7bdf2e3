"""git_status, git_diff and git_history (log, show, blame): read-only views of the workspace's repository.

A repository's own config can make git run commands (``core.fsmonitor``, external diff drivers,
textconv, clean filters): these tools are auto-approved reads, so git runs with those switched
off where a flag can, and inside the OS sandbox in ``read-only`` mode with no network (a clean
filter has no flag), refused like run_shell where no sandbox works unless ``sandbox.mode = "off"``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentcli.tools.base import ArgsModel, Capped, Tool, ToolContext, ToolFailure
from agentcli.tools.paths import rel_posix, resolve_in_workspace
from agentcli.tools.sandbox import Sandbox, SandboxUnavailable
from agentcli.tools.shell import child_env, run_process

__all__ = ["git_tools"]

# Quoted paths (octal escapes) and colour codes would only confuse a model.
# A repository's core.fsmonitor would be run by `git status`: off, whatever its config says.
_GIT = ["git", "-c", "core.quotepath=off", "-c", "color.ui=never", "-c", "core.fsmonitor=false", "--no-pager"]


def _sandbox(ctx: ToolContext) -> Sandbox:
    try:
        return Sandbox.from_config(ctx.sandbox, ctx.workspace, ctx.data_dir).read_only()
    except SandboxUnavailable as exc:
        raise ToolFailure(f"git {exc}") from None


async def _git(ctx: ToolContext, *args: str) -> Capped:
    res = await run_process(
        [*_GIT, *args],
        cwd=ctx.workspace,
        timeout=ctx.config.default_timeout_seconds,
        limit=ctx.config.output_limit_chars,
        # Never let a repository's config or hooks prompt for anything.
        env=child_env(extra={"GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}, allow=ctx.config.shell_env_allow),
        sandbox=_sandbox(ctx),
    )
    if res.timed_out:
        raise ToolFailure(f"git {args[0]} timed out", error_type="timeout")
    if res.exit_code != 0:
        first = res.output.strip().splitlines()[:1]
        reason = first[0] if first else f"exit code {res.exit_code}"
        if "not a git repository" in res.output:
            reason = f"the workspace ({ctx.workspace}) is not inside a git repository"
        raise ToolFailure(f"git {args[0]} failed: {reason}")
    return Capped(res.output, res.truncated)


class GitStatusArgs(ArgsModel):
    pass


async def git_status(args: GitStatusArgs, ctx: ToolContext) -> Capped:
    out = await _git(ctx, "status", "--porcelain=v1", "--branch", "--untracked-files=normal")
    return out


class GitDiffArgs(ArgsModel):
    path: str | None = Field(None, min_length=1, description="Only this file or directory.")
    staged: bool = Field(False, description="Show staged changes (git diff --staged), not unstaged ones.")


async def git_diff(args: GitDiffArgs, ctx: ToolContext) -> Capped:
    cmd = ["diff", "--no-ext-diff", "--no-textconv"]  # both would run commands the repo's config names
    if args.staged:
        cmd.append("--staged")
    if args.path is not None:
        target = resolve_in_workspace(ctx.workspace, args.path)
        cmd += ["--", rel_posix(ctx.workspace, target)]
    out = await _git(ctx, *cmd)
    if not out.value.strip():
        out.value = "(no staged changes)" if args.staged else "(no unstaged changes)"
    return out


def git_tools() -> list[Tool]:
    return [
        Tool(
            name="git_status",
            description="Show the branch and changed files of the workspace's git repository "
            "(git status --porcelain).",
            args_model=GitStatusArgs,
            func=git_status,
            returns=str,
        ),
        Tool(
            name="git_diff",
            description="Show the diff of uncommitted changes (or staged ones), optionally for one path.",
            args_model=GitDiffArgs,
            func=git_diff,
            returns=str,
        ),
        Tool(
            name="git_history",
            description="The repository's history: log, show (a commit's diff) or blame.",
            args_model=GitHistoryArgs,
            func=git_history,
            returns=str,
            # The local planner's grammar and examples were measured without it.
            small_planner=False,
        ),
    ]


#: A revision as git_history takes it: a commit, a branch, ``HEAD~3``, ``v1.2..HEAD``; never an option.
_REV = r"^[A-Za-z0-9_][A-Za-z0-9_./~^@{}:+-]*$"


class GitHistoryArgs(ArgsModel):
    # Short descriptions: every investigate and survey request carries this schema.
    command: Literal["log", "show", "blame"] = Field(
        "log", description="log: commits, newest first; show: one commit and its diff; blame: the commit of "
        "each line of path.")
    path: str | None = Field(None, min_length=1, description="A file or directory (blame: required).")
    rev: str | None = Field(None, max_length=200, pattern=_REV,
                            description="log: revision or range; show: the commit (both default HEAD); blame: "
                            "the revision (default: working tree).")
    max_count: int = Field(10, ge=1, le=100, description="log: at most this many commits.")
    patch: bool = Field(False, description="log: each commit's diff too.")
    start_line: int | None = Field(None, ge=1, description="blame: the first line.")
    end_line: int | None = Field(None, ge=1, description="blame: the last line.")


async def git_history(args: GitHistoryArgs, ctx: ToolContext) -> Capped:
    path = None
    if args.path is not None:
        path = rel_posix(ctx.workspace, resolve_in_workspace(ctx.workspace, args.path))
    if args.command == "log":
        cmd = ["log", f"--max-count={args.max_count}", "--date=short", "--no-ext-diff", "--no-textconv",
               "--format=%h %ad %an%n    %s"]
        if args.patch:
            cmd.append("-p")
        else:
            cmd.append("--stat")
        cmd += ["--end-of-options", args.rev or "HEAD"]
    elif args.command == "show":
        cmd = ["show", "--no-ext-diff", "--no-textconv", "--date=short", "--end-of-options", args.rev or "HEAD"]
    else:
        if path is None:
            raise ToolFailure("git_history blame needs `path`")
        cmd = ["blame", "--date=short", "--abbrev=8"]
        if args.start_line is not None or args.end_line is not None:
            start = args.start_line or 1
            cmd.append(f"-L{start},{args.end_line}" if args.end_line is not None else f"-L{start},")
        if args.rev is not None:
            cmd += ["--end-of-options", args.rev]
    if path is not None:
        cmd += ["--", path]
    out = await _git(ctx, *cmd)
    if not out.value.strip():
        out.value = "(no commits)" if args.command == "log" else "(nothing)"
    return out
