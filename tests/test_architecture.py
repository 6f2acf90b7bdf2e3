"""Fitness tests for the package layout: layering, and model names decided only in models/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import agentcli
from agentcli.planning.plan import Plan
from agentcli.record.events import PAYLOADS

ROOT = Path(agentcli.__file__).parent

# Lowest first: a module may import its own layer and the ones below it, never one above.
LAYERS = ["base", "models", "tools", "memory", "planning", "record", "engine", "cli"]
BASE = {"config", "errors", "redact", "ids", "untrusted"}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "agentcli" or len(parts) < 2:
        return None
    head = parts[1]
    if head in BASE:
        return "base"
    return head if head in LAYERS else None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from agentcli import x` names a module of the package.
            if node.module == "agentcli":
                found += [(node.lineno, f"agentcli.{a.name}") for a in node.names]
    return found


def _modules() -> list[tuple[str, Path]]:
    out = []
    for p in sorted(ROOT.rglob("*.py")):
        rel = p.relative_to(ROOT).with_suffix("")
        name = ".".join(("agentcli", *rel.parts))
        if name in ("agentcli.__init__", "agentcli.__main__"):
            continue  # the public API and the entry point sit above every layer
        out.append((name, p))
    return out


def test_every_module_belongs_to_a_layer() -> None:
    assert [name for name, _ in _modules() if _layer(name) is None] == []


def test_no_module_imports_a_layer_above_its_own() -> None:
    bad = []
    for name, path in _modules():
        mine = LAYERS.index(_layer(name) or "base")
        for line, target in _imports(path):
            theirs = _layer(target)
            if theirs is not None and LAYERS.index(theirs) > mine:
                bad.append(f"{path.relative_to(ROOT)}:{line} ({_layer(name)}) imports {target} ({theirs})")
    assert bad == []


def test_every_package_says_what_it_owns() -> None:
    inits = sorted(ROOT.rglob("__init__.py"))
    missing = [str(p.relative_to(ROOT)) for p in inits if not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []


def test_the_public_api_resolves() -> None:
    assert set(agentcli.__all__) == {"__version__", *agentcli._EXPORTS}
    for name in agentcli.__all__:
        assert getattr(agentcli, name) is not None, name


# A model's name is read only where models are routed and built: the models package (and the
# memory embedder's own spec parser, which names embedders, not LLMs).
_NAME_TESTS = re.compile(
    r"""(startswith|removeprefix)\(\s*["'](local|test|openai|anthropic|ollama)/|["'](local|test)/["']\s+in\b"""
)
_NAME_OK = {"memory/embeddings.py"}


def test_no_model_name_decides_anything_outside_models() -> None:
    bad = []
    for _name, path in _modules():
        rel = str(path.relative_to(ROOT))
        if rel.startswith("models/") or rel in _NAME_OK:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if _NAME_TESTS.search(line):
                bad.append(f"{rel}:{n}: {line.strip()}")
    assert bad == []


@pytest.mark.real_model
def test_an_offline_run_never_imports_litellm(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "a.txt").write_text("hello\n")
    step = {"id": "s1", "title": "read a.txt", "kind": "tool", "tool": "read_file", "args": {"path": "a.txt"}}
    plan = Plan.model_validate({"id": "p1", "task": "read a.txt", "created_at": "2026-12-01T00:00:00Z",
                                "model": "local/smollm2", "steps": [step]}).rehash()
    (tmp_path / "plan.json").write_text(plan.to_json())
    code = (
        "import sys\n"
        "from agentcli.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('LITELLM' if any(m == 'litellm' or m.startswith('litellm.') for m in sys.modules) else 'CLEAN')\n"
    )
    # The embedded model really answers (the reviewer's call): the run is a real offline run.
    env = {**os.environ, "AGENT_WORKSPACE": str(tmp_path), "AGENT_ALLOW_MODEL_REQUESTS": "1"}
    out = subprocess.run([sys.executable, "-c", code, "run", "--plan", "plan.json", "--yes"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "CLEAN", out.stdout + out.stderr
    assert "hello" in out.stdout, out.stdout + out.stderr


def _module_of(name: str, known: set[str]) -> str | None:
    """The package module an imported name lives in (``agentcli.x.y.Name`` -> ``agentcli.x.y``)."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in known:
            return ".".join(parts)
        parts.pop()
    return None


def _runtime_imports(path: Path, module: str, known: set[str]) -> set[str]:
    """Every package module ``module`` imports when it runs, in-function imports included (those
    only for type checkers, under ``if TYPE_CHECKING:``, are not run)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out |= {m for a in node.names if (m := _module_of(a.name, known))}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:  # `from pkg import module` imports the module
                target = _module_of(f"{node.module}.{a.name}", known)
                if target is None or target == module:
                    target = _module_of(node.module, known)
                if target:
                    out.add(target)
    out.discard(module)
    return out


def test_no_import_cycles_not_even_inside_functions() -> None:
    paths = {}
    for p in sorted(ROOT.rglob("*.py")):
        parts = ("agentcli", *p.relative_to(ROOT).with_suffix("").parts)
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    known = set(paths)
    graph = {m: _runtime_imports(p, m, known) for m, p in paths.items()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(m: str, trail: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(" -> ".join([*trail[trail.index(n):], n]))
            elif n not in state:
                walk(n, [*trail, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            walk(m, [m])
    assert cycles == []



def test_every_event_is_written_through_its_payload_model() -> None:
    # ``EventLog.emit(Payload(...))``, never ``append("type", {...})``: a writer's keys are then the
    # model's fields, checked where the event is made (readers validate into the same models).
    bad = []
    for _name, path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "append"
                    and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in PAYLOADS):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert bad == []


def _named(doc: str, module: str) -> bool:
    return re.search(rf"`{re.escape(module)}/?`", doc) is not None


def test_every_package_docstring_names_every_module_it_holds() -> None:
    missing = []
    for init in sorted(ROOT.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        pkg = init.parent
        held = [p.stem for p in pkg.glob("*.py") if p.stem != "__init__"]
        held += [p.name for p in pkg.iterdir() if (p / "__init__.py").is_file()]
        missing += [f"{pkg.relative_to(ROOT.parent)}: {m}" for m in sorted(held) if not _named(doc, m)]
    assert missing == []
