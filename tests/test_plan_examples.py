"""Few-shot examples chosen by similarity, the local planner's prompt and grammar, grounded answers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from test_plan import make_registry

from agentcli.config import Settings, load_settings
from agentcli.errors import PlanningError
from agentcli.memory.embeddings import get_embedder
from agentcli.models.client import LLMClient
from agentcli.models.fakes import ScriptedModel
from agentcli.planning.examples import EXAMPLES, PlanExample, select_examples
from agentcli.planning.local import parse_levers, task_choices
from agentcli.planning.planner import make_plan
from agentcli.planning.strategy import use_levers

HASH = get_embedder("test/hash")


def test_library_covers_every_builtin_tool() -> None:
    used = set().union(*(e.tools for e in EXAMPLES))
    assert used >= {"read_file", "list_files", "search_code", "write_file", "edit_file", "run_shell",
                    "git_status", "git_diff"}
    assert 30 <= len(EXAMPLES) <= 60
    assert len({e.task for e in EXAMPLES}) == len(EXAMPLES)


def test_example_draft_is_a_valid_draft_shape() -> None:
    ex = next(e for e in EXAMPLES if len(e.steps) == 2)
    draft = json.loads(ex.draft_json())
    assert list(draft["steps"]) == ["s1", "s2"]
    assert draft["steps"]["s1"]["depends_on"] == [] and draft["steps"]["s2"]["depends_on"] == ["s1"]
    assert "call" in draft["steps"]["s1"] and "prompt" in draft["steps"]["s2"]


def test_select_examples_by_similarity_most_similar_last() -> None:
    lib = (
        PlanExample("list the python files", (("list_files", {"pattern": "**/*.py"}),)),
        PlanExample("show the git status", (("git_status", {}),)),
        PlanExample("where is the class Foo defined", (("search_code", {"query": "class Foo"}),)),
    )
    got = select_examples("where is the class Parser defined", 2, embedder=HASH, examples=lib)
    assert len(got) == 2
    assert got[-1].task == "where is the class Foo defined"
    got = select_examples("git status please", 1, embedder=HASH, examples=lib)
    assert [e.task for e in got] == ["show the git status"]
    assert select_examples("anything", 0, embedder=HASH, examples=lib) == []


def test_select_examples_is_deterministic() -> None:
    a = select_examples("list the markdown files", 3, embedder=HASH)
    b = select_examples("list the markdown files", 3, embedder=HASH)
    assert a == b and len(a) == 3


def test_lever_sets_by_name() -> None:
    assert parse_levers("") >= {"compact", "examples", "choices", "answer"}
    assert "narrow" not in parse_levers("default") and "narrow" in parse_levers("all")
    assert "intent" not in parse_levers("") and "memory" in parse_levers("")
    assert parse_levers("none") == frozenset()
    assert parse_levers("examples,bogus") == {"examples"}


def test_task_choices_ground_args_in_the_task_and_workspace() -> None:
    files = ["README.md", "docs/a.md", "src/app.py", "config/x.yaml"]
    c = task_choices("list the markdown files", files)
    assert c["list_files"]["pattern"] == ["**/*.md"]
    c = task_choices("where is the class Parser defined?", files)
    assert "class Parser" in c["search_code"]["query"]
    c = task_choices("in config/x.yaml change debug: true to debug: false", files)
    assert c["edit_file"]["path"] == ["config/x.yaml"]
    assert {"debug: true", "debug: false"} <= set(c["edit_file"]["search"])


# ------------------------------------------------------------------ the planner's request


def _settings(ws: Path, model: str) -> Settings:
    return load_settings(workspace=ws, environ={}, use_user_config=False,
                         overrides={"model": model, "memory.embedding_model": "test/hash"})


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "main.py").write_text("print('hi')\n")
    (root / "README.md").write_text("# Demo\n")
    return root


def _plan(ws: Path, model: str, responses: list[Any], task: str = "list the markdown files") -> ScriptedModel:
    settings = _settings(ws, model)
    scripted = ScriptedModel(responses)
    client = LLMClient(settings.config, backend=scripted)
    asyncio.run(make_plan(task, settings=settings, registry=make_registry(ws, settings.config),
                          client=client, plan_id="p1", save=False))
    return scripted


LIST_MD = {"steps": {"s1": {"call": {"tool": "list_files", "args": {"pattern": "**/*.md"}},
                            "depends_on": [], "title": "md"}}}


def test_local_prompt_has_the_selected_examples(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_levers(parse_levers("all"))
    scripted = _plan(ws, "local/smollm2", [LIST_MD])
    req = scripted.requests[0]
    msgs = req.messages
    chosen = select_examples("list the markdown files", 3, embedder=HASH)
    users = [m["content"] for m in msgs if m["role"] == "user"]
    assert users[:-1] == [e.task for e in chosen] and users[-1] == "list the markdown files"
    assistants = [m["content"] for m in msgs if m["role"] == "assistant"]
    assert assistants == [e.draft_json() for e in chosen]
    assert "# Workspace" not in msgs[0]["content"] and len(msgs[0]["content"]) < 1200
    # With "narrow", the grammar has only the nearest example's tools; the glob is the task's kind of file.
    schema = json.dumps(req.response_format)
    assert '"list_files"' in schema and '"git_status"' not in schema
    assert '"**/*.md"' in schema and '"**/*.py"' not in schema


def test_hosted_prompt_is_unchanged(ws: Path) -> None:
    scripted = _plan(ws, "test/scripted", [LIST_MD])
    msgs = scripted.requests[0].messages
    assert len(msgs) == 2 and "# Workspace" in msgs[1]["content"]


def test_local_planning_error_suggests_a_stronger_model(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_levers(parse_levers("compact,examples"))
    bad = {"steps": {"s1": {"call": {"tool": "nope", "args": {}}, "depends_on": [], "title": "x"}}}
    with pytest.raises(PlanningError) as e:
        _plan(ws, "local/smollm2", [bad] * 5)
    assert "--model openai/gpt-4o-mini" in str(e.value)
    assert "\n" not in str(e.value)


def test_edit_choices_search_in_the_file_replace_not() -> None:
    files = ["pyproject.toml"]
    c = task_choices("set the version in pyproject.toml from 0.4.2 to 0.4.3", files,
                     lambda rel: 'version = "0.4.2"\n')
    assert "0.4.2" in c["edit_file"]["search"] and "0.4.3" not in c["edit_file"]["search"]
    assert "0.4.3" in c["edit_file"]["replace"]
    c = task_choices("create a file todo.txt containing ship it", files)
    assert c["write_file"]["path"] == ["todo.txt"] and "ship it" in c["write_file"]["content"]


def test_grounded_answer_renders_tool_outputs() -> None:
    from agentcli.engine.executor import StepRun
    from agentcli.engine.reviewer import grounded_answer
    from agentcli.planning.plan import Step

    def run(tool: str, output: Any) -> dict[str, StepRun]:
        step = Step(id="s1", title="t", kind="tool", tool=tool, args={})
        return {"s1": StepRun(step, status="ok", output=output)}

    assert grounded_answer(run("list_files", ["a.md", "b.md"])) == "2 files:\na.md\nb.md"
    hits = [{"file": "x.py", "line": 3, "snippet": "# TODO"}]
    assert grounded_answer(run("search_code", hits)) == "1 match:\nx.py:3: # TODO"
    assert grounded_answer(run("search_code", [])) == "nothing found"
    assert "exit code 0" in grounded_answer(run("run_shell", {"exit_code": 0, "output": "ok"}))


@pytest.mark.parametrize(("task", "writes"), [
    ("list the markdown files", False),
    ("which files did I modify?", False),  # a question, whatever its verbs
    ("how do I add a flag?", False),
    ("in config.yaml change debug: true to debug: false", True),
    ("create a file todo.txt containing ship it", True),
    ("Please rename foo to bar.", True),
    # A write word that names something is no request to change it.
    ("find where add is defined", False),
    ("show me the update function", False),
    ("list the files that set DEBUG", False),
    ("the test suite fails: find the cause and fix it", True),
    ("I want you to fix the failing test", True),
    ("in config/defaults.toml change page_size = 20 to page_size = 50", True),
])
def test_write_intent_of_a_task(task: str, writes: bool) -> None:
    from agentcli.planning.local import wants_writes

    assert wants_writes(task) is writes


def test_a_question_gets_no_write_tools_in_the_local_grammar(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_levers(parse_levers("compact,examples,patterns,choices,answer,intent"))
    read = json.dumps(_plan(ws, "local/smollm2", [LIST_MD]).requests[0].response_format)
    assert '"write_file"' not in read and '"edit_file"' not in read and '"list_files"' in read
    edit = {"steps": {"s1": {"call": {"tool": "write_file", "args": {"path": "a.txt", "content": "x"}},
                             "depends_on": [], "title": "write"}}}
    change = _plan(ws, "local/smollm2", [edit], task="create a file a.txt containing x").requests[0]
    assert '"write_file"' in json.dumps(change.response_format)
    use_levers(parse_levers("compact,examples,patterns,choices,answer"))  # without the lever
    assert '"write_file"' in json.dumps(_plan(ws, "local/smollm2", [LIST_MD]).requests[0].response_format)
