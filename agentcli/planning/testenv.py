"""The test-environment note of the workspace summary: what on this machine breaks a project's own
way of running its tests, one line each with what works here instead.

Measured on real feature tasks run with a capable model, every re-plan of the Python tasks came from
the test environment, not from the change, and each cost a planner and a reviewer request. The traps:

- a ``.python-version`` naming a Python that pyenv has not installed here (a release ships its
  author's virtualenv name): ``python`` and ``pytest`` through pyenv's shims fail at once;
- pytest's ``addopts`` (pytest.ini, pyproject.toml, tox.ini, setup.cfg) using a plugin's options
  (``--cov`` of pytest-cov, ``-n`` of pytest-xdist, ...) that is not installed: pytest stops with
  "unrecognized arguments" (``-o addopts=""`` overrides them: checked with a real pytest);
- a ``src/`` layout whose package is also installed outside the workspace: the tests import the
  installed copy unless ``PYTHONPATH=src``;
- ``npm test`` naming a runner that is not installed (no ``node_modules/.bin/<name>``, none on
  PATH), test files that do not exist, or npm's placeholder script.

The checks see what a ``run_shell`` command sees (:class:`ShellView`): its environment (the
allow-listed variables: PATH above all), and its sandbox, in which the one process this module
starts runs: the interpreter a command's ``python`` resolves to, asked (``importlib.util.find_spec``,
which finds a module without importing it) where the names it needs come from. pyenv's choice
of version is read from its files as pyenv reads them. Only files of the workspace's top level and
of the machine's toolchains are read; the project's code is never run; nothing is started unless
the workspace's files name something to check. A clean workspace gets no note at all (the planner
request's tokens stay as they were).
"""

from __future__ import annotations

import configparser
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentcli.config import Config
from agentcli.tools.sandbox import Sandbox, SandboxUnavailable
from agentcli.tools.shell import child_env

__all__ = ["NOTE_HEADING", "ShellView", "environment_note", "environment_notes"]

#: The heading of the note in the workspace summary.
NOTE_HEADING = "--- test environment (checked on this machine)"
#: Seconds the one interpreter (or node) started for the checks may take.
PROBE_TIMEOUT = 10.0
#: The most bytes read of any file (a key file may be huge; what is needed sits at its head).
READ_MAX = 256_000
#: The most top-level names of ``src/`` checked.
SRC_NAMES_MAX = 5

# A pytest plugin's options (their prefix) -> (the module it installs, its distribution).
_PLUGIN_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--cov", "pytest_cov", "pytest-cov"), ("--no-cov", "pytest_cov", "pytest-cov"),
    ("-n", "xdist", "pytest-xdist"), ("--numprocesses", "xdist", "pytest-xdist"), ("--dist", "xdist", "pytest-xdist"),
    ("--timeout", "pytest_timeout", "pytest-timeout"), ("--reruns", "pytest_rerunfailures", "pytest-rerunfailures"),
    ("--benchmark", "pytest_benchmark", "pytest-benchmark"), ("--mypy", "pytest_mypy", "pytest-mypy"),
    ("--flake8", "pytest_flake8", "pytest-flake8"), ("--black", "pytest_black", "pytest-black"),
    ("--html", "pytest_html", "pytest-html"), ("--asyncio-mode", "pytest_asyncio", "pytest-asyncio"),
    ("--randomly", "pytest_randomly", "pytest-randomly"),
    ("--doctest-plus", "pytest_doctestplus", "pytest-doctestplus"),
)
# Words a test script runs that need no executable of their own.
_SHELL_WORDS = frozenset({"echo", "exit", "true", "false", "cd", "test", "[", "set", "export", "exec", "printf", ":",
                          "env", "sh", "bash", "node", "npm", "npx", "yarn", "pnpm", "cross-env"})
# Of those, the ones whose words are never files to run.
_NOT_RUNNERS = frozenset({"echo", "exit", "true", "false", "cd", "test", "[", "set", "export", "printf", ":",
                          "npm", "yarn", "pnpm"})
_PLACEHOLDER = 'echo "Error: no test specified" && exit 1'
# What asks a Python interpreter where modules come from, without importing them; the script
# directory ('' for -c) is left out, as `python -m pytest` in a subdirectory would not have it.
_PROBE = ("import importlib.util as u, json, sys\n"
          "sys.path[:] = [p for p in sys.path if p not in ('', '.')]\n"
          "def where(n):\n"
          "    try:\n"
          "        s = u.find_spec(n)\n"
          "    except Exception:\n"
          "        return None\n"
          "    if s is None:\n"
          "        return None\n"
          "    if s.origin not in (None, 'namespace'):\n"
          "        return s.origin\n"
          "    return next(iter(s.submodule_search_locations or []), '')\n"
          "print(json.dumps({n: where(n) for n in sys.argv[1:]}))\n")


@dataclass(frozen=True)
class ShellView:
    """What a ``run_shell`` command sees: its environment (the allow-listed variables and the
    sandbox's own) and its sandbox (``None``: none works here, so nothing is started)."""

    env: Mapping[str, str]
    sandbox: Sandbox | None

    @classmethod
    def from_config(cls, config: Config, workspace: Path, data_dir: Path) -> ShellView:
        """The view of a run's commands: ``tools.shell_env_allow`` and ``[sandbox]``, read-only
        (the checks write nothing)."""
        try:
            sandbox: Sandbox | None = Sandbox.from_config(config.sandbox, workspace, data_dir).read_only()
        except SandboxUnavailable:
            sandbox = None
        env = child_env(allow=config.tools.shell_env_allow)
        if sandbox is not None:
            env.update(sandbox.env())
        return cls(env, sandbox)

    def run(self, argv: Sequence[str], cwd: Path) -> str | None:
        """``argv``'s stdout, run as a command would be (``None``: it could not run, or failed)."""
        if self.sandbox is None:
            return None
        try:
            cmd = self.sandbox.wrap(list(argv), cwd)
            res = subprocess.run(cmd, cwd=str(cwd), env=dict(self.env), capture_output=True, text=True,
                                 timeout=PROBE_TIMEOUT, check=False, stdin=subprocess.DEVNULL,
                                 preexec_fn=self.sandbox.preexec())
        except (OSError, subprocess.TimeoutExpired, SandboxUnavailable):
            return None
        return res.stdout if res.returncode == 0 else None


def _read(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            return f.read(READ_MAX).decode("utf-8", errors="replace")
    except OSError:
        return None


def _inside(root: Path, name: str) -> Path | None:
    """A file of the workspace, never one a symlink leads out of it to."""
    path = root / name
    try:
        if path.is_file() and path.resolve().is_relative_to(root):
            return path
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------- pyenv


@dataclass
class _Pyenv:
    """pyenv as its shims see it: its root and installed versions."""

    root: Path
    installed: list[str] = field(default_factory=list)

    def resolve(self, version: str) -> str | None:
        """The installed version a name selects, as ``pyenv version-name`` finds it (the name, the
        name without ``python-``, or the newest installed release it is a prefix of)."""
        if version == "system":
            return version
        for name in (version, version.removeprefix("python-")):
            if (self.root / "versions" / name).is_dir():
                return name
        for prefix in (version, version.removeprefix("python-")):
            found = [v for v in self.installed if re.match(re.escape(prefix) + r"[-.]", v)
                     and not re.search(r"(-dev|-src|-latest|(a|b|rc)\d+)$", v)]
            if found:
                return max(found, key=_version_key)
        return None

    def has_pytest(self, version: str) -> bool:
        return (self.root / "versions" / version / "bin" / "pytest").exists()

    def global_versions(self) -> list[str]:
        text = _read(self.root / "version")
        return _version_words(text) if text is not None else []


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:4])


def _version_words(text: str) -> list[str]:
    """A version file's names: the first word of each line, comments and empty lines skipped."""
    out = []
    for line in text.splitlines()[:20]:
        words = line.split()
        if words and not words[0].startswith("#"):
            out.append(words[0])
    return out


def _pyenv_of(shim: str) -> _Pyenv | None:
    """The pyenv a shim belongs to (its root is written in the shim), or None: not a shim."""
    text = _read(Path(shim))
    if text is None or not text.startswith("#!") or "pyenv" not in text[:2000]:
        return None
    m = re.search(r'^export PYENV_ROOT="([^"\n]+)"', text[:2000], re.MULTILINE)
    root = Path(m.group(1)) if m else Path(shim).parent.parent
    versions = root / "versions"
    if not versions.is_dir():
        return None
    try:
        installed = sorted(e.name for e in os.scandir(versions) if e.is_dir())
    except OSError:
        installed = []
    return _Pyenv(root, installed)


# --------------------------------------------------------------------------- pytest's configuration


@dataclass
class _PytestConfig:
    file: str
    addopts: list[str]
    pythonpath: list[str]


def _ini_section(text: str, section: str) -> dict[str, str] | None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    return dict(parser[section]) if parser.has_section(section) else None


def _words(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    try:
        return shlex.split(str(value))
    except ValueError:
        return str(value).split()


def _pytest_config(root: Path) -> _PytestConfig | None:
    """The configuration pytest would read at the workspace's top (its order: pytest.ini, then
    pyproject.toml's ``[tool.pytest.ini_options]``, tox.ini's ``[pytest]``, setup.cfg's ``[tool:pytest]``)."""
    for name, section in (("pytest.ini", "pytest"), (".pytest.ini", "pytest"), ("pyproject.toml", ""),
                          ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        path = _inside(root, name)
        text = _read(path) if path is not None else None
        if text is None:
            continue
        opts: dict[str, Any] | None
        if name == "pyproject.toml":
            import tomllib

            try:
                tool = tomllib.loads(text).get("tool", {})
            except (tomllib.TOMLDecodeError, AttributeError):
                continue
            pytest = tool.get("pytest") if isinstance(tool, dict) else None
            opts = pytest.get("ini_options") if isinstance(pytest, dict) else None
            if not isinstance(opts, dict):
                continue
        else:
            opts = _ini_section(text, section)
            if opts is None:
                if name.endswith("pytest.ini"):  # chosen even without the section
                    return _PytestConfig(name, [], [])
                continue
        return _PytestConfig(name, _words(opts.get("addopts", "")), _words(opts.get("pythonpath", "")))
    return None


def _missing_plugins(addopts: list[str]) -> list[tuple[str, str, str]]:
    """(option, module, distribution) of each plugin whose options ``addopts`` use."""
    out: dict[str, tuple[str, str, str]] = {}
    for i, word in enumerate(addopts):
        if word == "-p" and i + 1 < len(addopts):
            # Only a third-party plugin's module by its usual name: pytest's own (`-p pytester`)
            # are not on sys.path by that name, and a dotted name would import its package.
            mod = addopts[i + 1]
            dist = next((d for _, m, d in _PLUGIN_OPTIONS if m == mod), None)
            if dist is not None or re.fullmatch(r"pytest_\w+", mod):
                out.setdefault(mod, (f"-p {mod}", mod, dist or mod.replace("_", "-")))
            continue
        opt = word.split("=", 1)[0]
        for prefix, mod, dist in _PLUGIN_OPTIONS:
            if opt == prefix or (prefix.startswith("--") and opt.startswith(prefix)) \
                    or (prefix == "-n" and re.fullmatch(r"-n\d+|-nauto", opt)):
                out.setdefault(mod, (prefix if prefix != "--no-cov" else "--cov", mod, dist))
    return list(out.values())


# --------------------------------------------------------------------------- Python


def _src_names(root: Path) -> list[str]:
    """The importable top-level names of a ``src/`` layout: packages and modules."""
    src = root / "src"
    if src.is_symlink() or not src.is_dir():
        return []
    names = []
    try:
        entries = sorted(os.scandir(src), key=lambda e: e.name)
    except OSError:
        return []
    for e in entries:
        if e.name.startswith((".", "_")):
            continue
        if e.is_dir(follow_symlinks=False) and (Path(e.path) / "__init__.py").is_file():
            names.append(e.name)
        elif e.is_file(follow_symlinks=False) and e.name.endswith(".py") and e.name[:-3].isidentifier():
            names.append(e.name[:-3])
    return names[:SRC_NAMES_MAX]


def _conftest_sets_path(root: Path) -> bool:
    """Whether a conftest at the top or in the tests folder puts a path on ``sys.path`` itself."""
    for rel in ("conftest.py", "tests/conftest.py", "test/conftest.py"):
        path = _inside(root, rel)
        if path is not None and "sys.path" in (_read(path) or ""):
            return True
    return False


def _is_python_project(root: Path) -> bool:
    return any((root / n).is_file() for n in ("pyproject.toml", "setup.py", "setup.cfg", "tox.ini", "pytest.ini",
                                               ".python-version"))


def _non_pyenv_path(path: str, pyenv: _Pyenv) -> str:
    return os.pathsep.join(p for p in path.split(os.pathsep) if p and not Path(p).is_relative_to(pyenv.root)
                           and "pyenv" not in p)


def _python_notes(root: Path, view: ShellView) -> list[str]:
    path = view.env.get("PATH", "")
    name = "python" if shutil.which("python", path=path) else "python3"
    found = shutil.which(name, path=path)
    if found is None:
        return []
    problems: list[str] = []
    prefix: list[str] = []  # what the command that works starts with
    exe: str | None = found
    pyenv = _pyenv_of(found)
    if pyenv is not None:
        exe, problem, fix = _pyenv_choice(root, view, pyenv, name)
        if problem:
            problems.append(problem)
            prefix.append(fix)
    config = _pytest_config(root)
    plugins = _missing_plugins(config.addopts) if config is not None else []
    src = _src_names(root)
    if src and ((config is not None and any(p.strip("/") in ("src", "./src") for p in config.pythonpath))
                or _conftest_sets_path(root)):
        src = []
    if exe is None or not (plugins or src):
        return _with_run(problems, prefix, name, [])
    out = view.run([exe, "-c", _PROBE, *{m for _, m, _ in plugins}, *src], root)
    try:
        where: dict[str, str | None] = json.loads(out) if out else {}
    except ValueError:
        where = {}
    if not isinstance(where, dict) or not where:
        return _with_run(problems, prefix, name, [])
    options = []
    missing = [(opt, dist) for opt, mod, dist in plugins if mod in where and where[mod] is None]
    if missing and config is not None:
        opts = ", ".join(dict.fromkeys(f"`{o}`" for o, _ in missing))
        dists = ", ".join(dict.fromkeys(d for _, d in missing))
        verb = "is" if len({d for _, d in missing}) == 1 else "are"
        problems.append(f"pytest's addopts ({config.file}) use {opts} but {dists} {verb} not installed: "
                        "pytest fails at start")
        options.append('-o addopts=""')
    shadowed = []
    for n in src:
        if n not in where:
            continue
        origin = where[n]
        # Not installed at all is left out: the test run's ImportError says so itself, and a
        # src-layout project that is not installed is common enough (the calls bench's own
        # fixture) that the note would cost every such planner request its tokens.
        if origin and not Path(origin).is_relative_to(root):
            place = _site_of(Path(origin), n)
            shadowed.append(f"`src/{n}` is also installed outside the workspace ({place}): tests import that copy")
    if shadowed:
        problems.extend(shadowed)
        prefix.append("PYTHONPATH=src")
    return _with_run(problems, prefix, name, options)


def _site_of(origin: Path, name: str) -> str:
    """The directory an installed module lives in (``.../site-packages``)."""
    parent = origin.parent
    return str(parent.parent if parent.name == name else parent)


def _with_run(problems: list[str], prefix: list[str], python: str, options: list[str]) -> list[str]:
    if not problems:
        return []
    cmd = " ".join([*prefix, python, "-m", "pytest", *options])
    return [*problems, f"run Python tests here as `{cmd}`"]


def _pyenv_choice(root: Path, view: ShellView, pyenv: _Pyenv, name: str) -> tuple[str | None, str, str]:
    """The interpreter a command's ``python`` runs under pyenv, and, when the workspace's
    ``.python-version`` names one that is not installed, the problem and the ``PYENV_VERSION=``
    that works (pyenv's global version, else the newest installed one, with pytest if any has it)."""
    wanted: list[str]
    if view.env.get("PYENV_VERSION"):
        wanted, origin = view.env["PYENV_VERSION"].split(":"), ""
    elif (vf := _inside(root, ".python-version")) is not None:
        wanted, origin = _version_words(_read(vf) or ""), ".python-version"
    else:
        wanted, origin = pyenv.global_versions() or ["system"], ""
    chosen = [pyenv.resolve(v) for v in wanted]
    if not origin or all(chosen):  # only the workspace's own file is this workspace's trap
        first = next((c for c in chosen if c), "system")
        return _pyenv_python(view, pyenv, first, name), "", ""
    missing = ", ".join(f"`{v}`" for v, c in zip(wanted, chosen, strict=True) if c is None)
    candidates = [c for v in pyenv.global_versions() if (c := pyenv.resolve(v)) and c != "system"]
    candidates += sorted((v for v in pyenv.installed if "/" not in v and re.match(r"\d", v)),
                         key=_version_key, reverse=True)
    pick = next((c for c in candidates if pyenv.has_pytest(c)), candidates[0] if candidates else "system")
    tail = " (installed, with pytest)" if pick != "system" and pyenv.has_pytest(pick) else ""
    problem = (f"`.python-version` names {missing}, which pyenv has not installed here: `{name}` and `pytest` "
               f"fail; `PYENV_VERSION={pick}` works{tail}")
    return _pyenv_python(view, pyenv, pick, name), problem, f"PYENV_VERSION={pick}"


def _pyenv_python(view: ShellView, pyenv: _Pyenv, version: str, name: str) -> str | None:
    if version == "system":
        return shutil.which(name, path=_non_pyenv_path(view.env.get("PATH", ""), pyenv))
    bin_ = pyenv.root / "versions" / version / "bin"
    return next((str(bin_ / n) for n in (name, "python3", "python") if (bin_ / n).exists()), None)


# --------------------------------------------------------------------------- npm


def _npm_scripts(root: Path) -> dict[str, str] | None:
    path = _inside(root, "package.json")
    text = _read(path) if path is not None else None
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    scripts = data.get("scripts") if isinstance(data, dict) else None
    if not isinstance(scripts, dict):
        return None
    return {str(k): str(v) for k, v in scripts.items() if isinstance(v, str)}


def _segments(command: str) -> list[list[str]]:
    """A script's simple commands, as words."""
    out = []
    for part in re.split(r"&&|\|\||;|\|", command):
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words = words[1:]
        if words and words[0] in ("npx", "cross-env"):
            words = words[1:]
            while words and (words[0].startswith("-") or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0])):
                words = words[1:]
        if words:
            out.append(words)
    return out


def _npm_run_target(words: list[str]) -> str | None:
    """The script ``npm run X`` / ``npm test`` / ``yarn X`` runs, or None."""
    if words[0] not in ("npm", "yarn", "pnpm") or len(words) < 2:
        return None
    if words[1] in ("run", "run-script") and len(words) > 2:
        return words[2]
    if words[1] in ("test", "t"):
        return "test"
    return words[1] if words[0] != "npm" and not words[1].startswith("-") else None


def _npm_note(root: Path, view: ShellView) -> list[str]:
    scripts = _npm_scripts(root)
    if not scripts or "test" not in scripts:
        return []
    if " ".join(scripts["test"].split()) == _PLACEHOLDER:
        return ["`npm test` is npm's placeholder (it only exits 1): the project has no test command"]
    path = view.env.get("PATH", "")
    bin_dir = root / "node_modules" / ".bin"
    missing: dict[str, None] = {}
    absent: dict[str, None] = {}
    seen: set[str] = set()

    def walk(script: str, depth: int, is_test: bool) -> None:
        if script in seen or script not in scripts or depth > 3:
            return
        seen.add(script)
        if depth:  # `npm run x` runs prex and postx too (the test script's are walked by name)
            walk(f"pre{script}", depth + 1, False)
        for words in _segments(scripts[script]):
            target = _npm_run_target(words)
            if target is not None:
                walk(target, depth + 1, False)
                continue
            cmd = words[0]
            if cmd not in _SHELL_WORDS and "/" not in cmd and not (bin_dir / cmd).exists() \
                    and shutil.which(cmd, path=path) is None:
                missing[cmd] = None
            if is_test and cmd not in _NOT_RUNNERS:  # the files a runner (node's own too) is given
                for w in words[1:]:
                    if w.startswith("-") or "://" in w or not ("/" in w or re.search(r"\.[cm]?[jt]sx?$", w)):
                        continue
                    if not _matches(root, w):
                        absent[w] = None
        if depth:
            walk(f"post{script}", depth + 1, False)

    for name in ("pretest", "test", "posttest"):
        walk(name, 0, name == "test")
    if not (missing or absent):
        return []
    parts = []
    if missing:
        names = ", ".join(f"`{m}`" for m in missing)
        where = "no node_modules/" if not (root / "node_modules").is_dir() else "not in node_modules/.bin"
        parts.append(f"`npm test` runs {names}, not installed here ({where}, not on PATH)")
    if absent:
        files = ", ".join(f"`{a}`" for a in absent)
        which = "matches" if len(absent) == 1 else "match"
        parts.append(("`npm test` names " if not missing else "names ") + f"{files}, which {which} nothing here")
    line = "; ".join(parts)
    node = shutil.which("node", path=path)
    version = view.run([node, "--version"], root) if node else None
    if version and (m := re.match(r"v(\d+)", version.strip())) and int(m.group(1)) >= 18:
        line += f"; `node --test <files>` (node {version.strip()}, node:test) needs no package"
    return [line]


def _matches(root: Path, pattern: str) -> bool:
    """Whether a script's path or glob names anything in the workspace."""
    pattern = pattern.removeprefix("./")
    if pattern.startswith("/") or ".." in Path(pattern).parts:
        return True  # outside the workspace: not ours to judge
    if not glob.has_magic(pattern):
        return (root / pattern).exists()
    return next(iter(glob.iglob(pattern, root_dir=root, recursive=True)), None) is not None


# --------------------------------------------------------------------------- the note


def environment_notes(workspace: Path, view: ShellView) -> list[str]:
    """The note's lines (none for a workspace with no trap): the Python ones (interpreter, pytest
    options, src layout, then the command that works), the npm one."""
    root = workspace.resolve()
    lines: list[str] = []
    try:
        if _is_python_project(root):
            lines += _python_notes(root, view)
        lines += _npm_note(root, view)
    except (OSError, ValueError):  # an unreadable or odd file: the note is a help, never a failure
        return lines
    return lines


def environment_note(workspace: Path, view: ShellView) -> str:
    """The note as the workspace summary shows it ("" when there is nothing to say)."""
    lines = environment_notes(workspace, view)
    return "\n".join([NOTE_HEADING, *(f"- {line}" for line in lines)]) if lines else ""
