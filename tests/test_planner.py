"""make_plan over ScriptedModel: the prompt, the schema, re-asks, estimates, saving, load_plan."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_plan import make_registry

from agentcli.config import Settings, load_settings
from agentcli.errors import PlanningError
from agentcli.models.client import LLMClient
from agentcli.models.fakes import DEFAULT_PRICE, ScriptedModel
from agentcli.planning.plan import Plan
from agentcli.planning.planner import load_plan, make_plan, plan_path, save_plan
from agentcli.planning.prompt import draft_schema, workspace_summary
from agentcli.tools import ToolRegistry
from agentcli.untrusted import InputError

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

GOOD = {"steps": {
    "s1": {"call": {"tool": "list_files", "args": {"pattern": "**/*.py"}}, "depends_on": [],
           "title": "Find the Python files"},
    "s2": {"call": {"tool": "read_file", "args": {"path": "{{s1.output[0]}}"}}, "depends_on": ["s1"],
           "title": "Read the first one", "requires_approval": True},
    "s3": {"prompt": "Summarise this file:\n{{s2.output}}", "depends_on": ["s2"], "title": "Summarise it"},
    "s4": {"call": {"tool": "write_file", "args": {"path": "SUMMARY.md", "content": "{{s3.output}}"}},
           "depends_on": ["s3"], "title": "Write the summary"},
}}


def settings_for(ws: Path, **overrides: Any) -> Settings:
    return load_settings(workspace=ws, environ={}, use_user_config=False,
                         overrides={"model": "test/scripted", **overrides})


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "main.py").write_text("print('hi')\n")
    (root / "README.md").write_text("# Demo project\nDoes demo things.\n")
    return root


def plan_with(ws: Path, responses: list[Any], *, registry: ToolRegistry | None = None,
              settings: Settings | None = None, **kwargs: Any) -> tuple[Plan, ScriptedModel]:
    settings = settings or settings_for(ws)
    model = ScriptedModel(responses)
    client = LLMClient(settings.config, backend=model)
    reg = registry or make_registry(ws, settings.config)
    plan = asyncio.run(make_plan("summarise the code", settings=settings, registry=reg, client=client,
                                 plan_id="plan-1", now=NOW, **kwargs))
    return plan, model


# ------------------------------------------------------------------ the happy path


def test_plan_from_a_valid_draft(ws: Path) -> None:
    plan, model = plan_with(ws, [GOOD])
    assert [s.id for s in plan.steps] == ["s1", "s2", "s3", "s4"]
    assert [s.kind for s in plan.steps] == ["tool", "tool", "llm", "tool"]
    assert plan.steps[1].depends_on == ["s1"] and plan.steps[1].args == {"path": "{{s1.output[0]}}"}
    # Approval: read auto (the model raised s2), llm none, write asks by policy.
    assert [s.requires_approval for s in plan.steps] == [False, True, False, True]
    assert [s.risk for s in plan.steps] == ["read", "read", None, "write"]
    assert [s.retry.max_attempts for s in plan.steps] == [2, 2, 2, 1]
    assert all(s.tool_schema_version for s in plan.steps if s.kind == "tool")
    assert (plan.id, plan.created_at, plan.model, plan.task) == ("plan-1", NOW, "test/scripted",
                                                                 "summarise the code")
    assert plan.verify_hash()
    saved = plan_path(ws / ".agent", "plan-1")
    assert Plan.model_validate_json(saved.read_text()) == plan
    assert len(model.requests) == 1 and plan.planning_cost_usd is not None


def test_estimates_count_llm_steps_only(ws: Path) -> None:
    plan, _ = plan_with(ws, [GOOD])
    llm = plan.steps[2]
    # The output limit the step is sent with: a step's role limit within the model's maximum.
    assert llm.estimated_output_tokens == 8192
    # The prompt's own tokens, plus the fixed allowance for the one referenced output.
    assert 256 < llm.estimated_input_tokens < 256 + 100
    assert llm.estimated_cost_usd == pytest.approx(
        DEFAULT_PRICE.cost(llm.estimated_input_tokens, llm.estimated_output_tokens))
    assert all(s.estimated_cost_usd == 0.0 for s in plan.steps if s.kind == "tool")
    assert plan.estimated_cost_usd == pytest.approx(llm.estimated_cost_usd)
    assert plan.estimated_tokens == llm.estimated_input_tokens + 8192


def test_unknown_price_is_unknown_not_zero(ws: Path) -> None:
    settings = settings_for(ws)
    client = LLMClient(settings.config, backend=ScriptedModel([GOOD], price=None))
    plan = asyncio.run(make_plan("t", settings=settings, registry=make_registry(ws), client=client, save=False))
    assert plan.steps[2].estimated_cost_usd is None and plan.estimated_cost_usd is None
    assert plan.planning_cost_usd is None
    assert plan.steps[0].estimated_cost_usd == 0.0  # a tool step calls no model whatever the price


def test_lenient_forms_of_a_draft(ws: Path) -> None:
    # A provider that ignores the schema may send a list, flat tool/args and numeric deps.
    draft = {"steps": [{"tool": "list_files", "args": {"pattern": "*.py"}, "title": "list"},
                       {"tool": "read_file", "args": {"path": "{{s1.output[0]}}"}, "depends_on": [1]}]}
    plan, _ = plan_with(ws, [draft])
    assert [s.id for s in plan.steps] == ["s1", "s2"]
    assert plan.steps[1].depends_on == ["s1"] and plan.steps[1].title == "read_file"


# ------------------------------------------------------------------ what the model is given


def test_prompt_has_task_tools_budgets_workspace_memory_and_context_stable_parts_first(ws: Path) -> None:
    seen: list[str] = []

    def recall(task: str) -> list[str]:
        seen.append(task)
        return ["last time, tests lived in tests/", "x" * 2000]

    _, model = plan_with(ws, [GOOD], recall=recall, context="the previous plan failed at s2")
    system, user = (m["content"] for m in model.requests[0].messages)
    assert "{{sN.output}}" in system and '"depends_on"' in system and "([] for s1)" in system
    # What is the same for every task of a configuration comes first, in the system message (a
    # provider caches that prefix); the task comes last.
    assert "- read_file [read, runs without asking] -> any\n" in system  # given with the request: named only
    assert "- write_file(path: text, content: text) [write, needs approval]" in system
    assert system.endswith("# Budgets\nat most 20 steps")  # spend, tokens and time: checked in code
    # Each tool's args are sent once: read_file's with it as a tool the survey may call, not again
    # in the catalogue or the draft schema.
    assert "start_line" not in system + user
    assert "start_line" not in json.dumps(model.requests[0].response_format)
    assert "start_line" in json.dumps(model.requests[0].tools)
    assert user.startswith("# Workspace\ntop level: README.md, main.py") and "Python (1)" in user
    assert user.endswith("# Task\nsummarise the code")
    assert "# Demo project" in user  # head of a key file
    assert "- last time, tests lived in tests/" in user and "x" * 401 not in user  # bounded
    assert "# Context\nthe previous plan failed at s2" in user
    assert seen == ["summarise the code"]


def test_schema_is_grammar_friendly(ws: Path) -> None:
    # The local model's schema (a hosted model gets hosted_draft_schema: test_planner_schema.py).
    schema = draft_schema(make_registry(ws).tools(), 20)
    defs = schema["$defs"]
    slots = schema["properties"]["steps"]["properties"]
    assert list(slots) == [f"s{i}" for i in range(1, 21)]
    assert schema["properties"]["steps"]["required"] == ["s1"]
    # Step k may depend only on s1..s(k-1): a self- or forward dependency cannot be written.
    assert defs["deps1"] == {"const": []}
    assert defs["deps3"]["items"] == {"enum": ["s1", "s2"]} and defs["deps3"]["maxItems"] == 2
    tools = [b["properties"]["tool"] for b in defs["call"]["anyOf"]]
    assert tools == [{"const": n} for n in ("fetch", "list_files", "read_file", "run_shell", "write_file")]
    assert defs["title"]["maxLength"] == 60 and defs["prompt"]["maxLength"] == 400
    read_args = defs["args2"]
    assert read_args["properties"]["path"]["maxLength"] == 200 and read_args["required"] == ["path"]
    assert defs["args0"]["properties"]["max_items"]["maxItems"] == 8
    assert "description" not in json.dumps(schema)


def test_schema_size_grows_with_tools_plus_steps(ws: Path) -> None:
    reg = make_registry(ws)
    small, big = (len(json.dumps(draft_schema(reg.tools(), n))) for n in (5, 20))
    assert big < small * 4


def test_workspace_summary_is_bounded_and_respects_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("build/\n*.log\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "gen.py").write_text("x = 1\n")
    (tmp_path / "app.log").write_text("noise\n")
    (tmp_path / "src").mkdir()
    for i in range(30):
        (tmp_path / "src" / f"m{i}.py").write_text("pass\n")
    (tmp_path / "README.md").write_text("# Title\n" + "word " * 200_000)  # ~1 MB: only its head is read
    text = workspace_summary(tmp_path, tmp_path / ".agent", max_chars=800)
    assert "build/" not in text and "app.log" not in text
    assert "top level: .gitignore, README.md, src/" in text
    assert "files: 32" in text and "Python (30)" in text
    assert len(text) <= 800
    assert "--- README.md (head)\n# Title" in text
    capped = workspace_summary(tmp_path, max_files=5)
    assert "files: 5+" in capped


_PACKAGE_JSON = {
    "name": "yargs-parser", "version": "21.1.1", "description": "the mighty option parser used by yargs",
    "main": "build/index.cjs", "exports": {".": [{"import": "./build/lib/index.js"}], "./browser": ["./browser.js"]},
    "type": "module", "bin": {"yp": "bin/yp.js"},
    "scripts": {
        "check": "standardx '**/*.ts' && standardx '**/*.js' && standardx '**/*.cjs'",
        "fix": "standardx --fix '**/*.ts' && standardx --fix '**/*.js' && standardx --fix '**/*.cjs'",
        "pretest": "rimraf build && tsc -p tsconfig.test.json && cross-env NODE_ENV=test npm run build:cjs",
        "test": "c8 --reporter=text --reporter=html mocha test/*.cjs",
        "test:esm": "c8 --reporter=text --reporter=html mocha test/*.mjs",
        "test:browser": "start-server-and-test 'serve ./ -p 8080' http://127.0.0.1:8080/package.json 'node t.cjs'",
        "coverage": "c8 report --check-coverage", "compile": "tsc", "build:cjs": "rollup -c",
        "prepare": "npm run compile"},
    "keywords": ["argument", "parser"] * 10, "author": "Ben Coe", "license": "ISC",
    "dependencies": {"camelcase": "^6"},
    "devDependencies": {f"dev-package-{i}": "^1.0.0" for i in range(23)},
}
_PYPROJECT = """[build-system]
requires = ["setuptools>=68"]

[project]
name = "slugkit"
version = "1.2.0"
description = "A long description that the planner does not need to see at all, however long it runs."
requires-python = ">=3.10"
dependencies = [
    # a comment
    "text-unidecode>=1.3",
    "regex[fast]==2024.1; python_version < '3.12'",
]

[project.optional-dependencies]
dev = ["pytest>=8"]

[project.scripts]
slugify = "slugkit.cli:main"

[tool.ruff]
line-length = 120

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "-q --strict-markers"
"""


def test_a_manifest_is_shown_as_a_digest_with_every_script_and_the_test_configuration(ws: Path) -> None:
    (ws / "package.json").write_text(json.dumps(_PACKAGE_JSON, indent=2))
    (ws / "pyproject.toml").write_text(_PYPROJECT)
    _, model = plan_with(ws, [GOOD])
    user = model.requests[0].messages[1]["content"]
    assert "--- package.json (digest)\n" in user and "--- pyproject.toml (digest)\n" in user
    pkg = user.split("--- package.json (digest)\n", 1)[1].split("\n--- ", 1)[0].split("\n\n", 1)[0]
    assert pkg.startswith("yargs-parser 21.1.1; type: module; main: build/index.cjs; exports: ., ./browser; "
                          "bin: yp -> bin/yp.js\n")
    assert "\n  test: c8 --reporter=text --reporter=html mocha test/*.cjs\n" in pkg  # the test command whole
    assert "  pretest: rimraf build && tsc -p tsconfig.test.json && cross-env NODE_ENV=test npm run build:cjs" in pkg
    for name in _PACKAGE_JSON["scripts"]:  # every script is named
        assert name in pkg
    assert "dependencies (1): camelcase" in pkg and "devDependencies (23): dev-package-0," in pkg
    assert "mighty" not in pkg and "keywords" not in pkg and "argument" not in pkg
    assert len(pkg) <= 700
    py = user.split("--- pyproject.toml (digest)\n", 1)[1].split("\n--- ", 1)[0]
    assert py.splitlines() == [
        "project: slugkit 1.2.0; requires-python: >=3.10",
        "dependencies (2): text-unidecode, regex[fast]",
        "optional-dependencies: dev",
        "scripts: slugify = slugkit.cli:main",
        '[tool.pytest.ini_options] testpaths = ["tests"]; addopts = "-q --strict-markers"',
    ]
    # The same files give the same text (it sits in the request's cached prefix).
    _, again = plan_with(ws, [GOOD])
    assert again.requests[0].messages[1]["content"] == user


def test_a_malformed_manifest_is_shown_by_its_head(ws: Path) -> None:
    (ws / "package.json").write_text('{"name": "broken",\n  "scripts": {"test": "jest"\n')
    (ws / "pyproject.toml").write_text("[project\nname = 'x'\n")
    _, model = plan_with(ws, [GOOD])
    user = model.requests[0].messages[1]["content"]
    assert '--- package.json (head)\n{"name": "broken",\n  "scripts": {"test": "jest"' in user
    assert "--- pyproject.toml (head)\n[project\nname = 'x'" in user


# ------------------------------------------------------------------ re-asks


def test_reask_on_malformed_output_then_success(ws: Path) -> None:
    bad_plan = {"steps": {"s1": {"call": {"tool": "list_file", "args": {}}, "depends_on": [], "title": "x"}}}
    plan, model = plan_with(ws, ["I think the plan is...", bad_plan, GOOD])
    assert len(plan.steps) == 4
    assert len(model.requests) == 3
    # The client re-asked for JSON; the planner re-asked with the validation problems.
    assert "did not match the required JSON schema" in model.requests[1].messages[-1]["content"]
    reask = model.requests[2].messages
    assert reask[-2] == {"role": "assistant", "content": json.dumps(bad_plan)}
    assert "s1.tool: unknown tool 'list_file'; did you mean 'list_files'?" in reask[-1]["content"]
    assert len(reask) == 4  # rules, request, the bad reply, the problems: not the whole history


def test_gives_up_with_one_line_listing_the_problems(ws: Path) -> None:
    bad = {"steps": {"s1": {"call": {"tool": "read_file", "args": {"colour": 1}}, "depends_on": [], "title": "x"},
                     "s2": {"prompt": "use {{s1.output}}", "depends_on": [], "title": "y"}}}
    with pytest.raises(PlanningError) as err:
        plan_with(ws, [bad, bad, bad])
    msg = err.value.one_line()
    assert msg.startswith("no valid plan after 3 tries: ")
    assert "s1.args.path: required argument is missing" in msg
    assert "s1.args.colour: unknown argument; read_file takes: path, start_line" in msg
    assert 's2: {{s1.output}} refers to s1, which is not in depends_on; add "s1" to depends_on' in msg
    assert not plan_path(ws / ".agent", "plan-1").exists()


def test_shape_errors_are_reported_per_step(ws: Path) -> None:
    with pytest.raises(PlanningError, match=r"s1: give either \"call\""):
        plan_with(ws, [{"steps": {"s1": {"title": "nothing to do"}}}] * 3)
    with pytest.raises(PlanningError, match="steps: Field required"):
        plan_with(ws, [{"plan": []}] * 3)


def test_no_json_at_all_is_a_planning_error(ws: Path) -> None:
    with pytest.raises(PlanningError, match=r"the planner did not reply with JSON: .*not valid JSON"):
        plan_with(ws, ["Sure! Here is my plan: first, look around."] * 3)


def test_too_many_steps_for_the_budget(ws: Path) -> None:
    settings = settings_for(ws, **{"budget.max_steps": 2})
    with pytest.raises(PlanningError, match="4 steps, but at most 2 are allowed"):
        plan_with(ws, [GOOD] * 3, settings=settings)


def test_token_budget_is_checked_against_the_estimate(ws: Path) -> None:
    settings = settings_for(ws, **{"budget.max_tokens": 500})
    with pytest.raises(PlanningError, match="over the budget of 500; use fewer or shorter llm steps"):
        plan_with(ws, [GOOD] * 3, settings=settings)


def test_empty_task_is_a_usage_error(ws: Path) -> None:
    from agentcli.errors import UsageError

    settings = settings_for(ws)
    client = LLMClient(settings.config, backend=ScriptedModel([]))
    with pytest.raises(UsageError):
        asyncio.run(make_plan("  ", settings=settings, registry=make_registry(ws), client=client))


# ------------------------------------------------------------------ load_plan


def saved_plan(ws: Path) -> tuple[Plan, Path, ToolRegistry, Settings]:
    settings = settings_for(ws)
    plan, _ = plan_with(ws, [GOOD], settings=settings)
    out = save_plan(plan, ws / "plan.json")
    return plan, out, make_registry(ws, settings.config), settings


def test_load_unchanged_plan(ws: Path) -> None:
    plan, path, reg, settings = saved_plan(ws)
    loaded, changed, diff = load_plan(path, reg, settings.config)
    assert (changed, diff) == (False, "")
    assert loaded == plan


def test_edited_plan_is_revalidated_rehashed_and_diffed(ws: Path) -> None:
    plan, path, reg, settings = saved_plan(ws)
    raw = json.loads(path.read_text())
    raw["steps"][0]["args"]["pattern"] = "src/**/*.py"
    raw["steps"][3]["requires_approval"] = False  # an edit cannot lower the policy's requirement
    path.write_text(json.dumps(raw))
    loaded, changed, diff = load_plan(path, reg, settings.config)
    assert changed and loaded.verify_hash() and loaded.hash != plan.hash
    assert loaded.steps[0].args == {"pattern": "src/**/*.py"}
    assert loaded.steps[3].requires_approval is True
    assert '-        "pattern": "**/*.py"' in diff and '+        "pattern": "src/**/*.py"' in diff
    assert "requires_approval" not in diff  # restored, so no change there
    assert diff.startswith("--- plan-1 (as planned)\n+++ ")


def test_edited_plan_that_no_longer_validates(ws: Path) -> None:
    _, path, reg, settings = saved_plan(ws)
    raw = json.loads(path.read_text())
    raw["steps"][1]["depends_on"] = []
    path.write_text(json.dumps(raw))
    with pytest.raises(PlanningError, match=r"is not valid: s2: .* not in depends_on"):
        load_plan(path, reg, settings.config)


def test_edited_plan_without_the_original(ws: Path) -> None:
    _, path, reg, settings = saved_plan(ws)
    plan_path(ws / ".agent", "plan-1").unlink()
    raw = json.loads(path.read_text())
    raw["steps"][0]["args"]["pattern"] = "*.md"
    path.write_text(json.dumps(raw))
    loaded, changed, diff = load_plan(path, reg, settings.config)
    assert changed and loaded.verify_hash() and "no diff" in diff


def test_changed_tool_schema_is_a_change(ws: Path) -> None:
    _, path, reg, settings = saved_plan(ws)
    raw = json.loads(path.read_text())
    raw["steps"][0]["tool_schema_version"] = "000000000000"
    raw["hash"] = Plan.model_validate(raw).compute_hash()  # as if planned against an older tool
    path.write_text(json.dumps(raw))
    loaded, changed, diff = load_plan(path, reg, settings.config)
    assert changed and '-      "tool_schema_version": "000000000000"' in diff
    assert loaded.steps[0].tool_schema_version == reg.get("list_files").schema_version  # type: ignore[union-attr]


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not valid JSON"),
    ('{"schema_version": "99"}', "schema_version '99' is not supported"),
    ('{"schema_version": "1", "id": "x"}', "is not a valid plan: task: Field required"),
])
def test_unreadable_plan_files(ws: Path, content: str, message: str) -> None:
    path = ws / "bad.json"
    path.write_text(content)
    # An undecodable file is bad input (exit 2); a readable one that is not a plan, a planning error.
    with pytest.raises((PlanningError, InputError), match=message):
        load_plan(path, make_registry(ws), settings_for(ws).config)


def test_load_plan_reestimates_with_a_client(ws: Path) -> None:
    _, path, reg, settings = saved_plan(ws)
    client = LLMClient(settings.config, backend=ScriptedModel([], price=None))
    loaded, changed, _ = load_plan(path, reg, settings.config, client=client)
    assert not changed and loaded.estimated_cost_usd is None
