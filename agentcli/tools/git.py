"""git_status and git_diff: read-only views of the workspace's repository.

A repository's own config can make git run commands (``core.fsmonitor``, external diff drivers,
textconv, clean filters): these tools are auto-approved reads, so git runs with those switched
off where a flag can, and inside the OS sandbox in ``read-only`` mode with no network (a clean
filter has no flag), refused like run_shell where no sandbox works unless ``sandbox.mode = "off"``.
"""

from __future__ import annotations

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
    ]
