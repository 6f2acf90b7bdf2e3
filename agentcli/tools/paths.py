"""Workspace confinement and workspace walking (with .gitignore).

Every path a tool receives goes through :func:`resolve_in_workspace`. A path is
refused with a ``path_outside_workspace`` error when, *after* resolving ``..``
and every symlink, it is not inside the workspace root. Resolving symlinks first
is the point: ``link -> /etc`` lexically looks inside the root.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from agentcli.tools.base import ToolFailure

__all__ = [
    "ALWAYS_SKIP",
    "PathOutsideWorkspace",
    "WorkspaceWalker",
    "glob_to_regex",
    "is_binary",
    "rel_posix",
    "resolve_in_workspace",
]

# Never listed or searched, whatever .gitignore says.
ALWAYS_SKIP = frozenset({".git", ".venv"})
_SNIFF_BYTES = 8192


class PathOutsideWorkspace(ToolFailure):
    """A path argument that resolves outside the workspace root."""

    error_type = "path_outside_workspace"


def resolve_in_workspace(workspace: Path, raw: str, *, what: str = "path") -> Path:
    """The absolute, symlink-resolved form of ``raw`` (relative to the workspace), or
    :class:`PathOutsideWorkspace` if it is not inside the workspace root."""
    root = workspace.resolve()
    if "\x00" in raw:
        raise ToolFailure(f"{what} {raw!r} contains a NUL byte")
    given = Path(raw)
    candidate = given if given.is_absolute() else root / given
    lexical = Path(os.path.normpath(candidate))
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as exc:  # symlink loops
        raise ToolFailure(f"cannot resolve {what} {raw!r}: {exc}") from None
    if resolved == root or resolved.is_relative_to(root):
        return resolved
    if lexical == root or lexical.is_relative_to(root):
        reason = "it goes through a symlink that points outside the workspace"
    elif given.is_absolute():
        reason = "it is an absolute path outside the workspace"
    else:
        reason = "it climbs out of the workspace with '..'"
    raise PathOutsideWorkspace(f"{what} {raw!r} is refused: {reason} ({root})")


def rel_posix(workspace: Path, path: Path) -> str:
    """``path`` relative to the workspace, with forward slashes (``.`` for the root)."""
    rel = path.relative_to(workspace.resolve()).as_posix()
    return rel or "."


def is_binary(path: Path) -> bool:
    """Sniff the head of a file: a NUL byte means binary (git's heuristic)."""
    with path.open("rb") as f:
        return b"\x00" in f.read(_SNIFF_BYTES)


def _segment_regex(seg: str) -> str:
    out, i = [], 0
    while i < len(seg):
        c = seg[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = seg.find("]", i + 2 if seg[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = seg[i + 1 : end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@lru_cache(maxsize=128)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob matched against whole workspace-relative POSIX paths.

    ``*`` and ``?`` stay within one path segment; a ``**`` segment spans any number of
    directories (``**/*.py`` matches ``a.py`` and ``x/y/a.py``).
    """
    parts = [p for p in pattern.split("/") if p not in ("", ".")]
    if not parts:
        parts = ["**"]
    regex = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _segment_regex(part) + ("" if last else "/")
    return re.compile(regex + r"\Z")


def check_glob(workspace: Path, pattern: str) -> None:
    """Refuse globs that would reach outside the workspace (absolute, or with ``..``)."""
    if pattern.startswith("/") or PurePosixPath(pattern).is_absolute() or ".." in pattern.split("/"):
        raise PathOutsideWorkspace(
            f"pattern {pattern!r} is refused: patterns are relative to the workspace root "
            f"({workspace.resolve()}) and may not contain '..'"
        )


class WorkspaceWalker:
    """Iterates the files of the workspace that a developer would consider its contents.

    Skips ``.git/``, ``.venv/`` and the agent's data dir at any depth, whatever
    ``.gitignore`` files (the root's and nested ones, via ``pathspec``) and the repository's
    ``.git/info/exclude`` ignore, and symlinks that point outside the workspace.
    """

    def __init__(self, workspace: Path, data_dir: Path | None = None) -> None:
        self.root = workspace.resolve()
        self._skip_rel: set[str] = set()
        if data_dir is not None:
            dd = Path(os.path.normpath(data_dir if data_dir.is_absolute() else self.root / data_dir))
            if dd.is_relative_to(self.root) and dd != self.root:
                self._skip_rel.add(dd.relative_to(self.root).as_posix())
        self._specs: dict[str, Any] = {}

    def _spec(self, rel_dir: str) -> Any:
        if rel_dir not in self._specs:
            spec = None
            sources = [self.root / rel_dir / ".gitignore"]
            if not rel_dir:  # the repository's own excludes apply from the root, as git applies them
                sources.insert(0, self.root / ".git" / "info" / "exclude")
            lines: list[str] = []
            for gi in sources:
                if gi.is_file():
                    try:
                        lines += gi.read_text(encoding="utf-8", errors="replace").splitlines()
                    except OSError:
                        continue
            if any(line.strip() and not line.lstrip().startswith("#") for line in lines):
                import pathspec  # deferred: only walks need it

                try:
                    spec = pathspec.GitIgnoreSpec.from_lines(lines)
                except ValueError:
                    spec = None
            self._specs[rel_dir] = spec
        return self._specs[rel_dir]

    def is_ignored(self, rel: str, *, is_dir: bool) -> bool:
        """Whether a workspace-relative POSIX path is skipped (always-skipped or gitignored)."""
        parts = rel.split("/")
        if any(p in ALWAYS_SKIP for p in parts) or any(
            rel == s or rel.startswith(s + "/") for s in self._skip_rel
        ):
            return True
        probe = rel + "/" if is_dir else rel
        for depth in range(len(parts)):
            base = "/".join(parts[:depth])
            spec = self._spec(base)
            if spec is not None and spec.match_file(probe[len(base) + 1 :] if base else probe):
                return True
        return False

    def iter_files(self, start: Path | None = None) -> Iterator[tuple[Path, str]]:
        """``(absolute path, workspace-relative POSIX path)`` of every kept file, sorted."""
        for entry, rel in self.iter_entries(start):
            yield Path(entry.path), rel

    def iter_entries(self, start: Path | None = None) -> Iterator[tuple[os.DirEntry[str], str]]:
        """``(directory entry, workspace-relative POSIX path)`` of every kept file, in the order of
        :meth:`iter_files` (a folder's files by name, then its sub-folders by name). The entry's
        ``stat()`` costs one system call and is cached; no ``Path`` is made (a map of a large
        repository walks thousands of files)."""
        top = (start or self.root).resolve()
        rel_top = top.relative_to(self.root).as_posix()
        yield from self._walk(str(top), "" if rel_top == "." else rel_top + "/")

    def _walk(self, folder: str, prefix: str) -> Iterator[tuple[os.DirEntry[str], str]]:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            return  # unreadable or vanished mid-walk: skipped, as os.walk skips it
        dirs = []
        for entry in entries:
            rel = prefix + entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                continue
            if is_dir:  # a symlink to a folder is never followed
                if not entry.is_symlink() and not self.is_ignored(rel, is_dir=True):
                    dirs.append(entry)
                continue
            if self.is_ignored(rel, is_dir=False):
                continue
            if entry.is_symlink():
                target = Path(entry.path).resolve()
                if not target.is_relative_to(self.root) or not target.is_file():
                    continue
            yield entry, rel
        for entry in dirs:
            yield from self._walk(entry.path, prefix + entry.name + "/")
