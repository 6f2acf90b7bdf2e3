"""Tools say what they return, the planner sees it, every example reference in a prompt resolves
against a real tool's declared output, and outputs reach an llm prompt as text, unescaped."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from runkit import Harness, config, plan, review, step
from toolkit import call, make_registry

from agentcli.config import load_settings
from agentcli.models.client import LLMClient
from agentcli.models.fakes import ScriptedModel
from agentcli.planning.local import build_local_messages
from agentcli.planning.plan import find_references, resolve_references, schema_path_problem
from agentcli.planning.planner import make_plan
from agentcli.planning.prompt import HOSTED_REFERENCE_EXAMPLES, build_messages, hosted_system
from agentcli.tools import build_registry

DIFF_LINE = r"-_RE = re.compile(r'(?<=\d),(?=\d)')"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "app.py").write_text(f"import re\n\n{DIFF_LINE[1:]}\n\n\ndef parse_args(argv):\n    return argv\n")
    return root


def test_every_builtin_tool_declares_its_output(ws: Path) -> None:
    reg = make_registry(ws)
    assert all(t.output_schema() is not None for t in reg.tools())
    shapes = {t.name: t.output_shape() for t in reg.tools()}
    assert shapes["search_code"] == "list of {file: text, line: int, snippet: text, from_line: int or null}"
    assert shapes["run_shell"] == "{exit_code: int, output: text, sandbox: text}"
    assert shapes["list_files"] == "list of text" and shapes["read_file"] == "text"


def test_the_hosted_catalogue_shows_outputs_and_the_small_one_is_unchanged(ws: Path) -> None:
    settings = load_settings(workspace=ws, use_user_config=False, environ={})
    tools = make_registry(ws).tools()
    hosted = build_messages("t", tools, settings.config, "", [], hosted=True, step_output_tokens=8192)
    content = hosted[0]["content"]
    assert "-> list of {file: text, line: int, snippet: text, from_line: int or null}: Search" in content
    # read_file's output is text: no shape shown.
    assert "- read_file(path: text, start_line?: int, end_line?: int) [read, runs without asking]: Read" in content
    assert "at most 8192 tokens" in hosted[0]["content"] and '"answer": "edits"' in hosted[0]["content"]
    small = build_messages("t", tools, settings.config, "", [])
    assert "returns:" not in small[1]["content"] and "edits" not in small[0]["content"]


def test_every_example_reference_in_a_prompt_resolves_against_a_real_tool(ws: Path) -> None:
    reg = make_registry(ws)
    (ws / "t.py").write_text("parse_args\n")
    system = hosted_system(8192)
    with_path = [r for r in find_references(system) if r.path]
    assert {r.text for r in with_path} == set(HOSTED_REFERENCE_EXAMPLES)
    outputs = {"search_code": call(reg, "search_code", {"query": "parse_args"}).output,
               "run_shell": {"exit_code": 0, "output": "ok\n"}}
    for ref in with_path:
        tool = reg.get(HOSTED_REFERENCE_EXAMPLES[ref.text])
        assert tool is not None
        assert schema_path_problem(tool.output_schema(), ref.path) is None, ref.text
        # ... and against a real output of that tool.
        assert resolve_references(ref.text, {ref.step_id: outputs[tool.name]}) is not None
    # The small model's compact prompt shows no output paths at all.
    local = build_local_messages("t", reg.tools(), [])
    assert not [r for m in local for r in find_references(m["content"]) if r.path]


def test_a_search_code_reference_resolves_in_a_run(ws: Path) -> None:
    p = plan(step("s1", "search_code", query="parse_args"),
             step("s2", "read_file", deps=["s1"], path="{{s1.output[0].file}}"))
    out = Harness(ws, config(), ScriptedModel([review()]), [p]).run()
    assert [s["status"] for s in out.steps] == ["ok", "ok"]


def test_a_reference_that_no_tool_output_has_is_caught_at_planning(ws: Path) -> None:
    settings = load_settings(workspace=ws, use_user_config=False, environ={}, overrides={"model": "test/scripted"})
    registry = asyncio.run(build_registry(settings, plugins=False, mcp=False))
    bad = {"steps": {"s1": {"call": {"tool": "search_code", "args": {"query": "parse_args"}}, "depends_on": [],
                            "title": "Find it"},
                     "s2": {"call": {"tool": "read_file", "args": {"path": "{{s1.output.matches[1].path}}"}},
                            "depends_on": ["s1"], "title": "Read it"}}}
    good = json.loads(json.dumps(bad).replace("s1.output.matches[1].path", "s1.output[0].file"))
    model = ScriptedModel([bad, good])
    client = LLMClient(settings.config, backend=model)
    made = asyncio.run(make_plan("read where parse_args is", settings=settings, registry=registry, client=client,
                                 save=False))
    assert made.steps[1].args["path"] == "{{s1.output[0].file}}"
    reask = model.requests[1].messages[-1]["content"]
    assert "s1.output is a list, not an object" in reask
    assert "search_code returns list of {file: text, line: int, snippet: text, from_line: int or null}" in reask


def test_outputs_reach_an_llm_prompt_as_text(ws: Path) -> None:
    cmd = f"printf '%s\\n' 'diff --git a/app.py b/app.py' \"{DIFF_LINE}\""
    model = ScriptedModel(["noted", "noted", review()])
    p = plan(step("s1", "run_shell", command=cmd),
             step("s2", "search_code", query="parse_args"),
             step("s3", prompt="The diff:\n{{s1.output}}\nMatches:\n{{s2.output}}", deps=["s1", "s2"]),
             step("s4", prompt="Line {{s2.output[0].line}} of {{s2.output[0].file}}", deps=["s2"]))
    out = Harness(ws, config(), model, [p], yes=True).run()
    assert [s["status"] for s in out.steps] == ["ok"] * 4
    # Each step's prompt follows its plan reminder (<plan>...</plan>).
    prompts = {r.messages[1]["content"].split("</plan>\n\n", 1)[-1] for r in model.requests[:2]}
    text = next(p for p in prompts if p.startswith("The diff:"))
    assert DIFF_LINE in text and "\\n" not in text and "\\\\d" not in text  # the line exactly as the file has it
    assert "exit_code: 0\noutput:\ndiff --git a/app.py b/app.py\n" in text and "\nsandbox: " in text
    assert '"file": "app.py"' in text  # structured values as readable JSON
    assert "Line 6 of app.py" in prompts


def test_a_json_answer_is_parsed_and_its_paths_are_checked(ws: Path) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    answer = step("s1", prompt="name the function").model_copy(update={"answer": "json", "answer_schema": schema})
    use = step("s2", "search_code", deps=["s1"], query="{{s1.output.name}}")
    model = ScriptedModel(['```json\n{"name": "parse_args"}\n```', review()])
    out = Harness(ws, config(), model, [plan(answer, use)]).run()
    assert [s["status"] for s in out.steps] == ["ok", "ok"]
    rf = model.requests[0].response_format
    assert rf is not None and rf["json_schema"]["schema"] == schema
    reg = make_registry(ws)
    from agentcli.planning.plan import validate_steps

    wrong = step("s2", "search_code", deps=["s1"], query="{{s1.output.title}}")
    issues = validate_steps([answer, wrong], reg, max_steps=20, check_outputs=True)
    assert [str(i) for i in issues] == [
        "s2: {{s1.output.title}}: s1.output has no key 'title' (keys: name) (the json answer of s1)"]
