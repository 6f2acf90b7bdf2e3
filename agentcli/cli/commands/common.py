"""What every command shares: the lazily loaded settings, consoles, error printing."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:  # pydantic models cost ~0.1 s to import; `agent --help` must not pay it
    from agentcli.config import Settings
    from agentcli.models.types import ModelBackend

class RedactingStream:
    """A text stream that masks every known secret value (:mod:`agentcli.redact`) in what is
    written to it; anything else is the wrapped stream's. Secrets registered while a command
    runs (its config loading) are picked up at the next write."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._generation = -1
        self._redact: Any = None
        self._redact_module: Any = None  # agentcli.redact, imported at the first write

    def write(self, s: Any) -> Any:
        if isinstance(s, str) and s:
            redact = self._redact_module
            if redact is None:
                import agentcli.redact as redact

                self._redact_module = redact
            if self._generation != redact.generation():
                self._generation, self._redact = redact.generation(), redact.Redactor()
            s = self._redact.text(s)
        return self._inner.write(s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _CommandConsole(Console):
    """A console set up afresh for each invocation (:func:`configure_consoles`), so that the
    width, ``NO_COLOR`` and ``--no-color`` in force are the invocation's, not the import's.
    Re-initialised in place: every module holds the same object."""

    def __init__(self, *, stderr: bool, no_color: bool = False) -> None:
        self._for_stderr = stderr
        # None lets rich read NO_COLOR itself; True forces plain output.
        super().__init__(stderr=stderr, no_color=True if no_color else None)

    def reset(self, *, no_color: bool = False) -> None:
        self.__init__(stderr=self._for_stderr, no_color=no_color)  # type: ignore[misc]


#: stdout and stderr consoles of the running command (results on stdout, everything else on stderr).
console = _CommandConsole(stderr=False)
err_console = _CommandConsole(stderr=True)


def configure_consoles(*, no_color: bool = False) -> None:
    """Fresh consoles for this invocation: its terminal width (``COLUMNS`` without a terminal,
    else 80), and no colour with ``--no-color`` or ``NO_COLOR``."""
    console.reset(no_color=no_color)
    err_console.reset(no_color=no_color)


def counted(n: int, noun: str) -> str:
    """``1 file``, ``3 files``, ``0 files`` (nouns with a plain -s plural): what a person reads, not
    ``file(s)``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def print_error(message: str) -> None:
    """One line on stderr: ``error: ...``."""
    err_console.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True, highlight=False)


def print_warning(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True, highlight=False)


def warn_short_secrets(settings: Settings, environ: Mapping[str, str] | None) -> None:
    """One warning line naming every secret too short to be masked (:mod:`agentcli.redact`)."""
    from agentcli.config import short_secrets
    from agentcli.redact import MIN_SECRET_LEN

    names = short_secrets(settings, environ)
    if names:
        print_warning(f"{', '.join(names)}: shorter than {MIN_SECRET_LEN} characters, so not masked in "
                      "records, prompts or output (masking a value that short would corrupt ordinary "
                      "text); use a longer secret")


def require_trusted(settings: Settings) -> None:
    """Before a command uses the project's config, AGENTS.md and hook scripts: a change since the
    last run is asked about at a terminal, refused elsewhere (exit 4; `agent trust` accepts)."""
    import sys

    from rich.prompt import Confirm

    from agentcli.tools.trust import ensure_trusted

    def ask(changed: list[str]) -> bool:
        print_warning(f"files that run outside the sandbox changed since the last run: {', '.join(changed)}")
        return Confirm.ask("use them as they are now?", default=False, console=err_console)

    ensure_trusted(settings, ask if sys.stdin.isatty() and sys.stderr.isatty() else None)


class State:
    """``ctx.obj`` for every command. Settings load on first use, so a broken config file
    fails the commands that need it (with exit 2), not `agent config path`.

    Tests may pass ``State(backend=ScriptedModel(...))`` as ``obj`` to CliRunner."""

    def __init__(self, *, backend: ModelBackend | None = None, environ: Mapping[str, str] | None = None,
                 use_user_config: bool = True) -> None:
        self.backend = backend
        self.environ = environ
        self.use_user_config = use_user_config
        self.config_file: Path | None = None
        self.workspace: Path | None = None
        self.overrides: dict[str, Any] = {}
        self.log_json = False
        self._settings: Settings | None = None

    def configure(self, *, config_file: Path | None, workspace: Path | None,
                  overrides: Mapping[str, Any], log_json: bool) -> None:
        self.config_file = config_file
        self.workspace = workspace
        self.overrides.update({k: v for k, v in overrides.items() if v is not None})
        self.log_json = log_json
        self._settings = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from agentcli.config import load_settings

            self._settings = load_settings(
                workspace=self.workspace,
                config_file=self.config_file,
                overrides=self.overrides,
                environ=self.environ,
                use_user_config=self.use_user_config,
            )
            ws = self._settings.workspace
            if self._settings.workspace_origin == "git root" and ws != Path.cwd().resolve():
                # Started in a subdirectory: the project's runs, memory and AGENTS.md are the root's.
                err_console.print(f"[dim]workspace: {escape(str(ws))} (the git repository's root; "
                                  "--workspace to choose another)[/dim]", highlight=False, soft_wrap=True)
        return self._settings

    def __getitem__(self, key: str) -> Any:
        # Lets commands written against a plain dict obj (``ctx.obj["settings"]``) work unchanged.
        if key == "settings":
            return self.settings
        raise KeyError(key)


def state_of(ctx: typer.Context) -> State:
    obj = ctx.obj
    if isinstance(obj, State):
        return obj
    st = State()
    ctx.obj = st
    return st


#: The ranges of numeric options (:func:`in_range`): generous for any real use, small enough that
#: no list, timer or request is sized past what the machine holds.
MAX_LIST = 100_000            # rows a listing shows
MAX_HITS = 1_000              # hits a memory search returns
MAX_STEPS = 1_000             # a run's step budget
MAX_TOKENS = 1_000_000_000    # a run's token budget
MAX_COST_USD = 1_000_000.0    # a run's cost budget
MAX_SECONDS = 30 * 86_400.0   # a run's wall time, a tool's timeout
MAX_MAP_TOKENS = 1_000_000    # a repository map's budget


def in_range(lo: float, hi: float) -> Any:
    """The callback of a numeric option: a value outside ``lo..hi`` (or not a number: NaN) is a
    :class:`~agentcli.errors.UsageError`, one line, exit 2, before the command runs. Every numeric
    option has one: an unbounded value reaches code that sizes a list, a timer or a request by it."""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if value is None or (isinstance(value, list | tuple) and not value):
            return value
        for v in value if isinstance(value, list | tuple) else (value,):
            if not lo <= v <= hi:
                from agentcli.errors import UsageError

                name = max(param.opts, key=len) if param.opts else str(param.name)
                raise UsageError(f"{name} must be between {_num(lo)} and {_num(hi)} (got {str(v)[:40]})")
        return value

    return check


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"
