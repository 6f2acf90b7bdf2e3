"""Which draft schema the planner sends: the compact one (one shared step definition) to a
hosted model, the grammar-oriented one (per-slot dependency enums) to the local model, the
latter pinned byte for byte (a benchmark of the local model depends on it)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel
from test_plan import make_registry
from test_planner import GOOD, plan_with, settings_for

from agentcli.config import Config, Settings
from agentcli.models import tokens
from agentcli.planning.local import local_draft_schema, parse_levers
from agentcli.planning.prompt import draft_schema, hosted_draft_schema, tool_signature
from agentcli.planning.strategy import use_levers
from agentcli.tools import Tool, build_registry


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "main.py").write_text("print('hi')\n")
    return root


# --------------------------------------------------------------------------- the local schema, pinned

# Fixed args schemas (not built by pydantic, not the built-in tools): the pins below change only
# when draft_schema / local_draft_schema do. Refs, type lists, defaults, bounds, a glob and a path.
FIXED_ARGS: dict[str, dict[str, Any]] = {
    "list_files": {"type": "object", "properties": {
        "pattern": {"type": "string", "default": "**/*", "description": "glob"},
        "max_items": {"type": "array", "items": {"type": "string"}}}, "additionalProperties": False},
    "read_file": {"type": "object", "properties": {
        "path": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "encoding": {"enum": ["utf-8", "latin-1"]}}, "required": ["path"]},
    "run_shell": {"type": "object", "$defs": {"Env": {"type": "object", "properties": {
        "cwd": {"type": "string", "maxLength": 500}, "vars": {"type": "array", "items": {"$ref": "#/$defs/Kv"},
                                                               "maxItems": 20}}},
        "Kv": {"type": "object", "properties": {"k": {"type": "string"}, "v": {"type": ["string", "integer"]}}}},
        "properties": {"command": {"type": "string", "title": "Command"}, "env": {"$ref": "#/$defs/Env"}},
        "required": ["command"]},
}


class _NoArgs(BaseModel):
    pass


@dataclass(eq=False, kw_only=True)
class FixedTool(Tool):
    schema: dict[str, Any]

    def parameters_schema(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(json.dumps(self.schema))
        return result


def fixed_tools() -> list[Tool]:
    return [FixedTool(name=n, description=f"The {n} tool.", args_model=_NoArgs, func=lambda a, c: None, schema=s)
            for n, s in FIXED_ARGS.items()]


def digest(schema: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(schema).encode()).hexdigest()


def test_local_schemas_are_unchanged_byte_for_byte() -> None:
    # Recorded before hosted_draft_schema existed; a change here changes the local model's grammar.
    t = fixed_tools()
    assert digest(draft_schema(t, 20)) == "59ef97e95847166fca4795ae6d026da73e493b78c6743245689108226c6ef0b3"
    assert digest(draft_schema(t, 1)) == "f63fbac2fdab74a32cf64f14b7d62a054abd7ec278b3869a3a387b3caefe2cc4"
    assert digest(draft_schema([], 3)) == "e1419cd75d940affa85ec6d8e3827029ee170529949ef15b6cba393d98fe78b7"
    pins = {
        (True, True): "07aaffd042093d0e56c82b74be630b0b00dd7bcb105ead0d29dc2d5a551585b0",
        (True, False): "585d96cd8e72f3bb2c8a7fb14e4638b0a32bd2ae9e893296ddb0d0a63b15f5ba",
        (False, True): "c34253b2ea5965bd6e65a29164c09ce34feeb68c44a8980b582e9d7dd6739eec",
        (False, False): "a0e1fd9101784d79bee43c8ecffb370d1e0e1967beb8427c252722063158d22f",
    }
    for (allow_prompt, patterns), pin in pins.items():
        assert digest(local_draft_schema(t, 20, allow_prompt=allow_prompt, patterns=patterns)) == pin


def test_local_model_is_sent_the_grammar_schema(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_levers(parse_levers("none"))  # the default request, with the local model's schema
    settings = settings_for(ws, model="local/smollm2")
    _, model = plan_with(ws, [GOOD], settings=settings)
    rf = model.requests[0].response_format
    assert rf is not None
    assert json.dumps(rf["json_schema"]["schema"]) == json.dumps(draft_schema(make_registry(ws).tools(), 20))


# --------------------------------------------------------------------------- the hosted schema


def sent_schema(ws: Path) -> dict[str, Any]:
    _, model = plan_with(ws, [GOOD])
    rf = model.requests[0].response_format
    assert rf is not None and rf["type"] == "json_schema"
    schema: dict[str, Any] = rf["json_schema"]["schema"]
    return schema


def objects(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, list):
        for x in node:
            yield from objects(x)
    elif isinstance(node, dict):
        if node.get("type") == "object":
            yield node
        for k, v in node.items():
            if k != "answer_schema":  # a JSON Schema the planner writes: any object, by design
                yield from objects(v)


def test_hosted_model_is_sent_one_shared_step(ws: Path) -> None:
    schema = sent_schema(ws)
    tools = [t for t in make_registry(ws).tools() if t.planned]  # run_readonly: investigate steps' only
    assert json.dumps(schema) == json.dumps(hosted_draft_schema(tools, 20, investigate=True))
    steps = schema["properties"]["steps"]
    # Any s<N> key, up to max_steps of them: the same schema for a first plan and every re-plan
    # (numbered after the kept steps), so it is a byte-identical prefix for a provider's cache.
    assert steps["patternProperties"] == {"^s[1-9][0-9]*$": {"$ref": "#/$defs/step"}}
    assert steps["minProperties"] == 1 and steps["maxProperties"] == 20
    assert steps["additionalProperties"] is False
    # One step object: what every kind of step has is written once; its head (call, prompt or
    # investigate) is one of its properties, exactly one of them required.
    assert list(schema["$defs"]) == ["step", "text"]
    step = schema["$defs"]["step"]
    props = step["properties"]
    assert step["required"] == ["depends_on", "title"] and step["additionalProperties"] is False
    assert step["oneOf"] == [{"required": ["call"]}, {"required": ["prompt"]}, {"required": ["investigate"]}]
    assert set(props) == {"call", "prompt", "investigate", "answer", "answer_schema", "expect_exit_codes",
                          "depends_on", "title", "requires_approval"}
    # A call names one of the tools; its args are an object, checked against the tool's own schema
    # in code: each tool's arguments are in the request once, in the catalogue's signatures.
    assert props["call"] == {
        "type": "object", "properties": {"tool": {"enum": [t.name for t in tools]}, "args": {"type": "object"}},
        "required": ["tool", "args"], "additionalProperties": False}
    assert props["prompt"] == props["investigate"] == {"$ref": "#/$defs/text"}
    assert props["depends_on"] == {"type": "array", "items": {"type": "string", "pattern": "^s[1-9][0-9]*$"},
                                   "maxItems": 8}
    assert props["title"]["maxLength"] == 60 and schema["$defs"]["text"]["maxLength"] == 4000
    assert "description" not in json.dumps(schema)
    ok = Draft202012Validator(schema)
    s1 = GOOD["steps"]["s1"]
    assert ok.is_valid({"steps": {"s1": {"investigate": "why?", "depends_on": [], "title": "Why"}}})
    assert not ok.is_valid({"steps": {"s1": {"depends_on": [], "title": "No head"}}})
    assert not ok.is_valid({"steps": {"s1": {**s1, "investigate": "and why?"}}})


def test_hosted_request_gives_each_tools_arguments_once(ws: Path) -> None:
    # The catalogue's signature is the one place a tool's arguments are: a tool the survey may call is
    # sent as a callable tool with its schema, and the catalogue names it without describing it again.
    _, model = plan_with(ws, [GOOD])
    req = model.requests[0]
    system = req.messages[0]["content"]
    given = {t["function"]["name"] for t in req.tools or []}
    assert given == {"list_files", "read_file"}  # the test registry's read-only tools
    assert "- write_file(path: text, content: text) [write, needs approval] -> any: Write a text file." in system
    assert "- read_file [read, runs without asking] -> any\n" in system  # no description: given now
    assert "a tool with no description is one you are given now, described there" in system
    for name in given:
        assert f"- {name}(" not in system
    assert req.response_format is not None
    assert '"content"' not in json.dumps(req.response_format)  # write_file's argument: in the signature only


def test_tool_signatures_say_names_types_options_and_defaults() -> None:
    by_name = {t.name: t for t in fixed_tools()}
    assert tool_signature(by_name["list_files"]) == 'list_files(pattern?: text = "**/*", max_items?: list of text)'
    assert tool_signature(by_name["read_file"]) == 'read_file(path: text, encoding?: "utf-8"|"latin-1")'
    assert tool_signature(by_name["run_shell"]) == ("run_shell(command: text, env?: {cwd: text, vars: list of "
                                                    "{k: text, v: text or int}})")


def test_a_hosted_draft_with_wrong_arguments_is_reasked_with_the_problem(ws: Path) -> None:
    # The schema no longer types each tool's args: a wrong argument name or type fits it, and the
    # planner's own check names the problem in the re-ask.
    s1 = GOOD["steps"]["s1"]
    bad = {"steps": {**GOOD["steps"], "s1": {**s1, "call": {"tool": s1["call"]["tool"], "args": {"colour": 1}}}}}
    assert Draft202012Validator(hosted_draft_schema(make_registry(ws).tools(), 20)).is_valid(bad)
    plan, model = plan_with(ws, [bad, GOOD])
    assert len(plan.steps) == len(GOOD["steps"]) and len(model.requests) == 2
    problems = model.requests[1].messages[-1]["content"]
    assert "Your plan is not valid" in problems and "s1" in problems and "colour" in problems


def test_a_hosted_plan_may_pass_a_whole_output_to_an_array_argument(ws: Path) -> None:
    # "edits": "{{s2.output}}", as the hosted prompt teaches, passes the planner's check of the args;
    # a string that is no reference does not, and is re-asked.
    def draft(edits: str) -> dict[str, Any]:
        return {"steps": {
            "s1": {"call": {"tool": "read_file", "args": {"path": "main.py"}}, "depends_on": [], "title": "Read"},
            "s2": {"prompt": "Change it: {{s1.output}}", "answer": "edits", "depends_on": ["s1"], "title": "Edit"},
            "s3": {"call": {"tool": "apply_edits", "args": {"edits": edits}}, "depends_on": ["s2"],
                   "title": "Apply"}}}

    registry = asyncio.run(build_registry(Settings(config=Config(), workspace=ws), plugins=False, mcp=False))
    plan, model = plan_with(ws, [draft("{{s2.output}}")], registry=registry)
    assert len(model.requests) == 1 and plan.steps[2].args == {"edits": "{{s2.output}}"}
    plan, model = plan_with(ws, [draft("see above"), draft("{{s2.output}}")], registry=registry)
    assert len(model.requests) == 2 and "s3" in model.requests[1].messages[-1]["content"]


def test_hosted_schema_is_as_strict_as_the_grammar_schema(ws: Path) -> None:
    tools = make_registry(ws).tools()
    for schema in (hosted_draft_schema(tools, 20), draft_schema(tools, 20)):
        # Every object closed but a hosted call's args (any object: checked against the tool in code).
        found = [o for o in objects(schema) if o != {"type": "object"}]
        assert found and all(o.get("additionalProperties") is False for o in found)
        assert all(set(o.get("required", [])) <= set(o.get("properties", {})) for o in found)
        assert all(o.get("properties") or o.get("patternProperties") for o in found)
    hosted = hosted_draft_schema(tools, 20)
    Draft202012Validator.check_schema(hosted)
    ok = Draft202012Validator(hosted)
    assert ok.is_valid(GOOD)
    s1 = GOOD["steps"]["s1"]
    bad = [
        {"steps": {}},  # s1 is required
        {"steps": {f"s{i}": s1 for i in range(1, 22)}},  # no more than max_steps
        {"steps": {"step1": s1}},  # not a step id
        {"steps": {"s1": {**s1, "depends_on": ["step1"]}}},  # not a step id
        {"steps": {"s1": {**s1, "depends_on": [f"s{i}" for i in range(1, 10)]}}},  # bounded
        {"steps": {"s1": {**s1, "prompt": "and also this"}}},  # a call or a prompt, not both
        {"steps": {"s1": {**s1, "colour": "red"}}},
        {"steps": {"s1": {k: v for k, v in s1.items() if k != "title"}}},
        {"steps": {"s1": {**s1, "call": {"tool": "list_file", "args": {}}}}},
        {"steps": {"s1": {**s1, "call": {"tool": "read_file", "args": "colour"}}}},
    ]
    assert [ok.is_valid(b) for b in bad] == [False] * len(bad)


def test_hosted_schema_grows_with_tools_not_steps(ws: Path) -> None:
    tools = make_registry(ws).tools()

    def tok(schema: dict[str, Any]) -> int:
        return tokens.count_text(json.dumps(schema))

    assert tok(hosted_draft_schema(tools, 20)) * 3 < tok(draft_schema(tools, 20))
    per_slot = (tok(hosted_draft_schema(tools, 50)) - tok(hosted_draft_schema(tools, 5))) / 45
    assert per_slot < 20  # a $ref per slot, nothing else
    assert tok(hosted_draft_schema(tools[:1], 20)) < tok(hosted_draft_schema(tools, 20))
    # No tools: prompt steps only (an empty enum is no valid schema), the prompt simply required.
    no_tools = hosted_draft_schema([], 3)["$defs"]["step"]
    assert "call" not in no_tools["properties"] and "oneOf" not in no_tools
    assert no_tools["required"] == ["prompt", "depends_on", "title"]


def test_what_the_hosted_schema_lets_through_is_reasked(ws: Path) -> None:
    # Without per-slot enums, a self- or dangling dependency can be written; interpret_draft catches it.
    s1 = GOOD["steps"]["s1"]
    bad = {"steps": {"s1": {**s1, "depends_on": ["s1"]}, "s2": {**s1, "depends_on": ["s7"]}}}
    assert Draft202012Validator(hosted_draft_schema(make_registry(ws).tools(), 20)).is_valid(bad)
    plan, model = plan_with(ws, [bad, GOOD])
    assert len(plan.steps) == 4 and len(model.requests) == 2
    problems = model.requests[1].messages[-1]["content"]
    assert "s1.depends_on: a step cannot depend on itself" in problems
    assert "s2.depends_on: 's7' is not a step; existing steps: s1, s2" in problems

