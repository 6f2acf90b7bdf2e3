"""Files that run, or configure what runs, outside the sandbox later: kept read-only inside it,
and checked for changes between runs.

A sandboxed command that could rewrite them would escape later, unconfined: an ``agent.toml``
that turns the sandbox off or adds a hook with ``sandbox = false`` (run by the user's next
``agent run``), a guard script rewritten to ``exit 0``, an executable ``.git/hooks/pre-commit``
(run by the user's next ``git commit``), a ``core.hooksPath`` or alias in ``.git/config``.

* :func:`protected_paths`: what the sandbox binds read-only over the writable workspace: the
  project config (``agent.toml``, or the ``--config`` file when it lies in the workspace), the
  instruction files (``instructions.file_names``, e.g. ``AGENTS.md``), every script a hook or an
  MCP server names that lies in the workspace, ``.git/config``, ``.git/hooks`` (made, empty,
  when the repository has none) and the ``core.hooksPath`` directory.
* The trust record (``<data_dir>/trust.json``, sha256 of each of :func:`trusted_files`): what
  the user last let agentcli use. :func:`ensure_trusted` runs before a command that uses them
  (``agent run``, ``agent tools call``): a file added, removed or changed since is asked about
  at a terminal, and refused elsewhere (:class:`UntrustedChange`, exit 4) until ``agent trust``
  accepts it. The first use of a workspace records the files as they are (trust on first use).
  Files that do not exist yet cannot be bound read-only: a command may create ``agent.toml``,
  which the next run then asks about.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from agentcli.config import PROJECT_CONFIG_NAME, Settings
from agentcli.errors import ApprovalDenied
from agentcli.tools.sandbox import hook_words

__all__ = ["TRUST_NAME", "UntrustedChange", "accept", "changed_files", "ensure_trusted", "protected_paths",
           "trusted_files"]

TRUST_NAME = "trust.json"
SCHEMA_VERSION = 1
_HOOKS_PATH = re.compile(r"^\s*hookspath\s*=\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


class UntrustedChange(ApprovalDenied):
    """Files that run outside the sandbox changed since the last run and were not accepted (exit 4)."""


def _inside(path: Path, workspace: Path) -> bool:
    try:
        path.resolve().relative_to(workspace)
    except (OSError, ValueError, RuntimeError):
        return False
    return True


def _script_words(words: Iterable[str], workspace: Path) -> list[Path]:
    """The words of a configured command that name a file in the workspace."""
    out = []
    for word in words:
        if not word or word.startswith("-") or "\0" in word:
            continue
        path = Path(word) if os.path.isabs(word) else workspace / word
        try:
            if path.is_file() and _inside(path, workspace):
                out.append(path.absolute())
        except (OSError, ValueError):
            continue
    return out


def _command_words(command: str) -> list[str]:
    # `sh guard.sh`, `python3 ./check.py`, `./guard.sh --strict`, `--rules=x.toml`: any word may
    # name the script.
    return [w.split("=", 1)[-1] for w in hook_words(command)]


def trusted_files(settings: Settings) -> list[Path]:
    """The files whose content decides what runs unconfined: the project config, the instruction
    files and the hook and MCP scripts in the workspace (sorted, those that exist)."""
    ws = settings.workspace
    found = {f.absolute() for f in settings.files if _inside(f, ws)}
    for name in (PROJECT_CONFIG_NAME, *settings.config.instructions.file_names):
        if (ws / name).is_file():
            found.add(ws / name)
    for hook in settings.config.hooks:
        found.update(_script_words(_command_words(hook.command), ws))
    for server in settings.config.mcp.servers:
        if server.command:
            found.update(_script_words([server.command, *server.args], ws))
    return sorted(found)


def _git_paths(workspace: Path) -> list[Path]:
    git = workspace / ".git"
    if not git.is_dir() or git.is_symlink():
        return []  # no repository, or a worktree's `.git` file: its git dir lies outside, read-only
    hooks = git / "hooks"
    if not hooks.exists():
        with contextlib.suppress(OSError):  # bound read-only so that no hook can be planted in it
            hooks.mkdir()
    out = [p for p in (git / "config", git / "config.worktree", hooks) if p.exists()]
    try:
        match = _HOOKS_PATH.search((git / "config").read_text(errors="replace"))
    except OSError:
        match = None
    if match:
        custom = Path(os.path.expanduser(match.group(1).strip('"')))
        custom = custom if custom.is_absolute() else workspace / custom
        if custom.is_dir() and _inside(custom, workspace):
            out.append(custom)
    return out


def protected_paths(settings: Settings) -> tuple[Path, ...]:
    """What the sandbox keeps read-only inside the writable workspace."""
    ws = settings.workspace
    paths = [*trusted_files(settings), *_git_paths(ws)]
    return tuple(dict.fromkeys(p for p in paths if _inside(p, ws)))


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 16), b""):
                h.update(chunk)
    except OSError as e:
        return f"unreadable: {e.strerror}"
    return h.hexdigest()


def _label(path: Path, workspace: Path) -> str:
    try:
        return path.relative_to(workspace).as_posix()
    except ValueError:
        return str(path)


def _fingerprint(settings: Settings) -> dict[str, str]:
    return {_label(p, settings.workspace): _digest(p) for p in trusted_files(settings)}


def _record_path(settings: Settings) -> Path:
    return settings.data_dir / TRUST_NAME


def _read_record(settings: Settings) -> dict[str, str] | None:
    try:
        data: Any = json.loads(_record_path(settings).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: every file counts as changed
    files = data.get("files") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def _write_record(settings: Settings, files: dict[str, str]) -> None:
    path = _record_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{TRUST_NAME}.{os.getpid()}")
    tmp.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "files": files}, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _diff(old: dict[str, str], new: dict[str, str]) -> list[str]:
    out = []
    for name in sorted(old.keys() | new.keys()):
        if name not in old:
            out.append(f"{name} (new)")
        elif name not in new:
            out.append(f"{name} (removed)")
        elif old[name] != new[name]:
            out.append(f"{name} (changed)")
    return out


def changed_files(settings: Settings) -> list[str]:
    """What changed since the trust record (``name (new|removed|changed)``); [] without a record."""
    old = _read_record(settings)
    return [] if old is None else _diff(old, _fingerprint(settings))


def accept(settings: Settings) -> list[str]:
    """Trust the files as they are now; returns what changed since the last record."""
    new = _fingerprint(settings)
    old = _read_record(settings)
    _write_record(settings, new)
    return [] if old is None else _diff(old, new)


def ensure_trusted(settings: Settings, ask: Callable[[list[str]], bool] | None) -> None:
    """Before a command uses the project's config, instructions and hooks: a change since the last
    run is accepted only by ``ask`` (a terminal's answer; None: nobody to ask, so refused).
    The first use of a workspace records the files as they are."""
    old = _read_record(settings)
    new = _fingerprint(settings)
    if old is None:
        if new:
            with contextlib.suppress(OSError):  # a read-only data dir: nothing to compare with next time
                _write_record(settings, new)
        return
    changed = _diff(old, new)
    if not changed:
        return
    if ask is None or not ask(changed):
        raise UntrustedChange(
            f"files that run outside the sandbox changed since the last run: {', '.join(changed)}; review "
            "them, then run `agent trust` to accept them")
    _write_record(settings, new)
