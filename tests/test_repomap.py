"""The repository map a hosted planner sees: bounded, ranked by the task, blind to ignored files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agentcli.models import tokens
from agentcli.planning.repomap import repo_map


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    ws = tmp_path / "proj"
    (ws / "pkg").mkdir(parents=True)
    (ws / "pkg" / "__init__.py").write_text("")
    (ws / "pkg" / "cli.py").write_text(
        "import argparse\nfrom pkg.core import slugify\n\n\nclass Runner:\n    def go(self, n: int = 3) -> str:\n"
        "        return ''\n\n\ndef main(argv: list[str] | None = None) -> int:\n    return 0\n")
    (ws / "pkg" / "core.py").write_text("MAX = 3\n\n\nasync def slugify(text: str, *, sep: str = '-') -> str:\n"
                                        "    return text\n")
    (ws / "tests").mkdir()
    (ws / "tests" / "test_cli.py").write_text(
        "from pkg.cli import main\n\n\ndef test_main():\n    assert main([]) == 0\n")
    (ws / "web.ts").write_text("export function render(x: number): string {\n  return ''\n}\n")
    for i in range(60):
        (ws / "pkg" / f"mod{i:02}.py").write_text("".join(f"def func_{i}_{j}(a, b=1):\n    pass\n\n\n"
                                                            for j in range(20)))
    (ws / "secret_build").mkdir()
    (ws / "secret_build" / "gen.py").write_text("def generated():\n    pass\n")
    (ws / "local_only.py").write_text("def excluded_by_info():\n    pass\n")
    (ws / ".gitignore").write_text("secret_build/\n")
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    (ws / ".git" / "info" / "exclude").write_text("# local\nlocal_only.py\n")
    (ws / ".agent" / "runs").mkdir(parents=True)
    (ws / ".agent" / "runs" / "note.py").write_text("def in_data_dir():\n    pass\n")
    return ws


def test_the_map_outlines_what_the_task_names_first(repo: Path) -> None:
    text = repo_map(repo, repo / ".agent", "add a --verbose flag to main in pkg/cli.py", max_tokens=1500)
    outline = text.split("outline (line, definition), most relevant first:\n", 1)[1]
    assert outline.startswith("pkg/cli.py\n")
    assert "   10 def main(argv: list[str] | None = None) -> int" in outline
    assert "    5 class Runner" in outline and "    6   def go(self, n: int = 3) -> str" in outline
    assert "pkg/: __init__.py cli.py core.py" in text  # the tree, best-ranked directories named in full


def test_the_tests_of_a_named_file_come_next_when_the_task_asks_for_a_test(repo: Path) -> None:
    text = repo_map(repo, repo / ".agent", "add a --verbose flag to pkg/cli.py and a test for it", max_tokens=1500)
    files = [line for line in text.split("most relevant first:\n", 1)[1].splitlines() if not line.startswith(" ")]
    assert files[:2] == ["pkg/cli.py", "tests/test_cli.py"]


def test_the_map_stays_within_its_budget(repo: Path) -> None:
    for budget in (200, 600, 3000):
        text = repo_map(repo, repo / ".agent", "rename slugify", max_tokens=budget)
        assert 0 < tokens.count_text(text) <= budget
    assert repo_map(repo, repo / ".agent", "anything", max_tokens=0) == ""


def test_the_map_never_shows_ignored_files_or_the_data_dir(repo: Path) -> None:
    text = repo_map(repo, repo / ".agent", "generated excluded_by_info in_data_dir", max_tokens=50_000)
    for hidden in ("secret_build", "generated", "local_only", "excluded_by_info", ".agent", "in_data_dir"):
        assert hidden not in text
    assert "web.ts" in text and "export function render(x: number): string" in text


def test_a_hosted_planner_gets_the_map_and_the_local_one_does_not(repo: Path) -> None:
    import asyncio

    from agentcli.config import load_settings
    from agentcli.models.client import LLMClient
    from agentcli.models.fakes import ScriptedModel
    from agentcli.planning.planner import make_plan
    from agentcli.tools import build_registry

    draft = {"steps": {"s1": {"call": {"tool": "read_file", "args": {"path": "pkg/cli.py"}},
                              "depends_on": [], "title": "read"}}}
    for model, expect in (("openai/gpt-4o-mini", True), ("local/smollm2", False)):
        settings = load_settings(workspace=repo, use_user_config=False, environ={},
                                 overrides={"model": model, "memory.enabled": False})
        registry = asyncio.run(build_registry(settings, plugins=False, mcp=False))
        backend = ScriptedModel([draft] * 3)
        client = LLMClient(settings.config, backend=backend)
        asyncio.run(make_plan("add a flag to main in pkg/cli.py", settings=settings, registry=registry,
                              client=client, save=False))
        sent = "\n".join(str(m["content"]) for m in backend.requests[0].messages)
        assert ("# Repository map" in sent and "def main(argv" in sent) is expect, model
        assert ("run in parallel" in sent) is expect
